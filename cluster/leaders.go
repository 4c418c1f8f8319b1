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

// reset forgets every failure: raft's heartbeat goroutines, whose
// observations fill it, live only as long as one leadership. A failure
// seen in an earlier term would otherwise never be resumed and keep a
// healthy follower out of the ISR.
func (t *isrTracker) reset() {
	t.mu.Lock()
	t.failing = nil
	t.mu.Unlock()
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
// leader and every replica that answers this node (node liveness) and
// whose heartbeats have not been failing for longer than
// replica.lag.time.max.ms. Nil when this replica does not lead.
func (n *Node) isr(r *replica) []int32 {
	if ok, _ := r.leader(); !ok {
		return nil
	}
	now := time.Now()
	out := []int32{n.cfg.NodeID}
	for _, id := range r.replicas {
		if id == n.cfg.NodeID || !n.nt.Reachable(id) || r.isrTrack.lagging(id, now, n.cfg.ReplicaLagTimeMax) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// inSync is how many replicas count as in sync for min.insync.replicas:
// the ISR once the leader serves; before that (a leader taking writes
// right after its election, whose lag tracking has not started) the
// replicas that answer this node.
func (n *Node) inSync(r *replica) int {
	if ok, _ := r.leader(); ok {
		return len(n.isr(r))
	}
	up := 0
	for _, id := range r.replicas {
		if n.nt.Reachable(id) {
			up++
		}
	}
	return up
}

// observe handles the raft observations of every group on the node: a
// newly elected leader starts serving, and leadership and heartbeat
// changes update the leader reports and ISR trackers. It is the only
// goroutine that reads them, for all groups, and it never blocks: raft
// waits for it.
func (n *Node) observe() {
	self := raftID(n.cfg.NodeID)
	for {
		var o raft.Observation
		select {
		case <-n.obs.done:
			return
		case o = <-n.obs.ch:
		}
		g, r := n.replicas.running.ofRaft(o.Raft)
		switch v := o.Data.(type) {
		case raft.LeaderObservation:
			n.metrics.observations.WithLabelValues("leader").Inc()
			if r != nil {
				r.isrTrack.reset()
			}
			if g != nil && v.LeaderID == self {
				g.serve()
			}
			n.reportReplica(r)
		case raft.FailedHeartbeatObservation:
			n.metrics.observations.WithLabelValues("heartbeat_failed").Inc()
			if id, err := strconv.Atoi(string(v.PeerID)); err == nil && r != nil {
				r.isrTrack.fail(int32(id), v.LastContact)
				n.reportReplica(r)
			}
		case raft.ResumedHeartbeatObservation:
			n.metrics.observations.WithLabelValues("heartbeat_resumed").Inc()
			if id, err := strconv.Atoi(string(v.PeerID)); err == nil && r != nil {
				r.isrTrack.resume(int32(id))
				n.reportReplica(r)
			}
		}
	}
}

func observationFilter(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
		return true
	}
	return false
}

// reportSet is what the next leader report looks at: the replicas whose
// leadership or ISR may have changed, or all of them.
type reportSet struct {
	mu    sync.Mutex
	dirty map[*replica]struct{}
	all   bool
	// wake tells the report loop there is something to look at.
	wake chan struct{}
}

func newReportSet() *reportSet { return &reportSet{wake: make(chan struct{}, 1)} }

// add has the next report look at r.
func (s *reportSet) add(r *replica) {
	s.mu.Lock()
	if s.dirty == nil {
		s.dirty = make(map[*replica]struct{})
	}
	s.dirty[r] = struct{}{}
	s.mu.Unlock()
	kick(s.wake)
}

// addAll has the next report look at every replica.
func (s *reportSet) addAll() {
	s.mu.Lock()
	s.all = true
	s.mu.Unlock()
	kick(s.wake)
}

func (s *reportSet) take() (map[*replica]struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, all := s.dirty, s.all
	s.dirty, s.all = nil, false
	return d, all
}

// reportReplica has the next leader report look at r.
func (n *Node) reportReplica(r *replica) {
	if r != nil {
		n.leadership.reports.add(r)
	}
}

// reportAll has the next leader report look at every replica: a peer's
// liveness changed every ISR it is in.
func (n *Node) reportAll() { n.leadership.reports.addAll() }

// reportLeaders keeps the metadata's leader, epoch and ISR records in step
// with the partitions this node leads, so brokers that do not host a
// partition can still route clients to its leader. It looks at the
// replicas that leadership and liveness events name; a slow tick looks at
// all of them, to catch what the events missed.
func (n *Node) reportLeaders() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
			n.reportAll()
		case <-n.leadership.reports.wake:
		}
		n.reportLeadersOnce()
		// When thousands of elections end at once, one pass a moment later
		// reports them all.
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// maxLeadersPerEntry bounds one metadata entry of leader reports.
const maxLeadersPerEntry = 4096

func (n *Node) reportLeadersOnce() {
	dirty, all := n.leadership.reports.take()
	if len(dirty) == 0 && !all {
		return
	}
	n.metrics.leaderReports.Inc()
	reps := n.allReplicas()
	if !all {
		reps = make([]*replica, 0, len(dirty))
		for r := range dirty {
			reps = append(reps, r)
		}
	}
	state := n.meta.state()
	var changed []fsm.SetLeaderCmd
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
		changed = append(changed, fsm.SetLeaderCmd{Topic: r.tp.topic, TopicID: r.topicID,
			Partition: r.tp.partition, Leader: n.cfg.NodeID, Epoch: epoch, ISR: isr})
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	for len(changed) > 0 {
		batch := changed[:min(len(changed), maxLeadersPerEntry)]
		changed = changed[len(batch):]
		if _, err := n.proposeMeta(ctx, &fsm.SetLeadersCmd{Leaders: batch}); err != nil {
			n.logger.Debug("leader report failed", "partitions", len(batch), "error", err)
			n.reportAll() // try again, all of it
			return
		}
	}
}

// leadership is what moves news of partition leadership to the controller
// and leadership back to preferred replicas.
type leadership struct {
	// reports is the replicas whose leadership the controller should hear
	// of next.
	reports *reportSet
	// rebalance wakes the preferred-leader rebalance early, after new
	// replicas start (see settleLeaders).
	rebalance chan struct{}
}

// observations carries the raft observations of every group on the node
// to the one goroutine that reads them (Node.observe).
type observations struct {
	ch chan raft.Observation
	// done ends the observation loop, after every group has stopped: raft
	// blocks on an observer nobody reads.
	done chan struct{}
}

// settleDelays are when, after new replicas start here, this node looks
// for leaderships to hand to their preferred replicas. A new topic's
// groups elect whichever voters agreed first, and the preferred replica
// on a busy node (the controller, say) is often still starting: without
// this its partitions stayed led elsewhere until the next periodic pass,
// minutes of uneven load on a fresh cluster. The second pass catches
// preferred replicas that were not in sync yet at the first.
var settleDelays = []time.Duration{5 * time.Second, 30 * time.Second}

// settleLeaders schedules early preferred-leader passes (see settleDelays).
func (n *Node) settleLeaders() {
	if n.cfg.LeaderRebalanceInterval <= 0 {
		return
	}
	for _, d := range settleDelays {
		time.AfterFunc(d, func() { kick(n.leadership.rebalance) })
	}
}

// rebalanceLeaders hands every partition this node leads, but is not the
// preferred leader of, back to its preferred replica when that replica is
// in sync, so leadership drifts back after restarts instead of piling up
// on the nodes that stayed up.
func (n *Node) rebalanceLeaders() {
	for _, r := range n.allReplicas() {
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
