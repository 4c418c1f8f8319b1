package cluster

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/fsm"
)

// isrTracker remembers which followers the leader's heartbeats are
// failing to reach, and since when (raft reports both edges).
type isrTracker struct {
	mu      sync.Mutex
	failing map[int32]time.Time
}

func (t *isrTracker) fail(peer int32, lastContact time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failing == nil {
		t.failing = make(map[int32]time.Time)
	}
	if _, ok := t.failing[peer]; !ok {
		t.failing[peer] = lastContact
	}
}

func (t *isrTracker) resume(peer int32) {
	t.mu.Lock()
	delete(t.failing, peer)
	t.mu.Unlock()
}

// lagging reports whether peer has been out of contact for longer than max.
func (t *isrTracker) lagging(peer int32, now time.Time, max time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	since, ok := t.failing[peer]
	return ok && now.Sub(since) > max
}

// isr is the partition's in-sync replicas as its leader sees them: the
// leader and every replica whose heartbeats have not been failing for
// longer than replica.lag.time.max.ms. Raft's own contact is the evidence,
// not gossip, which can lag behind a restart by seconds. Nil when this
// replica does not lead.
func (n *Node) isr(r *replica) []int32 {
	if ok, _ := r.leader(); !ok {
		return nil
	}
	now := time.Now()
	out := []int32{n.cfg.NodeID}
	for _, id := range r.replicas {
		if id == n.cfg.NodeID || r.isrTrack.lagging(id, now, n.cfg.ReplicaLagTimeMax) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// observeHeartbeats feeds raft's heartbeat failure observations of every
// local group into the replicas' ISR trackers.
func (n *Node) observeHeartbeats() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case o := <-n.observations:
			n.mu.RLock()
			r := n.byRaft[o.Raft]
			n.mu.RUnlock()
			if r == nil {
				continue
			}
			switch v := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if id, err := strconv.Atoi(string(v.PeerID)); err == nil {
					r.isrTrack.fail(int32(id), v.LastContact)
				}
			case raft.ResumedHeartbeatObservation:
				if id, err := strconv.Atoi(string(v.PeerID)); err == nil {
					r.isrTrack.resume(int32(id))
				}
			case raft.LeaderObservation:
				n.triggerLeaderReport()
			}
		}
	}
}

func heartbeatFilter(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
		return true
	}
	return false
}

func (n *Node) triggerLeaderReport() { kick(n.leaderReportCh) }

// reportLeaders keeps the metadata's leader, epoch and ISR records in step
// with the partitions this node leads, so brokers that do not host a
// partition can still route clients to its leader.
func (n *Node) reportLeaders() {
	n.loop(500*time.Millisecond, n.leaderReportCh, n.reportLeadersOnce)
}

func (n *Node) reportLeadersOnce() {
	state := n.metaFSM.State()
	n.mu.RLock()
	reps := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		reps = append(reps, r)
	}
	n.mu.RUnlock()
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	for _, r := range reps {
		ok, epoch := r.leader()
		if !ok {
			continue
		}
		t := state.Topics[r.tp.topic]
		if t == nil || t.ID != r.topicID || int(r.tp.partition) >= len(t.Partitions) {
			continue
		}
		isr := n.isr(r)
		rec := t.Partitions[r.tp.partition]
		if rec.Leader == n.cfg.NodeID && rec.LeaderEpoch == epoch && slices.Equal(rec.ISR, isr) {
			continue
		}
		_, err := n.proposeMeta(ctx, &fsm.SetLeaderCmd{Topic: r.tp.topic, TopicID: r.topicID,
			Partition: r.tp.partition, Leader: n.cfg.NodeID, Epoch: epoch, ISR: isr})
		if err != nil {
			n.logger.Debug("leader report failed", "partition", r.tp.String(), "error", err)
			return
		}
	}
}

// rebalanceLeaders hands every partition this node leads, but is not the
// preferred leader of, back to its preferred replica when that replica is
// in sync, so leadership drifts back after restarts instead of piling up
// on the nodes that stayed up.
func (n *Node) rebalanceLeaders() {
	n.mu.RLock()
	reps := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		reps = append(reps, r)
	}
	n.mu.RUnlock()
	for _, r := range reps {
		if len(r.replicas) < 2 || r.replicas[0] == n.cfg.NodeID {
			continue
		}
		preferred := r.replicas[0]
		if !slices.Contains(n.isr(r), preferred) || !n.alive(preferred) {
			continue
		}
		id := raftID(preferred)
		if err := r.group.raft.LeadershipTransferToServer(id, raft.ServerAddress(id)).Error(); err != nil {
			n.logger.Debug("preferred leader transfer failed", "partition", r.tp.String(), "to", preferred, "error", err)
			continue
		}
		n.logger.Info("leadership handed to the preferred replica", "partition", r.tp.String(), "to", preferred)
	}
}
