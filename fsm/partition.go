package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/partition"
)

// BatchResult is the outcome of one record batch of a produce command.
type BatchResult struct {
	// BaseOffset is the offset assigned to the batch's first record (for a
	// duplicate, the offset it was given the first time).
	BaseOffset int64
	// Err is a Kafka error (kerr) when the batch was not appended.
	Err error
}

// ProduceResult is what Apply returns for a produce command: one result per
// batch, in command order.
type ProduceResult struct {
	Batches []BatchResult
}

// EpochStart records the first offset written in a leader epoch (Raft
// term); OffsetForLeaderEpoch answers from this list.
type EpochStart struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// manifest is the partition state that is not in the segment files. It is
// both the restart checkpoint and the header of a snapshot stream.
type manifest struct {
	Index       uint64          `json:"index"`
	StartOffset int64           `json:"start_offset"`
	NextOffset  int64           `json:"next_offset"`
	Producers   []producerState `json:"producers"`
	Epochs      []EpochStart    `json:"epochs"`
	OpenTxns    []openTxn       `json:"open_txns,omitempty"`
	AbortedTxns []AbortedTxn    `json:"aborted_txns,omitempty"`
	Segments    []segmentRef    `json:"segments,omitempty"`
	// CompactTarget and CompactHorizon are the compaction the Raft log
	// asked for; CleanedTo is how far these segments are compacted.
	CompactTarget  int64 `json:"compact_target,omitempty"`
	CompactHorizon int64 `json:"compact_horizon,omitempty"`
	CleanedTo      int64 `json:"cleaned_to,omitempty"`
	CleanedHorizon int64 `json:"cleaned_horizon,omitempty"`
}

type segmentRef struct {
	BaseOffset int64 `json:"base_offset"`
	Size       int64 `json:"size"`
}

const checkpointFile = "checkpoint.json"

// ErrCheckpointAhead means the checkpoint names data the segment log no
// longer has: the partition cannot be trusted and must be rebuilt from a
// replica.
var ErrCheckpointAhead = errors.New("checkpoint is ahead of the segment log")

// ErrDamaged means the partition's files fail their checksums or lost
// data the checkpoint says was durable: the replica must be rebuilt from
// its peers (see WipePartition). ErrCheckpointAhead errors wrap it too.
var ErrDamaged = errors.New("partition data damaged")

// PartitionFSM applies committed produce commands to one partition's log.
//
// Apply, Snapshot and Restore run on raft's FSM goroutine; Persist runs on
// the snapshot goroutine; reads (Read, HighWatermark, ...) come from any
// goroutine.
type PartitionFSM struct {
	dir    string
	log    *partition.Log
	logger hclog.Logger

	// Owned by the FSM goroutine.
	applied   uint64
	producers map[int64]*producerState
	// open is the transactions that wrote here and have no marker yet;
	// openMu guards its changes against HasOpenTxn.
	open    map[int64]*openTxn
	openMu  sync.RWMutex
	scratch []byte

	// txnMu guards aborted, which Fetch reads.
	txnMu   sync.RWMutex
	aborted []AbortedTxn
	lso     atomic.Int64

	// epochsMu guards epochs, which readers (OffsetForLeaderEpoch) share.
	epochsMu sync.RWMutex
	epochs   []EpochStart

	hw atomic.Int64
	// compactTarget and compactHorizon are written by Apply, cleanedTo by
	// the cleaner (RunCompaction).
	compactTarget, compactHorizon, cleanedTo, cleanedHorizon atomic.Int64
	// restores counts Restore calls: a compaction pass that ran across
	// one does not record how far it got.
	restores       atomic.Uint64
	tombstonesKept atomic.Int64
	// producerCount is how many producers the partition remembers, for
	// the leader deciding whether expiry has anything to look at.
	producerCount atomic.Int64

	// notifyMu guards notify, closed and replaced after every append so
	// long-polling fetches wake up.
	notifyMu sync.Mutex
	notify   chan struct{}

	// cpMu serialises checkpoint writes (Persist vs Close).
	cpMu    sync.Mutex
	cpIndex uint64
}

// OpenPartition opens the partition in dir and brings the segment log back
// to the last checkpoint: anything appended after it is truncated, because
// raft re-applies those entries.
//
// trusted says the node stopped cleanly last time: every partition's files
// below its checkpoint were synced then, so they need not be read through
// again. Otherwise they are verified (see verifyAfterCrash).
func OpenPartition(dir string, cfg partition.Config, logger hclog.Logger, trusted bool) (*PartitionFSM, error) {
	log, err := partition.Open(filepath.Join(dir, "log"), cfg, logger)
	if err != nil {
		return nil, err
	}
	p := &PartitionFSM{
		dir:       dir,
		log:       log,
		logger:    logger,
		producers: make(map[int64]*producerState),
		open:      make(map[int64]*openTxn),
		notify:    make(chan struct{}),
	}
	cp, err := readCheckpoint(filepath.Join(dir, checkpointFile))
	if err != nil {
		log.Close()
		return nil, err
	}
	if cp == nil {
		// Never checkpointed: raft still holds every entry, replay all.
		cp = &manifest{StartOffset: log.StartOffset(), NextOffset: log.StartOffset()}
	}
	if err := p.recoverTo(cp); err != nil {
		log.Close()
		return nil, err
	}
	if !trusted {
		if err := p.verifyAfterCrash(cp); err != nil {
			log.Close()
			return nil, err
		}
	}
	return p, nil
}

// verifyAfterCrash checks every batch below the checkpoint: after a crash
// damage can be anywhere a disk or an operator touched, and recovery alone
// only validates the tail.
func (p *PartitionFSM) verifyAfterCrash(cp *manifest) error {
	if err := p.log.Verify(cp.NextOffset); err != nil {
		return fmt.Errorf("partition %s: %w: %w", p.dir, ErrDamaged, err)
	}
	return nil
}

// WipePartition removes a damaged partition's segments, checkpoint and
// snapshots, leaving the Raft store (and the votes it records) to the
// caller.
func WipePartition(dir string) error {
	for _, name := range []string{"log", checkpointFile, "snapshots"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func (p *PartitionFSM) recoverTo(cp *manifest) error {
	next := p.log.NextOffset()
	switch {
	case next < cp.NextOffset:
		return fmt.Errorf("partition %s: log ends at %d, checkpoint at %d: %w: %w", p.dir, next, cp.NextOffset, ErrDamaged, ErrCheckpointAhead)
	case next > cp.NextOffset:
		p.logger.Info("truncating log to checkpoint", "from", next, "to", cp.NextOffset, "index", cp.Index)
		if err := p.log.Truncate(cp.NextOffset); err != nil {
			return fmt.Errorf("partition %s: truncate to checkpoint: %w", p.dir, err)
		}
	}
	// A trim deletes segments after its checkpoint is written; a crash in
	// between leaves them, and the checkpoint's start is the one in force.
	if err := p.advanceStart(cp.StartOffset); err != nil {
		return err
	}
	p.setCompaction(cp)
	p.applied = cp.Index
	p.cpIndex = cp.Index
	for i := range cp.Producers {
		st := cp.Producers[i]
		p.producers[st.ID] = &st
	}
	p.epochs = cp.Epochs
	p.producerCount.Store(int64(len(p.producers)))
	p.setTxns(cp)
	p.hw.Store(p.log.NextOffset())
	return nil
}

func (p *PartitionFSM) setCompaction(m *manifest) {
	p.compactTarget.Store(m.CompactTarget)
	p.compactHorizon.Store(m.CompactHorizon)
	p.cleanedTo.Store(m.CleanedTo)
	p.cleanedHorizon.Store(m.CleanedHorizon)
}

// setTxns replaces the transaction state with a checkpoint's or a
// snapshot's.
func (p *PartitionFSM) setTxns(m *manifest) {
	open := make(map[int64]*openTxn, len(m.OpenTxns))
	for i := range m.OpenTxns {
		o := m.OpenTxns[i]
		open[o.ProducerID] = &o
	}
	p.openMu.Lock()
	p.open = open
	p.openMu.Unlock()
	p.txnMu.Lock()
	p.aborted = append([]AbortedTxn(nil), m.AbortedTxns...)
	p.txnMu.Unlock()
	p.updateLSO()
}

func readCheckpoint(path string) (*manifest, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode checkpoint %s: %w", path, err)
	}
	return &m, nil
}

// Apply implements raft.FSM.
func (p *PartitionFSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if l.Index <= p.applied {
		return nil // applied before the last restart
	}
	if len(l.Data) > 0 && l.Data[0] == cmdMarker {
		return p.applyMarkerEntry(l)
	}
	if len(l.Data) > 0 && l.Data[0] == cmdExpireProducers {
		p.applied = l.Index
		return p.applyExpire(l.Data)
	}
	if len(l.Data) > 0 && l.Data[0] == cmdTrimPrefix {
		return p.applyTrim(l)
	}
	if len(l.Data) > 0 && l.Data[0] == cmdCompact {
		return p.applyCompact(l)
	}
	batches, err := decodeProduce(l.Data)
	if err != nil {
		// Only our own leader writes commands; an undecodable one means
		// replicas would diverge, so stop rather than guess.
		panic(fmt.Sprintf("partition %s: entry %d: %v", p.dir, l.Index, err))
	}
	res := &ProduceResult{Batches: make([]BatchResult, len(batches))}
	appended := false
	for i, b := range batches {
		res.Batches[i] = p.applyBatch(b, int32(l.Term))
		appended = appended || res.Batches[i].Err == nil
	}
	p.applied = l.Index
	p.producerCount.Store(int64(len(p.producers)))
	if appended {
		p.updateLSO()
		p.hw.Store(p.log.NextOffset())
		p.wake()
	}
	return res
}

func (p *PartitionFSM) applyMarkerEntry(l *raft.Log) interface{} {
	m, err := decodeMarker(l.Data)
	if err != nil {
		panic(fmt.Sprintf("partition %s: entry %d: %v", p.dir, l.Index, err))
	}
	res := p.applyMarker(m, int32(l.Term))
	p.applied = l.Index
	p.producerCount.Store(int64(len(p.producers)))
	if res.Err == nil {
		p.updateLSO()
		p.hw.Store(p.log.NextOffset())
		p.wake()
	}
	return res
}

func (p *PartitionFSM) applyBatch(b []byte, term int32) BatchResult {
	h, err := partition.ValidateBatch(b)
	if err != nil {
		return BatchResult{BaseOffset: -1, Err: kerr.CorruptMessage}
	}
	var st *producerState
	if h.ProducerID >= 0 {
		st = p.producers[h.ProducerID]
		chk := checkSequence(st, h)
		if chk.err != nil {
			return BatchResult{BaseOffset: -1, Err: chk.err}
		}
		if chk.duplicate {
			return BatchResult{BaseOffset: chk.dupOffset}
		}
	}
	if err := p.checkTxn(h); err != nil {
		return BatchResult{BaseOffset: -1, Err: err}
	}
	base := p.log.NextOffset()
	// The entry's bytes may be shared with raft's log cache, so rewrite
	// the header on a private copy.
	p.scratch = append(p.scratch[:0], b...)
	partition.SetBaseOffset(p.scratch, base)
	partition.SetLeaderEpoch(p.scratch, term)
	if err := p.log.Append(p.scratch); err != nil {
		// A failed local write cannot be skipped: the replica would
		// silently diverge from its peers.
		panic(fmt.Sprintf("partition %s: append at %d: %v", p.dir, base, err))
	}
	p.noteEpoch(term, base)
	if h.ProducerID >= 0 {
		if st == nil {
			st = &producerState{ID: h.ProducerID, Epoch: h.ProducerEpoch}
			p.producers[h.ProducerID] = st
		}
		st.record(h, base)
		p.noteTxnBatch(h, base)
	}
	return BatchResult{BaseOffset: base}
}

func (p *PartitionFSM) noteEpoch(term int32, offset int64) {
	if n := len(p.epochs); n > 0 && p.epochs[n-1].Epoch >= term {
		return
	}
	p.epochsMu.Lock()
	p.epochs = append(p.epochs, EpochStart{Epoch: term, StartOffset: offset})
	p.epochsMu.Unlock()
}

func (p *PartitionFSM) wake() {
	p.notifyMu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.notifyMu.Unlock()
}

// Changed returns a channel closed at the next append.
func (p *PartitionFSM) Changed() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.notify
}

// HighWatermark is the end offset of the last applied (committed) batch.
func (p *PartitionFSM) HighWatermark() int64 { return p.hw.Load() }

// StartOffset is the log start offset.
func (p *PartitionFSM) StartOffset() int64 { return p.log.StartOffset() }

// Read returns whole batches from offset, up to maxBytes (at least one
// batch), never past the high watermark.
func (p *PartitionFSM) Read(offset int64, maxBytes int) ([]byte, error) {
	return p.log.Read(offset, maxBytes, p.hw.Load())
}

// OffsetForTimestamp answers ListOffsets by timestamp.
// A batch that begins below the log start offset answers the start.
func (p *PartitionFSM) OffsetForTimestamp(ts int64) (int64, int64, bool, error) {
	off, bts, found, err := p.log.OffsetForTimestamp(ts)
	return max(off, p.log.StartOffset()), bts, found, err
}

// MaxTimestampOffset answers ListOffsets for the largest timestamp below
// end.
// A record below the log start offset (in a segment that retention has
// cut into) answers the start.
func (p *PartitionFSM) MaxTimestampOffset(end int64) (int64, int64, bool, error) {
	off, ts, found, err := p.log.MaxTimestampOffset(end)
	return max(off, p.log.StartOffset()), ts, found, err
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= the
// requested one and the offset where the next epoch starts (or the high
// watermark for the latest epoch).
func (p *PartitionFSM) EndOffsetForEpoch(epoch int32) (int32, int64) {
	p.epochsMu.RLock()
	defer p.epochsMu.RUnlock()
	for i := len(p.epochs) - 1; i >= 0; i-- {
		if p.epochs[i].Epoch <= epoch {
			if i == len(p.epochs)-1 {
				return p.epochs[i].Epoch, p.hw.Load()
			}
			return p.epochs[i].Epoch, p.epochs[i+1].StartOffset
		}
	}
	return -1, -1
}

// ProducerCount is how many idempotent producers the partition remembers.
func (p *PartitionFSM) ProducerCount() int64 { return p.producerCount.Load() }

// Applied is the index of the last applied Raft entry.
func (p *PartitionFSM) Applied() uint64 { return p.applied }

// Log exposes the segment log for read-only inspection (debug, checksums).
func (p *PartitionFSM) Log() *partition.Log { return p.log }

// Snapshot implements raft.FSM. It only records positions; Persist does the
// I/O.
func (p *PartitionFSM) Snapshot() (raft.FSMSnapshot, error) {
	// The count first: a compaction after it makes Persist give up,
	// whenever it comes.
	compactions := p.log.Compactions()
	m := p.currentManifest()
	paths := make(map[int64]string)
	for _, s := range p.log.Segments() {
		m.Segments = append(m.Segments, segmentRef{BaseOffset: s.BaseOffset, Size: s.Size})
		paths[s.BaseOffset] = s.Path
	}
	return &partitionSnapshot{fsm: p, man: m, paths: paths, compactions: compactions}, nil
}

func (p *PartitionFSM) currentManifest() manifest {
	p.epochsMu.RLock()
	epochs := append([]EpochStart(nil), p.epochs...)
	p.epochsMu.RUnlock()
	p.txnMu.RLock()
	aborted := append([]AbortedTxn(nil), p.aborted...)
	p.txnMu.RUnlock()
	return manifest{
		Index:       p.applied,
		StartOffset: p.log.StartOffset(),
		NextOffset:  p.log.NextOffset(),
		Producers:   sortedProducers(p.producers),
		Epochs:      epochs,
		OpenTxns:    sortedOpen(p.open),
		AbortedTxns: aborted,

		CompactTarget:  p.compactTarget.Load(),
		CompactHorizon: p.compactHorizon.Load(),
		CleanedTo:      p.cleanedTo.Load(),
		CleanedHorizon: p.cleanedHorizon.Load(),
	}
}

// writeCheckpoint records m as the restart point, never moving backwards.
// The caller must have synced the segment log up to m.NextOffset.
func (p *PartitionFSM) writeCheckpoint(m manifest) error {
	p.cpMu.Lock()
	defer p.cpMu.Unlock()
	if m.Index < p.cpIndex {
		return nil
	}
	m.Segments = nil
	b, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(p.dir, checkpointFile), b); err != nil {
		return fmt.Errorf("partition %s: write checkpoint: %w", p.dir, err)
	}
	p.cpIndex = m.Index
	return nil
}

// Restore implements raft.FSM: it replaces the log with the snapshot's.
func (p *PartitionFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m, err := p.restoreStream(rc)
	if err != nil {
		return fmt.Errorf("partition %s: restore: %w", p.dir, err)
	}
	p.logger.Info("replica restored from a snapshot", "index", m.Index, "log_start", m.StartOffset, "log_end", m.NextOffset)
	p.restores.Add(1)
	p.setCompaction(m)
	p.applied = m.Index
	p.producers = make(map[int64]*producerState)
	for i := range m.Producers {
		st := m.Producers[i]
		p.producers[st.ID] = &st
	}
	p.epochsMu.Lock()
	p.epochs = m.Epochs
	p.epochsMu.Unlock()
	p.producerCount.Store(int64(len(p.producers)))
	p.setTxns(m)
	p.hw.Store(p.log.NextOffset())
	if err := p.log.Sync(); err != nil {
		return err
	}
	p.cpMu.Lock()
	p.cpIndex = 0 // a restore may move the checkpoint to any index
	p.cpMu.Unlock()
	if err := p.writeCheckpoint(*m); err != nil {
		return err
	}
	p.wake()
	return nil
}

func (p *PartitionFSM) restoreStream(r io.Reader) (*manifest, error) {
	var kind [1]byte
	if _, err := io.ReadFull(r, kind[:]); err != nil {
		return nil, err
	}
	if kind[0] != snapFull {
		return nil, fmt.Errorf("snapshot stream kind %q", kind[0])
	}
	mb, err := readManifestBytes(r)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, err
	}
	// The first segment may begin below the start offset (retention and
	// DeleteRecords move it inside a segment): its batches come whole.
	base := m.StartOffset
	if len(m.Segments) > 0 {
		base = min(base, m.Segments[0].BaseOffset)
	}
	if err := p.log.Reset(base); err != nil {
		return nil, err
	}
	var total int64
	for _, s := range m.Segments {
		total += s.Size
	}
	if err := p.appendStream(io.LimitReader(r, total)); err != nil {
		return nil, err
	}
	if got := p.log.NextOffset(); got < m.NextOffset && len(m.Segments) > 0 {
		// Compaction removed the last batches before the end.
		if err := p.log.SkipTo(m.NextOffset); err != nil {
			return nil, err
		}
	}
	if got := p.log.NextOffset(); got != m.NextOffset {
		return nil, fmt.Errorf("restored log ends at %d, manifest says %d", got, m.NextOffset)
	}
	if err := p.advanceStart(m.StartOffset); err != nil {
		return nil, err
	}
	return &m, nil
}

// appendStream appends every batch of a concatenated batch stream,
// validating each (a snapshot crossed the network).
func (p *PartitionFSM) appendStream(r io.Reader) error {
	var head [12]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		size := int(int32(binary.BigEndian.Uint32(head[8:12])))
		if size < partition.BatchHeaderSize-12 || size > 1<<30 {
			return fmt.Errorf("snapshot batch length %d", size)
		}
		buf = append(buf[:0], head[:]...)
		buf = append(buf, make([]byte, size)...)
		if _, err := io.ReadFull(r, buf[12:]); err != nil {
			return err
		}
		if err := p.log.AppendCompacted(buf); err != nil {
			return err
		}
	}
}

// Close syncs the log, checkpoints the applied state so a clean restart
// replays nothing, and closes the log. Call it after raft has shut down.
// Close syncs the log and, if entries were applied since the last
// checkpoint, writes one, so a restart need not replay them. An idle
// partition writes nothing: a node closes thousands at once.
func (p *PartitionFSM) Close() error {
	if p.applied <= p.cpIndex {
		return p.log.Close()
	}
	if err := p.log.Sync(); err != nil {
		p.log.Close()
		return err
	}
	err := p.writeCheckpoint(p.currentManifest())
	if cerr := p.log.Close(); err == nil {
		err = cerr
	}
	return err
}

// partitionSnapshot is a point-in-time view of the partition.
type partitionSnapshot struct {
	fsm   *PartitionFSM
	man   manifest
	paths map[int64]string
	// compactions is the log's count when the segments were listed: a
	// compaction since replaced a file the manifest gives the size of.
	compactions uint64
}

// Persist syncs the segments, moves the restart checkpoint forward and
// writes the snapshot: hard links plus a manifest where the sink supports
// it, the full stream otherwise.
func (s *partitionSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *partitionSnapshot) persist(sink raft.SnapshotSink) error {
	if err := s.fsm.log.Sync(); err != nil {
		return err
	}
	if err := s.fsm.writeCheckpoint(s.man); err != nil {
		return err
	}
	mb, err := json.Marshal(&s.man)
	if err != nil {
		return err
	}
	return s.fsm.log.StableSegments(func() error {
		if s.fsm.log.Compactions() != s.compactions {
			return errStaleSnapshot
		}
		if l, ok := sink.(linker); ok {
			for _, seg := range s.man.Segments {
				if err := l.Link(s.paths[seg.BaseOffset], linkName(seg.BaseOffset)); err != nil {
					return fmt.Errorf("link segment %d: %w", seg.BaseOffset, err)
				}
			}
			_, err := sink.Write(appendStreamHeader(nil, snapLinked, mb))
			return err
		}
		if _, err := sink.Write(appendStreamHeader(nil, snapFull, mb)); err != nil {
			return err
		}
		for _, seg := range s.man.Segments {
			if err := copySegmentPrefix(sink, s.paths[seg.BaseOffset], seg.Size); err != nil {
				return err
			}
		}
		return nil
	})
}

func copySegmentPrefix(w io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("segment %s: copied %d of %d bytes", path, n, size)
	}
	return err
}

// Release implements raft.FSMSnapshot.
func (s *partitionSnapshot) Release() {}

// Digest returns the high watermark and a CRC32C over the stored batches
// below it, read in 1 MiB steps.
func (p *PartitionFSM) Digest() (int64, uint32, error) {
	hw := p.hw.Load()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	off := p.log.StartOffset()
	for off < hw {
		data, err := p.log.Read(off, 1<<20, hw)
		if err != nil {
			return 0, 0, err
		}
		batches, err := partition.SplitBatches(data)
		if err != nil || len(batches) == 0 {
			return 0, 0, fmt.Errorf("digest at offset %d: %v", off, err)
		}
		for _, b := range batches {
			bh, err := partition.ParseBatchHeader(b)
			if err != nil {
				return 0, 0, err
			}
			h.Write(b)
			off = bh.BaseOffset + int64(bh.LastOffsetDelta) + 1
		}
	}
	return hw, h.Sum32(), nil
}
