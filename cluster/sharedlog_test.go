package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

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

func boltWith(t *testing.T, path string, term uint64, indexes ...uint64) {
	t.Helper()
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
		t.Fatal(err)
	}
	for _, i := range indexes {
		if err := s.StoreLog(&raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationCopiesOnce: a raft.db is copied into the shared log with
// its term and entries (a compaction straggler's gap below the snapshot
// allowed) and removed; one that reappears afterwards (its removal lost
// to a crash) is stale and only removed again.
func TestMigrationCopiesOnce(t *testing.T) {
	dir := t.TempDir()
	wal, err := raftlog.Open(filepath.Join(dir, "raftlog"), raftlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()
	part := filepath.Join(dir, "p")
	os.MkdirAll(part, 0o755)
	db := filepath.Join(part, "raft.db")
	boltWith(t, db, 5, 3, 5, 6, 7) // 4 is missing, below the snapshot at 4
	s, _ := wal.Group("p")
	if err := migrateToShared(part, 4, s); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if term, _ := s.GetUint64([]byte("CurrentTerm")); term != 5 {
			t.Fatalf("term %d after migration", term)
		}
		if last, _ := s.LastIndex(); last != 7 {
			t.Fatalf("last index %d after migration", last)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Fatalf("raft.db still there: %v", err)
		}
	}
	check()
	boltWith(t, db, 2, 1, 2)                             // an older raft.db back from the dead
	if err := removeMigratedStore(part, s); err != nil { // as startReplica does first
		t.Fatal(err)
	}
	if err := migrateToShared(part, 0, s); err != nil {
		t.Fatal(err)
	}
	check()
}

// TestDamagedSharedLogMarksReplicas: the damaged log is set aside only
// after every partition replica is marked damaged on disk, so a restart
// before they were rebuilt still rebuilds them instead of running them
// with no term or vote.
func TestDamagedSharedLogMarksReplicas(t *testing.T) {
	dir := t.TempDir()
	wal, err := raftlog.Open(filepath.Join(dir, "raftlog"), raftlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := wal.Group("a-0-00000000")
	s.SetUint64([]byte("CurrentTerm"), 3)
	s.SetUint64([]byte("CurrentTerm"), 4)
	wal.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "raftlog", "*.wal"))
	b, _ := os.ReadFile(segs[0])
	b[20] ^= 1 // the first of two rounds: damage, not a torn write
	os.WriteFile(segs[0], b, 0o644)
	parts := []string{filepath.Join(dir, "partitions", "a-0-00000000"), filepath.Join(dir, "partitions", "b-0-00000000")}
	for _, p := range parts {
		os.MkdirAll(p, 0o755)
	}
	os.WriteFile(filepath.Join(dir, "partitions", "stray-file"), nil, 0o644)
	cfg := DefaultConfig()
	cfg.DataDir = dir
	for start := 0; start < 2; start++ {
		ctx, cancel := context.WithCancel(context.Background())
		n := &Node{cfg: cfg, ctx: ctx, cancel: cancel, logger: hclog.NewNullLogger(), metrics: newNodeMetrics(nil)}
		if err := n.openSharedLog(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "raftlog.damaged")); err != nil {
			t.Fatalf("start %d: the damaged log was not set aside: %v", start, err)
		}
		for _, p := range parts {
			if got := rebuildReason(p); got != markDamaged {
				t.Fatalf("start %d: %s marked %q, want %q", start, p, got, markDamaged)
			}
		}
		n.wal.Close()
		cancel()
	}
}
