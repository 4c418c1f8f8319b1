package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/partition/batchtest"
)

// Small segments so that every test crosses segment boundaries.
var testCfg = func() partition.Config {
	c := partition.DefaultConfig()
	c.SegmentBytes, c.IndexIntervalBytes = 4<<10, 512
	return c
}()

func openFSM(t *testing.T, dir string) *PartitionFSM {
	t.Helper()
	p, err := OpenPartition(dir, testCfg, hclog.NewNullLogger(), false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func entry(index, term uint64, batches ...[]byte) *raft.Log {
	c := NewProduceCommand(0)
	for _, b := range batches {
		c.Add(b)
	}
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: c.Bytes()}
}

func val(i int) []byte {
	return []byte(fmt.Sprintf("record-%05d-%s", i, bytes.Repeat([]byte{byte('a' + i%26)}, i%97)))
}

// history is a log with several terms, plain and idempotent batches,
// duplicates, out-of-order sequences and fenced epochs, and a
// configuration entry, so every Apply branch is replayed.
func history(n int) []*raft.Log {
	var logs []*raft.Log
	seq := int32(0)
	txnEpoch, txnSeq := int16(0), int32(0)
	for i := 1; i <= n; i++ {
		term := uint64(1 + i/40)
		ts := int64(1_700_000_000_000 + i)
		var batches [][]byte
		switch i % 5 {
		case 0:
			batches = append(batches, batchtest.Batch(0, ts, val(i), val(i+1)))
		case 1:
			b := batchtest.Idempotent(0, ts, 7, 0, seq, val(i))
			seq++
			batches = append(batches, b, b) // the second is a duplicate
		case 2:
			batches = append(batches, batchtest.Idempotent(0, ts, 7, 0, seq+5, val(i))) // out of order
		case 3:
			batches = append(batches, batchtest.Batch(0, ts, val(i)), batchtest.Idempotent(0, ts, 9, 3, int32(i), val(i)))
		case 4:
			if i%20 == 4 {
				logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: term, Type: raft.LogConfiguration})
				continue
			}
			batches = append(batches, batchtest.Idempotent(0, ts, 9, 2, 0, val(i))) // fenced epoch
		}
		logs = append(logs, entry(uint64(len(logs)+1), term, batches...))
		// Transactions of producer 11 ride along: a batch every entry,
		// ended by a marker every seventh, alternately committed and
		// aborted, with a bumped epoch (transaction version 2) every
		// other time, and now and then a stale marker that is refused.
		logs = append(logs, entry(uint64(len(logs)+1), term, batchtest.Transactional(0, ts, 11, txnEpoch, txnSeq, val(i))))
		txnSeq++
		if i%7 == 0 {
			next := txnEpoch
			if i%14 == 0 {
				next++
			}
			m := Marker{ProducerID: 11, Epoch: next, Commit: i%21 != 0, CoordinatorEpoch: 3, Timestamp: ts}
			logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: term, Type: raft.LogCommand, Data: EncodeMarker(m)})
			if next != txnEpoch {
				txnEpoch, txnSeq = next, 0
				stale := Marker{ProducerID: 11, Epoch: txnEpoch - 1, Commit: false, Timestamp: ts}
				logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: term, Type: raft.LogCommand, Data: EncodeMarker(stale)})
			}
		}
	}
	return logs
}

func applyAll(t *testing.T, p *PartitionFSM, logs []*raft.Log) []string {
	t.Helper()
	var out []string
	for _, l := range logs {
		r := p.Apply(l)
		if m, ok := r.(*MarkerResult); ok {
			out = append(out, fmt.Sprintf("%d:marker:%d:%v", l.Index, m.Offset, m.Err))
			continue
		}
		res, ok := r.(*ProduceResult)
		if !ok {
			out = append(out, fmt.Sprintf("%d:-", l.Index))
			continue
		}
		for _, b := range res.Batches {
			out = append(out, fmt.Sprintf("%d:%d:%v", l.Index, b.BaseOffset, b.Err))
		}
	}
	return out
}

// logBytes is the partition's whole stored log, segment after segment.
func logBytes(t *testing.T, p *PartitionFSM) []byte {
	t.Helper()
	if err := p.Log().Sync(); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, s := range p.Log().Segments() {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestReplayIsByteIdentical(t *testing.T) {
	logs := history(300)
	a := openFSM(t, t.TempDir())
	defer a.Close()
	b := openFSM(t, t.TempDir())
	defer b.Close()
	ra, rb := applyAll(t, a, logs), applyAll(t, b, logs)
	if fmt.Sprint(ra) != fmt.Sprint(rb) {
		t.Fatalf("results differ:\n%v\n%v", ra, rb)
	}
	la, lb := logBytes(t, a), logBytes(t, b)
	if len(a.Log().Segments()) < 3 {
		t.Fatalf("want several segments, got %d", len(a.Log().Segments()))
	}
	if !bytes.Equal(la, lb) {
		t.Fatal("two replays of one log produced different partitions")
	}
	if a.LastStableOffset() != b.LastStableOffset() || fmt.Sprint(a.AbortedTxns(0, 1<<62)) != fmt.Sprint(b.AbortedTxns(0, 1<<62)) {
		t.Fatal("two replays of one log produced different transaction state")
	}
	if a.HighWatermark() != b.HighWatermark() || a.HighWatermark() != a.Log().NextOffset() {
		t.Fatalf("high watermarks %d %d, next offset %d", a.HighWatermark(), b.HighWatermark(), a.Log().NextOffset())
	}
}

func TestApplyAssignsOffsetsAndEpoch(t *testing.T) {
	p := openFSM(t, t.TempDir())
	defer p.Close()
	res := p.Apply(entry(1, 4, batchtest.Batch(99, 1000, val(1), val(2)), batchtest.Batch(5, 1001, val(3)))).(*ProduceResult)
	if res.Batches[0].BaseOffset != 0 || res.Batches[1].BaseOffset != 2 {
		t.Fatalf("offsets %+v", res.Batches)
	}
	data, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := partition.SplitBatches(data)
	if err != nil || len(batches) != 2 {
		t.Fatalf("split: %d batches, %v", len(batches), err)
	}
	for i, want := range []int64{0, 2} {
		h, err := partition.ValidateBatch(batches[i])
		if err != nil {
			t.Fatalf("stored batch %d fails its CRC: %v", i, err)
		}
		if h.BaseOffset != want || h.LeaderEpoch != 4 {
			t.Fatalf("batch %d: base %d epoch %d", i, h.BaseOffset, h.LeaderEpoch)
		}
	}
	if p.HighWatermark() != 3 {
		t.Fatalf("high watermark %d, want 3", p.HighWatermark())
	}
	if e, end := p.EndOffsetForEpoch(4); e != 4 || end != 3 {
		t.Fatalf("EndOffsetForEpoch(4) = %d, %d", e, end)
	}
}

func TestIdempotentProducerRules(t *testing.T) {
	p := openFSM(t, t.TempDir())
	defer p.Close()
	apply := func(idx uint64, b []byte) BatchResult {
		return p.Apply(entry(idx, 1, b)).(*ProduceResult).Batches[0]
	}
	first := batchtest.Idempotent(0, 1, 42, 1, 0, val(1), val(2))
	if r := apply(1, first); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", r)
	}
	if r := apply(2, batchtest.Idempotent(0, 1, 42, 1, 2, val(3))); r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("next in sequence: %+v", r)
	}
	if r := apply(3, first); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("duplicate must return its original offset: %+v", r)
	}
	if r := apply(4, batchtest.Idempotent(0, 1, 42, 1, 9, val(4))); !errors.Is(r.Err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("gap in sequence: %+v", r)
	}
	if r := apply(5, batchtest.Idempotent(0, 1, 42, 0, 3, val(4))); !errors.Is(r.Err, kerr.InvalidProducerEpoch) {
		t.Fatalf("older epoch: %+v", r)
	}
	if r := apply(6, batchtest.Idempotent(0, 1, 42, 2, 0, val(5))); r.Err != nil || r.BaseOffset != 3 {
		t.Fatalf("new epoch restarts at sequence 0: %+v", r)
	}
	if p.HighWatermark() != 4 {
		t.Fatalf("high watermark %d, want 4 (duplicates and rejects append nothing)", p.HighWatermark())
	}
}

// A restart re-applies entries raft still holds; the checkpoint makes the
// FSM skip those it applied already, whether it was closed cleanly or
// crashed after a checkpoint (snapshot Persist).
func TestRestartSkipsAppliedEntries(t *testing.T) {
	logs := history(200)
	ref := openFSM(t, t.TempDir())
	defer ref.Close()
	want := applyAll(t, ref, logs)

	t.Run("clean close", func(t *testing.T) {
		dir := t.TempDir()
		p := openFSM(t, dir)
		applyAll(t, p, logs[:120])
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		p = openFSM(t, dir)
		defer p.Close()
		if p.Applied() != 120 {
			t.Fatalf("applied %d after reopen, want 120", p.Applied())
		}
		applyAll(t, p, logs) // raft replays from its first entry
		if !bytes.Equal(logBytes(t, p), logBytes(t, ref)) {
			t.Fatal("partition differs from a single replay")
		}
	})
	t.Run("crash after checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		p := openFSM(t, dir)
		applyAll(t, p, logs[:80])
		persist(t, p, raft.NewInmemSnapshotStore())
		got := applyAll(t, p, logs[80:150])
		// Crash: no Close, so no checkpoint at 150; the log holds
		// appends the checkpoint does not cover.
		if err := p.Log().Close(); err != nil {
			t.Fatal(err)
		}
		p = openFSM(t, dir)
		defer p.Close()
		if p.Applied() != 80 {
			t.Fatalf("applied %d after crash, want checkpoint 80", p.Applied())
		}
		again := applyAll(t, p, logs[80:150])
		if fmt.Sprint(got) != fmt.Sprint(again) {
			t.Fatalf("re-applied entries got different offsets:\n%v\n%v", got, again)
		}
		applyAll(t, p, logs[150:])
		if !bytes.Equal(logBytes(t, p), logBytes(t, ref)) {
			t.Fatal("partition differs from a single replay")
		}
	})
	_ = want
}

func persist(t *testing.T, p *PartitionFSM, store raft.SnapshotStore) string {
	t.Helper()
	snap, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(1, p.Applied(), 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.ID()
}

// A replica restored from a snapshot serves byte-identical batches and
// keeps applying in step with the replica that took it, through both
// snapshot formats: hard-linked segments and the full stream.
func TestSnapshotRestoreIsByteIdentical(t *testing.T) {
	logs := history(300)
	stores := map[string]func(t *testing.T) raft.SnapshotStore{
		"linked": func(t *testing.T) raft.SnapshotStore {
			s, err := NewSnapshotStore(t.TempDir(), 2)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"stream": func(t *testing.T) raft.SnapshotStore { return raft.NewInmemSnapshotStore() },
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			src := openFSM(t, t.TempDir())
			defer src.Close()
			applyAll(t, src, logs[:200])
			store := newStore(t)
			id := persist(t, src, store)
			// The source keeps writing while the snapshot is read.
			applyAll(t, src, logs[200:230])

			dst := openFSM(t, t.TempDir())
			defer dst.Close()
			applyAll(t, dst, logs[:17]) // a stale replica: Restore replaces it
			_, rc, err := store.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			if err := dst.Restore(rc); err != nil {
				t.Fatal(err)
			}
			if dst.Applied() != 200 {
				t.Fatalf("restored applied index %d, want 200", dst.Applied())
			}
			want := applyAll(t, src, logs[230:])
			applyAll(t, dst, logs[200:230])
			got := applyAll(t, dst, logs[230:])
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after restore, results differ:\n%v\n%v", got, want)
			}
			a, _ := src.Read(0, 1<<30)
			b, _ := dst.Read(0, 1<<30)
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Fatalf("restored replica serves different batches (%d vs %d bytes)", len(a), len(b))
			}
			if !bytes.Equal(logBytes(t, src), logBytes(t, dst)) {
				t.Fatal("restored partition files differ")
			}
			if src.LastStableOffset() != dst.LastStableOffset() || len(src.AbortedTxns(0, 1<<62)) == 0 ||
				fmt.Sprint(src.AbortedTxns(0, 1<<62)) != fmt.Sprint(dst.AbortedTxns(0, 1<<62)) {
				t.Fatalf("restored transaction state differs: last stable offsets %d and %d", src.LastStableOffset(), dst.LastStableOffset())
			}
		})
	}
}

func TestSnapshotStoreRetainsNewest(t *testing.T) {
	dir := t.TempDir()
	store, err := NewSnapshotStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := openFSM(t, t.TempDir())
	defer p.Close()
	logs := history(60)
	for i := 0; i < 3; i++ {
		applyAll(t, p, logs[i*20:(i+1)*20])
		persist(t, p, store)
	}
	metas, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 2 || metas[0].Index != 60 || metas[1].Index != 40 {
		t.Fatalf("want snapshots at 60 and 40, got %d: %+v", len(metas), metas)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 2 {
		t.Fatalf("store dir holds %v", left)
	}
}
