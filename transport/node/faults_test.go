package node

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFaultsRules(t *testing.T) {
	type check struct {
		from, to int32
		blocked  bool
	}
	tests := []struct {
		name   string
		apply  func(f *Faults)
		checks []check
		notify []route // routes subscribers hear about, in any order
	}{
		{
			name:   "partition is two-way",
			apply:  func(f *Faults) { f.Partition(1, 2) },
			checks: []check{{1, 2, true}, {2, 1, true}, {1, 3, false}},
			notify: []route{{1, 2}, {2, 1}},
		},
		{
			name:   "one-way cut",
			apply:  func(f *Faults) { f.CutOneWay(1, 2) },
			checks: []check{{1, 2, true}, {2, 1, false}},
			notify: []route{{1, 2}},
		},
		{
			name:   "isolate",
			apply:  func(f *Faults) { f.Isolate(1, 2, 3) },
			checks: []check{{1, 2, true}, {2, 1, true}, {1, 3, true}, {3, 1, true}, {2, 3, false}},
			notify: []route{{1, 2}, {2, 1}, {1, 3}, {3, 1}},
		},
		{
			name:   "repeated rule is not a change",
			apply:  func(f *Faults) { f.CutOneWay(1, 2); f.Partition(1, 2) },
			checks: []check{{1, 2, true}, {2, 1, true}},
			notify: []route{{1, 2}, {2, 1}},
		},
		{
			name:   "heal clears everything",
			apply:  func(f *Faults) { f.Partition(1, 2); f.Delay(1, 2, time.Second); f.Heal() },
			checks: []check{{1, 2, false}, {2, 1, false}},
			notify: []route{{1, 2}, {2, 1}, {1, 2}, {2, 1}},
		},
		{
			name:   "delay does not block or notify",
			apply:  func(f *Faults) { f.Delay(1, 2, time.Second) },
			checks: []check{{1, 2, false}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Faults
			var mu sync.Mutex
			var heard []route
			cancel := f.Subscribe(func(from, to int32) {
				mu.Lock()
				defer mu.Unlock()
				heard = append(heard, route{from, to})
			})
			defer cancel()
			tc.apply(&f)
			for _, c := range tc.checks {
				if got := f.Blocked(c.from, c.to); got != c.blocked {
					t.Errorf("Blocked(%d, %d) = %v, want %v", c.from, c.to, got, c.blocked)
				}
			}
			sortRoutes := func(r []route) {
				slices.SortFunc(r, func(a, b route) int {
					return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to))
				})
			}
			sortRoutes(heard)
			sortRoutes(tc.notify)
			if !slices.Equal(heard, tc.notify) {
				t.Errorf("notified %v, want %v", heard, tc.notify)
			}
		})
	}

	var nilFaults *Faults
	if nilFaults.Blocked(1, 2) || nilFaults.DelayOf(1, 2) != 0 {
		t.Error("nil Faults reports a fault")
	}
	nilFaults.Subscribe(func(int32, int32) {})()

	var f Faults
	f.Delay(1, 2, time.Second)
	if f.DelayOf(1, 2) != time.Second || f.DelayOf(2, 1) != 0 {
		t.Error("delay is not one-way")
	}
	f.Delay(1, 2, 0)
	if f.DelayOf(1, 2) != 0 {
		t.Error("zero delay did not remove the delay")
	}
}

func TestFaultsBlockedDialTimesOut(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 2, faults)
	c.nodes[2].Handle("echo", echo)
	faults.Partition(1, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.nodes[1].Call(ctx, 2, "echo", nil)
	if !isTimeout(err) {
		t.Fatalf("call into a partition: got %v, want a timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("call waited for the caller's deadline instead of DialTimeout")
	}

	if _, err := c.nodes[1].dialMux(2, muxControl); !isTimeout(err) {
		t.Fatalf("raft dial into a partition: got %v, want a timeout", err)
	}
}

func TestFaultsOneWayCutRPC(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 2, faults)
	var served [3]atomic.Int32
	for id, tr := range c.nodes {
		tr.Handle("echo", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
			served[id].Add(1)
			return req, nil
		})
	}
	call := func(from, to int32, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := c.nodes[from].Call(ctx, to, "echo", []byte("x"))
		return err
	}
	// Established sessions both ways, so the cut has something to reset.
	for _, r := range []route{{1, 2}, {2, 1}} {
		if err := call(r.from, r.to, 30*time.Second); err != nil {
			t.Fatalf("warm-up %d->%d: %v", r.from, r.to, err)
		}
	}

	faults.CutOneWay(1, 2)
	if err := call(1, 2, 2*time.Second); !isTimeout(err) {
		t.Fatalf("1->2 across the cut: got %v, want a timeout", err)
	}
	before := served[1].Load()
	if err := call(2, 1, 2*time.Second); !isTimeout(err) {
		t.Fatalf("2->1 with 1's answers cut: got %v, want a timeout", err)
	}
	eventually(t, "node 2's request to reach node 1", func() bool { return served[1].Load() > before })

	faults.Heal()
	for _, r := range []route{{1, 2}, {2, 1}} {
		eventually(t, "calls to work after heal", func() bool { return call(r.from, r.to, 10*time.Second) == nil })
	}
}

func TestFaultsDelayedCallSucceeds(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 2, faults)
	c.nodes[2].Handle("echo", echo)
	faults.Delay(1, 2, 100*time.Millisecond)
	faults.Delay(2, 1, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := c.nodes[1].Call(ctx, 2, "echo", []byte("slow"))
	if err != nil || string(got) != "slow" {
		t.Fatalf("delayed call: got %q, %v", got, err)
	}
}

func TestFaultsChangeResetsSessions(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 2, faults)
	c.nodes[2].Handle("echo", echo)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.nodes[1].Call(ctx, 2, "echo", nil); err != nil {
		t.Fatal(err)
	}
	sessions := func(tr *Transport) int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.links)
	}
	faults.CutOneWay(2, 1)
	eventually(t, "sessions to close on both ends", func() bool {
		return sessions(c.nodes[1]) == 0 && sessions(c.nodes[2]) == 0
	})
	faults.Heal()
	if _, err := c.nodes[1].Call(ctx, 2, "echo", nil); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

// TestFaultRules: SetRules replaces every fault at once, Rules reports them
// back in route order, subscribers hear only routes whose drop changed, and
// loss shows as stalls on streams and drops on datagrams.
func TestFaultRules(t *testing.T) {
	var f Faults
	var heard []route
	f.Subscribe(func(from, to int32) { heard = append(heard, route{from, to}) })
	f.Partition(1, 2)
	heard = nil
	rules := []Rule{{From: 2, To: 1, Drop: true}, {From: 1, To: 3, DelayMS: 50}, {From: 3, To: 1, Loss: 1}}
	f.SetRules(rules)
	if want := []route{{1, 2}}; !slices.Equal(heard, want) {
		t.Errorf("notified %v, want only %v (2->1 stayed dropped)", heard, want)
	}
	want := []Rule{{From: 1, To: 3, DelayMS: 50}, {From: 2, To: 1, Drop: true}, {From: 3, To: 1, Loss: 1}}
	if got := f.Rules(); !slices.Equal(got, want) {
		t.Errorf("Rules() = %v, want %v", got, want)
	}
	if f.WriteDelay(1, 3) != 50*time.Millisecond || f.WriteDelay(3, 1) != LossStall || f.WriteDelay(2, 3) != 0 {
		t.Errorf("write delays %v %v %v", f.WriteDelay(1, 3), f.WriteDelay(3, 1), f.WriteDelay(2, 3))
	}
	if !f.Drops(2, 1) || !f.Drops(3, 1) || f.Drops(1, 3) {
		t.Error("datagram drops do not follow the rules")
	}
	f.Heal()
	if len(f.Rules()) != 0 || f.Drops(2, 1) {
		t.Error("Heal left faults behind")
	}
}

// TestFaultsRPCDelayAndDuplicate: a method rule delays only the calls of
// its methods, and a duplicating one makes the handler run twice, the
// copy arriving after the answer; other methods and routes are untouched.
func TestFaultsRPCDelayAndDuplicate(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 2, faults)
	var txnCalls, otherCalls atomic.Int32
	c.nodes[2].Handle("txn.end", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
		txnCalls.Add(1)
		return req, nil
	})
	c.nodes[2].Handle("other", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
		otherCalls.Add(1)
		return req, nil
	})
	faults.SetRules([]Rule{{From: 1, To: 2, Method: "txn.", DelayMS: 200, Duplicate: true}})
	if got := faults.Rules(); len(got) != 1 || got[0].Method != "txn." || !got[0].Duplicate || got[0].DelayMS != 200 {
		t.Fatalf("Rules() = %+v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.nodes[1].Call(ctx, 2, "txn.end", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("txn call took %v, want at least the 200ms delay", d)
	}
	if n := txnCalls.Load(); n != 1 {
		t.Errorf("the copy arrived with the call: %d calls at the answer", n)
	}
	eventually(t, "the late copy to arrive", func() bool { return txnCalls.Load() == 2 })
	for _, call := range []struct {
		from, to int32
		method   string
	}{{1, 2, "other"}, {2, 2, "txn.end"}} {
		if _, err := c.nodes[call.from].Call(ctx, call.to, call.method, nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if txnCalls.Load() != 3 || otherCalls.Load() != 1 {
		t.Errorf("calls off the rule were duplicated: txn %d (want 3), other %d (want 1)", txnCalls.Load(), otherCalls.Load())
	}
}
