package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// metaSync tracks whether this node's copy of the metadata is current
// enough to act on, and the metadata index it had applied when it first
// was (the join index: what existed before it are things this node
// should already know).
type metaSync struct {
	// synced is set once this follower has applied the metadata leader's
	// commit index as of some moment after start.
	synced atomic.Bool
	join   atomic.Uint64
}

// joinIndex is the metadata index this node had applied when it first
// caught up (0 until then).
func (s *metaSync) joinIndex() uint64 { return s.join.Load() }

// check reports whether the local metadata is complete: as leader,
// once the barrier of its term has applied; as follower, once it has
// applied what the leader told it is committed. Raft does not persist the
// commit index, so right after a restart both are zero and say nothing.
func (s *metaSync) check(ctx context.Context, meta *raftGroup, readIndex func(ctx context.Context, leader int32) (uint64, error)) error {
	_, leaderID := meta.raft.LeaderWithID()
	if leaderID == "" {
		return errors.New("metadata group has no leader")
	}
	if meta.raft.State() == raft.Leader {
		if ok, _ := meta.leaderTerm(); !ok {
			return errors.New("metadata leader has not caught up in its term")
		}
		s.join.CompareAndSwap(0, meta.raft.AppliedIndex())
		return nil
	}
	applied, commit := meta.raft.AppliedIndex(), meta.raft.CommitIndex()
	if commit == 0 || applied < commit {
		return fmt.Errorf("metadata applied to %d of %d", applied, commit)
	}
	if s.synced.Load() {
		return nil
	}
	// A follower's own commit index says nothing right after a restart:
	// raft starts it at the last snapshot, which can predate topics that
	// exist. Ask the leader how far it has committed (a read index) and
	// wait to apply that much once; after that, local state only moves
	// forward for the life of the process.
	id, err := strconv.ParseInt(string(leaderID), 10, 32)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	want, err := readIndex(cctx, int32(id))
	if err != nil {
		return fmt.Errorf("metadata read index from leader %d: %w", id, err)
	}
	if meta.raft.AppliedIndex() < want {
		return fmt.Errorf("metadata applied to %d of the leader's %d", meta.raft.AppliedIndex(), want)
	}
	s.synced.Store(true)
	s.join.CompareAndSwap(0, meta.raft.AppliedIndex())
	return nil
}
