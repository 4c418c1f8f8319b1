package raftlog

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
)

// group is one Raft group's state in memory. Guarded by Log.mu.
type group struct {
	name string
	// locs[i] is where entry base+i is; a zero loc is a hole (an entry
	// deleted from the middle). locs never starts or ends with a hole.
	base   uint64
	locs   []loc
	stable map[string][]byte
}

func newGroup(name string) *group { return &group{name: name, stable: map[string][]byte{}} }

func (g *group) first() uint64 {
	if len(g.locs) == 0 {
		return 0
	}
	return g.base
}

func (g *group) last() uint64 {
	if len(g.locs) == 0 {
		return 0
	}
	return g.base + uint64(len(g.locs)) - 1
}

func (g *group) get(idx uint64) (loc, bool) {
	if len(g.locs) == 0 || idx < g.base || idx > g.last() {
		return loc{}, false
	}
	lc := g.locs[idx-g.base]
	return lc, lc.seg != nil
}

func (g *group) put(idx uint64, lc loc) {
	switch {
	case len(g.locs) == 0:
		g.base = idx
		g.locs = append(g.locs[:0], lc)
	case idx < g.base:
		grown := make([]loc, g.base-idx+uint64(len(g.locs)))
		copy(grown[g.base-idx:], g.locs)
		grown[0] = lc
		g.base, g.locs = idx, grown
	case idx > g.last():
		for g.last()+1 < idx {
			g.locs = append(g.locs, loc{})
		}
		g.locs = append(g.locs, lc)
	default:
		old := &g.locs[idx-g.base]
		if old.seg != nil {
			old.seg.live--
			old.seg.liveBytes -= int64(old.n)
		}
		*old = lc
	}
	lc.seg.live++
	lc.seg.liveBytes += int64(lc.n)
}

// deleteRange removes entries min..max (inclusive), calling gone for each.
func (g *group) deleteRange(min, max uint64, gone func(uint64)) {
	if len(g.locs) == 0 || min > max || max < g.base || min > g.last() {
		return
	}
	lo, hi := maxU(min, g.base), minU(max, g.last())
	for idx := lo; ; idx++ {
		lc := &g.locs[idx-g.base]
		if lc.seg != nil {
			lc.seg.live--
			lc.seg.liveBytes -= int64(lc.n)
			*lc = loc{}
			gone(idx)
		}
		if idx == hi {
			break
		}
	}
	k := 0
	for k < len(g.locs) && g.locs[k].seg == nil {
		k++
	}
	g.locs = g.locs[k:]
	g.base += uint64(k)
	for len(g.locs) > 0 && g.locs[len(g.locs)-1].seg == nil {
		g.locs = g.locs[:len(g.locs)-1]
	}
	if len(g.locs) == 0 {
		g.base, g.locs = 0, nil
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func minU(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// Store is one group's view of the log: a raft.LogStore and
// raft.StableStore. Stores are cheap handles; the state lives in the Log.
type Store struct {
	l    *Log
	name string
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Group returns the store of the named group, which need not exist yet.
func (l *Log) Group(name string) (*Store, error) {
	if len(name) == 0 || len(name) > maxNameLen {
		return nil, fmt.Errorf("raftlog: group name of %d bytes", len(name))
	}
	return &Store{l: l, name: name}, nil
}

func (s *Store) group() *group { return s.l.groups[s.name] }

// FirstIndex implements raft.LogStore.
func (s *Store) FirstIndex() (uint64, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if g := s.group(); g != nil {
		return g.first(), nil
	}
	return 0, nil
}

// LastIndex implements raft.LogStore.
func (s *Store) LastIndex() (uint64, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if g := s.group(); g != nil {
		return g.last(), nil
	}
	return 0, nil
}

// GetLog implements raft.LogStore.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	s.l.mu.Lock()
	g := s.group()
	if g == nil {
		s.l.mu.Unlock()
		return raft.ErrLogNotFound
	}
	if e := s.l.cache.get(g, index); e != nil {
		*out = *e
		s.l.mu.Unlock()
		return nil
	}
	lc, ok := g.get(index)
	if !ok {
		s.l.mu.Unlock()
		return raft.ErrLogNotFound
	}
	lc.seg.refs++
	s.l.mu.Unlock()
	b := make([]byte, lc.n)
	_, err := lc.seg.f.ReadAt(b, lc.off)
	s.l.release(lc.seg)
	if err != nil {
		return fmt.Errorf("raftlog: read entry %d of %s: %w", index, s.name, err)
	}
	if err := decodeEntry(b, out); err != nil {
		return fmt.Errorf("entry %d of %s: %w", index, s.name, err)
	}
	if out.Index != index {
		return fmt.Errorf("%w: entry %d of %s holds index %d", ErrDamaged, index, s.name, out.Index)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the entries are durable when it
// returns.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	return s.l.submit(&op{name: s.name, logs: logs, n: entriesBodyLen(s.name, logs)})
}

// DeleteRange implements raft.LogStore.
func (s *Store) DeleteRange(min, max uint64) error {
	return s.l.submit(&op{body: encodeDelete(s.name, min, max)})
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	if len(key) > maxNameLen {
		return fmt.Errorf("raftlog: key of %d bytes", len(key))
	}
	return s.l.submit(&op{body: encodeSet(s.name, key, val)})
}

// Get implements raft.StableStore.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if g := s.group(); g != nil {
		if v, ok := g.stable[string(key)]; ok {
			return append([]byte(nil), v...), nil
		}
	}
	return nil, ErrKeyNotFound
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s of %s is %d bytes", ErrDamaged, key, s.name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Drop removes the group's entries and stable values, durably.
func (s *Store) Drop() error { return s.l.submit(&op{body: encodeDrop(s.name)}) }

// Reset removes the group's entries and keeps its stable values (term and
// vote), for a replica rebuilt from its peers.
func (s *Store) Reset() error { return s.DeleteRange(0, ^uint64(0)) }

// Verify checks that the group holds every entry after snapshot up to its
// last one: a hole there would have raft apply a log with a gap.
// Checksums were checked when the log was opened.
func (s *Store) Verify(snapshot uint64) error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	g := s.group()
	if g == nil {
		return nil
	}
	if _, ok := g.stable["CurrentTerm"]; !ok && len(g.locs) > 0 {
		// raft records the term before it stores an entry of that term.
		return fmt.Errorf("%w: %s has entries but no term", ErrDamaged, s.name)
	}
	if g.last() <= snapshot {
		return nil
	}
	if g.first() > snapshot+1 {
		return fmt.Errorf("%w: %s has entries from %d, its snapshot ends at %d", ErrDamaged, s.name, g.first(), snapshot)
	}
	for idx := snapshot + 1; idx <= g.last(); idx++ {
		if _, ok := g.get(idx); !ok {
			return fmt.Errorf("%w: %s is missing entry %d", ErrDamaged, s.name, idx)
		}
	}
	return nil
}

// IsMonotonic tells raft (raft.MonotonicLogStore) to delete the whole log
// when it installs a snapshot, instead of storing the entries after it
// with a gap, which this store would fill with a hole per index.
func (s *Store) IsMonotonic() bool { return true }

// Close implements the close raft expects of stores; the Log stays open.
func (s *Store) Close() error { return nil }
