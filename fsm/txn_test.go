package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/partition/batchtest"
)

func markerEntry(index uint64, m Marker) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: EncodeMarker(m)}
}

// applyOne applies one entry and returns the offset it was given or the
// error it was refused with.
func applyOne(t *testing.T, p *PartitionFSM, l *raft.Log) (int64, error) {
	t.Helper()
	switch r := p.Apply(l).(type) {
	case *MarkerResult:
		return r.Offset, r.Err
	case *ProduceResult:
		return r.Batches[0].BaseOffset, r.Batches[0].Err
	default:
		t.Fatalf("entry %d: result %T", l.Index, r)
		return 0, nil
	}
}

func TestTransactionsOnAPartition(t *testing.T) {
	dir := t.TempDir()
	p := openFSM(t, dir)
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	step := func(l *raft.Log, wantOff int64, wantErr error) {
		t.Helper()
		off, err := applyOne(t, p, l)
		if !errors.Is(err, wantErr) || (wantErr == nil && off != wantOff) {
			t.Fatalf("entry %d: offset %d, error %v; want offset %d, error %v", l.Index, off, err, wantOff, wantErr)
		}
	}
	lso := func(want int64) {
		t.Helper()
		if got := p.LastStableOffset(); got != want {
			t.Fatalf("last stable offset %d, want %d (high watermark %d)", got, want, p.HighWatermark())
		}
	}

	step(entry(next(), 1, batchtest.Batch(0, 1, val(0))), 0, nil)
	lso(1)
	step(entry(next(), 1, batchtest.Transactional(0, 1, 5, 0, 0, val(1))), 1, nil)
	step(entry(next(), 1, batchtest.Transactional(0, 1, 6, 0, 0, val(2))), 2, nil)
	step(entry(next(), 1, batchtest.Batch(0, 1, val(3))), 3, nil)
	lso(1) // producer 5's transaction is open from offset 1
	// A producer writes inside its open transaction or not at all.
	step(entry(next(), 1, batchtest.Idempotent(0, 1, 5, 0, 1, val(4))), 0, kerr.InvalidTxnState)
	// A transactional batch needs a producer id.
	step(entry(next(), 1, partition.EncodeTxnBatch(0, -1, -1, -1, []partition.Record{{Value: val(5)}})), 0, kerr.InvalidRecord)

	// Abort with a bumped epoch (transaction version 2).
	step(markerEntry(next(), Marker{ProducerID: 5, Epoch: 1, Commit: false, TV2: true, CoordinatorEpoch: 2, Timestamp: 9}), 4, nil)
	lso(2) // producer 6's transaction is still open
	// A late batch of the aborted transaction is fenced by the new epoch,
	// and so is a marker of the old one.
	step(entry(next(), 1, batchtest.Transactional(0, 1, 5, 0, 1, val(6))), 0, kerr.InvalidProducerEpoch)
	step(markerEntry(next(), Marker{ProducerID: 5, Epoch: 0, Commit: true}), 0, kerr.InvalidProducerEpoch)
	step(markerEntry(next(), Marker{ProducerID: 6, Epoch: 0, Commit: true, CoordinatorEpoch: 2, Timestamp: 9}), 5, nil)
	lso(6)

	data, err := p.Read(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := partition.ParseBatchHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	if commit, ok := partition.ControlType(data[:h.Size()]); !ok || commit || !h.IsControl() || !h.IsTransactional() || h.ProducerEpoch != 1 {
		t.Fatalf("marker at 4: control %v transactional %v commit %v (ok %v) epoch %d", h.IsControl(), h.IsTransactional(), commit, ok, h.ProducerEpoch)
	}
	wantAborted := []AbortedTxn{{ProducerID: 5, FirstOffset: 1, LastOffset: 4}}
	for _, c := range []struct {
		from, to int64
		want     []AbortedTxn
	}{{0, 6, wantAborted}, {4, 5, wantAborted}, {5, 6, nil}, {0, 1, nil}} {
		if got := p.AbortedTxns(c.from, c.to); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("aborted in [%d, %d): %v, want %v", c.from, c.to, got, c.want)
		}
	}

	// The next transaction of producer 5 starts at sequence 0 of epoch 1,
	// the marker's epoch: a later sequence may not come first. The state
	// survives a restart.
	step(entry(next(), 1, batchtest.Transactional(0, 1, 5, 1, 1, val(7))), 0, kerr.OutOfOrderSequenceNumber)
	step(entry(next(), 1, batchtest.Transactional(0, 1, 5, 1, 0, val(7))), 6, nil)
	lso(6)
	// A late copy of the abort's TV2 marker, of the epoch the new
	// transaction writes with, must not end that transaction.
	step(markerEntry(next(), Marker{ProducerID: 5, Epoch: 1, Commit: true, TV2: true}), 0, kerr.InvalidProducerEpoch)
	lso(6)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openFSM(t, dir)
	defer p.Close()
	lso(6)
	if got := p.AbortedTxns(0, 100); fmt.Sprint(got) != fmt.Sprint(wantAborted) {
		t.Fatalf("after restart, aborted %v", got)
	}
	step(markerEntry(next(), Marker{ProducerID: 5, Epoch: 2, Commit: true, TV2: true, Timestamp: 10}), 7, nil)
	lso(8)
}

// Snapshots carry the open and aborted transactions: a restored replica
// answers read_committed reads as the one that took the snapshot.
func TestSnapshotKeepsTransactions(t *testing.T) {
	src := openFSM(t, t.TempDir())
	defer src.Close()
	src.Apply(entry(1, 1, batchtest.Transactional(0, 1, 5, 0, 0, val(1))))
	src.Apply(markerEntry(2, Marker{ProducerID: 5, Epoch: 0, Commit: false}))
	src.Apply(entry(3, 1, batchtest.Transactional(0, 1, 6, 0, 0, val(2))))
	store := raft.NewInmemSnapshotStore()
	id := persist(t, src, store)
	dst := openFSM(t, t.TempDir())
	defer dst.Close()
	_, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if dst.LastStableOffset() != 2 || fmt.Sprint(dst.AbortedTxns(0, 3)) != fmt.Sprint(src.AbortedTxns(0, 3)) {
		t.Fatalf("restored: last stable offset %d, aborted %v; source %d, %v",
			dst.LastStableOffset(), dst.AbortedTxns(0, 3), src.LastStableOffset(), src.AbortedTxns(0, 3))
	}
	if off, err := applyOne(t, dst, markerEntry(4, Marker{ProducerID: 6, Epoch: 0, Commit: true})); err != nil || off != 3 {
		t.Fatalf("commit after restore: %d, %v", off, err)
	}
	if dst.LastStableOffset() != 4 {
		t.Fatalf("last stable offset %d after the commit, want 4", dst.LastStableOffset())
	}
}

// Producers idle since before an expiry entry's time are forgotten, on
// every replica at the same entry, unless a transaction of theirs is
// open; a forgotten producer's next batch is taken as a new producer's.
func TestProducerExpiry(t *testing.T) {
	p := openFSM(t, t.TempDir())
	defer p.Close()
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	apply := func(l *raft.Log) (int64, error) { t.Helper(); return applyOne(t, p, l) }
	if _, err := apply(entry(next(), 1, batchtest.Idempotent(0, 1000, 5, 0, 0, val(0)))); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(entry(next(), 1, batchtest.Transactional(0, 1000, 6, 0, 0, val(1)))); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(entry(next(), 1, batchtest.Idempotent(0, 5000, 7, 0, 0, val(2)))); err != nil {
		t.Fatal(err)
	}
	// A gap is refused while producer 5 is remembered.
	if _, err := apply(entry(next(), 1, batchtest.Idempotent(0, 1000, 5, 0, 9, val(3)))); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("gap before expiry: %v", err)
	}
	res, ok := p.Apply(&raft.Log{Index: next(), Term: 1, Type: raft.LogCommand, Data: ExpireProducers(2000)}).(*ExpireResult)
	if !ok || res.Expired != 1 || p.ProducerCount() != 2 {
		t.Fatalf("expiry before 2000: %+v, %d producers left; want 1 expired (5; 6 has an open transaction, 7 is newer)", res, p.ProducerCount())
	}
	if _, err := apply(entry(next(), 1, batchtest.Idempotent(0, 1000, 5, 0, 9, val(4)))); err != nil {
		t.Fatalf("forgotten producer's batch: %v", err)
	}
	// Replay is deterministic: the same entries forget the same producers.
	q := openFSM(t, t.TempDir())
	defer q.Close()
	for _, l := range []*raft.Log{
		entry(1, 1, batchtest.Idempotent(0, 1000, 5, 0, 0, val(0))),
		entry(2, 1, batchtest.Transactional(0, 1000, 6, 0, 0, val(1))),
		entry(3, 1, batchtest.Idempotent(0, 5000, 7, 0, 0, val(2))),
		entry(4, 1, batchtest.Idempotent(0, 1000, 5, 0, 9, val(3))),
		{Index: 5, Term: 1, Type: raft.LogCommand, Data: ExpireProducers(2000)},
		entry(6, 1, batchtest.Idempotent(0, 1000, 5, 0, 9, val(4))),
	} {
		q.Apply(l)
	}
	if !bytes.Equal(logBytes(t, p), logBytes(t, q)) || fmt.Sprint(sortedProducers(p.producers)) != fmt.Sprint(sortedProducers(q.producers)) {
		t.Fatal("two replays of an expiry differ")
	}
}
