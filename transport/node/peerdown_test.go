package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A peer whose transport is gone is reported down by every node that had
// a session with it and can reach its address; a session that merely
// broke, with the peer still listening, or one cut by a partition, is not
// reported.
func TestPeerDownOnlyForAGoneProcess(t *testing.T) {
	var mu sync.Mutex
	downs := map[int32][]int32{} // reporter -> peers reported down
	faults := &Faults{}
	c := newTestCluster(t, 3, faults, func(cfg *Config) {
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
		_, probing := n1.probing[2]
		return n1.out[2] == nil && !probing
	})
	// A partition between nodes 1 and 3 resets their sessions; neither
	// can tell whether the other is up, so neither reports.
	faults.Partition(1, 3)
	// Node 2's side of the broken session ends too and probes node 1, and
	// the partition's probes start: give them time to run their course (a
	// few hundred ms).
	time.Sleep(2 * time.Second)
	mu.Lock()
	if len(downs) != 0 {
		t.Fatalf("live peers reported down: %v", downs)
	}
	mu.Unlock()

	// Node 3 stops: node 2 finds its listener gone; node 1, cut off from
	// it, learns nothing.
	c.nodes[3].Close()
	eventually(t, "node 2 to report node 3 down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs[2]) > 0
	})
	// Longer than one mark lasts unrenewed: re-probes keep it.
	time.Sleep(downFor + time.Second)
	mu.Lock()
	for _, p := range downs[2] {
		if p != 3 {
			t.Fatalf("node 2 reported node %d down, want only node 3", p)
		}
	}
	if len(downs[1]) != 0 || len(downs[3]) != 0 {
		t.Fatalf("reports %v: node 1 is partitioned from node 3 and node 3 is closed; neither may report", downs)
	}
	mu.Unlock()

	// Calls to the gone peer fail at once rather than retrying the
	// refused dial, so a caller turns to another node.
	n2 := c.nodes[2]
	if _, err := n2.Call(ctx, 3, "echo", nil); !errors.Is(err, ErrPeerDown) {
		t.Fatalf("call to a gone peer: %v, want ErrPeerDown", err)
	}

	if !n2.PeerDown(3) {
		t.Fatal("node 2 does not report node 3 down")
	}

	// Node 3 comes back on its address. Without any session between them,
	// node 2's re-probe finds it listening, and calls work again.
	addr, _ := c.resolve(3)
	n3, err := Listen(Config{ID: 3, Addr: addr, Resolve: c.resolve, Faults: faults, Logger: testLogger(), DialTimeout: testDialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	n3.Handle("echo", echo)
	eventually(t, "node 2 to find node 3 back", func() bool { return !n2.PeerDown(3) })
	if _, err := n2.Call(ctx, 3, "echo", nil); err != nil {
		t.Fatalf("call to node 3 after it came back: %v", err)
	}
}
