package txn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/cluster/statelog/statelogtest"
	"github.com/quirelog/quire/fsm"
)

type sentMarker struct {
	tp TopicPartition
	m  fsm.Marker
}

// fakeCluster leads the one __transaction_state partition and takes
// markers, recording them.
type fakeCluster struct {
	mu       sync.Mutex
	log      *statelogtest.MemLog
	topics   map[string]int32
	nextPID  int64
	markers  []sentMarker
	refusing error
}

func (f *fakeCluster) Partitions() int32 { return 1 }
func (f *fakeCluster) Leading(int32) (statelog.Log, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.log == nil {
		return nil, kerr.NotCoordinator
	}
	return f.log, nil
}
func (f *fakeCluster) PartitionCount(t string) int32 {
	if n, ok := f.topics[t]; ok {
		return n
	}
	return -1
}
func (f *fakeCluster) NextProducerID(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextPID++
	return 1000 + f.nextPID, nil
}
func (f *fakeCluster) WriteMarker(_ context.Context, tp TopicPartition, m fsm.Marker) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refusing != nil {
		return f.refusing
	}
	f.markers = append(f.markers, sentMarker{tp, m})
	return nil
}

func (f *fakeCluster) sent() []sentMarker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMarker(nil), f.markers...)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTest(t *testing.T) (*Coordinator, *fakeCluster, *clock) {
	t.Helper()
	clk := &clock{now: time.UnixMilli(1_800_000_000_000)}
	f := &fakeCluster{log: statelogtest.New(1), topics: map[string]int32{"t": 4}}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	c := New(cfg, f, nil)
	t.Cleanup(c.Close)
	return c, f, clk
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// state waits until the transaction reaches want and returns its state.
func state(t *testing.T, c *Coordinator, id string, want kmsg.TransactionState) txnState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := c.shardFor(ctx(t), id)
		if err == nil {
			if m := s.get(id); m != nil {
				m.mu.Lock()
				st, busy := m.txnState, m.completing
				m.mu.Unlock()
				if kmsg.TransactionState(st.state) == want && !busy {
					return st
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s never reached %v", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tps(parts ...int32) []TopicPartition {
	var out []TopicPartition
	for _, p := range parts {
		out = append(out, TopicPartition{"t", p})
	}
	return out
}

func addParts(t *testing.T, c *Coordinator, id string, pid int64, epoch int16, parts ...int32) {
	t.Helper()
	bad, err := c.AddPartitions(ctx(t), id, pid, epoch, tps(parts...))
	if err != nil || bad != nil {
		t.Fatalf("add partitions %v: %v %v", parts, bad, err)
	}
}

// markersFor lists, in order, the markers sent for pid.
func markersFor(f *fakeCluster, pid int64) string {
	var out []string
	for _, s := range f.sent() {
		if s.m.ProducerID == pid {
			kind := "abort"
			if s.m.Commit {
				kind = "commit"
			}
			out = append(out, fmt.Sprintf("%s-%d:%s@%d", s.tp.Topic, s.tp.Partition, kind, s.m.Epoch))
		}
	}
	return fmt.Sprint(out)
}

func TestCommitAndAbortWriteMarkers(t *testing.T) {
	c, f, _ := newTest(t)
	pid, epoch, err := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	if err != nil || epoch != 0 {
		t.Fatalf("init: %d %d %v", pid, epoch, err)
	}
	addParts(t, c, "tx", pid, epoch, 0, 1)
	addParts(t, c, "tx", pid, epoch, 1, 2) // 1 again: no duplicate
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, epoch, true, false); err != nil {
		t.Fatal(err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteCommit)
	addParts(t, c, "tx", pid, epoch, 3)
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, epoch, false, false); err != nil {
		t.Fatal(err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteAbort)
	sent := f.sent()
	if len(sent) != 4 {
		t.Fatalf("markers %v, want 3 commits then 1 abort", markersFor(f, pid))
	}
	for i, s := range sent {
		if s.m.Commit != (i < 3) || s.m.Epoch != 0 || s.m.CoordinatorEpoch != 1 {
			t.Fatalf("marker %d: %+v", i, s)
		}
	}
	// A retried EndTxn of the finished abort succeeds; a commit now is
	// not a valid transition.
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, epoch, false, false); err != nil {
		t.Fatalf("retried abort: %v", err)
	}
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, epoch, true, false); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("commit with nothing under way: %v", err)
	}
}

func TestNewInstanceFencesTheOld(t *testing.T) {
	c, f, _ := newTest(t)
	pid, e0, _ := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	addParts(t, c, "tx", pid, e0, 0)
	// A new instance while a transaction is under way: it is aborted
	// with a new epoch first.
	if _, _, err := c.InitProducerID(ctx(t), "tx", 60000, -1, -1); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("init with a transaction under way: %v", err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteAbort)
	pid2, e2, err := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	if err != nil || pid2 != pid || e2 != 2 {
		t.Fatalf("init after the abort: %d %d %v; want %d 2", pid2, e2, err, pid)
	}
	if got := markersFor(f, pid); got != "[t-0:abort@1]" {
		t.Fatalf("markers %s", got)
	}
	if _, err := c.AddPartitions(ctx(t), "tx", pid, e0, tps(1)); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("old instance adds a partition: %v", err)
	}
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e0, true, false); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("old instance commits: %v", err)
	}
	// KIP-360: an instance that names an older epoch is fenced too.
	if _, _, err := c.InitProducerID(ctx(t), "tx", 60000, pid, e0); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("init naming an old epoch: %v", err)
	}
	if _, _, err := c.InitProducerID(ctx(t), "tx", 0, -1, -1); !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Fatalf("zero timeout: %v", err)
	}
	if bad, err := c.AddPartitions(ctx(t), "tx", pid, e2, []TopicPartition{{"t", 9}, {"nope", 0}}); err != nil || len(bad) != 2 {
		t.Fatalf("unknown partitions: %v %v", bad, err)
	}
}

func TestTransactionVersion2BumpsEveryEnd(t *testing.T) {
	c, f, _ := newTest(t)
	pid, e0, _ := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	addParts(t, c, "tx", pid, e0, 0)
	p1, e1, err := c.EndTxn(ctx(t), "tx", pid, e0, true, true)
	if err != nil || p1 != pid || e1 != e0+1 {
		t.Fatalf("end: %d %d %v", p1, e1, err)
	}
	// The client retries, not knowing the first got through.
	if p, e, err := c.EndTxn(ctx(t), "tx", pid, e0, true, true); err != nil || p != pid || e != e1 {
		t.Fatalf("retried end: %d %d %v", p, e, err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteCommit)
	if got := markersFor(f, pid); got != "[t-0:commit@1]" {
		t.Fatalf("markers %s: the commit is written with the new epoch", got)
	}
	// An abort with nothing under way is allowed and bumps the epoch.
	if _, e, err := c.EndTxn(ctx(t), "tx", pid, e1, false, true); err != nil || e != e1+1 {
		t.Fatalf("empty abort: %d %v", e, err)
	}
	if _, err := c.AddPartitions(ctx(t), "tx", pid, e1, tps(0)); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("the previous epoch adds a partition: %v", err)
	}
}

// TestTransactionVersion2RunsOutOfEpochs: the end that would take the
// epoch past its range hands the producer a new id at epoch 0, and the
// markers close the old id's transaction with an epoch past its last.
func TestTransactionVersion2RunsOutOfEpochs(t *testing.T) {
	c, f, _ := newTest(t)
	pid, _, _ := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	s, err := c.shardFor(ctx(t), "tx")
	if err != nil {
		t.Fatal(err)
	}
	m := s.get("tx")
	m.mu.Lock()
	m.epoch = math.MaxInt16 - 1 // thirty thousand transactions later
	m.mu.Unlock()
	last := int16(math.MaxInt16 - 1)
	addParts(t, c, "tx", pid, last, 0)
	p1, e1, err := c.EndTxn(ctx(t), "tx", pid, last, true, true)
	if err != nil || p1 == pid || e1 != 0 {
		t.Fatalf("end at the last epoch: producer %d epoch %d, %v; want a new producer id at epoch 0", p1, e1, err)
	}
	if p, e, err := c.EndTxn(ctx(t), "tx", pid, last, true, true); err != nil || p != p1 || e != 0 {
		t.Fatalf("retried end: %d %d %v", p, e, err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteCommit)
	if got := markersFor(f, pid); got != fmt.Sprintf("[t-0:commit@%d]", math.MaxInt16) {
		t.Fatalf("markers of the old id %s", got)
	}
	for _, s := range f.sent() {
		if !s.m.TV2 {
			t.Fatalf("marker %+v does not say transaction version 2", s.m)
		}
	}
	addParts(t, c, "tx", p1, 0, 1)
	if _, e, err := c.EndTxn(ctx(t), "tx", p1, 0, false, true); err != nil || e != 1 {
		t.Fatalf("the new id's first end: epoch %d, %v", e, err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteAbort)
	if got := markersFor(f, p1); got != "[t-1:abort@1]" {
		t.Fatalf("markers of the new id %s", got)
	}
}

// TestFenceIntoTheLastEpoch: a transaction of the second-to-last epoch
// that times out is aborted with the last one, which no producer may then
// use; the producer starts over with a new id, whose transactions close.
func TestFenceIntoTheLastEpoch(t *testing.T) {
	c, f, clk := newTest(t)
	pid, _, _ := c.InitProducerID(ctx(t), "tx", 10000, -1, -1)
	s, err := c.shardFor(ctx(t), "tx")
	if err != nil {
		t.Fatal(err)
	}
	m := s.get("tx")
	m.mu.Lock()
	m.epoch, m.tv2 = math.MaxInt16-1, true
	m.mu.Unlock()
	last := int16(math.MaxInt16 - 1)
	addParts(t, c, "tx", pid, last, 0)
	clk.add(11 * time.Second)
	c.Sweep()
	state(t, c, "tx", kmsg.TransactionStateCompleteAbort)
	if got := markersFor(f, pid); got != fmt.Sprintf("[t-0:abort@%d]", math.MaxInt16) {
		t.Fatalf("markers %s", got)
	}
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, last, false, true); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("the producer's own abort, retried after the fence: %v", err)
	}
	if _, err := c.AddPartitions(ctx(t), "tx", pid, math.MaxInt16, tps(1)); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("a transaction in the last epoch: %v", err)
	}
	p2, e2, err := c.InitProducerID(ctx(t), "tx", 10000, -1, -1)
	if err != nil || p2 == pid || e2 != 0 {
		t.Fatalf("starting over: producer %d epoch %d, %v", p2, e2, err)
	}
}

// TestAnswersFromMemoryAreConfirmed: an end the coordinator would answer
// from its state alone (a retry) is confirmed through the log first, so a
// coordinator that lost its leadership unnoticed says NOT_COORDINATOR
// rather than "committed"; and under version 2 an end with the current
// epoch after a completed transaction is no retry but INVALID_TXN_STATE.
func TestAnswersFromMemoryAreConfirmed(t *testing.T) {
	c, f, _ := newTest(t)
	pid, e0, _ := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	addParts(t, c, "tx", pid, e0, 0)
	_, e1, err := c.EndTxn(ctx(t), "tx", pid, e0, true, true)
	if err != nil {
		t.Fatal(err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteCommit)
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e1, true, true); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("version 2 end with the current epoch and nothing under way: %v", err)
	}
	f.log.SetFail(kerr.NotLeaderForPartition) // leadership lost, not noticed yet
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e0, true, true); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("retried end on a coordinator that no longer leads: %v", err)
	}
	f.log.SetFail(nil)
	if p, e, err := c.EndTxn(ctx(t), "tx", pid, e0, true, true); err != nil || p != pid || e != e1 {
		t.Fatalf("retried end: %d %d %v", p, e, err)
	}

	// Version 1 keeps the epoch: its retry carries the current one.
	addParts(t, c, "tx", pid, e1, 1)
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e1, true, false); err != nil {
		t.Fatal(err)
	}
	state(t, c, "tx", kmsg.TransactionStateCompleteCommit)
	f.log.SetFail(kerr.NotLeaderForPartition)
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e1, true, false); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("version 1 retry on a coordinator that no longer leads: %v", err)
	}
	f.log.SetFail(nil)
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e1, true, false); err != nil {
		t.Fatalf("version 1 retry: %v", err)
	}
}

func TestTimedOutTransactionIsAborted(t *testing.T) {
	c, f, clk := newTest(t)
	pid, e0, _ := c.InitProducerID(ctx(t), "tx", 10000, -1, -1)
	addParts(t, c, "tx", pid, e0, 2)
	clk.add(5 * time.Second)
	c.Sweep()
	if got := markersFor(f, pid); got != "[]" {
		t.Fatalf("aborted before its timeout: %s", got)
	}
	clk.add(6 * time.Second)
	c.Sweep()
	state(t, c, "tx", kmsg.TransactionStateCompleteAbort)
	if got := markersFor(f, pid); got != "[t-2:abort@1]" {
		t.Fatalf("markers %s", got)
	}
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e0, true, false); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("commit after the timeout: %v", err)
	}
}

// A coordinator that fails over after deciding a commit, before the
// markers are written, leaves the decision in the log; the next leader
// writes the markers and completes it.
func TestFailoverFinishesADecidedCommit(t *testing.T) {
	c, f, _ := newTest(t)
	pid, e0, _ := c.InitProducerID(ctx(t), "tx", 60000, -1, -1)
	addParts(t, c, "tx", pid, e0, 0, 3)
	f.mu.Lock()
	f.refusing = kerr.NotLeaderForPartition
	f.mu.Unlock()
	if _, _, err := c.EndTxn(ctx(t), "tx", pid, e0, true, false); err != nil {
		t.Fatal(err)
	}
	// Leadership moves: this coordinator stops, another loads the log.
	f.mu.Lock()
	old := f.log
	f.log = nil
	f.mu.Unlock()
	c.Sweep()
	c.Close()
	f.mu.Lock()
	f.refusing = nil
	f.log = old.Successor(2)
	f.mu.Unlock()
	next := New(c.cfg, f, nil)
	defer next.Close()
	next.Sweep()
	st := state(t, next, "tx", kmsg.TransactionStateCompleteCommit)
	if st.pid != pid || st.epoch != e0 {
		t.Fatalf("completed as %d/%d", st.pid, st.epoch)
	}
	if got := markersFor(f, pid); got != "[t-0:commit@0 t-3:commit@0]" && got != "[t-3:commit@0 t-0:commit@0]" {
		t.Fatalf("markers %s", got)
	}
	for _, s := range f.sent() {
		if s.m.CoordinatorEpoch != 2 {
			t.Fatalf("marker written with coordinator epoch %d, want the new leader's 2", s.m.CoordinatorEpoch)
		}
	}
	// The producer goes on in the same epoch.
	addParts(t, next, "tx", pid, e0, 1)
}
