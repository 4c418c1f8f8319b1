package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// registry is the node's index of what it runs: its partition replicas by
// partition and by Raft instance, and its Raft groups (the metadata group
// too) by instance and by name, for observations and election calls.
type registry struct {
	mu       sync.RWMutex
	replicas map[tp]*replica
	byRaft   map[*raft.Raft]*replica
	groups   map[*raft.Raft]*raftGroup
	byName   map[string]*raftGroup
	// list caches all; nil after a change.
	list atomic.Pointer[[]*replica]
}

func newRegistry() *registry {
	return &registry{
		replicas: make(map[tp]*replica),
		byRaft:   make(map[*raft.Raft]*replica),
		groups:   make(map[*raft.Raft]*raftGroup),
		byName:   make(map[string]*raftGroup),
	}
}

func (g *registry) replica(t tp) *replica {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.replicas[t]
}

// put indexes a started replica under its partition.
func (g *registry) put(t tp, r *replica) {
	g.mu.Lock()
	g.replicas[t] = r
	g.list.Store(nil)
	g.mu.Unlock()
}

// drop removes a partition's replica from the index.
func (g *registry) drop(t tp) {
	g.mu.Lock()
	delete(g.replicas, t)
	g.list.Store(nil)
	g.mu.Unlock()
}

// takeAll empties the index and returns what it held (shutdown).
func (g *registry) takeAll() []*replica {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*replica, 0, len(g.replicas))
	for key, r := range g.replicas {
		out = append(out, r)
		delete(g.replicas, key)
	}
	g.list.Store(nil)
	return out
}

// all lists the running partition replicas. The list is shared and must
// not be modified; it is made again only when replicas start or stop, as
// the node's loops walk it every few seconds.
func (g *registry) all() []*replica {
	if l := g.list.Load(); l != nil {
		return *l
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.list.Load(); l != nil {
		return *l
	}
	out := make([]*replica, 0, len(g.replicas))
	for _, r := range g.replicas {
		out = append(out, r)
	}
	g.list.Store(&out)
	return out
}

// keys lists the partitions with a running replica.
func (g *registry) keys() []tp {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]tp, 0, len(g.replicas))
	for k := range g.replicas {
		out = append(out, k)
	}
	return out
}

// addGroup indexes a started Raft group.
func (g *registry) addGroup(rg *raftGroup) {
	g.mu.Lock()
	g.groups[rg.raft] = rg
	g.byName[rg.name] = rg
	g.mu.Unlock()
}

// removeGroup drops a stopped Raft group, unless another took its place.
func (g *registry) removeGroup(rg *raftGroup) {
	g.mu.Lock()
	if g.groups[rg.raft] == rg {
		delete(g.groups, rg.raft)
	}
	if g.byName[rg.name] == rg {
		delete(g.byName, rg.name)
	}
	g.mu.Unlock()
}

// bindRaft indexes a replica under its Raft instance; unbindRaft undoes it.
func (g *registry) bindRaft(r *raft.Raft, rep *replica) {
	g.mu.Lock()
	g.byRaft[r] = rep
	g.mu.Unlock()
}

func (g *registry) unbindRaft(r *raft.Raft) {
	g.mu.Lock()
	delete(g.byRaft, r)
	g.mu.Unlock()
}

// ofRaft is the group and the replica (nil for the metadata group) that a
// Raft instance belongs to.
func (g *registry) ofRaft(r *raft.Raft) (*raftGroup, *replica) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.groups[r], g.byRaft[r]
}

func (g *registry) groupByName(name string) *raftGroup {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.byName[name]
}
