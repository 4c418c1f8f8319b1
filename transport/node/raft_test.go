package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testFSM records applied commands in order.
type testFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{entries: slices.Clone(f.entries)}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	return nil
}

func (f *testFSM) Entries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

type testSnapshot struct{ entries []string }

func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.entries); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// raftGroup is one raft group running on every node of a testCluster.
type raftGroup struct {
	rafts map[int32]*raft.Raft
	fsms  map[int32]*testFSM
}

func startGroup(t *testing.T, c *testCluster, group string) *raftGroup {
	t.Helper()
	g := &raftGroup{rafts: make(map[int32]*raft.Raft), fsms: make(map[int32]*testFSM)}
	var servers []raft.Server
	for _, id := range c.ids {
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(ServerAddress(id)),
			Address:  ServerAddress(id),
		})
	}
	for _, id := range c.ids {
		sl, err := c.nodes[id].StreamLayer(group)
		if err != nil {
			t.Fatalf("node %d: stream layer %q: %v", id, group, err)
		}
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  sl,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hclog.NewNullLogger(),
		})
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(ServerAddress(id))
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 200 * time.Millisecond
		conf.CommitTimeout = 20 * time.Millisecond
		conf.Logger = hclog.NewNullLogger()
		logs := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatalf("node %d: bootstrap: %v", id, err)
		}
		fsm := &testFSM{}
		r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
		if err != nil {
			t.Fatalf("node %d: new raft: %v", id, err)
		}
		// Registered after the transport's cleanup, so it runs first.
		t.Cleanup(func() { r.Shutdown().Error() })
		g.rafts[id] = r
		g.fsms[id] = fsm
	}
	return g
}

// leader waits for a node other than except to lead, and returns it.
func (g *raftGroup) leader(t *testing.T, except int32) int32 {
	t.Helper()
	var leader int32 = -1
	eventually(t, "a leader", func() bool {
		for id, r := range g.rafts {
			if id != except && r.State() == raft.Leader {
				leader = id
				return true
			}
		}
		return false
	})
	return leader
}

// apply commits each command through whichever node (other than except)
// leads, retrying across elections. A retried command may be applied twice;
// tests therefore check containment, not exact logs.
func (g *raftGroup) apply(t *testing.T, except int32, cmds ...string) {
	t.Helper()
	for _, cmd := range cmds {
		eventually(t, "commit of "+cmd, func() bool {
			r := g.rafts[g.leader(t, except)]
			return r.Apply([]byte(cmd), 5*time.Second).Error() == nil
		})
	}
}

// waitApplied waits until every listed node's FSM holds all of cmds.
func (g *raftGroup) waitApplied(t *testing.T, ids []int32, cmds []string) {
	t.Helper()
	for _, id := range ids {
		eventually(t, fmt.Sprintf("node %d to apply %v", id, cmds), func() bool {
			have := g.fsms[id].Entries()
			for _, cmd := range cmds {
				if !slices.Contains(have, cmd) {
					return false
				}
			}
			return true
		})
	}
}

func commands(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestRaftGroupsShareTransports(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	groups := map[string]*raftGroup{
		"orders-0": startGroup(t, c, "orders-0"),
		"orders-1": startGroup(t, c, "orders-1"),
	}
	for name, g := range groups {
		cmds := commands(name+"-", 5)
		g.apply(t, -1, cmds...)
		g.waitApplied(t, c.ids, cmds)
		for _, id := range c.ids {
			for _, e := range g.fsms[id].Entries() {
				if !slices.Contains(cmds, e) {
					t.Errorf("group %s node %d applied %q from another group", name, id, e)
				}
			}
		}
	}
}

func TestRaftIsolatedLeaderIsReplacedAndCatchesUp(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 3, faults)
	g := startGroup(t, c, "g")

	before := commands("before-", 5)
	g.apply(t, -1, before...)
	g.waitApplied(t, c.ids, before)

	old := g.leader(t, -1)
	faults.Isolate(old, c.others(old)...)
	err := g.rafts[old].Apply([]byte("lost"), 5*time.Second).Error()
	if err == nil {
		t.Fatal("isolated leader committed an entry")
	}
	t.Logf("isolated leader %d: apply failed as expected: %v", old, err)

	during := commands("during-", 5)
	g.apply(t, old, during...)
	g.waitApplied(t, c.others(old), during)

	faults.Heal()
	all := append(slices.Clone(before), during...)
	g.waitApplied(t, c.ids, all)
	for _, id := range c.ids {
		if slices.Contains(g.fsms[id].Entries(), "lost") {
			t.Errorf("node %d applied the entry the isolated leader could not commit", id)
		}
	}
}

func TestStreamLayer(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	sl, err := c.nodes[1].StreamLayer("g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[1].StreamLayer("g"); !errors.Is(err, ErrGroupExists) {
		t.Fatalf("second registration: got %v, want ErrGroupExists", err)
	}
	if got := sl.Addr().String(); got != "1" {
		t.Fatalf("Addr() = %q, want \"1\"", got)
	}

	// A stream to a group the peer has not registered is closed by the peer.
	conn, err := sl.Dial("2", 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read from unregistered group: got %v, want the stream closed", err)
	}
	conn.Close()

	// Once registered, the peer's Accept gets the stream and its bytes.
	peer, err := c.nodes[2].StreamLayer("g")
	if err != nil {
		t.Fatal(err)
	}
	conn, err = sl.Dial("2", 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	in, err := peer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if in.RemoteAddr().String() != "1" || conn.RemoteAddr().String() != "2" {
		t.Fatalf("remote addrs %q, %q; want node ids", in.RemoteAddr(), conn.RemoteAddr())
	}

	if _, err := sl.Dial("two", time.Second); err == nil {
		t.Fatal("dial of a non-numeric address succeeded")
	}

	// Close unblocks Accept, and frees the name for a restarted group.
	accepted := make(chan error, 1)
	go func() {
		_, err := peer.Accept()
		accepted <- err
	}()
	peer.Close()
	if err := <-accepted; !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: got %v, want ErrClosed", err)
	}
	if _, err := c.nodes[2].StreamLayer("g"); err != nil {
		t.Fatalf("re-register after close: %v", err)
	}
}
