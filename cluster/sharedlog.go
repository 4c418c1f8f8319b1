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
	"github.com/quirelog/quire/partition"
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
		// Marked before the log goes: a restart after the new, empty log
		// exists must still know these replicas lost their Raft state.
		ents, rerr := os.ReadDir(filepath.Join(n.cfg.DataDir, "partitions"))
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return rerr
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			if err := markRebuilding(filepath.Join(n.cfg.DataDir, "partitions", e.Name()), markDamaged); err != nil {
				return err
			}
		}
		aside := dir + ".damaged"
		if err := os.RemoveAll(aside); err != nil {
			return err
		}
		if err := os.Rename(dir, aside); err != nil {
			return err
		}
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
// latest snapshot and its files. (Replicas here when the log was found
// damaged carry a REBUILDING mark from openSharedLog.)
func (n *Node) verifyShared(dir string, snapshot uint64, s *raftlog.Store) error {
	_, statErr := os.Stat(dir)
	has := n.wal.Has(groupKey(dir))
	if errors.Is(statErr, os.ErrNotExist) && has {
		// Raft would take its log's entries as applied to data that is
		// gone.
		return fmt.Errorf("%w: the partition's files are gone but its Raft log is not", errRaftDamaged)
	}
	if !has && (snapshot > 0 || hasRecords(dir)) {
		// Raft would run from the snapshot with no term or vote.
		return fmt.Errorf("%w: the partition has data but no Raft log", errRaftDamaged)
	}
	if err := s.Verify(snapshot); err != nil {
		return fmt.Errorf("%w: %v", errRaftDamaged, err)
	}
	return nil
}

// migratedKey, in a group's share of the shared log, records that its
// raft.db was copied in: a raft.db seen again after that (its removal
// lost to a crash) is stale and must not overwrite newer state.
var migratedKey = []byte("QuireMigrated")

// migrateToShared moves a partition's raft.db, written when partitions had
// their own, into the shared log and removes it. The raft.db was verified
// first; entries missing at or below snapshot are compaction stragglers'
// neighbours (see verifyRaftStore). A crash part-way leaves the raft.db
// and no migrated mark, and the copy starts over.
func migrateToShared(dir string, snapshot uint64, s *raftlog.Store) error {
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
	if err := copyEntries(old, s, snapshot); err != nil {
		return err
	}
	if err := s.Set(migratedKey, []byte{1}); err != nil {
		return err
	}
	if err := old.Close(); err != nil {
		return err
	}
	return removeStore(path)
}

func copyEntries(from *checkedStore, to *raftlog.Store, snapshot uint64) error {
	first, err := from.FirstIndex()
	if err != nil {
		return err
	}
	last, err := from.LastIndex()
	if err != nil {
		return err
	}
	for idx := first; idx <= last && last > 0; {
		var batch []*raft.Log
		for size := 0; idx <= last && size < 4<<20; idx++ {
			e := new(raft.Log)
			if err := from.GetLog(idx, e); errors.Is(err, raft.ErrLogNotFound) && idx <= snapshot {
				continue
			} else if err != nil {
				return fmt.Errorf("copy entry %d: %w", idx, err)
			}
			batch = append(batch, e)
			size += len(e.Data)
		}
		if err := to.StoreLogs(batch); err != nil {
			return err
		}
	}
	return nil
}

func removeStore(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return partition.SyncDir(filepath.Dir(path))
}

// resetShared empties a rebuilt replica's share of the shared log, keeping
// its term and vote, and removes a (damaged) raft.db it still had, after
// taking the term and vote from it if the share has none.
func resetShared(dir string, s *raftlog.Store) error {
	path := filepath.Join(dir, "raft.db")
	saved := salvageStable(path)
	if err := s.Reset(); err != nil {
		return err
	}
	for _, k := range stableKeys {
		v, ok := saved[string(k)]
		if _, err := s.Get(k); err == nil || !ok {
			continue
		}
		if err := s.Set(k, v); err != nil {
			return err
		}
	}
	return removeStore(path)
}

// hasRecords reports whether a partition's segment log holds records.
func hasRecords(dir string) bool {
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.log"))
	for _, seg := range segs {
		if info, err := os.Stat(seg); err == nil && info.Size() > 0 {
			return true
		}
	}
	return false
}

// removeMigratedStore removes a raft.db already copied into the shared
// log (its removal lost to a crash): it is stale, and must be neither
// copied over newer state nor checked, as a rebuild for its damage would
// be needless.
func removeMigratedStore(dir string, s *raftlog.Store) error {
	if _, err := s.Get(migratedKey); err != nil {
		return nil
	}
	return removeStore(filepath.Join(dir, "raft.db"))
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
