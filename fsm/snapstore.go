package fsm

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// SnapshotStore is a raft.SnapshotStore for partition groups that does not
// copy the log into every snapshot. The partition FSM writes only a small
// manifest and hard-links the segment files into the snapshot directory
// (segments are append-only, so a link plus a recorded size is a frozen
// prefix). The full byte stream is put together only when Open is called,
// i.e. when raft must ship the snapshot to a follower or restore it.
//
// A snapshot received from a leader arrives as the full stream and is kept
// as it came.
type SnapshotStore struct {
	dir    string
	retain int

	mu sync.Mutex // serialises Create/reap against each other
}

const (
	snapLinked = 'L' // state.bin holds the manifest; data is in linked files
	snapFull   = 'F' // state.bin (or the Open stream) holds manifest + data

	snapStateFile = "state.bin"
	snapMetaFile  = "meta.json"
	snapTmpSuffix = ".tmp"
)

// NewSnapshotStore opens (creating if needed) a snapshot store in dir that
// keeps the newest retain snapshots.
func NewSnapshotStore(dir string, retain int) (*SnapshotStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("snapshot store: retain %d must be >= 1", retain)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	// Leftovers of snapshots that were being written when we crashed.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), snapTmpSuffix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &SnapshotStore{dir: dir, retain: retain}, nil
}

// Create implements raft.SnapshotStore.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("snapshot store: unsupported snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	dir := filepath.Join(s.dir, id+snapTmpSuffix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: create: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, snapStateFile))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot store: create: %w", err)
	}
	return &snapshotSink{
		store: s,
		dir:   dir,
		file:  f,
		buf:   bufio.NewWriterSize(f, 256<<10),
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 id,
			Index:              index,
			Term:               term,
			Configuration:      configuration,
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List implements raft.SnapshotStore: newest first.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.list()
	if err != nil {
		return nil, err
	}
	if len(metas) > s.retain {
		metas = metas[:s.retain]
	}
	return metas, nil
}

func (s *SnapshotStore) list() ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: list: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), snapTmpSuffix) {
			continue
		}
		m, err := readSnapMeta(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue // a damaged snapshot is not offered to raft
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		if metas[i].Term != metas[j].Term {
			return metas[i].Term > metas[j].Term
		}
		if metas[i].Index != metas[j].Index {
			return metas[i].Index > metas[j].Index
		}
		return metas[i].ID > metas[j].ID
	})
	return metas, nil
}

func readSnapMeta(dir string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, snapMetaFile))
	if err != nil {
		return nil, err
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Open implements raft.SnapshotStore. The returned stream is always in the
// full format that PartitionFSM.Restore reads.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	dir := filepath.Join(s.dir, id)
	meta, err := readSnapMeta(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	f, err := os.Open(filepath.Join(dir, snapStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	var kind [1]byte
	if _, err := io.ReadFull(f, kind[:]); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	if kind[0] != snapLinked {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, err
		}
		return meta, f, nil
	}
	manifestBytes, err := readManifestBytes(f)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	var man manifest
	if err := json.Unmarshal(manifestBytes, &man); err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: manifest: %w", id, err)
	}
	rc, err := linkedStream(dir, manifestBytes, man)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	return meta, rc, nil
}

// linkedStream concatenates the full-format header with the frozen prefix
// of every linked segment file.
func linkedStream(dir string, manifestBytes []byte, man manifest) (io.ReadCloser, error) {
	head := appendStreamHeader(nil, snapFull, manifestBytes)
	readers := []io.Reader{strings.NewReader(string(head))}
	var files multiCloser
	for _, seg := range man.Segments {
		f, err := os.Open(filepath.Join(dir, linkName(seg.BaseOffset)))
		if err != nil {
			files.Close()
			return nil, err
		}
		files = append(files, f)
		readers = append(readers, io.LimitReader(f, seg.Size))
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(readers...), files}, nil
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var first error
	for _, c := range m {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func linkName(base int64) string { return fmt.Sprintf("%020d.log", base) }

func appendStreamHeader(dst []byte, kind byte, manifestBytes []byte) []byte {
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(manifestBytes)))
	return append(dst, manifestBytes...)
}

// readManifestBytes reads the length-prefixed manifest after the kind byte.
func readManifestBytes(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 64<<20 {
		return nil, fmt.Errorf("manifest of %d bytes is implausible", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *SnapshotStore) reap() {
	metas, err := s.list()
	if err != nil {
		return
	}
	for i := s.retain; i < len(metas); i++ {
		os.RemoveAll(filepath.Join(s.dir, metas[i].ID))
	}
}

// snapshotSink writes one snapshot. It also lets the partition FSM link
// segment files into the snapshot directory (see linker).
type snapshotSink struct {
	store  *SnapshotStore
	dir    string
	file   *os.File
	buf    *bufio.Writer
	meta   raft.SnapshotMeta
	size   int64
	first  byte
	closed bool
}

// linker is the optional ability of a sink to take hard links to files.
type linker interface {
	Link(src, name string) error
}

func (s *snapshotSink) ID() string { return s.meta.ID }

func (s *snapshotSink) Write(p []byte) (int, error) {
	if s.size == 0 && len(p) > 0 {
		s.first = p[0]
	}
	n, err := s.buf.Write(p)
	s.size += int64(n)
	return n, err
}

func (s *snapshotSink) Link(src, name string) error {
	return os.Link(src, filepath.Join(s.dir, name))
}

func (s *snapshotSink) Cancel() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.file.Close()
	return os.RemoveAll(s.dir)
}

func (s *snapshotSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.finish(); err != nil {
		s.file.Close()
		os.RemoveAll(s.dir)
		return fmt.Errorf("snapshot store: close %s: %w", s.meta.ID, err)
	}
	s.store.mu.Lock()
	s.store.reap()
	s.store.mu.Unlock()
	return nil
}

func (s *snapshotSink) finish() error {
	if err := s.buf.Flush(); err != nil {
		return err
	}
	if err := s.file.Sync(); err != nil {
		return err
	}
	if err := s.file.Close(); err != nil {
		return err
	}
	size, err := s.streamSize()
	if err != nil {
		return err
	}
	s.meta.Size = size
	mb, err := json.Marshal(&s.meta)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(s.dir, snapMetaFile), mb); err != nil {
		return err
	}
	final := strings.TrimSuffix(s.dir, snapTmpSuffix)
	if err := os.Rename(s.dir, final); err != nil {
		return err
	}
	return syncDir(s.store.dir)
}

// streamSize is the length of the stream Open will return.
func (s *snapshotSink) streamSize() (int64, error) {
	if s.first != snapLinked {
		return s.size, nil
	}
	f, err := os.Open(filepath.Join(s.dir, snapStateFile))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(1, io.SeekStart); err != nil {
		return 0, err
	}
	mb, err := readManifestBytes(f)
	if err != nil {
		return 0, err
	}
	var man manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return 0, err
	}
	total := int64(5 + len(mb))
	for _, seg := range man.Segments {
		total += seg.Size
	}
	return total, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFileAtomic replaces path with b so that a crash leaves either the old
// or the new content.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
