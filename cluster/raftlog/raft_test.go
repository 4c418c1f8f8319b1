package raftlog

import (
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*raft.Log) any { f.n.Add(1); return nil }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return snap{}, nil }

func (f *countFSM) Restore(r io.ReadCloser) error { return r.Close() }

type snap struct{}

func (snap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (snap) Release()                          {}

// TestRaftGroupsOnSharedLogs runs two 3-voter groups whose replicas on
// each node share that node's log, through elections, commits and
// compaction.
func TestRaftGroupsOnSharedLogs(t *testing.T) {
	const nodes, groups, applies = 3, 2, 300
	logs := make([]*Log, nodes)
	for i := range logs {
		logs[i] = open(t, t.TempDir(), Options{SegmentBytes: 64 << 10})
		defer logs[i].Close()
	}
	for g := 0; g < groups; g++ {
		var servers []raft.Server
		trans := make([]*raft.InmemTransport, nodes)
		for i := range trans {
			addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("g%d-n%d", g, i)))
			trans[i] = tr
			servers = append(servers, raft.Server{ID: raft.ServerID(addr), Address: addr})
		}
		for i := range trans {
			for j := range trans {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
		var rafts []*raft.Raft
		var fsms []*countFSM
		for i := 0; i < nodes; i++ {
			s := groupOf(t, logs[i], fmt.Sprintf("group-%d", g))
			c := raft.DefaultConfig()
			c.LocalID = servers[i].ID
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
			c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 50, 10, 100*time.Millisecond
			c.Logger = nil
			snaps := raft.NewInmemSnapshotStore()
			if err := raft.BootstrapCluster(c, s, s, snaps, trans[i], raft.Configuration{Servers: servers}); err != nil {
				t.Fatal(err)
			}
			f := &countFSM{}
			r, err := raft.NewRaft(c, f, s, s, snaps, trans[i])
			if err != nil {
				t.Fatal(err)
			}
			defer func() { r.Shutdown().Error() }() // before the logs close: raft panics on a closed store
			rafts = append(rafts, r)
			fsms = append(fsms, f)
		}
		deadline := time.Now().Add(30 * time.Second)
		var leader *raft.Raft
		for leader == nil && time.Now().Before(deadline) {
			for _, r := range rafts {
				if r.State() == raft.Leader {
					leader = r
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if leader == nil {
			t.Fatal("no leader")
		}
		var last raft.ApplyFuture
		for i := 0; i < applies; i++ {
			last = leader.Apply([]byte("x"), 10*time.Second)
		}
		if err := last.Error(); err != nil {
			t.Fatal(err)
		}
		for time.Now().Before(deadline) {
			done := true
			for _, f := range fsms {
				done = done && f.n.Load() == applies
			}
			if done {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i, f := range fsms {
			if f.n.Load() != applies {
				t.Fatalf("group %d node %d applied %d of %d", g, i, f.n.Load(), applies)
			}
		}
	}
}
