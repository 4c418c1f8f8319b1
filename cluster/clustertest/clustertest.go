// Package clustertest starts in-process Quire clusters on loopback for
// tests and chaos runs, as net/http/httptest starts servers: N real nodes
// (Raft groups, gossip, node transport, Kafka listeners) in one process,
// sharing one set of network fault rules.
package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/quirelog/quire/cluster"
	"github.com/quirelog/quire/transport/freeport"
	"github.com/quirelog/quire/transport/node"
)

// Cluster is a running in-process cluster. Node i (0-based) has broker id
// i+1.
type Cluster struct {
	t      testing.TB
	Faults *node.Faults
	cfgs   []cluster.Config
	mu     sync.Mutex
	nodes  []*cluster.Node
	closed atomic.Bool
}

// Option adjusts every node's configuration before start.
type Option func(i int, c *cluster.Config)

// Start starts n nodes that form one cluster (bootstrap-expect n) and waits
// until every node is ready. The cluster is closed when the test ends.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Faults: &node.Faults{}, nodes: make([]*cluster.Node, n)}
	dir := t.TempDir()
	gossipAddrs := make([]string, n)
	for i := range gossipAddrs {
		gossipAddrs[i] = freeAddr(t)
	}
	for i := 0; i < n; i++ {
		cfg := cluster.DefaultConfig()
		cfg.NodeID = int32(i + 1)
		cfg.DataDir = filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		cfg.Kafka.Addr = freeAddr(t)
		cfg.AdminAddr = ""
		cfg.NodeAddr = freeAddr(t)
		cfg.GossipAddr = gossipAddrs[i]
		// Every other node, so a restarted node finds the cluster whichever
		// node it is.
		for j, a := range gossipAddrs {
			if j != i {
				cfg.Join = append(cfg.Join, a)
			}
		}
		cfg.BootstrapExpect = n
		cfg.FastGossip = true
		cfg.Faults = c.Faults
		cfg.ReplicaLagTimeMax = 2 * time.Second
		for _, o := range opts {
			o(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	t.Cleanup(c.Close)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
	}
	c.WaitReady()
	return c
}

func (c *Cluster) start(i int) error {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   fmt.Sprintf("node%d", i+1),
		Level:  logLevel(),
		Output: testWriter{c.t, &c.closed},
	})
	nd, err := cluster.Start(c.cfgs[i], logger)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[i] = nd
	c.mu.Unlock()
	return nil
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Brokers lists the Kafka addresses of the running nodes.
func (c *Cluster) Brokers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, nd := range c.nodes {
		if nd != nil {
			out = append(out, c.cfgs[i].Kafka.Addr)
		}
	}
	return out
}

// KafkaAddr is node i's Kafka listener, running or not.
func (c *Cluster) KafkaAddr(i int) string { return c.cfgs[i].Kafka.Addr }

// Stop closes node i (a clean shutdown; its data stays).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	nd := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if nd == nil {
		return
	}
	if err := nd.Close(); err != nil {
		c.t.Logf("node %d close: %v", i+1, err)
	}
}

// Restart starts a stopped node i again on the same addresses and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(i); err != nil {
		c.t.Fatalf("restart node %d: %v", i+1, err)
	}
}

// Reconfigure changes stopped node i's configuration for its next
// Restart.
func (c *Cluster) Reconfigure(i int, change func(*cluster.Config)) { change(&c.cfgs[i]) }

// WaitReady waits until every running node reports ready.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.Eventually(60*time.Second, func() error {
		for i := range c.cfgs {
			if nd := c.Node(i); nd != nil {
				if err := nd.Ready(); err != nil {
					return fmt.Errorf("node %d: %w", i+1, err)
				}
			}
		}
		return nil
	})
}

// Eventually retries fn every 50ms until it returns nil, failing the test
// with fn's last error after timeout.
func (c *Cluster) Eventually(timeout time.Duration, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Leader returns the index of the node that leads the partition as every
// running node agrees, waiting for agreement.
func (c *Cluster) Leader(topic string, partition int32) int {
	c.t.Helper()
	var leader int32
	c.Eventually(30*time.Second, func() error {
		leader = -1
		for i := range c.cfgs {
			nd := c.Node(i)
			if nd == nil {
				continue
			}
			l, _ := nd.PartitionLeader(topic, partition)
			if l < 0 {
				return fmt.Errorf("node %d sees no leader for %s/%d", i+1, topic, partition)
			}
			if leader >= 0 && l != leader {
				return fmt.Errorf("nodes disagree on the leader of %s/%d: %d and %d", topic, partition, leader, l)
			}
			leader = l
		}
		return nil
	})
	return int(leader) - 1
}

// Close stops every node.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Stop(i)
		}()
	}
	wg.Wait()
	c.closed.Store(true)
}

// freeAddr picks a loopback port that stays bindable across restarts.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// testWriter sends node logs to the test log, so they show only for
// failing tests.
// After the cluster closes, stray log lines from exiting goroutines are
// dropped: testing panics on Logf after a test completes.
type testWriter struct {
	t      testing.TB
	closed *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.closed.Load() {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

// logLevel is warn unless QUIRE_TEST_LOG names another hclog level.
func logLevel() hclog.Level {
	if l := hclog.LevelFromString(os.Getenv("QUIRE_TEST_LOG")); l != hclog.NoLevel {
		return l
	}
	return hclog.Warn
}
