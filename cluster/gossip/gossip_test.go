package gossip

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const testCluster = "test-cluster"

// waitTime bounds every "eventually": generous, as -race on two cores is
// slow, and nothing here asserts on timing.
const waitTime = 20 * time.Second

func testMeta(id int32) NodeMeta {
	return NodeMeta{
		ID:         id,
		KafkaAddr:  fmt.Sprintf("127.0.0.1:%d", 19000+id),
		NodeAddr:   fmt.Sprintf("127.0.0.1:%d", 19100+id),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", 19200+id),
		Rack:       fmt.Sprintf("rack-%d", id%2),
		Controller: id <= 3,
		ClusterID:  testCluster,
	}
}

func testConfig(id int32, bind string, join ...string) Config {
	return Config{Meta: testMeta(id), BindAddr: bind, Join: join, Fast: true}
}

// testLogger discards logs unless QUIRE_GOSSIP_LOG is set: memberlist keeps
// logging for a moment after Shutdown, past the end of a test.
func testLogger(t *testing.T, name string) hclog.Logger {
	if os.Getenv("QUIRE_GOSSIP_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name() + "/" + name, Level: hclog.Debug, Output: os.Stderr})
}

// start starts a node that the test shuts down at its end.
func start(t *testing.T, cfg Config) *Gossip {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, nodeName(cfg.Meta.ID))
	}
	g, err := Start(cfg)
	if err != nil {
		t.Fatalf("start node %d: %v", cfg.Meta.ID, err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

// reservePort finds a loopback port free for both TCP and UDP, for a node
// whose address others must know before it starts.
func reservePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := tl.Addr().String()
		ul, err := net.ListenPacket("udp", addr)
		_ = tl.Close()
		if err == nil {
			_ = ul.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// startCluster starts n nodes, 2..n joining node 1, and waits until all
// see each other alive.
func startCluster(t *testing.T, n int, modify func(*Config)) []*Gossip {
	t.Helper()
	var nodes []*Gossip
	for id := int32(1); id <= int32(n); id++ {
		var cfg Config
		if id == 1 {
			cfg = testConfig(id, "127.0.0.1:0")
		} else {
			cfg = testConfig(id, "127.0.0.1:0", nodes[0].Addr())
		}
		if modify != nil {
			modify(&cfg)
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitConverged(t, nodes)
	return nodes
}

// eventually polls cond until it returns nil or waitTime passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, waitTime, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// never checks for d that cond stays nil.
func never(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// expected is what every node should list once nodes have converged.
func expected(nodes []*Gossip) []Member {
	var want []Member
	for _, g := range nodes {
		want = append(want, Member{Meta: g.cfg.Meta, Addr: g.Addr(), State: StateAlive})
	}
	slices.SortFunc(want, func(a, b Member) int { return int(a.Meta.ID - b.Meta.ID) })
	return want
}

func waitConverged(t *testing.T, nodes []*Gossip) {
	t.Helper()
	want := expected(nodes)
	for _, g := range nodes {
		eventually(t, fmt.Sprintf("node %d sees all alive", g.self), func() error {
			if got := g.Members(); !slices.Equal(got, want) {
				return fmt.Errorf("got %+v\nwant %+v", got, want)
			}
			return nil
		})
	}
}

// stateIs checks how g sees node id.
func stateIs(g *Gossip, id int32, want ...State) error {
	m, ok := g.Member(id)
	if !ok {
		return fmt.Errorf("node %d does not know node %d", g.self, id)
	}
	if !slices.Contains(want, m.State) {
		return fmt.Errorf("node %d sees node %d %v, want one of %v", g.self, id, m.State, want)
	}
	return nil
}

func TestStartInAnyOrder(t *testing.T) {
	addr1 := reservePort(t)
	n3 := start(t, testConfig(3, "127.0.0.1:0", addr1))
	var calls atomic.Int32
	n3.Subscribe(func() { calls.Add(1) })
	n2 := start(t, testConfig(2, "127.0.0.1:0", addr1))

	// Node 1 is not up yet: nodes 2 and 3 must keep retrying it.
	never(t, "node 3 alone before node 1 starts", 1500*time.Millisecond, func() error {
		if n := len(n3.Members()); n != 1 {
			return fmt.Errorf("node 3 lists %d members", n)
		}
		return nil
	})
	n1 := start(t, testConfig(1, addr1))
	// A subscriber that blocks must not hold up gossip.
	release := make(chan struct{})
	n1.Subscribe(func() { <-release })
	t.Cleanup(func() { close(release) })

	nodes := []*Gossip{n1, n2, n3}
	waitConverged(t, nodes)
	if calls.Load() == 0 {
		t.Error("node 3's subscriber was never called")
	}

	t.Run("UpdateMeta", func(t *testing.T) {
		meta := testMeta(2)
		meta.Rack = "moved"
		meta.KafkaAddr = "127.0.0.1:29092"
		before := calls.Load()
		if err := n2.UpdateMeta(meta); err != nil {
			t.Fatal(err)
		}
		for _, g := range nodes {
			eventually(t, fmt.Sprintf("node %d sees node 2's new meta", g.self), func() error {
				if m, _ := g.Member(2); m.Meta != meta {
					return fmt.Errorf("got %+v", m.Meta)
				}
				return nil
			})
		}
		eventually(t, "node 3's subscriber called", func() error {
			if calls.Load() == before {
				return fmt.Errorf("no call")
			}
			return nil
		})
		bad := meta
		bad.ClusterID = "other"
		if err := n2.UpdateMeta(bad); err == nil {
			t.Error("UpdateMeta accepted a ClusterID change")
		}
	})
}

func TestCloseIsSeenAsLeft(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n3.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, g := range []*Gossip{n1, n2} {
		eventually(t, "node 3 gone", func() error { return stateIs(g, 3, StateLeft, StateDead) })
		m, _ := g.Member(3)
		t.Logf("node %d sees node 3 %v", g.self, m.State)
		if g.Alive(3) {
			t.Errorf("node %d: Alive(3) after Close", g.self)
		}
	}
	if !n1.Alive(2) || !n2.Alive(1) {
		t.Error("remaining nodes not alive to each other")
	}
	if err := n3.UpdateMeta(testMeta(3)); err == nil {
		t.Error("UpdateMeta after Close succeeded")
	}
}

func TestHardStopIsSuspectThenDead(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	var mu sync.Mutex
	var seen []State // node 3's states as node 1 publishes them
	n1.Subscribe(func() {
		m, _ := n1.Member(3)
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 || seen[len(seen)-1] != m.State {
			seen = append(seen, m.State)
		}
	})
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Gossip{n1, n2} {
		eventually(t, "node 3 dead", func() error { return stateIs(g, 3, StateDead) })
	}
	eventually(t, "node 1's subscriber saw dead", func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(seen, StateDead) {
			return fmt.Errorf("saw %v", seen)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	i := slices.Index(seen, StateSuspect)
	if i < 0 || i > slices.Index(seen, StateDead) {
		t.Errorf("node 1 saw node 3 go %v, want suspect before dead", seen)
	}
}

func TestBlockedPartitionHeals(t *testing.T) {
	var isolated atomic.Int32 // 0: no fault
	blocked := func(from, to int32) bool {
		x := isolated.Load()
		return x != 0 && from != to && (from == x || to == x)
	}
	nodes := startCluster(t, 3, func(c *Config) { c.Blocked = blocked })
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	isolated.Store(3)
	for _, g := range []*Gossip{n1, n2} {
		eventually(t, "majority loses node 3", func() error { return stateIs(g, 3, StateDead) })
	}
	for _, id := range []int32{1, 2} {
		eventually(t, "node 3 loses the majority", func() error { return stateIs(n3, id, StateDead) })
	}
	// Fast timings can mark a peer suspect for a moment on a loaded
	// machine; what matters is that the majority sees itself alive.
	eventually(t, "majority alive to each other during the partition", func() error {
		if !n1.Alive(2) || !n2.Alive(1) {
			return fmt.Errorf("node 1 sees 2 alive: %v, node 2 sees 1 alive: %v", n1.Alive(2), n2.Alive(1))
		}
		return nil
	})
	// Outlast memberlist's gossip to the dead, so that only reconnecting
	// can heal the split.
	mc, _ := n1.cfg.memberlistConfig()
	time.Sleep(mc.GossipToTheDeadTime + time.Second)

	isolated.Store(0)
	waitConverged(t, nodes)
}

func TestForeignClusterNotAdmitted(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	cfg := testConfig(9, "127.0.0.1:0", nodes[0].Addr())
	cfg.Meta.ClusterID = "other-cluster"
	foreign := start(t, cfg)

	never(t, "foreign node stays out", 3*time.Second, func() error {
		for _, g := range nodes {
			if _, ok := g.Member(9); ok {
				return fmt.Errorf("node %d admitted node 9", g.self)
			}
		}
		if n := len(foreign.Members()); n != 1 {
			return fmt.Errorf("foreign node lists %d members", n)
		}
		return nil
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent loggers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDuplicateIDIsReported(t *testing.T) {
	var logs syncBuffer
	nodes := startCluster(t, 2, func(c *Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs})
	})
	n1, n2 := nodes[0], nodes[1]
	start(t, testConfig(2, "127.0.0.1:0", n1.Addr()))

	eventually(t, "conflict logged", func() error {
		if !strings.Contains(logs.String(), "node id conflict") {
			return fmt.Errorf("no conflict in logs:\n%s", logs.String())
		}
		return nil
	})
	if m, _ := n1.Member(2); m.Addr != n2.Addr() {
		t.Errorf("node 1 lists node 2 at %s, want the first claimant %s", m.Addr, n2.Addr())
	}
}

// A restarted node whose Join names no one else (the first seed of a
// cluster) joins the peers it remembers from its last run at once, rather
// than counting them dead until one of them happens to reconnect.
func TestRestartedSeedJoinsRememberedPeers(t *testing.T) {
	peers := filepath.Join(t.TempDir(), "gossip-peers")
	seedAddr := reservePort(t)
	// Production timings: with test ones, the peer's own reconnects (every
	// second) would hide whether the seed joins by itself.
	seedCfg := testConfig(1, seedAddr)
	seedCfg.PeersFile, seedCfg.Fast = peers, false
	seed := start(t, seedCfg)
	otherCfg := testConfig(2, "127.0.0.1:0", seedAddr)
	otherCfg.Fast = false
	other := start(t, otherCfg)
	waitConverged(t, []*Gossip{seed, other})
	eventually(t, "the seed to remember its peer", func() error {
		if got := readPeers(peers); !slices.Equal(got, []string{other.Addr()}) {
			return fmt.Errorf("remembered %v, want [%s]", got, other.Addr())
		}
		return nil
	})
	if err := seed.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Down long enough to be declared dead: the peer no longer gossips
	// to it, so only the seed's own join can bring them together soon.
	eventually(t, "the peer to find the seed dead", func() error {
		if m, _ := other.Member(1); m.State != StateDead {
			return fmt.Errorf("seed is %v", m.State)
		}
		return nil
	})
	restarted := start(t, seedCfg)
	deadline := time.Now().Add(2 * time.Second)
	for !restarted.Alive(2) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted seed does not see its remembered peer alive after 2s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
