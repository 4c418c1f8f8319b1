package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/partition/batchtest"
)

// keyedHistory is a log of keyed updates over a few keys, tombstones
// among them, an aborted and a committed transaction, and Compact
// entries along the way.
func keyedHistory(n int) []*raft.Log {
	var logs []*raft.Log
	add := func(data []byte) {
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: raft.LogCommand, Data: data})
	}
	for i := 0; i < n; i++ {
		var recs []partition.Record
		for j := 0; j < 4; j++ {
			k := (i*4 + j) % 13
			r := partition.Record{Key: []byte(fmt.Sprintf("key-%02d", k)), Value: []byte(fmt.Sprintf("value-%d-%d", i, j)), Timestamp: int64(1000 + i)}
			if (i+j)%9 == 0 {
				r.Value = nil
			}
			recs = append(recs, r)
		}
		c := NewProduceCommand(0)
		c.Add(partition.EncodeBatch(0, -1, -1, -1, recs))
		add(c.Bytes())
		switch i {
		case 40, 90:
			// A transaction of producer 21: aborted the first time,
			// committed the second.
			c := NewProduceCommand(0)
			c.Add(batchtest.Transactional(0, int64(1000+i), 21, int16(i/40), 0, []byte("txn")))
			add(c.Bytes())
			add(EncodeMarker(Marker{ProducerID: 21, Epoch: int16(i / 40), Commit: i == 90, Timestamp: int64(1000 + i)}))
		case 60:
			add(Compact(150, 1030))
		case 120:
			add(Compact(1<<40, 1100))
		}
	}
	return logs
}

func compactAll(t *testing.T, p *PartitionFSM) {
	t.Helper()
	for p.CompactionDue() {
		before := p.CleanedTo()
		if _, err := p.RunCompaction(nil); err != nil {
			t.Fatal(err)
		}
		if p.CleanedTo() == before {
			break
		}
	}
}

// Two replicas whose segments roll at different sizes, one compacting
// after every entry and one only at the end, serve the same batches;
// every key's latest record survives.
func TestCompactionIsReplicatedState(t *testing.T) {
	logs := keyedHistory(160)
	open := func(segBytes int64) *PartitionFSM {
		cfg := testCfg
		cfg.SegmentBytes = segBytes
		p, err := OpenPartition(t.TempDir(), cfg, hclog.NewNullLogger(), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	a, b := open(2<<10), open(5<<10)
	for _, l := range logs {
		a.Apply(l)
		compactAll(t, a)
	}
	applyAll(t, b, logs)
	// Roll b's active segment past the target with one more entry on both.
	tail := entry(uint64(len(logs)+1), 2, partition.EncodeBatch(0, -1, -1, -1, []partition.Record{{Key: []byte("key-00"), Value: make([]byte, 6<<10), Timestamp: 5000}}))
	a.Apply(tail)
	b.Apply(tail)
	compactAll(t, a)
	compactAll(t, b)
	if a.CompactionTarget() == 0 || a.CleanedTo() != a.CompactionTarget() || b.CleanedTo() != b.CompactionTarget() {
		t.Fatalf("targets %d/%d, cleaned to %d/%d", a.CompactionTarget(), b.CompactionTarget(), a.CleanedTo(), b.CleanedTo())
	}
	if got, want := digest(t, a), digest(t, b); got != want {
		t.Fatalf("replicas differ after compaction:\n%s\n%s", got, want)
	}
	// The latest value of each key below the target survives.
	data, err := a.Read(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	batches, _ := partition.SplitBatches(data)
	seen, records := map[string]bool{}, 0
	var markers []string
	for _, bt := range batches {
		recs, offs, err := partition.DecodeRecords(bt)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := partition.ParseBatchHeader(bt); h.IsControl() {
			commit, _ := partition.ControlType(bt)
			markers = append(markers, map[bool]string{true: "commit", false: "abort"}[commit])
			continue
		}
		for i, r := range recs {
			if offs[i] < a.CompactionTarget() && string(r.Key) != "" && seen[string(r.Key)] {
				t.Fatalf("key %s twice below the target", r.Key)
			}
			seen[string(r.Key)] = true
			if offs[i] < a.CompactionTarget() {
				records++
			}
		}
	}
	// The commit marker is older than the horizon and goes; the abort
	// marker stays for read_committed readers.
	if fmt.Sprint(markers) != "[abort]" {
		t.Fatalf("markers left: %v, want [abort]", markers)
	}
	// One per key at most; the transactions' records had no key.
	if records > 13 || records < 5 {
		t.Fatalf("%d records left below the target %d", records, a.CompactionTarget())
	}

	t.Run("snapshot", func(t *testing.T) {
		for name, store := range map[string]raft.SnapshotStore{"stream": raft.NewInmemSnapshotStore(), "linked": mustStore(t)} {
			id := persist(t, a, store)
			c := open(3 << 10)
			_, rc, err := store.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Restore(rc); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, want := digest(t, c), digest(t, a); got != want || c.CleanedTo() != a.CleanedTo() {
				t.Fatalf("%s: restored replica differs:\n%s\n%s", name, got, want)
			}
		}
	})
}

// A producer's aborted transaction is found whatever other producers'
// transactions lie inside its range.
func TestAbortedIndex(t *testing.T) {
	in := abortedIndex([]AbortedTxn{{ProducerID: 1, FirstOffset: 10, LastOffset: 100}, {ProducerID: 2, FirstOffset: 58, LastOffset: 60},
		{ProducerID: 1, FirstOffset: 200, LastOffset: 210}})
	batch := func(pid, base int64) partition.BatchHeader {
		return partition.BatchHeader{ProducerID: pid, BaseOffset: base, Attributes: 0x10}
	}
	for _, c := range []struct {
		pid, base int64
		want      bool
	}{{1, 55, true}, {1, 10, true}, {1, 100, true}, {1, 101, false}, {2, 59, true}, {2, 55, false}, {1, 205, true}, {3, 55, false}} {
		if got := in(batch(c.pid, c.base)); got != c.want {
			t.Errorf("producer %d at %d: %v, want %v", c.pid, c.base, got, c.want)
		}
	}
}
