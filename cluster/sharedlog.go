package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/cluster/raftlog"
	"github.com/quirelog/quire/fsm"
)

// openSharedLog opens the node's shared Raft log for partition groups. A
// damaged log is set aside and a new one started; every partition replica
// here is then rebuilt from its peers (walDamaged), since which groups the
// damage touched cannot be known.
func (n *Node) openSharedLog() error {
	dir := filepath.Join(n.cfg.DataDir, "raftlog")
	if n.cfg.RaftLog != RaftLogShared {
		// Nothing moves logs back out of the shared log: starting without
		// it would find every partition's data without its Raft log.
		if segs, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(segs) > 0 {
			return fmt.Errorf("the partitions' Raft logs are in the shared log %s; --raft-log %s cannot use them (start with --raft-log %s)", dir, n.cfg.RaftLog, RaftLogShared)
		}
		return nil
	}
	opts := raftlog.Options{
		Logger: n.logger.Named("raftlog"),
		OnCommit: func(records, _ int, took time.Duration) {
			n.metrics.raftLogSync.Observe(took.Seconds())
			n.metrics.raftLogRecords.Observe(float64(records))
		},
	}
	wal, err := raftlog.Open(dir, opts)
	if errors.Is(err, raftlog.ErrDamaged) {
		n.logger.Error("the shared Raft log is damaged; setting it aside and rebuilding every partition replica on this node from its peers", "error", err)
		aside := dir + ".damaged"
		if err := os.RemoveAll(aside); err != nil {
			return err
		}
		if err := os.Rename(dir, aside); err != nil {
			return err
		}
		n.walDamaged = true
		wal, err = raftlog.Open(dir, opts)
	}
	if err != nil {
		return fmt.Errorf("shared raft log: %w", err)
	}
	n.wal = wal
	return nil
}

// groupKey names a partition replica in the shared log: its directory's
// name, which carries the topic id, so a re-created topic starts afresh.
func groupKey(dir string) string { return filepath.Base(dir) }

// sharedStore is a partition's share of the node's Raft log, or nil when
// partitions keep their own raft.db.
func (n *Node) sharedStore(dir string) (*raftlog.Store, error) {
	if n.wal == nil {
		return nil, nil
	}
	return n.wal.Group(groupKey(dir))
}

// verifyShared checks a partition's share of the shared log against its
// latest snapshot; a replica with files here when the log was found
// damaged is damaged too.
func (n *Node) verifyShared(dir string, s *raftlog.Store) error {
	_, statErr := os.Stat(dir)
	if n.walDamaged && statErr == nil {
		return fmt.Errorf("%w: the shared Raft log was damaged", errRaftDamaged)
	}
	if errors.Is(statErr, os.ErrNotExist) && n.wal.Has(groupKey(dir)) {
		// Raft would take its log's entries as applied to data that is
		// gone.
		return fmt.Errorf("%w: the partition's files are gone but its Raft log is not", errRaftDamaged)
	}
	snapshot, err := partitionSnapshotIndex(dir)
	if err != nil {
		return err
	}
	if err := s.Verify(snapshot); err != nil {
		return fmt.Errorf("%w: %v", errRaftDamaged, err)
	}
	return nil
}

// migrateToShared moves a partition's raft.db, written when partitions had
// their own, into the shared log and removes it. The raft.db was verified
// first. A crash part-way leaves the raft.db, and the copy starts over.
func migrateToShared(dir string, s *raftlog.Store) error {
	path := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old, err := openRaftStore(path)
	if err != nil {
		return err
	}
	defer old.Close()
	if err := s.Drop(); err != nil {
		return err
	}
	for _, k := range stableKeys {
		if v, err := old.Get(k); err == nil {
			if err := s.Set(k, v); err != nil {
				return err
			}
		}
	}
	first, err := old.FirstIndex()
	if err != nil {
		return err
	}
	last, err := old.LastIndex()
	if err != nil {
		return err
	}
	for idx := first; idx <= last && last > 0; {
		var batch []*raft.Log
		for size := 0; idx <= last && size < 4<<20; idx++ {
			e := new(raft.Log)
			if err := old.GetLog(idx, e); err != nil {
				return fmt.Errorf("migrate entry %d: %w", idx, err)
			}
			batch = append(batch, e)
			size += len(e.Data)
		}
		if err := s.StoreLogs(batch); err != nil {
			return err
		}
	}
	if err := old.Close(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return nil
}

// dropShared removes a destroyed replica's share of the shared log.
func (n *Node) dropShared(dir string) error {
	if n.wal == nil || !n.wal.Has(groupKey(dir)) {
		return nil
	}
	s, err := n.wal.Group(groupKey(dir))
	if err != nil {
		return err
	}
	return s.Drop()
}

// dropOrphanShares removes shares of the shared log whose partition
// directory is gone and which no replica owns.
func (n *Node) dropOrphanShares(keep map[string]bool) {
	if n.wal == nil {
		return
	}
	for _, name := range n.wal.Groups() {
		if keep[name] {
			continue
		}
		if err := n.dropShared(name); err != nil {
			n.logger.Warn("dropping an orphaned share of the Raft log failed", "group", name, "error", err)
			continue
		}
		n.logger.Info("dropped an orphaned share of the Raft log", "group", name)
	}
}

// partitionSnapshotIndex is the index of a partition's latest snapshot,
// 0 if it has none.
func partitionSnapshotIndex(dir string) (uint64, error) {
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); err != nil {
		return 0, nil
	}
	snaps, err := fsm.NewSnapshotStore(filepath.Join(dir, "snapshots"), 2)
	if err != nil {
		return 0, err
	}
	return latestSnapshot(snaps.List)
}
