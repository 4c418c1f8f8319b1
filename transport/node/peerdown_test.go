package node

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A peer whose transport is gone is reported down by every node that had
// a session with it; a session that merely broke, with the peer still
// listening, is not reported.
func TestPeerDownOnlyForAGoneProcess(t *testing.T) {
	var mu sync.Mutex
	downs := map[int32][]int32{} // reporter -> peers reported down
	c := newTestCluster(t, 3, &Faults{}, func(cfg *Config) {
		id := cfg.ID
		cfg.OnPeerDown = func(peer int32) {
			mu.Lock()
			defer mu.Unlock()
			downs[id] = append(downs[id], peer)
		}
	})
	for _, id := range c.ids {
		c.nodes[id].Handle("echo", echo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, from := range c.ids {
		for _, to := range c.others(from) {
			if _, err := c.nodes[from].Call(ctx, to, "echo", []byte("hi")); err != nil {
				t.Fatalf("%d -> %d: %v", from, to, err)
			}
		}
	}

	// Break node 1's session to node 2; node 2 still listens.
	n1 := c.nodes[1]
	n1.mu.Lock()
	l := n1.out[2]
	n1.mu.Unlock()
	l.close()
	eventually(t, "node 1's probe of node 2 to finish", func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.out[2] == nil && !n1.probing[2]
	})
	// Node 2's side of the session ends too and probes node 1: give
	// that probe time to run its course (a few hundred ms).
	time.Sleep(2 * time.Second)
	mu.Lock()
	if len(downs) != 0 {
		t.Fatalf("live peers reported down: %v", downs)
	}
	mu.Unlock()

	c.nodes[3].Close()
	eventually(t, "nodes 1 and 2 to report node 3 down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs[1]) > 0 && len(downs[2]) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []int32{1, 2} {
		for _, p := range downs[id] {
			if p != 3 {
				t.Fatalf("node %d reported node %d down, want only node 3", id, p)
			}
		}
	}
	if len(downs[3]) != 0 {
		t.Fatalf("closed node 3 reported %v down", downs[3])
	}
}
