package fsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/partition"
)

// withTrims is history(n) with TrimPrefix entries to the given offsets
// after entries at, renumbered.
func withTrims(n int, at map[int]int64) []*raft.Log {
	var out []*raft.Log
	for i, l := range history(n) {
		c := *l
		c.Index = uint64(len(out) + 1)
		out = append(out, &c)
		if off, ok := at[i]; ok {
			out = append(out, &raft.Log{Index: uint64(len(out) + 1), Term: l.Term, Type: raft.LogCommand, Data: TrimPrefix(off)})
		}
	}
	return out
}

func digest(t *testing.T, p *PartitionFSM) string {
	t.Helper()
	hw, sum, err := p.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("start %d hw %d crc %08x lso %d aborted %v", p.StartOffset(), hw, sum, p.LastStableOffset(), p.AbortedTxns(0, 1<<62))
}

// Replicas whose segments roll at different sizes agree on the start
// offset and on every byte above it after the same trims, and keep both
// through a restart and a snapshot.
func TestTrimPrefixIsReplicatedState(t *testing.T) {
	logs := withTrims(300, map[int]int64{80: 50, 150: 101, 220: 1 << 40})
	open := func(dir string, segBytes int64) *PartitionFSM {
		cfg := testCfg
		cfg.SegmentBytes = segBytes
		p, err := OpenPartition(dir, cfg, hclog.NewNullLogger(), false)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := open(t.TempDir(), 4<<10)
	defer a.Close()
	b := open(t.TempDir(), 9<<10)
	defer b.Close()
	applyAll(t, a, logs)
	applyAll(t, b, logs)
	if got, want := digest(t, a), digest(t, b); got != want {
		t.Fatalf("replicas differ:\n%s\n%s", got, want)
	}
	// The last trim went past the end of the log at its point: it stops
	// there, and later appends follow.
	if a.StartOffset() <= 101 || a.StartOffset() >= a.HighWatermark() {
		t.Fatalf("start %d, high watermark %d", a.StartOffset(), a.HighWatermark())
	}
	if _, err := a.Read(a.StartOffset()-1, 1<<20); !errors.Is(err, partition.ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	if segs := a.Log().Segments(); segs[0].BaseOffset > a.StartOffset() || len(segs) > 1 && segs[1].BaseOffset <= a.StartOffset() {
		t.Fatalf("segments below the start kept or the one holding it deleted: start %d, segments %+v", a.StartOffset(), segs)
	}

	t.Run("restart", func(t *testing.T) {
		dir := t.TempDir()
		p := open(dir, 4<<10)
		applyAll(t, p, logs[:200])
		// A crash after the second trim: its checkpoint is on disk.
		if err := p.Log().Close(); err != nil {
			t.Fatal(err)
		}
		p = open(dir, 4<<10)
		defer p.Close()
		if p.StartOffset() != 101 {
			t.Fatalf("start %d after a crash, want 101", p.StartOffset())
		}
		applyAll(t, p, logs)
		if got, want := digest(t, p), digest(t, a); got != want {
			t.Fatalf("restarted replica differs:\n%s\n%s", got, want)
		}
	})
	t.Run("snapshot", func(t *testing.T) {
		for name, store := range map[string]raft.SnapshotStore{"stream": raft.NewInmemSnapshotStore(), "linked": mustStore(t)} {
			src := open(t.TempDir(), 4<<10)
			applyAll(t, src, logs[:200])
			id := persist(t, src, store)
			dst := open(t.TempDir(), 9<<10)
			_, rc, err := store.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			if err := dst.Restore(rc); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			applyAll(t, src, logs[200:])
			applyAll(t, dst, logs[200:])
			if got, want := digest(t, dst), digest(t, a); got != want {
				t.Fatalf("%s: restored replica differs:\n%s\n%s", name, got, want)
			}
			src.Close()
			dst.Close()
		}
	})
}

func mustStore(t *testing.T) raft.SnapshotStore {
	s, err := NewSnapshotStore(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
