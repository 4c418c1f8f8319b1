package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bbolterrors "go.etcd.io/bbolt/errors"
)

// errRaftDamaged means a group's Raft store failed its checksums or could
// not be read at all. Its replica is rebuilt from its peers.
var errRaftDamaged = errors.New("raft store damaged")

// bbolt checksums only its meta pages, so a flipped bit in a stored Raft
// entry or in the term and vote would be read back as valid. checkedStore
// seals every entry and stable value with a CRC-32C, which startup checks
// before raft runs (see verifyRaftStore).
type checkedStore struct {
	*raftboltdb.BoltStore
	// legacy marks a store written before Quire sealed its stores: it is
	// read and written as it is, unchecked, so an upgrade keeps its data.
	legacy bool
}

// sealedKey, in the stable store, marks a store whose every entry and
// stable value is sealed. Stores get it when they are created.
var sealedKey = []byte("QuireSealed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealMarker starts a sealed entry's Extensions; the CRC-32C and then the
// caller's own Extensions follow it.
const (
	sealMarker = 0xC5
	sealSize   = 5
)

// The stable keys hashicorp/raft keeps its term and vote under.
var stableKeys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm"), []byte("LastVoteCand")}

func openRaftStore(path string) (*checkedStore, error) { return openStore(path, false) }

// openStore opens read-only to inspect a store that may be damaged: a
// panic in bbolt then leaks only a shared lock, and the file is replaced
// anyway.
func openStore(path string, readOnly bool) (*checkedStore, error) {
	s, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
			ReadOnly:       readOnly,
		},
	})
	if err != nil {
		return nil, err
	}
	legacy, err := isLegacy(s, readOnly)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &checkedStore{BoltStore: s, legacy: legacy}, nil
}

// isLegacy reports whether s holds state written before stores were
// sealed. An empty store is sealed from the start.
func isLegacy(s *raftboltdb.BoltStore, readOnly bool) (bool, error) {
	if _, err := s.Get(sealedKey); err == nil {
		return false, nil
	} else if !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return false, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return false, err
	}
	_, terr := s.Get(stableKeys[0])
	if last > 0 || terr == nil {
		return true, nil
	}
	if readOnly {
		return false, nil
	}
	return false, s.Set(sealedKey, []byte{1})
}

func entrySum(l *raft.Log, ext []byte) uint32 {
	var hdr [17]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	sum := crc32.Update(0, castagnoli, hdr[:])
	sum = crc32.Update(sum, castagnoli, l.Data)
	return crc32.Update(sum, castagnoli, ext)
}

// StoreLogs seals copies: raft keeps and replicates the entries it passed.
func (s *checkedStore) StoreLogs(logs []*raft.Log) error {
	if s.legacy {
		return s.BoltStore.StoreLogs(logs)
	}
	sealed := make([]raft.Log, len(logs))
	ptrs := make([]*raft.Log, len(logs))
	for i, l := range logs {
		sealed[i] = *l
		ext := make([]byte, sealSize, sealSize+len(l.Extensions))
		ext[0] = sealMarker
		binary.BigEndian.PutUint32(ext[1:], entrySum(l, l.Extensions))
		sealed[i].Extensions = append(ext, l.Extensions...)
		ptrs[i] = &sealed[i]
	}
	return s.BoltStore.StoreLogs(ptrs)
}

func (s *checkedStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *checkedStore) GetLog(idx uint64, l *raft.Log) error {
	if err := s.BoltStore.GetLog(idx, l); err != nil {
		return err
	}
	ext := l.Extensions
	if s.legacy {
		// A sealed entry in a store without the mark: the mark was lost.
		if len(ext) >= sealSize && ext[0] == sealMarker {
			return fmt.Errorf("%w: sealed entry %d in an unsealed store", errRaftDamaged, idx)
		}
		return nil
	}
	if len(ext) < sealSize || ext[0] != sealMarker || l.Index != idx {
		return fmt.Errorf("%w: entry %d is not sealed", errRaftDamaged, idx)
	}
	own := ext[sealSize:]
	if binary.BigEndian.Uint32(ext[1:]) != entrySum(l, own) {
		return fmt.Errorf("%w: entry %d fails its checksum", errRaftDamaged, idx)
	}
	l.Extensions = nil
	if len(own) > 0 {
		l.Extensions = own
	}
	return nil
}

// Stable values carry a CRC-32C of key and value, so a value damaged or
// read back under the wrong key is noticed.
func stableSum(k, v []byte) uint32 {
	return crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, v)
}

func (s *checkedStore) Set(k, v []byte) error {
	if s.legacy {
		return s.BoltStore.Set(k, v)
	}
	sealed := make([]byte, len(v), len(v)+4)
	copy(sealed, v)
	return s.BoltStore.Set(k, binary.BigEndian.AppendUint32(sealed, stableSum(k, v)))
}

func (s *checkedStore) Get(k []byte) ([]byte, error) {
	v, err := s.BoltStore.Get(k)
	if err != nil || s.legacy {
		return v, err
	}
	n := len(v) - 4
	if n < 0 || binary.BigEndian.Uint32(v[n:]) != stableSum(k, v[:n]) {
		return nil, fmt.Errorf("%w: stable value %q fails its checksum", errRaftDamaged, k)
	}
	return v[:n], nil
}

func (s *checkedStore) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

func (s *checkedStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable value %q has %d bytes", errRaftDamaged, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// verifyRaftStore reads every entry and the term and vote of the store at
// path, and reports errRaftDamaged when any of it is unreadable or fails
// its checksum, or when an entry after the group's latest snapshot (at
// index snapshot) is missing. bbolt panics on a damaged page, and a truncated file
// faults on its memory map: both are caught here, before raft runs.
func verifyRaftStore(path string, snapshot uint64) (err error) {
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	if err := checkBoltMeta(path); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		var s *checkedStore
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%w: %v", errRaftDamaged, p)
			}
			if s != nil {
				func() {
					defer func() { recover() }()
					s.Close()
				}()
			}
		}()
		var err error
		s, err = openStore(path, true)
		if err != nil {
			done <- openError(err)
			return
		}
		done <- s.verify(snapshot)
	}()
	return <-done
}

// openError tells damage from a store that cannot be opened right now:
// a lock still held, a missing permission, no memory or file descriptors.
// Wiping a replica's data for one of those would turn a passing problem
// into a rebuild, or, on every replica at once, into loss.
func openError(err error) error {
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, bbolterrors.ErrTimeout), errors.As(err, &pathErr),
		errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return fmt.Errorf("open raft store: %w", err)
	}
	return fmt.Errorf("%w: %w", errRaftDamaged, err)
}

func (s *checkedStore) verify(snapshot uint64) error {
	for _, k := range stableKeys {
		if _, err := s.Get(k); err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
			return damaged(err)
		}
	}
	first, err := s.FirstIndex()
	if err != nil {
		return damaged(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return damaged(err)
	}
	var l raft.Log
	for i := first; i > 0 && i <= last; i++ {
		err := s.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) && i <= snapshot {
			// Compaction left it out: raft-boltdb's DeleteRange deletes
			// through a bbolt cursor, which skips keys, so stragglers
			// below the snapshot can outlive the entries around them.
			continue
		}
		if err != nil {
			return damaged(fmt.Errorf("entry %d of %d-%d (snapshot at %d): %w", i, first, last, snapshot, err))
		}
	}
	return nil
}

// latestSnapshot is the index of the newest snapshot list reports, 0 for
// none. Raft resumes from it, so only entries after it must all be there.
func latestSnapshot(list func() ([]*raft.SnapshotMeta, error)) (uint64, error) {
	snaps, err := list()
	if err != nil || len(snaps) == 0 {
		return 0, err
	}
	return snaps[0].Index, nil
}

// checkBoltMeta requires both of bbolt's meta pages to be intact. bbolt
// itself falls back to the older one when the newer fails its checksum,
// which silently drops the last transaction: an acknowledged entry, or
// half of a vote. A crash cannot tear a meta page (bbolt writes it with
// one pwrite, and a killed process does not interrupt that), so a bad one
// is damage. A file too short to hold both is damage too.
func checkBoltMeta(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return openError(err)
	}
	defer f.Close()
	const hdr, magic, version = 16, 0xED0CDAED, 2
	page := make([]byte, 4096)
	pageSize := int64(os.Getpagesize())
	for i := int64(0); i < 2; i++ {
		if _, err := f.ReadAt(page[:hdr+64], i*pageSize); err != nil {
			return fmt.Errorf("%w: meta page %d: %w", errRaftDamaged, i, err)
		}
		m := page[hdr : hdr+64]
		h := fnv.New64a()
		h.Write(m[:56])
		if binary.LittleEndian.Uint32(m[0:]) != magic || binary.LittleEndian.Uint32(m[4:]) != version ||
			binary.LittleEndian.Uint64(m[56:]) != h.Sum64() {
			return fmt.Errorf("%w: bbolt meta page %d is invalid; its last transaction may be lost", errRaftDamaged, i)
		}
		if i == 0 {
			pageSize = int64(binary.LittleEndian.Uint32(m[8:]))
		}
	}
	return nil
}

func damaged(err error) error {
	if errors.Is(err, errRaftDamaged) {
		return err
	}
	return fmt.Errorf("%w: %w", errRaftDamaged, err)
}

// salvageStable reads what it still can of a possibly damaged store's
// term and vote.
func salvageStable(path string) map[string][]byte {
	saved := map[string][]byte{}
	defer func() { recover() }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if _, err := os.Stat(path); err != nil {
		return saved
	}
	s, err := openStore(path, true)
	if err != nil {
		return saved
	}
	defer s.Close()
	for _, k := range stableKeys {
		v, err := s.Get(k)
		if err != nil || (string(k) != "LastVoteCand" && len(v) != 8) {
			continue // raft could not load a term that is not 8 bytes
		}
		saved[string(k)] = v
	}
	return saved
}

// resetRaftStore replaces a group's Raft store with an empty one that
// keeps the old term and vote where they can still be read, so a rebuilt
// replica never votes twice in a term it voted in. Where they cannot, the
// vote gate (see voteGate) is what keeps the replica from voting before it
// has caught up with the group's current term.
func resetRaftStore(path string) error {
	saved := salvageStable(path)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s, err := openRaftStore(path)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, k := range stableKeys {
		if v, ok := saved[string(k)]; ok {
			if err := s.Set(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}
