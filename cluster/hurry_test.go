package cluster

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (nopFSM) Restore(r io.ReadCloser) error       { return r.Close() }

// inmemGroups starts three raft groups on in-memory transports and stores,
// wrapped as raftGroups, with the given heartbeat/election timeout.
func inmemGroups(t *testing.T, timeout time.Duration) []*raftGroup {
	t.Helper()
	ids := []raft.ServerID{"1", "2", "3"}
	trans := make([]*raft.InmemTransport, len(ids))
	var servers []raft.Server
	for i, id := range ids {
		_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(id))
		servers = append(servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	for _, a := range trans {
		for _, b := range trans {
			a.Connect(b.LocalAddr(), b)
		}
	}
	groups := make([]*raftGroup, len(ids))
	for i, id := range ids {
		c := raft.DefaultConfig()
		c.LocalID = id
		c.HeartbeatTimeout, c.ElectionTimeout = timeout, timeout
		c.LeaderLeaseTimeout = leaseTimeout(timeout)
		c.SnapshotThreshold = 12345
		c.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(c, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatal(err)
			}
		}
		g := &raftGroup{raft: r, done: make(chan struct{})}
		groups[i] = g
		t.Cleanup(func() {
			select {
			case <-g.done:
			default:
				close(g.done)
				r.Shutdown().Error()
			}
		})
	}
	return groups
}

func leaderOf(t *testing.T, groups []*raftGroup) (int, raft.ServerID) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for i, g := range groups {
			if g.raft.State() == raft.Leader {
				return i, raft.ServerID(fmt.Sprint(i + 1))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return 0, ""
}

func waitTimeout(t *testing.T, g *raftGroup, want time.Duration, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rc := g.raft.ReloadableConfig()
		if rc.HeartbeatTimeout == want && rc.ElectionTimeout == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeouts %v/%v, want %v", rc.HeartbeatTimeout, rc.ElectionTimeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A hurried follower keeps the short timeouts while its dead leader is
// still the one it knows, restores them once another leader is known, and
// keeps every other reloadable setting throughout.
func TestHurryElectionRestoresOnNewLeader(t *testing.T) {
	const normal = 500 * time.Millisecond
	fast := hurriedTimeout(normal)
	groups := inmemGroups(t, normal)
	li, lid := leaderOf(t, groups)
	f := groups[(li+1)%3]
	waitLeaderKnown(t, f, lid)

	// The leader is alive, but the follower is told it is gone: the short
	// timeouts stay for the window, then the normal ones come back.
	if err := f.hurryElection(lid, fast, normal, time.Second); err != nil {
		t.Fatal(err)
	}
	rc := f.raft.ReloadableConfig()
	if rc.HeartbeatTimeout != fast || rc.ElectionTimeout != fast || rc.SnapshotThreshold != 12345 {
		t.Fatalf("hurried config %+v, want timeouts %v and the snapshot threshold kept", rc, fast)
	}
	waitTimeout(t, f, normal, 30*time.Second)
	if rc := f.raft.ReloadableConfig(); rc.SnapshotThreshold != 12345 {
		t.Fatalf("restored config %+v lost the snapshot threshold", rc)
	}

	// A later hurry owns the restore: the earlier one's window ending
	// changes nothing.
	if err := f.hurryElection(lid, fast, normal, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := f.hurryElection(lid, fast, normal, time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	waitTimeout(t, f, fast, 0)

	// The leader really dies: the survivors elect one of themselves, and
	// the hour-long window ends there.
	other := groups[(li+2)%3]
	if err := other.hurryElection(lid, fast, normal, time.Hour); err != nil {
		t.Fatal(err)
	}
	close(groups[li].done)
	groups[li].raft.Shutdown().Error()
	waitTimeout(t, f, normal, 60*time.Second)
	waitTimeout(t, other, normal, 60*time.Second)
	if _, id := f.raft.LeaderWithID(); id == lid || id == "" {
		t.Fatalf("follower restored its timeouts while following %q", id)
	}
}

func waitLeaderKnown(t *testing.T, g *raftGroup, id raft.ServerID) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, got := g.raft.LeaderWithID(); got == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower never learned leader %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
