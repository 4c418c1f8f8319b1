package raftlog

import "github.com/hashicorp/raft"

// cache keeps the entries written most recently, up to a byte budget
// shared by all groups: a leader reads each new entry back to replicate
// it and a follower to apply it, moments after storing it. Oldest out
// first. Guarded by Log.mu.
type cache struct {
	budget, bytes int64
	entries       map[cacheKey]*raft.Log
	fifo          []cached
	head          int
}

type cacheKey struct {
	g   *group
	idx uint64
}

type cached struct {
	key  cacheKey
	e    *raft.Log
	size int64
}

func newCache(budget int64) cache {
	return cache{budget: budget, entries: map[cacheKey]*raft.Log{}}
}

func (c *cache) add(g *group, e *raft.Log, size int64) {
	if size > c.budget/4 {
		return
	}
	k := cacheKey{g, e.Index}
	c.entries[k] = e
	c.fifo = append(c.fifo, cached{k, e, size})
	c.bytes += size
	for c.bytes > c.budget {
		old := c.fifo[c.head]
		c.fifo[c.head] = cached{}
		c.head++
		c.bytes -= old.size
		if c.entries[old.key] == old.e {
			delete(c.entries, old.key)
		}
	}
	if c.head > len(c.fifo)/2 && c.head > 1024 {
		c.fifo = append(c.fifo[:0], c.fifo[c.head:]...)
		c.head = 0
	}
}

func (c *cache) get(g *group, idx uint64) *raft.Log { return c.entries[cacheKey{g, idx}] }

func (c *cache) remove(g *group, idx uint64) { delete(c.entries, cacheKey{g, idx}) }
