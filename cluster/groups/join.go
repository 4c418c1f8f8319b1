package groups

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

var (
	unknownMember = kerr.UnknownMemberID.Code
	rebalancing   = kerr.RebalanceInProgress.Code
)

// JoinGroup v0-9. A member without an id gets one with MEMBER_ID_REQUIRED
// (v4+) and joins again with it; a static member (group.instance.id) gets
// one at once and, rejoining with the same protocols while the group is
// stable, takes its old place without a rebalance. The join phase ends
// when every member has rejoined or the longest rebalance timeout passes;
// an empty group's first one waits InitialRebalanceDelay for more members.
func (c *Coordinator) JoinGroup(ctx context.Context, client Client, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	resp.MemberID = req.MemberID
	fail := func(err error) *kmsg.JoinGroupResponse {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	if err := validGroupID(req.Group); err != nil {
		return fail(err)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout)
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 || !validProtocols(req.ProtocolType, req.Protocols) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	s, err := c.shardFor(ctx, req.Group)
	if err != nil {
		return fail(err)
	}
	g := s.group(req.Group, req.MemberID == "")
	if g == nil {
		return fail(kerr.UnknownMemberID)
	}
	if r := g.joinConsumerGroup(ctx, client, req, resp); r != nil {
		return r
	}
	ch := g.join(client, req, resp)
	if ch == nil {
		return resp
	}
	select {
	case r := <-ch:
		r.Version = req.Version
		return r
	case <-ctx.Done():
		return fail(kerr.RequestTimedOut)
	}
}

// joinConsumerGroup serves the join when the group is a consumer group
// with members; it returns nil when the group is classic, after turning
// an empty consumer group classic. Both happen under the write lock, so a
// consumer group write in flight is never undone under it.
func (g *group) joinConsumerGroup(ctx context.Context, client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) *kmsg.JoinGroupResponse {
	consumer := func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return !g.stopped && g.cg != nil
	}
	if !consumer() {
		return nil
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	if g.stopped || g.cg == nil {
		g.mu.Unlock()
		return nil
	}
	if len(g.cg.members) == 0 {
		// The first generation's record, with members, says in the log
		// that the group is classic again.
		g.cg = nil
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.classicJoin(ctx, client, req, resp)
}

// validProtocols checks what the coordinator can: a "consumer" member's
// metadata must decode as a subscription, since the leader will read it.
func validProtocols(protocolType string, ps []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range ps {
		if p.Name == "" {
			return false
		}
		if protocolType == "consumer" {
			var m kmsg.ConsumerMemberMetadata
			if err := m.ReadFrom(p.Metadata); err != nil {
				return false
			}
		}
	}
	return true
}

func validGroupID(id string) error {
	if id == "" || len(id) > MaxGroupIDBytes {
		return kerr.InvalidGroupID
	}
	return nil
}

// join handles one JoinGroup under the group's lock; it returns a channel
// to wait on, or nil when resp is the answer.
func (g *group) join(client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) chan *kmsg.JoinGroupResponse {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return nil
	}
	if g.state == stateDead {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return nil
	}
	if g.cg != nil {
		// It became a consumer group since the check: the member tries
		// again.
		resp.ErrorCode = rebalancing
		return nil
	}
	if !g.acceptsProtocols(req) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return nil
	}
	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.statics[*req.InstanceID]; ok {
				return g.rejoinStatic(g.members[old], client, req, resp)
			}
		}
		if len(g.members)+len(g.pending) >= g.s.c.cfg.MaxGroupSize {
			resp.ErrorCode = kerr.GroupMaxSizeReached.Code
			return nil
		}
		id := newMemberID(client.ID)
		if req.InstanceID == nil && req.Version >= 4 {
			g.addPending(id, time.Duration(req.SessionTimeoutMillis)*time.Millisecond)
			resp.MemberID = id
			resp.ErrorCode = kerr.MemberIDRequired.Code
			return nil
		}
		return g.addMember(id, client, req)
	}
	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		return g.addMember(req.MemberID, client, req)
	}
	m := g.members[req.MemberID]
	if req.InstanceID != nil {
		if id, ok := g.statics[*req.InstanceID]; ok && id != req.MemberID {
			resp.ErrorCode = kerr.FencedInstanceID.Code
			return nil
		}
	}
	if m == nil {
		resp.ErrorCode = unknownMember
		return nil
	}
	return g.rejoin(m, client, req, resp)
}

// acceptsProtocols reports whether a joining member can be in the group:
// the same protocol type, and a protocol every member supports.
func (g *group) acceptsProtocols(req *kmsg.JoinGroupRequest) bool {
	if len(g.members) == 0 {
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		all := true
		for _, m := range g.members {
			if m.id != req.MemberID && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (g *group) addPending(id string, session time.Duration) {
	g.pending[id] = time.AfterFunc(session, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.pending, id)
	})
}

func (g *group) addMember(id string, client Client, req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	m := &member{id: id, seq: g.nextSeq}
	g.nextSeq++
	g.members[id] = m
	if req.InstanceID != nil {
		g.statics[*req.InstanceID] = id
	}
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	return g.awaitJoin(m, client, req)
}

// awaitJoin records the member's join and has it wait for the rebalance.
func (g *group) awaitJoin(m *member, client Client, req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	m.instanceID = req.InstanceID
	m.clientID, m.clientHost = client.ID, client.Host
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || m.rebalanceTimeout <= 0 {
		m.rebalanceTimeout = m.sessionTimeout
	}
	m.protocolType = req.ProtocolType
	m.protocols = req.Protocols
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	m.joinCh = ch
	g.touch(m)
	if g.state != statePreparingRebalance {
		g.prepareRebalance()
	} else {
		g.maybeCompleteJoin()
	}
	return ch
}

// Client is who sent a request: the client id of its header and the
// address it came from, as DescribeGroups shows them.
type Client struct {
	ID   string
	Host string
}

// rejoin handles a known member's JoinGroup. One whose protocols did not
// change and that is not the leader gets the current generation back
// while the group is stable or completing: it lost the answer, or it
// rejoins to check, and a rebalance would disturb every member for
// nothing.
func (g *group) rejoin(m *member, client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) chan *kmsg.JoinGroupResponse {
	unchanged := sameProtocols(m.protocols, req.Protocols)
	if (g.state == stateStable || g.state == stateCompletingRebalance) && unchanged && m.id != g.leader {
		g.touch(m)
		g.fillJoin(resp, m)
		return nil
	}
	return g.awaitJoin(m, client, req)
}

// rejoinStatic hands a static member's place to a new member id: the old
// id is fenced from now on.
func (g *group) rejoinStatic(old *member, client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) chan *kmsg.JoinGroupResponse {
	id := newMemberID(*req.InstanceID)
	if old.joinCh != nil {
		r := kmsg.NewPtrJoinGroupResponse()
		r.ErrorCode, r.Generation, r.MemberID = kerr.FencedInstanceID.Code, -1, old.id
		old.joinCh <- r
		old.joinCh = nil
	}
	if old.syncCh != nil {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = kerr.FencedInstanceID.Code
		old.syncCh <- r
		old.syncCh = nil
	}
	delete(g.members, old.id)
	wasLeader := g.leader == old.id
	old.id = id
	g.members[id] = old
	g.statics[*req.InstanceID] = id
	if wasLeader {
		g.leader = id
	}
	if g.state == stateStable && sameProtocols(old.protocols, req.Protocols) && !wasLeader {
		g.touch(old)
		g.fillJoin(resp, old)
		return nil
	}
	return g.awaitJoin(old, client, req)
}

// fillJoin answers with the current generation, as the join phase did.
func (g *group) fillJoin(resp *kmsg.JoinGroupResponse, m *member) {
	resp.ErrorCode = 0
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	resp.Members = nil
	if m.id == g.leader {
		for _, o := range g.memberList() {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = o.id, o.instanceID, o.metadataFor(g.protocol)
			resp.Members = append(resp.Members, jm)
		}
	}
}

// prepareRebalance starts a join phase: members must rejoin within the
// longest rebalance timeout.
func (g *group) prepareRebalance() {
	if g.state == stateCompletingRebalance {
		g.failSyncs(rebalancing)
	}
	initial := g.state == stateEmpty
	g.setState(statePreparingRebalance)
	wait := time.Duration(0)
	for _, m := range g.members {
		wait = max(wait, m.rebalanceTimeout)
	}
	g.initialUntil = time.Time{}
	if initial {
		delay := g.s.c.cfg.InitialRebalanceDelay
		g.initialUntil = g.now().Add(delay)
		if delay < wait {
			wait = delay
		}
	}
	g.armRebalance(wait)
	g.maybeCompleteJoin()
}

func (g *group) armRebalance(wait time.Duration) {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	g.rebalanceSeq++
	seq := g.rebalanceSeq
	g.rebalance = time.AfterFunc(wait, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.stopped || g.rebalanceSeq != seq || g.state != statePreparingRebalance {
			return
		}
		g.completeJoin()
	})
}

// maybeCompleteJoin ends the join phase once every member has rejoined,
// unless an empty group's initial delay is still running.
func (g *group) maybeCompleteJoin() {
	if g.state != statePreparingRebalance || g.now().Before(g.initialUntil) {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin leave,
// the generation advances, and every joined member is answered, the
// leader with the members' metadata to assign from.
func (g *group) completeJoin() {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	g.rebalanceSeq++
	for _, m := range g.members {
		if m.joinCh == nil {
			g.stopMember(m)
			delete(g.members, m.id)
			if m.instanceID != nil && g.statics[*m.instanceID] == m.id {
				delete(g.statics, *m.instanceID)
			}
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty)
		g.persistAsync()
		return
	}
	g.protocol = g.chooseProtocol()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.memberList()[0].id
	}
	g.setState(stateCompletingRebalance)
	for _, m := range g.members {
		m.assignment = nil
		resp := kmsg.NewPtrJoinGroupResponse()
		g.fillJoin(resp, m)
		m.joinCh <- resp
		m.joinCh = nil
		g.touch(m)
	}
}

// chooseProtocol is Kafka's vote: each member votes for the first of its
// protocols that every member supports; the most votes win, ties going to
// the earlier joiner's choice.
func (g *group) chooseProtocol() string {
	votes := map[string]int{}
	best, bestVotes := "", 0
	for _, m := range g.memberList() {
		for _, p := range m.protocols {
			all := true
			for _, o := range g.members {
				if !o.supports(p.Name) {
					all = false
					break
				}
			}
			if all {
				votes[p.Name]++
				if votes[p.Name] > bestVotes {
					best, bestVotes = p.Name, votes[p.Name]
				}
				break
			}
		}
	}
	return best
}

// failSyncs answers every member waiting in SyncGroup with code.
func (g *group) failSyncs(code int16) {
	for _, m := range g.members {
		if m.syncCh != nil {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = code
			m.syncCh <- resp
			m.syncCh = nil
		}
	}
}

// persistAsync writes the group's metadata without a waiting client (an
// empty group's new generation). A failed write only costs the
// generation number after a fail-over.
func (g *group) persistAsync() {
	key, value := metadataKey(g.id), metadataValue(g)
	go func() {
		g.writeMu.Lock()
		defer g.writeMu.Unlock()
		g.mu.Lock()
		consumer := g.cg != nil
		g.mu.Unlock()
		if consumer {
			return
		}
		if err := g.s.write(context.Background(), [][]byte{key}, [][]byte{value}); err != nil {
			g.s.c.logger.Warn("group metadata write failed", "group", g.id, "error", err)
		}
	}()
}
