package cluster

import (
	"math"
	"time"

	"github.com/quirelog/quire/fsm"
	"github.com/quirelog/quire/partition"
)

// compactionLoop has each compacted partition this node leads decide,
// when enough of its log is dirty, how far to compact and which
// tombstones are old enough to go, through a Compact entry in the
// partition's Raft group; every replica's cleaner then does the work.
func (n *Node) compactionLoop() {
	n.loop(n.cfg.CompactionCheckInterval, nil, n.scheduleCompactions)
}

func (n *Node) scheduleCompactions() {
	now := time.Now().UnixMilli()
	for _, r := range n.allReplicas() {
		ts := r.settings.Load()
		if !ts.compactPolicy {
			continue
		}
		if ok, _ := r.leader(); !ok {
			continue
		}
		target, horizon := r.fsm.CompactionTarget(), now-ts.deleteRetentionMs
		upTo, due := compactionDue(r.fsm.Log().Segments(), target, r.fsm.LastStableOffset(), now, ts)
		if !due && r.fsm.TombstonesKept() > 0 && horizon-r.fsm.CompactionHorizon() >= max(ts.deleteRetentionMs, 1) {
			// Nothing new to compact, but tombstones kept by the last
			// pass may have aged past delete.retention.ms since.
			upTo, due = target, true
		}
		if !due {
			continue
		}
		r.group.active(n.quietTimeout(), n.cfg.GroupTimeout)
		if err := r.group.raft.Apply(fsm.Compact(upTo, horizon), 10*time.Second).Error(); err != nil {
			n.logger.Debug("compaction not committed", "partition", r.tp.String(), "error", err)
			continue
		}
		n.kickCleaner()
	}
}

// compactionDue decides, from the leader's segments, how far a compaction
// would reach and whether it is due. It reaches the closed segments whose
// newest record is older than min.compaction.lag.ms, never an open
// transaction (lso). It is due when the part not compacted yet is at least
// min.cleanable.dirty.ratio of the whole, or when its oldest segment has
// waited past max.compaction.lag.ms.
func compactionDue(segs []partition.SegmentInfo, target, lso, now int64, ts *topicSettings) (int64, bool) {
	if len(segs) < 2 {
		return 0, false // nothing closed, or the log is closing
	}
	upTo := target
	var clean, dirty int64
	oldestDirty := int64(math.MaxInt64)
	for i, s := range segs[:len(segs)-1] {
		if s.MaxTimestamp > now-ts.minCompactionLagMs {
			break
		}
		next := segs[i+1].BaseOffset
		if next <= target {
			clean += s.Size
			continue
		}
		dirty += s.Size
		if s.MaxTimestamp >= 0 {
			oldestDirty = min(oldestDirty, s.MaxTimestamp)
		}
		upTo = next
	}
	upTo = min(upTo, lso)
	if upTo <= target || dirty == 0 {
		return 0, false
	}
	ratio := float64(dirty) / float64(clean+dirty)
	overdue := oldestDirty < now && now-oldestDirty > ts.maxCompactionLagMs
	return upTo, ratio >= ts.minCleanableRatio || overdue
}

// cleanerLoop runs the compactions the Raft logs asked for on this
// node's replicas, one partition at a time: a compaction reads and
// rewrites whole segments, and produce and fetch share the disk.
func (n *Node) cleanerLoop() {
	n.loop(5*time.Second, n.cleanerWake, n.runCompactions)
}

func (n *Node) kickCleaner() { kick(n.cleanerWake) }

func (n *Node) runCompactions() {
	for _, r := range n.allReplicas() {
		if n.ctx.Err() != nil {
			return
		}
		if !r.fsm.CompactionDue() {
			continue
		}
		began := time.Now()
		st, err := r.fsm.RunCompaction(n.cleanerPace())
		if err != nil {
			n.logger.Warn("compaction failed", "partition", r.tp.String(), "error", err)
			continue
		}
		n.metrics.compactionSeconds.Add(time.Since(began).Seconds())
		n.metrics.compactedBytes.Add(float64(st.BytesRead))
		n.metrics.compactionRemoved.Add(float64(st.RecordsRemoved))
		n.logger.Debug("compacted", "partition", r.tp.String(), "to", st.CleanedTo, "segments", st.Segments,
			"bytes_before", st.BytesBefore, "bytes_after", st.BytesAfter, "records_removed", st.RecordsRemoved,
			"took", time.Since(began))
	}
}

// cleanerPace holds a compaction pass to CompactionMaxBytesPerSec of
// segments read (log.cleaner.io.max.bytes.per.second), or nil when it is
// unlimited.
func (n *Node) cleanerPace() func(int) {
	limit := n.cfg.CompactionMaxBytesPerSec
	if limit <= 0 {
		return nil
	}
	start, total := time.Now(), 0
	return func(bytes int) {
		total += bytes
		due := start.Add(time.Duration(float64(total) / float64(limit) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-n.ctx.Done():
			}
		}
	}
}
