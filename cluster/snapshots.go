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
		if last < r.snapBase.Load()+n.cfg.SnapshotThreshold || !r.snapping.CompareAndSwap(false, true) {
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
