// Package raftlog is a node's shared Raft log: one write-ahead log that
// holds the log entries and stable values (term, vote) of every Raft group
// on the node, and makes them durable together.
//
// Each group's StoreLogs, DeleteRange and Set is handed to one committer
// goroutine, which writes whatever every group has queued in one write
// and one fdatasync. With one store per group, N busy partitions cost N
// fsyncs per round on every replica; here they cost one. This is the
// group commit Redpanda does per core.
//
// Rounds are written with O_DIRECT where the file system allows it: the
// log is read back only on a cache miss or at start, so copying every
// byte into the page cache costs CPU (and, in a VM, fresh guest memory)
// for nothing.
//
// Reads are served from memory for recent entries (a byte-bounded cache)
// and otherwise from the segment files. Segments whose entries are all
// deleted are removed, oldest first; an old segment kept alive by a few
// entries of an idle group has those entries copied forward.
package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/partition"
)

var (
	// ErrDamaged means the log holds bytes that are not what was written:
	// a checksum mismatch or a broken structure anywhere but a torn tail.
	ErrDamaged = errors.New("raftlog: damaged")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("raftlog: closed")
	// ErrKeyNotFound is what raft expects from a stable store for a key
	// never set; raft compares the message.
	ErrKeyNotFound = errors.New("not found")
)

const segmentSuffix = ".wal"

// Options configure a Log. Zero values take the defaults.
type Options struct {
	// SegmentBytes is the size at which the active segment is closed and
	// a new one started (default 64 MiB).
	SegmentBytes int64
	// MaxSegments is how many segments may exist before the oldest one's
	// remaining entries are copied forward so it can be removed, provided
	// they are under a quarter of a segment (default 4).
	MaxSegments int
	// CacheBytes bounds the recently written entries kept in memory for
	// replication and apply (default 64 MiB).
	CacheBytes int64
	// MaxBatchBytes bounds one commit round (default 16 MiB).
	MaxBatchBytes int
	// BusyGrace is how long an oldest segment that is mostly dead waits
	// for the groups still writing to compact their entries out of it
	// before those are copied forward too (default 10 s). Copying a busy
	// group's trailing entries at every roll rewrote up to a quarter of
	// each segment under load; their snapshots free them within seconds.
	BusyGrace time.Duration
	Logger    hclog.Logger
	// OnCommit, if set, is called after each durable write with the
	// number of records, the bytes and the time the write and fdatasync
	// took.
	OnCommit func(records, bytes int, took time.Duration)
}

func (o *Options) defaults() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MaxSegments <= 0 {
		o.MaxSegments = 4
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 16 << 20
	}
	if o.BusyGrace == 0 {
		o.BusyGrace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

// Log is one node's shared Raft log.
type Log struct {
	dir  string
	opts Options

	// mu guards the groups, the segment list, the cache and the segments'
	// counters. File I/O happens outside it.
	mu     sync.Mutex
	groups map[string]*group
	segs   []*segment
	cache  cache
	failed error // a write or fsync failed: nothing more is trusted

	// submitMu makes Close wait for submitters already past the closed
	// check, so ops is never written after it is closed.
	submitMu sync.RWMutex
	closed   bool
	ops      chan *op
	done     chan struct{}
	buf      []byte // committer only: block-aligned round buffer
	// buffered is set once the file system refuses direct I/O.
	buffered bool // committer only
}

type segment struct {
	id uint64
	f  *os.File
	// w is the committer's handle for writes: f opened again with
	// O_DIRECT, or f itself; opened at the segment's first write.
	w         *os.File
	size      int64 // committer (and Open)
	live      int   // mu: entries located here
	liveBytes int64 // mu
	refs      int   // mu: reads in progress
	removed   bool  // mu: file deleted; close when refs drops to 0
	// mostlyDead is when a roll first found this segment oldest, over
	// MaxSegments and at most a quarter alive (committer only).
	mostlyDead time.Time
}

func (s *segment) close() error {
	err := s.f.Close()
	if s.w != nil && s.w != s.f {
		err = errors.Join(err, s.w.Close())
	}
	return err
}

// loc is where one entry's bytes are.
type loc struct {
	seg *segment
	off int64
	n   uint32
}

// op is one request to the committer: a record's body, or entries that
// the committer encodes into the round itself (body nil, n the length
// of their body).
type op struct {
	body []byte
	name string
	logs []*raft.Log // entries to write (body nil) and cache once durable
	n    int
	done chan error
}

func (o *op) size() int {
	if o.body != nil {
		return len(o.body)
	}
	return o.n
}

// Open opens (or creates) the log in dir and replays it. A torn tail is
// cut off; anything else that does not check out is ErrDamaged.
func Open(dir string, opts Options) (*Log, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Log{
		dir:    dir,
		opts:   opts,
		groups: map[string]*group{},
		cache:  newCache(opts.CacheBytes),
		ops:    make(chan *op, 256),
		done:   make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	if len(l.segs) == 0 {
		if err := l.createSegment(1); err != nil {
			return nil, err
		}
	}
	// Segments are removed on the promise that every later one holds a
	// copy of each group's term and vote. A roll writes that copy first
	// in the new segment; if a crash lost that round, the copy is written
	// now instead, before anything else goes into the segment.
	l.mu.Lock()
	stable := l.stableCopy()
	l.mu.Unlock()
	if len(stable) > 0 {
		if err := l.writeRound(l.active(), stable, nil); err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	go l.run()
	return l, nil
}

func segmentPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", id, segmentSuffix))
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 16, 64)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func (l *Log) createSegment(id uint64) error {
	f, err := os.OpenFile(segmentPath(l.dir, id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := partition.SyncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	l.mu.Lock()
	l.segs = append(l.segs, &segment{id: id, f: f})
	l.mu.Unlock()
	return nil
}

// apply applies one durable record to the in-memory state. logs, when
// given, are the decoded entries to cache. Caller holds mu (or is Open).
func (l *Log) apply(body []byte, seg *segment, bodyPos int64, logs []*raft.Log) error {
	r, err := decodeBody(body)
	if err != nil {
		return err
	}
	g := l.groups[r.name]
	if g == nil {
		if r.kind == kindDrop || r.kind == kindDelete {
			return nil
		}
		g = newGroup(r.name)
		l.groups[r.name] = g
	}
	switch r.kind {
	case kindEntries:
		for i, idx := range r.indexes {
			n := r.ends[i] - r.offs[i]
			g.put(idx, loc{seg: seg, off: bodyPos + int64(r.offs[i]), n: uint32(n)})
			if i < len(logs) && logs[i].Index == idx {
				l.cache.add(g, logs[i], int64(n))
			}
		}
	case kindSet:
		g.stable[string(r.key)] = append([]byte(nil), r.val...)
	case kindDelete:
		g.deleteRange(r.min, r.max, func(idx uint64) { l.cache.remove(g, idx) })
	case kindDrop:
		g.deleteRange(0, ^uint64(0), func(idx uint64) { l.cache.remove(g, idx) })
		delete(l.groups, r.name)
	}
	return nil
}

// submit queues an op and waits until it is durable and applied.
func (l *Log) submit(o *op) error {
	l.submitMu.RLock()
	if l.closed {
		l.submitMu.RUnlock()
		return ErrClosed
	}
	o.done = make(chan error, 1)
	l.ops <- o
	l.submitMu.RUnlock()
	return <-o.done
}

// run is the committer.
func (l *Log) run() {
	defer close(l.done)
	var batch []*op
	for o := range l.ops {
		batch = append(batch[:0], o)
		size := o.size()
	drain:
		for size < l.opts.MaxBatchBytes {
			select {
			case o, ok := <-l.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
				size += o.size()
			default:
				break drain
			}
		}
		err := l.commit(batch, size)
		for _, o := range batch {
			o.done <- err
		}
	}
}

// commit writes a batch in one write and one fdatasync, then applies it.
func (l *Log) commit(batch []*op, size int) error {
	l.mu.Lock()
	failed := l.failed
	l.mu.Unlock()
	if failed != nil {
		return failed
	}
	seg := l.active()
	var carry [][]byte
	if seg.size > 0 && seg.size+int64(size+len(batch)*frameHeader) > l.opts.SegmentBytes {
		var err error
		if seg, carry, err = l.roll(); err != nil {
			return l.fail(err)
		}
	}
	return l.writeRound(seg, carry, batch)
}

// writeRound makes the records in carry, then those of batch, durable in
// one round at the end of seg, and applies them.
func (l *Log) writeRound(seg *segment, carry [][]byte, batch []*op) error {
	start := alignUp(seg.size)
	need := frameHeader
	for _, b := range carry {
		need += frameHeader + len(b)
	}
	for _, o := range batch {
		need += frameHeader + o.size()
	}
	buf := startRound(l.roundBuf(need))
	var bodies []int64
	for _, b := range carry {
		bodies = append(bodies, start+int64(len(buf))+frameHeader)
		buf = appendRecord(buf, b)
	}
	for _, o := range batch {
		bodies = append(bodies, start+int64(len(buf))+frameHeader)
		if o.body != nil {
			buf = appendRecord(buf, o.body)
		} else {
			buf = appendEntriesRecord(buf, o.name, o.logs, o.n)
		}
	}
	if len(buf) != need {
		// Outgrowing the room would have moved buf off its alignment.
		return l.fail(fmt.Errorf("a round of %d bytes was sized %d", len(buf), need))
	}
	buf = sealRound(buf)
	began := time.Now()
	if err := l.writeAt(seg, buf, start); err != nil {
		return l.fail(err)
	}
	if err := fdatasync(seg.f); err != nil {
		return l.fail(err)
	}
	took := time.Since(began)
	seg.size = start + int64(len(buf))
	if cap(buf) > 4*l.opts.MaxBatchBytes {
		l.buf = nil
	}
	l.mu.Lock()
	var err error
	for i, b := range carry {
		err = errors.Join(err, l.apply(b, seg, bodies[i], nil))
	}
	for i, o := range batch {
		at := bodies[len(carry)+i]
		body := buf[at-start : at-start+int64(o.size())]
		err = errors.Join(err, l.apply(body, seg, at, o.logs))
	}
	removed := l.sweep()
	l.mu.Unlock()
	for _, s := range removed {
		os.Remove(s.f.Name())
	}
	if len(removed) > 0 {
		// A removed segment that came back after a crash would be
		// replayed before newer ones and superseded; syncing keeps the
		// directory from growing with them.
		err = errors.Join(err, partition.SyncDir(l.dir))
	}
	if err != nil {
		return l.fail(err)
	}
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(len(carry)+len(batch), len(buf), took)
	}
	return nil
}

// roundBuf returns an empty block-aligned buffer with room for a round of
// n bytes and its padding. Appends within that room keep it aligned.
func (l *Log) roundBuf(n int) []byte {
	n = alignUp(n)
	if cap(l.buf) < n {
		b := make([]byte, n+blockSize)
		o := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (blockSize - 1))
		l.buf = b[o : o : o+n]
	}
	return l.buf[:0]
}

// writeAt writes a round at off, directly where the file system allows.
func (l *Log) writeAt(seg *segment, buf []byte, off int64) error {
	if seg.w == nil {
		seg.w = seg.f
		if !l.buffered {
			w, err := openDirect(seg.f.Name())
			if err != nil {
				l.noDirect(err)
			} else {
				seg.w = w
			}
		}
	}
	_, err := seg.w.WriteAt(buf, off)
	if err != nil && seg.w != seg.f && errors.Is(err, syscall.EINVAL) {
		// Some file systems accept O_DIRECT at open and refuse the write.
		l.noDirect(err)
		seg.w.Close()
		seg.w = seg.f
		_, err = seg.f.WriteAt(buf, off)
	}
	return err
}

func (l *Log) noDirect(err error) {
	if !l.buffered {
		l.buffered = true
		l.opts.Logger.Info("the file system refuses direct I/O: the Raft log is written through the page cache", "dir", l.dir, "error", err)
	}
}

// fail records a failed write: after a failed fsync the page cache may
// hold bytes the disk does not, so nothing later is acknowledged.
func (l *Log) fail(err error) error {
	err = fmt.Errorf("raftlog: write: %w", err)
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
		l.opts.Logger.Error("the Raft log failed; no write will be acknowledged until the node restarts", "error", err)
	}
	l.mu.Unlock()
	return err
}

func (l *Log) active() *segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[len(l.segs)-1]
}

// roll starts a new segment. It returns the records to write at its head:
// every group's stable values, so that older segments never hold the only
// copy of one, and the entries still alive in the oldest segment when
// there are too many segments and few of them.
func (l *Log) roll() (*segment, [][]byte, error) {
	old := l.active()
	if err := l.createSegment(old.id + 1); err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	carry := l.stableCopy()
	oldest := l.segs[0]
	var move []moveRun
	// Copy forward the entries of groups that wrote nothing since the
	// oldest segment: a busy group's snapshots will free its entries
	// there soon, and copying them each roll stalls every commit. Copy
	// any group's once the oldest segment has been mostly dead for
	// BusyGrace (a group that writes rarely compacts rarely), or when
	// segments pile up regardless.
	if n := len(l.segs); n > l.opts.MaxSegments {
		if oldest.liveBytes > l.opts.SegmentBytes/4 {
			oldest.mostlyDead = time.Time{}
		} else if oldest.mostlyDead.IsZero() {
			oldest.mostlyDead = time.Now()
		}
		waited := !oldest.mostlyDead.IsZero() && time.Since(oldest.mostlyDead) >= l.opts.BusyGrace
		anyGroup := n > 4*l.opts.MaxSegments || waited
		if move = l.pickMoves(oldest, l.opts.SegmentBytes/4, anyGroup); len(move) > 0 {
			oldest.refs++
		}
	}
	l.mu.Unlock()
	if len(move) > 0 {
		defer l.release(oldest)
		moved, err := readMoves(move)
		if err != nil {
			return nil, nil, err
		}
		carry = append(carry, moved...)
		l.opts.Logger.Debug("copying Raft log entries forward to free the oldest segment", "segment", oldest.id, "groups", len(move))
	}
	return l.active(), carry, nil
}

// stableCopy is a set record for every stable value of every group.
// Caller holds mu.
func (l *Log) stableCopy() [][]byte {
	var out [][]byte
	for _, g := range l.sortedGroups() {
		keys := make([]string, 0, len(g.stable))
		for k := range g.stable {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, encodeSet(g.name, []byte(k), g.stable[k]))
		}
	}
	return out
}

// moveRun is entries of one group to copy forward out of the oldest
// segment.
type moveRun struct {
	g    *group
	locs []loc
}

// pickMoves chooses up to budget bytes (at least one entry) of the
// entries still alive in seg, group by group in name order; unless
// anyGroup, only of groups whose newest entry is in seg. Copying a bounded part each roll
// frees a segment held by an idle group's large entries over a few rolls
// without stalling one commit for a whole segment. Caller holds mu.
func (l *Log) pickMoves(seg *segment, budget int64, anyGroup bool) []moveRun {
	var out []moveRun
	for _, g := range l.sortedGroups() {
		if !anyGroup && (len(g.locs) == 0 || g.locs[len(g.locs)-1].seg != seg) {
			continue // wrote since: its snapshots will free seg
		}
		var run moveRun
		for _, lc := range g.locs {
			if lc.seg != seg {
				continue
			}
			if budget -= int64(lc.n); budget < 0 && (len(out) > 0 || len(run.locs) > 0) {
				break
			}
			run.g = g
			run.locs = append(run.locs, lc)
		}
		if len(run.locs) > 0 {
			out = append(out, run)
		}
		if budget < 0 {
			break
		}
	}
	return out
}

// readMoves reads the entries to copy forward into entries records,
// checking each: copying rot into a freshly checksummed frame would hide
// it from the next Open.
func readMoves(runs []moveRun) ([][]byte, error) {
	var out [][]byte
	for _, r := range runs {
		size := 4
		for _, lc := range r.locs {
			size += int(lc.n)
		}
		body := bodyStart(kindEntries, r.g.name, size)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(r.locs)))
		for _, lc := range r.locs {
			start := len(body)
			body = body[:start+int(lc.n)]
			if _, err := lc.seg.f.ReadAt(body[start:], lc.off); err != nil {
				return nil, err
			}
			var e raft.Log
			if err := decodeEntry(body[start:], &e); err != nil {
				return nil, fmt.Errorf("copying %s forward: %w", r.g.name, err)
			}
			if e.Index < r.g.base || e.Index-r.g.base >= uint64(len(r.g.locs)) || r.g.locs[e.Index-r.g.base] != lc {
				return nil, fmt.Errorf("%w: copying %s forward: entry at offset %d holds index %d", ErrDamaged, r.g.name, lc.off, e.Index)
			}
		}
		out = append(out, body)
	}
	return out, nil
}

func (l *Log) sortedGroups() []*group {
	out := make([]*group, 0, len(l.groups))
	for _, g := range l.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// sweep removes the oldest segments once no entry lives in them. Stable
// values never pin a segment: every segment starts with a copy of them.
// Caller holds mu; it returns the segments whose files to delete.
func (l *Log) sweep() []*segment {
	var out []*segment
	for len(l.segs) > 1 && l.segs[0].live == 0 {
		s := l.segs[0]
		l.segs = l.segs[1:]
		s.removed = true
		if s.refs == 0 {
			s.close()
		}
		out = append(out, s)
	}
	return out
}

func (l *Log) release(s *segment) {
	l.mu.Lock()
	s.refs--
	if s.removed && s.refs == 0 {
		s.close()
	}
	l.mu.Unlock()
}

// Close waits for queued writes and closes the files.
func (l *Log) Close() error {
	l.submitMu.Lock()
	if l.closed {
		l.submitMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	close(l.ops)
	l.submitMu.Unlock()
	<-l.done
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	for _, s := range l.segs {
		err = errors.Join(err, s.close())
	}
	l.segs = nil
	return err
}

// Groups lists the groups that have entries or stable values.
func (l *Log) Groups() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.groups))
	for name := range l.groups {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Has reports whether a group has any state.
func (l *Log) Has(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.groups[name]
	return ok
}

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }
