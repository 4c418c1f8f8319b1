package cluster

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// backstopSnapshotInterval is how often raft itself checks a partition
// group for a snapshot. It is long: with every group checking every few
// seconds, thousands of idle groups would wake thousands of times a second
// to find nothing to do. The node checks instead, in one pass over all of
// them (snapshotDue).
const backstopSnapshotInterval = 5 * time.Minute

// snapshotLoop asks raft for a snapshot of each partition whose Raft log
// has grown by SnapshotThreshold entries since the last one asked for.
// A partition snapshot hard-links segments, so taking them often keeps
// the Raft log, a second copy of the records, short.
func (n *Node) snapshotLoop() {
	n.loop(n.cfg.SnapshotInterval, nil, n.snapshotDue)
}

func (n *Node) snapshotDue() {
	for _, r := range n.allReplicas() {
		last := r.group.raft.LastIndex()
		if last < r.snapBase.Load()+n.cfg.SnapshotThreshold || n.followerCatchingUp(r, last) ||
			!r.snapping.CompareAndSwap(false, true) {
			continue
		}
		r.snapBase.Store(last)
		go func() {
			defer r.snapping.Store(false)
			err := r.group.raft.Snapshot().Error()
			if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) && !errors.Is(err, raft.ErrRaftShutdown) {
				n.logger.Debug("partition snapshot failed", "partition", r.tp.String(), "error", err)
			}
		}()
	}
}

// catchUpHold bounds how long a leader keeps its Raft log for a follower
// that is catching up.
const catchUpHold = time.Minute

// followerCatchingUp reports whether this node leads r and a follower
// that answers is further behind than the log would keep after a
// snapshot. Trimming the log then would leave that follower only a
// snapshot install, which copies the whole partition, and under steady
// writes the log moves past each install before it lands: the follower
// never catches up. The snapshot waits instead, at most catchUpHold.
func (n *Node) followerCatchingUp(r *replica, last uint64) bool {
	g := r.group
	if g.raft.State() != raft.Leader {
		r.holdSince.Store(0)
		return false
	}
	term := g.raft.CurrentTerm()
	behind := false
	for _, id := range r.replicas {
		if id == n.cfg.NodeID || !n.nt.Reachable(id) {
			continue
		}
		if idx, ok := g.mux.Matched(id, term); !ok || idx+n.cfg.TrailingLogs < last {
			behind = true
		}
	}
	if !behind {
		r.holdSince.Store(0)
		return false
	}
	now := time.Now().UnixNano()
	since := r.holdSince.Load()
	if since == 0 {
		r.holdSince.Store(now)
		return true
	}
	return time.Duration(now-since) < catchUpHold
}
