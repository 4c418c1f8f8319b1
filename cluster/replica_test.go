package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// soloLeader runs a one-voter raft group in memory and waits for it to
// lead.
func soloLeader(t *testing.T) *raft.Raft {
	t.Helper()
	c := raft.DefaultConfig()
	c.LocalID = "1"
	c.HeartbeatTimeout, c.ElectionTimeout = 50*time.Millisecond, 50*time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.Logger = hclog.NewNullLogger()
	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	_, trans := raft.NewInmemTransport("1")
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "1", Address: trans.LocalAddr()}}}
	if err := raft.BootstrapCluster(c, store, store, snaps, trans, conf); err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(c, &raft.MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	deadline := time.Now().Add(30 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatal("the solo group never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// A leader elected a moment ago takes writes (writable) before its term's
// barrier has applied, though it is not yet named leader (leader): other
// brokers name it as soon as it wins, and refusing the client they send
// would cost it its metadata backoff. Deposed, doubted or cut off, it
// takes neither.
func TestWritableBeforeServing(t *testing.T) {
	r := soloLeader(t)
	quorum := true
	rep := &replica{group: &raftGroup{raft: r}, quorum: func() bool { return quorum }}
	term := r.CurrentTerm()

	if ok, _ := rep.leader(); ok {
		t.Fatal("named leader before its barrier applied")
	}
	if !rep.writable() {
		t.Fatal("a just-elected leader refuses writes before its barrier applied")
	}
	rep.group.servingTerm.Store(term)
	if ok, epoch := rep.leader(); !ok || epoch != int32(term) {
		t.Fatalf("serving leader: leader() = %v, %d; want true, %d", ok, epoch, term)
	}

	cases := []struct {
		name string
		set  func()
		undo func()
	}{
		{"deposed in its term", func() { rep.group.deposedTerm.Store(term) }, func() { rep.group.deposedTerm.Store(0) }},
		{"doubted after a stall", func() { rep.group.doubted.Store(true) }, func() { rep.group.doubted.Store(false) }},
		{"cut off from a quorum", func() { quorum = false }, func() { quorum = true }},
	}
	for _, c := range cases {
		c.set()
		if ok, _ := rep.leader(); ok {
			t.Errorf("%s: still named leader", c.name)
		}
		if rep.writable() {
			t.Errorf("%s: still takes writes", c.name)
		}
		c.undo()
	}
}

// A follower's answer with a newer term deposes the leadership whose
// heartbeat it answers, and not a later one the node won meanwhile:
// before, a late answer to the metadata group's previous leadership
// marked the new one deposed, and the controller stayed unavailable.
func TestStaleAnswerDeposesOnlyItsTerm(t *testing.T) {
	r := soloLeader(t)
	g := &raftGroup{raft: r, done: make(chan struct{})}
	term := r.CurrentTerm()
	g.stepDown(term - 1)
	if g.deposedTerm.Load() == term {
		t.Fatalf("an answer to term %d deposed term %d", term-1, term)
	}
	g.stepDown(term)
	if g.deposedTerm.Load() != term {
		t.Fatalf("an answer to term %d did not depose it", term)
	}
}
