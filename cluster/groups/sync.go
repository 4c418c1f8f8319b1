package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// SyncGroup v0-5. The leader's assignment is written through Raft before
// any member gets its share, so a coordinator fail-over keeps the
// generation.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(err error) *kmsg.SyncGroupResponse {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		return fail(err)
	}
	g := s.group(req.Group, false)
	if g == nil {
		return fail(kerr.UnknownMemberID)
	}
	ch, write := g.sync(req, resp)
	if write != nil {
		write(ctx)
	}
	if ch == nil {
		return resp
	}
	select {
	case r := <-ch:
		r.Version = req.Version
		r.ProtocolType, r.Protocol = resp.ProtocolType, resp.Protocol
		return r
	case <-ctx.Done():
		return fail(kerr.RequestTimedOut)
	}
}

// checkMember applies generation fencing to a request from a member.
func (g *group) checkMember(memberID string, instanceID *string, generation int32) (*member, int16) {
	if instanceID != nil {
		if id, ok := g.statics[*instanceID]; ok && id != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, unknownMember
	}
	if generation != g.generation {
		return nil, kerr.IllegalGeneration.Code
	}
	return m, 0
}

func (g *group) sync(req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) (chan *kmsg.SyncGroupResponse, func(context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return nil, nil
	}
	if g.cg != nil {
		g.classicSync(req, resp)
		return nil, nil
	}
	m, code := g.checkMember(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		resp.ErrorCode = code
		return nil, nil
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return nil, nil
	}
	resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
	g.touch(m)
	switch g.state {
	case statePreparingRebalance:
		resp.ErrorCode = rebalancing
		return nil, nil
	case stateStable:
		resp.MemberAssignment = m.assignment
		return nil, nil
	case stateCompletingRebalance:
	default:
		resp.ErrorCode = unknownMember
		return nil, nil
	}
	if m.syncCh == nil {
		m.syncCh = make(chan *kmsg.SyncGroupResponse, 1)
	}
	ch := m.syncCh
	if m.id != g.leader || g.syncing {
		return ch, nil
	}
	for _, a := range req.GroupAssignment {
		if o := g.members[a.MemberID]; o != nil {
			o.assignment = a.MemberAssignment
		}
	}
	g.syncing = true
	gen := g.generation
	key, value := metadataKey(g.id), metadataValue(g)
	return ch, func(ctx context.Context) {
		g.writeMu.Lock()
		err := g.s.write(ctx, [][]byte{key}, [][]byte{value})
		g.writeMu.Unlock()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.syncing = false
		if g.stopped || g.generation != gen || g.state != stateCompletingRebalance {
			return
		}
		if err != nil {
			g.s.c.logger.Warn("group assignment write failed", "group", g.id, "generation", gen, "error", err)
			for _, o := range g.members {
				o.assignment = nil
			}
			g.failSyncs(kafkaerr.Code(err))
			g.prepareRebalance()
			return
		}
		g.setState(stateStable)
		for _, o := range g.members {
			if o.syncCh != nil {
				r := kmsg.NewPtrSyncGroupResponse()
				r.MemberAssignment = o.assignment
				o.syncCh <- r
				o.syncCh = nil
			}
		}
	}
}

// Heartbeat v0-4: keeps a member's session, and tells it when a rebalance
// needs it to rejoin.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	g := s.group(req.Group, false)
	if g == nil {
		resp.ErrorCode = unknownMember
		return resp
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	if g.cg != nil {
		return g.classicHeartbeat(req, resp)
	}
	m, code := g.checkMember(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		if code == kerr.IllegalGeneration.Code && g.state == statePreparingRebalance {
			// A member of the previous generation must rejoin.
			code = rebalancing
			g.touch(g.members[req.MemberID])
		}
		resp.ErrorCode = code
		return resp
	}
	g.touch(m)
	switch g.state {
	case statePreparingRebalance:
		resp.ErrorCode = rebalancing
	case stateEmpty, stateDead:
		resp.ErrorCode = unknownMember
	}
	return resp
}

// LeaveGroup v0-5: members leave by id, or (v3+, batched) by instance id.
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	g := s.group(req.Group, false)
	if g == nil {
		resp.ErrorCode = unknownMember
		return resp
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	if g.cg != nil && !g.stopped {
		g.mu.Unlock()
		return g.classicLeave(ctx, req, leaving, resp)
	}
	defer g.mu.Unlock()
	if g.stopped {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	for _, l := range leaving {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID, lm.InstanceID = l.MemberID, l.InstanceID
		lm.ErrorCode = g.leave(l)
		resp.Members = append(resp.Members, lm)
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}

func (g *group) leave(l kmsg.LeaveGroupRequestMember) int16 {
	id := l.MemberID
	if l.InstanceID != nil {
		cur, ok := g.statics[*l.InstanceID]
		if !ok {
			return unknownMember
		}
		if id != "" && id != cur {
			return kerr.FencedInstanceID.Code
		}
		id = cur
	}
	if t, ok := g.pending[id]; ok {
		t.Stop()
		delete(g.pending, id)
		return 0
	}
	m := g.members[id]
	if m == nil {
		return unknownMember
	}
	g.s.c.logger.Debug("group member left", "group", g.id, "member", id)
	g.remove(m)
	return 0
}
