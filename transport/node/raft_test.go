package node

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

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
		"orders-0": &startMuxGroup(t, c, "orders-0", muxOpts{}).raftGroup,
		"orders-1": &startMuxGroup(t, c, "orders-1", muxOpts{}).raftGroup,
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
	g := &startMuxGroup(t, c, "g", muxOpts{}).raftGroup

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
