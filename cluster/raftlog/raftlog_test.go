package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func open(t *testing.T, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func groupOf(t *testing.T, l *Log, name string) *Store {
	t.Helper()
	s, err := l.Group(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entry(idx, term uint64, size int) *raft.Log {
	data := bytes.Repeat([]byte{byte(idx)}, size)
	return &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: data, Extensions: []byte{byte(term)}}
}

func store(t *testing.T, s *Store, from, to, term uint64, size int) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i, term, size))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

// expect checks the group holds exactly from..to, each entry intact.
func expect(t *testing.T, s *Store, from, to uint64, size int) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != from || last != to {
		t.Fatalf("%s: holds %d..%d, want %d..%d", s.name, first, last, from, to)
	}
	for i := from; i <= to && to > 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("%s: entry %d: %v", s.name, i, err)
		}
		want := entry(i, got.Term, size)
		if got.Index != i || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
			t.Fatalf("%s: entry %d read back as index %d, %d bytes", s.name, i, got.Index, len(got.Data))
		}
	}
}

func TestRoundTripAndReplay(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	a, b := groupOf(t, l, "a"), groupOf(t, l, "b")
	store(t, a, 1, 50, 1, 100)
	store(t, b, 1, 20, 2, 3000)
	if err := a.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]byte("LastVoteCand"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRange(1, 10); err != nil { // compaction
		t.Fatal(err)
	}
	if err := b.DeleteRange(15, 20); err != nil { // conflict: suffix goes
		t.Fatal(err)
	}
	store(t, b, 15, 16, 3, 3000)
	check := func(l *Log) {
		a, b := groupOf(t, l, "a"), groupOf(t, l, "b")
		expect(t, a, 11, 50, 100)
		expect(t, b, 1, 16, 3000)
		var e raft.Log
		if err := b.GetLog(16, &e); err != nil || e.Term != 3 {
			t.Fatalf("overwritten entry: term %d, %v", e.Term, err)
		}
		if v, err := a.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
			t.Fatalf("CurrentTerm = %d, %v", v, err)
		}
		if v, err := b.Get([]byte("LastVoteCand")); err != nil || string(v) != "3" {
			t.Fatalf("LastVoteCand = %q, %v", v, err)
		}
		if _, err := a.Get([]byte("nope")); err == nil || err.Error() != "not found" {
			t.Fatalf("missing key: %v", err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, Options{})
	defer l.Close()
	check(l)
}

func TestDropAndReset(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	a, b := groupOf(t, l, "a"), groupOf(t, l, "b")
	store(t, a, 1, 5, 1, 10)
	store(t, b, 1, 5, 1, 10)
	a.SetUint64([]byte("CurrentTerm"), 4)
	b.SetUint64([]byte("CurrentTerm"), 5)
	if err := a.Drop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, dir, Options{})
	defer l.Close()
	if l.Has("a") {
		t.Fatal("dropped group came back")
	}
	b = groupOf(t, l, "b")
	expect(t, b, 0, 0, 10)
	if v, _ := b.GetUint64([]byte("CurrentTerm")); v != 5 {
		t.Fatalf("reset lost the term: %d", v)
	}
}

func lastSegment(t *testing.T, dir string) string {
	ids, err := listSegments(dir)
	if err != nil || len(ids) == 0 {
		t.Fatal(ids, err)
	}
	return segmentPath(dir, ids[len(ids)-1])
}

// lastRound returns where the last round of a segment starts and ends
// (without its padding).
func lastRound(t *testing.T, data []byte) (start, end int64) {
	t.Helper()
	start = -1
	for p := int64(0); p < int64(len(data)); {
		e, aligned, ok := wholeRound(data, p)
		if !ok {
			t.Fatalf("no round at %d of %d", p, len(data))
		}
		start, end, p = p, e, e
		if aligned {
			p = min(alignUp(e), int64(len(data)))
		}
	}
	return start, end
}

func TestTornTailIsCut(t *testing.T) {
	tears := []string{"partial frame", "zeroed tail", "zeroed sector", "short header", "padding cut short"}
	for _, tear := range tears {
		t.Run(tear, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{})
			a := groupOf(t, l, "a")
			store(t, a, 1, 10, 1, 100)
			store(t, a, 11, 12, 1, 1500) // one round of about 3 KiB
			l.Close()
			path := lastSegment(t, dir)
			data, _ := os.ReadFile(path)
			start, end := lastRound(t, data)
			if start%blockSize != 0 || int64(len(data)) != alignUp(end) {
				t.Fatalf("last round at %d-%d of a %d byte file: not block-aligned and padded", start, end, len(data))
			}
			switch tear {
			case "partial frame":
				data = data[:end-50] // the last write (11-12) cut short
			case "zeroed tail":
				data = append(data, make([]byte, 4096)...)
			case "zeroed sector":
				// The file grew but one sector of the write did not land.
				s := (end-1)/sectorSize*sectorSize - sectorSize
				copy(data[s:s+sectorSize], make([]byte, sectorSize))
			case "short header":
				data = append(data, 0x31, 0x4c)
			case "padding cut short":
				data = data[:end+10]
			}
			os.WriteFile(path, data, 0o644)
			l = open(t, dir, Options{})
			defer l.Close()
			a = groupOf(t, l, "a")
			if tear == "partial frame" || tear == "zeroed sector" {
				expect(t, a, 1, 10, 100)
			} else {
				var e raft.Log
				if last, _ := a.LastIndex(); last != 12 || a.GetLog(12, &e) != nil || len(e.Data) != 1500 {
					t.Fatalf("the last write was cut: last index %d", last)
				}
			}
			store(t, a, 13, 13, 2, 100) // writes continue after the cut
			l.Close()
			l = open(t, dir, Options{})
			defer l.Close()
			var e raft.Log
			if err := groupOf(t, l, "a").GetLog(13, &e); err != nil || len(e.Data) != 100 {
				t.Fatalf("the write after the cut: %v", err)
			}
		})
	}
}

// TestUnalignedRoundsAreStillRead: a log written before rounds were
// block-aligned is replayed, and new rounds follow it at the next block.
func TestUnalignedRoundsAreStillRead(t *testing.T) {
	dir := t.TempDir()
	var data []byte
	for _, logs := range [][]*raft.Log{{entry(1, 1, 100), entry(2, 1, 100)}, {entry(3, 1, 100)}} {
		body := appendEntriesBody(nil, "a", logs)
		var h [frameHeader]byte
		putHeader(h[:], frameMagic, body)
		round := append(append(startRound(nil), h[:]...), body...)
		putHeader(round, unalignedRoundMag, round[frameHeader:])
		data = append(data, round...)
	}
	os.WriteFile(segmentPath(dir, 1), data, 0o644)
	l := open(t, dir, Options{})
	a := groupOf(t, l, "a")
	expect(t, a, 1, 3, 100)
	store(t, a, 4, 5, 1, 100)
	l.Close()
	if got, _ := os.ReadFile(segmentPath(dir, 1)); int64(len(got)) <= alignUp(int64(len(data))) {
		t.Fatalf("segment of %d bytes: the new round is not after the old ones' block", len(got))
	}
	l = open(t, dir, Options{})
	defer l.Close()
	expect(t, groupOf(t, l, "a"), 1, 5, 100)
}

// TestBufferedWritesMatchDirect: where the file system refuses O_DIRECT
// the log writes the same bytes through the page cache.
func TestBufferedWritesMatchDirect(t *testing.T) {
	var files [2][]byte
	for i, buffered := range []bool{false, true} {
		dir := t.TempDir()
		l := open(t, dir, Options{})
		l.buffered = buffered
		a := groupOf(t, l, "a")
		store(t, a, 1, 10, 1, 100)
		store(t, a, 11, 11, 1, 5000)
		if err := a.Set([]byte("CurrentTerm"), []byte{1}); err != nil {
			t.Fatal(err)
		}
		if !buffered {
			t.Logf("direct I/O in %s: %v", dir, !l.buffered)
		}
		l.Close()
		files[i], _ = os.ReadFile(lastSegment(t, dir))
		l = open(t, dir, Options{})
		var e raft.Log
		if err := groupOf(t, l, "a").GetLog(11, &e); err != nil || len(e.Data) != 5000 {
			t.Fatalf("entry 11 read back: %v", err)
		}
		l.Close()
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatalf("direct wrote %d bytes, buffered %d, or different ones", len(files[0]), len(files[1]))
	}
}

func TestDamageIsDetected(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	a := groupOf(t, l, "a")
	for i := uint64(1); i <= 20; i++ {
		store(t, a, i, i, 1, 200)
	}
	l.Close()
	path := lastSegment(t, dir)
	clean, _ := os.ReadFile(path)
	for _, at := range []int{3, 10, 30, 500, len(clean) / 2, len(clean) - 300, len(clean) - 1} {
		data := append([]byte(nil), clean...)
		data[at] ^= 0x40
		os.WriteFile(path, data, 0o644)
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("bit flip at %d of %d: Open = %v, want ErrDamaged", at, len(clean), err)
		}
	}
	// Bytes after the last frame that are not a write cut short.
	os.WriteFile(path, append(append([]byte(nil), clean...), "not a frame, not zeros"...), 0o644)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("garbage after the last frame: Open = %v, want ErrDamaged", err)
	}
}

func TestSegmentsRollAndAreReclaimed(t *testing.T) {
	dir := t.TempDir()
	// Every round takes at least a block, so the busy group's last 20
	// entries (20 rounds with their deletes) span 80 KiB.
	o := Options{SegmentBytes: 64 << 10, MaxSegments: 3}
	l := open(t, dir, o)
	idle, busy := groupOf(t, l, "idle"), groupOf(t, l, "busy")
	store(t, idle, 1, 3, 1, 50)
	idle.SetUint64([]byte("CurrentTerm"), 9)
	next, err := busyRounds(busy, 200)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := listSegments(dir)
	if len(ids) > o.MaxSegments+2 {
		t.Fatalf("%d segments on disk; the idle group's entries should have been copied forward", len(ids))
	}
	expect(t, idle, 1, 3, 50)
	l.Close()
	l = open(t, dir, o)
	defer l.Close()
	idle, busy = groupOf(t, l, "idle"), groupOf(t, l, "busy")
	expect(t, idle, 1, 3, 50)
	expect(t, busy, next-19, next-1, 500)
	if v, _ := idle.GetUint64([]byte("CurrentTerm")); v != 9 {
		t.Fatalf("the idle group's term was lost with its segment: %d", v)
	}
}

func TestConcurrentGroupsShareCommits(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var rounds, records int
	l := open(t, dir, Options{OnCommit: func(r, _ int, _ time.Duration) {
		mu.Lock()
		rounds++
		records += r
		mu.Unlock()
	}})
	const groups, per = 16, 50
	var wg sync.WaitGroup
	for g := 0; g < groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := groupOf(t, l, fmt.Sprintf("g%02d", g))
			for i := uint64(1); i <= per; i++ {
				if err := s.StoreLogs([]*raft.Log{entry(i, 1, 300)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	if records != groups*per || rounds >= records {
		t.Errorf("%d records in %d commits: concurrent groups were not committed together", records, rounds)
	}
	mu.Unlock()
	l.Close()
	l = open(t, dir, Options{})
	defer l.Close()
	for g := 0; g < groups; g++ {
		expect(t, groupOf(t, l, fmt.Sprintf("g%02d", g)), 1, per, 300)
	}
}

func TestVerifyFindsGapAfterSnapshot(t *testing.T) {
	l := open(t, t.TempDir(), Options{})
	defer l.Close()
	a := groupOf(t, l, "a")
	store(t, a, 1, 10, 1, 10)
	if err := a.Verify(0); !errors.Is(err, ErrDamaged) {
		t.Fatalf("entries without a term: %v", err)
	}
	a.SetUint64([]byte("CurrentTerm"), 1)
	if err := a.Verify(0); err != nil {
		t.Fatal(err)
	}
	a.DeleteRange(5, 5)
	if err := a.Verify(3); !errors.Is(err, ErrDamaged) {
		t.Fatalf("gap above the snapshot: %v", err)
	}
	if err := a.Verify(5); err != nil {
		t.Fatalf("gap below the snapshot: %v", err)
	}
	a.DeleteRange(1, 6)
	if err := a.Verify(4); !errors.Is(err, ErrDamaged) {
		t.Fatalf("log starts after the snapshot: %v", err)
	}
}

func TestSegmentNamesSort(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"0000000000000002.wal", "000000000000000a.wal", "0000000000000001.wal", "junk.wal", "x"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	ids, _ := listSegments(dir)
	if fmt.Sprint(ids) != "[1 2 10]" {
		t.Fatal(ids)
	}
}

// busyRounds writes and compacts as a group taking snapshots does, until
// it has written rounds batches or a write fails.
func busyRounds(s *Store, rounds int) (next uint64, err error) {
	return busyRoundsFrom(s, 1, rounds)
}

func busyRoundsFrom(s *Store, next uint64, rounds int) (uint64, error) {
	for round := 0; round < rounds; round++ {
		if err := s.StoreLogs([]*raft.Log{entry(next, 1, 500), entry(next+1, 1, 500)}); err != nil {
			return next, err
		}
		next += 2
		if next > 20 {
			if err := s.DeleteRange(1, next-20); err != nil {
				return next, err
			}
		}
	}
	return next, nil
}

// TestSlowGroupWaitsOutBusyGrace: a group that still writes, rarely,
// keeps a few entries in the oldest segment long after the busy group's
// compactions left it mostly dead. They are copied forward only once it
// has been mostly dead for BusyGrace; until then segments accumulate (up
// to four times MaxSegments), as a busy group's snapshots would free
// them soon.
func TestSlowGroupWaitsOutBusyGrace(t *testing.T) {
	for _, grace := range []time.Duration{time.Nanosecond, time.Hour} {
		t.Run(grace.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentBytes: 64 << 10, MaxSegments: 3, BusyGrace: grace}
			l := open(t, dir, o)
			defer l.Close()
			slow, busy := groupOf(t, l, "slow"), groupOf(t, l, "busy")
			next, most := uint64(1), 0
			for round := 0; round < 20; round++ {
				store(t, slow, uint64(round+1), uint64(round+1), 1, 10)
				var err error
				if next, err = busyRoundsFrom(busy, next, 20); err != nil {
					t.Fatal(err)
				}
				ids, _ := listSegments(dir)
				most = max(most, len(ids))
			}
			t.Logf("at most %d segments", most)
			switch {
			case grace == time.Hour && most <= o.MaxSegments+2:
				t.Fatalf("at most %d segments: the slow group's entries were copied before BusyGrace", most)
			case grace < time.Second && most > o.MaxSegments+2:
				t.Fatalf("%d segments on disk: the slow group pins them past BusyGrace", most)
			case most > 4*o.MaxSegments+2:
				t.Fatalf("%d segments on disk: they piled up past four times MaxSegments", most)
			}
			expect(t, slow, 1, 20, 10)
		})
	}
}

// TestLargeIdleGroupIsMovedInParts: an idle group holding more than the
// per-roll copy budget in the oldest segment must not keep every later
// segment alive; it is copied forward a part per roll.
func TestLargeIdleGroupIsMovedInParts(t *testing.T) {
	dir := t.TempDir()
	// Every round takes at least a block, so the busy group's last 20
	// entries (20 rounds with their deletes) span 80 KiB.
	o := Options{SegmentBytes: 64 << 10, MaxSegments: 3}
	l := open(t, dir, o)
	defer l.Close()
	bulk := groupOf(t, l, "bulk")
	for i := uint64(1); i <= 20; i++ {
		store(t, bulk, i, i, 1, 1000) // 20 KB: over a quarter segment
	}
	if _, err := busyRounds(groupOf(t, l, "busy"), 400); err != nil {
		t.Fatal(err)
	}
	if ids, _ := listSegments(dir); len(ids) > o.MaxSegments+2 {
		t.Fatalf("%d segments on disk: the idle group pins them", len(ids))
	}
	expect(t, bulk, 1, 20, 1000)
}

// TestRotIsNotCopiedForward: an entry that rots on disk while the log
// runs must not be rewritten into a fresh, valid frame when it is copied
// forward; the write fails instead, and the next Open finds the damage.
func TestRotIsNotCopiedForward(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 16 << 10, MaxSegments: 2, CacheBytes: 1}
	l := open(t, dir, o)
	idle := groupOf(t, l, "idle")
	store(t, idle, 1, 1, 1, 300)
	f, err := os.OpenFile(segmentPath(dir, 1), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 200) // inside the idle group's entry
	f.Close()
	if _, err := busyRounds(groupOf(t, l, "busy"), 400); !errors.Is(err, ErrDamaged) {
		t.Fatalf("writes after the rotted entry was copied: %v, want ErrDamaged", err)
	}
	l.Close()
	if _, err := Open(dir, o); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open after rot: %v, want ErrDamaged", err)
	}
}

// TestTermSurvivesALostRoll: a roll writes every group's term and vote
// first in the new segment. If a crash loses that round, Open writes the
// copy instead, or the segments holding an idle group's term could be
// removed and the group come back without it.
func TestTermSurvivesALostRoll(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 16 << 10, MaxSegments: 100}
	l := open(t, dir, o)
	idle, busy := groupOf(t, l, "idle"), groupOf(t, l, "busy")
	idle.SetUint64([]byte("CurrentTerm"), 9)
	for i := uint64(1); i <= 20; i++ {
		store(t, busy, i, i, 1, 1000) // over one segment: a roll
	}
	l.Close()
	ids, _ := listSegments(dir)
	if len(ids) < 2 {
		t.Fatalf("no roll: %v", ids)
	}
	os.Truncate(segmentPath(dir, ids[len(ids)-1]), 0) // the roll's round never landed
	l = open(t, dir, o)
	busy = groupOf(t, l, "busy")
	last, _ := busy.LastIndex()
	store(t, busy, last+1, last+1, 1, 10)
	if err := busy.DeleteRange(1, last); err != nil { // older segments die
		t.Fatal(err)
	}
	l.Close()
	if now, _ := listSegments(dir); len(now) != 1 {
		t.Fatalf("segments %v, want only the newest", now)
	}
	l = open(t, dir, o)
	defer l.Close()
	if v, err := groupOf(t, l, "idle").GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("idle term after its old segments went: %d, %v", v, err)
	}
}

// TestWholeRoundWithLaterBytesIsDamage: a round followed by more bytes
// was durable before they were written, so a zeroed sector in it is
// damage even when what follows is an unfinished round.
func TestWholeRoundWithLaterBytesIsDamage(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	a := groupOf(t, l, "a")
	store(t, a, 1, 1, 1, 3000)
	store(t, a, 2, 2, 1, 3000)
	l.Close()
	path := lastSegment(t, dir)
	data, _ := os.ReadFile(path)
	copy(data[1024:1536], make([]byte, 512)) // inside the first round
	data = data[:len(data)-100]              // the second round unfinished
	os.WriteFile(path, data, 0o644)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open = %v, want ErrDamaged", err)
	}
}
