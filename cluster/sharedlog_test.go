package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/quirelog/quire/cluster/raftlog"
)

// TestPerGroupRefusesASharedLog: nothing moves Raft logs back out of the
// shared log, so a node whose partitions live there must not start with
// per-group logs and take every partition for one without a log.
func TestPerGroupRefusesASharedLog(t *testing.T) {
	dir := t.TempDir()
	wal, err := raftlog.Open(filepath.Join(dir, "raftlog"), raftlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wal.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.RaftLog = dir, RaftLogPerGroup
	n := &Node{cfg: cfg, ctx: ctx, cancel: cancel, logger: hclog.NewNullLogger()}
	if err := n.openSharedLog(); err == nil || !strings.Contains(err.Error(), "--raft-log shared") {
		t.Fatalf("per-group over a shared log: %v", err)
	}
	n.cfg.RaftLog = RaftLogShared
	n.metrics = newNodeMetrics(nil)
	if err := n.openSharedLog(); err != nil {
		t.Fatal(err)
	}
	n.wal.Close()
}
