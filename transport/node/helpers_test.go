package node

import (
	"cmp"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testDialTimeout keeps dials into blocked peers short so fault tests stay
// fast; it is not a bound any assertion depends on.
const testDialTimeout = 500 * time.Millisecond

// testCluster is a set of transports on loopback that resolve each other
// through a shared address book.
type testCluster struct {
	faults *Faults

	// mu guards addrs, which tests may rewrite to simulate stale addresses.
	mu    sync.Mutex
	addrs map[int32]string
	nodes map[int32]*Transport
	ids   []int32
}

func newTestCluster(t *testing.T, n int, faults *Faults, opts ...func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{faults: faults, addrs: make(map[int32]string), nodes: make(map[int32]*Transport)}
	for i := 1; i <= n; i++ {
		id := int32(i)
		cfg := Config{
			ID:          id,
			Addr:        "127.0.0.1:0",
			Resolve:     c.resolve,
			Faults:      faults,
			Logger:      testLogger(),
			DialTimeout: testDialTimeout,
			// The test groups run on raft timeouts of a few hundred ms.
			Linger: 5 * time.Millisecond,
		}
		for _, o := range opts {
			o(&cfg)
		}
		tr, err := Listen(cfg)
		if err != nil {
			t.Fatalf("listen node %d: %v", id, err)
		}
		t.Cleanup(func() { tr.Close() })
		c.setAddr(id, tr.Addr().String())
		c.nodes[id] = tr
		c.ids = append(c.ids, id)
	}
	return c
}

func (c *testCluster) resolve(id int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[id]
	return a, ok
}

func (c *testCluster) setAddr(id int32, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[id] = addr
}

func (c *testCluster) others(id int32) []int32 {
	var out []int32
	for _, o := range c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

func testLogger() hclog.Logger {
	if !testing.Verbose() {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(cmp.Or(os.Getenv("QUIRE_TEST_LOG_LEVEL"), "warn")), Output: os.Stderr})
}

// eventually polls cond until it holds or a generous deadline passes; the
// deadline only guards against hangs, it is not a performance assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func echo(ctx context.Context, from int32, req []byte) ([]byte, error) {
	return req, nil
}
