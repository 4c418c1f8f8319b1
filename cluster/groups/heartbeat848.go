package groups

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// ConsumerGroupHeartbeat v0-1 (KIP-848). A member joins with epoch 0,
// heartbeats with its epoch and the partitions it owns, and leaves with
// -1 (or -2, a static member that will be back). v1 members choose their
// own id; v0 members are given one.
func (c *Coordinator) ConsumerGroupHeartbeat(ctx context.Context, client Client, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(err error, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
		resp.ErrorCode = kafkaerr.Code(err)
		resp.ErrorMessage = kafkaerr.Message(err)
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp
	}
	if err, msg := checkHeartbeat(req); err != nil {
		return fail(err, msg)
	}
	if req.MemberID == "" {
		req.MemberID = newMemberUUID()
	}
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		return fail(err, "")
	}
	g := s.group(req.Group, req.MemberEpoch == 0)
	if g == nil {
		return fail(kerr.UnknownMemberID, "the group does not exist")
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	return g.consumerHeartbeat(ctx, client, req, resp, fail)
}

// checkHeartbeat is the request's own consistency, as Kafka checks it.
func checkHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (error, string) {
	switch {
	case validGroupID(req.Group) != nil:
		return kerr.InvalidGroupID, "the group id is empty or too long"
	case req.MemberID == "" && req.Version >= 1:
		return kerr.InvalidRequest, "MemberId can't be empty."
	case req.MemberEpoch < -2:
		return kerr.InvalidRequest, "MemberEpoch is invalid."
	case req.InstanceID != nil && *req.InstanceID == "":
		return kerr.InvalidRequest, "InstanceId can't be empty."
	case req.ServerAssignor != nil && assignors[*req.ServerAssignor] == nil:
		return kerr.UnsupportedAssignor, "ServerAssignor " + *req.ServerAssignor + " is not supported. Supported assignors: range, uniform."
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeoutMillis == -1:
			return kerr.InvalidRequest, "RebalanceTimeoutMs must be provided in first request."
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return kerr.InvalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
		case len(req.Topics) > 0:
			return kerr.InvalidRequest, "TopicPartitions must be empty when (re-)joining."
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		if _, err := compileRegex(*req.SubscribedTopicRegex); err != nil {
			return kerr.InvalidRegularExpression, "SubscribedTopicRegex is not a valid regular expression: " + err.Error()
		}
	}
	return nil, ""
}

// newMemberUUID is a member id as v1 clients make them: 16 random bytes,
// base64 for URLs.
func newMemberUUID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// consumerHeartbeat runs one heartbeat under the group's write lock.
func (g *group) consumerHeartbeat(ctx context.Context, client Client, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse, fail func(error, string) *kmsg.ConsumerGroupHeartbeatResponse) *kmsg.ConsumerGroupHeartbeatResponse {
	c := g.s.c
	g.mu.Lock()
	switch {
	case g.stopped:
		g.mu.Unlock()
		return fail(kerr.NotCoordinator, "")
	case g.state == stateDead:
		g.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable, "the group is being deleted")
	}
	var old, next *consumerGroup
	var from *classicState
	switch {
	case g.cg == nil && (len(g.members) > 0 || len(g.pending) > 0):
		if req.MemberEpoch != 0 {
			g.mu.Unlock()
			return fail(kerr.UnknownMemberID, "")
		}
		cg, err := g.upgrade()
		if err != nil {
			g.mu.Unlock()
			return fail(err, "classic group "+g.id+" becomes a consumer group only while it is stable, with consumer protocol members")
		}
		st := g.classicState()
		next, from = cg, &st
	case g.cg == nil:
		// An empty classic group (it may hold commits) becomes a
		// consumer group; its epochs go on from its generation.
		st := g.classicState()
		next, from = newConsumerGroup(), &st
		next.Epoch, next.TargetEpoch = g.generation, g.generation
	default:
		old = g.cg
		next = old.clone()
	}
	g.mu.Unlock()
	v := c.topics()

	if err, msg := next.admit(req, v, c.cfg.MaxGroupSize); err != nil {
		return fail(err, msg)
	}
	id := req.MemberID
	m := next.members[id]
	var before assignment
	if req.MemberEpoch >= 0 {
		before = m.Assigned
		if next.updateMember(id, req, client) {
			next.bump = true
		}
	}
	next.refresh(v, c.cfg.ConsumerAssignor)
	if req.MemberEpoch >= 0 {
		owned := ownedFrom(req.Topics, v)
		if req.MemberEpoch == 0 {
			// A member (re)joining owns nothing.
			owned = assignment{}
		}
		next.reconcile(id, owned)
	}
	if err := g.finishConsumer(ctx, old, next, from); err != nil {
		return fail(err, "")
	}
	resp.MemberID = &id
	if req.MemberEpoch < 0 {
		resp.MemberEpoch = req.MemberEpoch
		return resp
	}
	m = next.members[id]
	g.mu.Lock()
	g.touchConsumer(id)
	g.mu.Unlock()
	resp.MemberEpoch = m.Epoch
	resp.HeartbeatIntervalMillis = int32(c.cfg.ConsumerHeartbeatInterval.Milliseconds())
	if m.State != memberStable || m.Epoch != next.TargetEpoch {
		// A member that is reconciling comes back sooner: partitions
		// move one heartbeat at a time.
		resp.HeartbeatIntervalMillis = max(int32(c.cfg.ConsumerHeartbeatInterval.Milliseconds()/5), 10)
	}
	full := req.MemberEpoch == 0 || (req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil)
	if full || !m.Assigned.equal(before) {
		resp.Assignment = wireAssignment(m.Assigned, v)
	}
	return resp
}

// admit applies a heartbeat's epoch to the group's membership: a leave,
// a join (a static member may take its instance's place), or a check that
// a known member's epoch is one it may send.
func (cg *consumerGroup) admit(req *kmsg.ConsumerGroupHeartbeatRequest, v *topicView, maxSize int) (error, string) {
	id := req.MemberID
	m := cg.members[id]
	switch {
	case req.MemberEpoch < 0:
		if m == nil {
			return kerr.UnknownMemberID, ""
		}
		if req.MemberEpoch == -2 && m.InstanceID != nil {
			cg.mut(id).Left = true
		} else {
			delete(cg.members, id)
			cg.bump = true
		}
	case req.MemberEpoch == 0 && m == nil:
		if req.InstanceID != nil {
			if prev := cg.static(*req.InstanceID); prev != nil {
				if !prev.Left && prev.Classic == nil {
					return kerr.UnreleasedInstanceID, "static member " + *req.InstanceID + " is still in the group"
				}
				// The instance comes back under a new id and takes its
				// partitions and epoch without a rebalance. One that was
				// a classic member starts over with its target: the
				// classic client may still hold what it was given.
				m = prev.clone()
				m.ID, m.Left, m.enc = id, false, nil
				if m.Classic != nil {
					m.Classic, m.Epoch, m.PrevEpoch = nil, 0, 0
					m.Assigned, m.Revoking, m.State = nil, nil, memberStable
					cg.bump = true
				}
				delete(cg.members, prev.ID)
				cg.add(m)
				break
			}
		}
		if len(cg.members) >= maxSize {
			return kerr.GroupMaxSizeReached, ""
		}
		m = &cmember{ID: id}
		cg.add(m)
		cg.bump = true
	case m == nil:
		return kerr.UnknownMemberID, ""
	case req.MemberEpoch > 0:
		if m.Left || req.MemberEpoch > m.Epoch {
			return kerr.FencedMemberEpoch, ""
		}
		if req.MemberEpoch < m.Epoch {
			// Only the previous epoch, from a member that lost our last
			// answer and owns nothing it was not given, is accepted.
			owned := ownedFrom(req.Topics, v)
			if req.MemberEpoch != m.PrevEpoch || owned == nil || !owned.subsetOf(m.Assigned) {
				return kerr.FencedMemberEpoch, ""
			}
		}
	}
	return nil, ""
}

// updateMember takes the fields a heartbeat carries (null means
// unchanged) and reports whether the assignment depends on what changed.
func (cg *consumerGroup) updateMember(id string, req *kmsg.ConsumerGroupHeartbeatRequest, client Client) bool {
	m := cg.members[id]
	changed := false
	upd := func() *cmember { m = cg.mut(id); return m }
	if m.ClientID != client.ID || m.ClientHost != client.Host {
		upd()
		m.ClientID, m.ClientHost = client.ID, client.Host
	}
	if m.Left && req.MemberEpoch == 0 {
		upd().Left = false
	}
	if req.InstanceID != nil && (m.InstanceID == nil || *m.InstanceID != *req.InstanceID) {
		upd().InstanceID = req.InstanceID
	}
	if req.RackID != nil && (m.RackID == nil || *m.RackID != *req.RackID) {
		upd().RackID = req.RackID
	}
	if req.RebalanceTimeoutMillis != -1 && req.RebalanceTimeoutMillis != m.RebalanceTimeoutMs {
		upd().RebalanceTimeoutMs = req.RebalanceTimeoutMillis
	}
	if req.SubscribedTopicNames != nil {
		names := compactSortedStrings(append([]string(nil), req.SubscribedTopicNames...))
		if !equalStrings(names, m.Topics) {
			upd().Topics = names
			changed = true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.Regex {
		upd().Regex = *req.SubscribedTopicRegex
		changed = true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.Assignor {
		upd().Assignor = *req.ServerAssignor
		changed = true
	}
	return changed
}

// finishConsumer installs next; when its last next-generation member is
// gone and classic members remain, the group turns classic instead: the
// consumer group's records are deleted and the members rejoin classically.
func (g *group) finishConsumer(ctx context.Context, old, next *consumerGroup, from *classicState) error {
	if old == nil || len(next.members) == 0 || next.nextGenMembers() > 0 || old.nextGenMembers() == 0 {
		return g.installConsumer(ctx, old, next, from)
	}
	keys, values := [][]byte{cgKey(g.id)}, [][]byte{nil}
	for _, id := range sortedKeys(old.members) {
		keys, values = append(keys, cmKey(g.id, id)), append(values, nil)
	}
	if err := g.s.write(ctx, keys, values); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return kerr.NotCoordinator
	}
	g.cg = next
	g.downgrade()
	return nil
}

// installConsumer writes what changed from old to next and, once it is
// committed, makes next the group's state. With old nil the group turns
// from classic (as from says it was) into a consumer group; if the classic
// group changed while the records were written, they are deleted again
// and the member is told to retry.
func (g *group) installConsumer(ctx context.Context, old, next *consumerGroup, from *classicState) error {
	keys, values := next.changes(g.id, old)
	if len(keys) > 0 {
		if err := g.s.write(ctx, keys, values); err != nil {
			return err
		}
	}
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return kerr.NotCoordinator
	}
	if old == nil {
		if g.cg != nil || from == nil || g.classicState() != *from {
			g.mu.Unlock()
			undo := [][]byte{cgKey(g.id)}
			for _, id := range sortedKeys(next.members) {
				undo = append(undo, cmKey(g.id, id))
			}
			if err := g.s.write(ctx, undo, make([][]byte, len(undo))); err != nil {
				g.s.c.logger.Warn("undoing a consumer group conversion failed", "group", g.id, "error", err)
			}
			return kerr.GroupIDNotFound
		}
		if len(g.members) > 0 {
			g.s.c.logger.Info("classic group turned into a consumer group: a next-generation member joined", "group", g.id, "members", len(next.members))
		}
		g.dropClassicMembers()
	}
	defer g.mu.Unlock()
	if old != nil {
		for id := range old.members {
			if _, ok := next.members[id]; !ok {
				g.stopConsumerTimers(id)
			}
		}
	}
	if len(next.members) == 0 && (old == nil || len(old.members) > 0) {
		// Retention counts from when the group became empty.
		g.stateTime = g.now().UnixMilli()
	}
	g.cg = next
	for id := range next.touched {
		if m := next.members[id]; m != nil {
			if old == nil {
				g.touchConsumer(id)
			}
			g.armRevocation(m)
		}
	}
	next.touched = map[string]bool{}
	return nil
}

// classicState identifies a classic group's generation and members, so
// that a conversion written meanwhile can tell whether it changed.
type classicState struct {
	generation int32
	state      groupState
	members    string
}

// classicState is the group's; g.mu is held.
func (g *group) classicState() classicState {
	ids := append(sortedKeys(g.members), sortedKeys(g.pending)...)
	return classicState{generation: g.generation, state: g.state, members: strings.Join(ids, ",")}
}

// ctimer is a consumer member's session timer and, while it must release
// partitions, its rebalance timer. Each arming gets a number from the
// group's counter, so a stale firing (of an earlier arming, or of an
// earlier member with the same id) is told apart.
type ctimer struct {
	session, revoke       *time.Timer
	sessionSeq, revokeSeq uint64
}

func (g *group) timersOf(id string) *ctimer {
	if g.ctimers == nil {
		g.ctimers = map[string]*ctimer{}
	}
	t := g.ctimers[id]
	if t == nil {
		t = &ctimer{}
		g.ctimers[id] = t
	}
	return t
}

// touchConsumer restarts a member's session timer; g.mu is held.
func (g *group) touchConsumer(id string) {
	if g.stopped {
		return
	}
	t := g.timersOf(id)
	if t.session != nil {
		t.session.Stop()
	}
	g.timerSeq++
	t.sessionSeq = g.timerSeq
	seq := t.sessionSeq
	session := g.s.c.cfg.ConsumerSessionTimeout
	if m := g.cg.members[id]; m != nil {
		session = m.sessionTimeout(g.s.c.cfg)
	}
	t.session = time.AfterFunc(session, func() { g.fence(id, seq, "session timed out") })
}

// armRevocation gives a member that must release partitions its
// rebalance timeout to do so; g.mu is held.
func (g *group) armRevocation(m *cmember) {
	if g.stopped {
		return
	}
	t := g.timersOf(m.ID)
	if m.State != memberUnrevoked {
		if t.revoke != nil {
			t.revoke.Stop()
			t.revoke, t.revokeSeq = nil, 0
		}
		return
	}
	if t.revoke != nil {
		return
	}
	g.timerSeq++
	t.revokeSeq = g.timerSeq
	seq := t.revokeSeq
	id := m.ID
	t.revoke = time.AfterFunc(time.Duration(m.RebalanceTimeoutMs)*time.Millisecond, func() {
		g.fence(id, seq, "did not release its partitions within its rebalance timeout")
	})
}

func (g *group) stopConsumerTimers(id string) {
	if t := g.ctimers[id]; t != nil {
		if t.session != nil {
			t.session.Stop()
		}
		if t.revoke != nil {
			t.revoke.Stop()
		}
		delete(g.ctimers, id)
	}
}

// fence removes a member that stopped heartbeating or kept partitions it
// was told to release; its partitions go to the others.
func (g *group) fence(id string, seq uint64, why string) {
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	t := g.ctimers[id]
	if g.stopped || g.cg == nil || t == nil || (t.sessionSeq != seq && t.revokeSeq != seq) || g.cg.members[id] == nil {
		g.mu.Unlock()
		return
	}
	old := g.cg
	g.mu.Unlock()
	c := g.s.c
	c.logger.Info("consumer group member removed", "group", g.id, "member", id, "reason", why)
	next := old.clone()
	delete(next.members, id)
	next.bump = true
	next.refresh(c.topics(), c.cfg.ConsumerAssignor)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := g.finishConsumer(ctx, old, next, nil); err != nil {
		c.logger.Warn("consumer group member removal not written; retrying", "group", g.id, "member", id, "error", err)
		g.mu.Lock()
		if !g.stopped {
			time.AfterFunc(time.Second, func() { g.fence(id, seq, why) })
		}
		g.mu.Unlock()
	}
}

// replayConsumer applies one stored consumer group record (load).
func (g *group) replayConsumer(r stateRecord) {
	switch {
	case r.member == "" && r.tombstone:
		g.cg = nil
	case r.member == "":
		if g.cg != nil {
			r.cg.members = g.cg.members
		}
		g.cg = r.cg
		// A classic group that was upgraded: its members are the
		// consumer group's now.
		g.members, g.statics = make(map[string]*member), make(map[string]string)
		g.state = stateEmpty
	case g.cg == nil && r.tombstone:
	case r.tombstone:
		delete(g.cg.members, r.member)
	default:
		if g.cg == nil {
			g.cg = newConsumerGroup()
		}
		g.cg.members[r.member] = r.cm
	}
}

// ownedFrom is the partitions a heartbeat says the member owns, by topic
// name; nil when it did not say. Topics that no longer exist are left out.
func ownedFrom(ts []kmsg.ConsumerGroupHeartbeatRequestTopic, v *topicView) assignment {
	if ts == nil {
		return nil
	}
	out := assignment{}
	for _, t := range ts {
		if name, ok := v.byID[t.TopicID]; ok {
			out[name] = append(out[name], t.Partitions...)
		}
	}
	for t, ps := range out {
		out[t] = compactSorted(ps)
	}
	return out
}

func wireAssignment(a assignment, v *topicView) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	out := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	out.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, t := range sortedKeys(a) {
		info, ok := v.byName[t]
		if !ok {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = info.ID, append([]int32(nil), a[t]...)
		out.Topics = append(out.Topics, at)
	}
	return &out
}

func (a assignment) subsetOf(b assignment) bool {
	for t, ps := range a {
		for _, p := range ps {
			if !b.has(t, p) {
				return false
			}
		}
	}
	return true
}
