package groups

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file lets classic members live in a consumer (KIP-848) group, as
// Kafka's default migration policy does: a classic group with members
// becomes a consumer group when a next-generation member joins it, classic
// members may then join, and the group turns classic again when its last
// next-generation member leaves. A classic member's partitions come from
// the server-side assignor; it reconciles at each JoinGroup (the owned
// partitions its subscription reports), gets its partitions at SyncGroup,
// and is sent to rejoin by its heartbeat whenever its assignment should
// change.

// classicMeta is what a classic member of a consumer group joined with.
type classicMeta struct {
	SessionTimeoutMs int32          `json:"session_timeout_ms"`
	Protocols        []classicProto `json:"protocols"`
}

type classicProto struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}

func (c *classicMeta) clone() *classicMeta {
	if c == nil {
		return nil
	}
	out := *c
	out.Protocols = append([]classicProto(nil), c.Protocols...)
	return &out
}

// sessionTimeout is the member's session: its own for a classic member,
// the broker's for a next-generation one.
func (m *cmember) sessionTimeout(cfg Config) time.Duration {
	if m.Classic != nil {
		return time.Duration(m.Classic.SessionTimeoutMs) * time.Millisecond
	}
	return cfg.ConsumerSessionTimeout
}

// nextGenMembers counts the members that speak the next-generation
// protocol.
func (cg *consumerGroup) nextGenMembers() int {
	n := 0
	for _, m := range cg.members {
		if m.Classic == nil {
			n++
		}
	}
	return n
}

// classicJoin serves a JoinGroup to a consumer group with members.
func (g *group) classicJoin(ctx context.Context, client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) *kmsg.JoinGroupResponse {
	c := g.s.c
	fail := func(code int16) *kmsg.JoinGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if req.ProtocolType != "consumer" {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	g.mu.Lock()
	old := g.cg
	g.mu.Unlock()
	next := old.clone()
	id := req.MemberID
	if id == "" {
		id = newMemberID(client.ID)
		if req.InstanceID == nil && req.Version >= 4 {
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
	}
	if req.InstanceID != nil {
		if prev := next.static(*req.InstanceID); prev != nil && prev.ID != id {
			if req.MemberID != "" {
				return fail(kerr.FencedInstanceID.Code)
			}
			// A classic static member takes its instance's place, and
			// its target, whatever the old member was doing.
			m := prev.clone()
			m.ID, m.Left, m.enc, m.Epoch, m.PrevEpoch = id, false, nil, 0, 0
			m.Assigned, m.Revoking, m.State = nil, nil, memberStable
			delete(next.members, prev.ID)
			next.add(m)
		}
	} else if m := next.members[id]; m != nil && m.InstanceID != nil {
		return fail(kerr.FencedInstanceID.Code)
	}
	if next.members[id] == nil {
		if len(next.members) >= c.cfg.MaxGroupSize {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		next.add(&cmember{ID: id})
		next.bump = true
	}
	if !next.supportsProtocols(id, req.Protocols) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	var sub kmsg.ConsumerMemberMetadata
	if err := sub.ReadFrom(req.Protocols[0].Metadata); err != nil {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if next.updateClassic(id, client, req, &sub) {
		next.bump = true
	}
	v := c.topics()
	next.refresh(v, c.cfg.ConsumerAssignor)
	owned := assignment{}
	for _, t := range sub.OwnedPartitions {
		if _, ok := v.byName[t.Topic]; ok {
			owned[t.Topic] = append(owned[t.Topic], t.Partitions...)
		}
	}
	for t, ps := range owned {
		owned[t] = compactSorted(ps)
	}
	next.reconcile(id, owned)
	if err := g.installConsumer(ctx, old, next, nil); err != nil {
		resp.ErrorCode = codeOf(err)
		return resp
	}
	m := next.members[id]
	g.mu.Lock()
	g.touchConsumer(id)
	g.mu.Unlock()
	resp.ErrorCode = 0
	resp.MemberID, resp.Generation = id, m.Epoch
	resp.ProtocolType, resp.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr(req.Protocols[0].Name)
	resp.LeaderID, resp.Members = "", nil
	return resp
}

// supportsProtocols is Kafka's rule: a classic member must share a
// protocol name with every other classic member.
func (cg *consumerGroup) supportsProtocols(id string, ps []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range ps {
		all := true
		for oid, o := range cg.members {
			if oid == id || o.Classic == nil {
				continue
			}
			found := false
			for _, op := range o.Classic.Protocols {
				found = found || op.Name == p.Name
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

// updateClassic takes a classic member's join; it reports whether the
// assignment depends on what changed.
func (cg *consumerGroup) updateClassic(id string, client Client, req *kmsg.JoinGroupRequest, sub *kmsg.ConsumerMemberMetadata) bool {
	m := cg.mut(id)
	m.ClientID, m.ClientHost, m.InstanceID = client.ID, client.Host, req.InstanceID
	m.RebalanceTimeoutMs = req.RebalanceTimeoutMillis
	if req.Version == 0 || m.RebalanceTimeoutMs <= 0 {
		m.RebalanceTimeoutMs = req.SessionTimeoutMillis
	}
	if sub.Rack != nil {
		m.RackID = sub.Rack
	}
	meta := &classicMeta{SessionTimeoutMs: req.SessionTimeoutMillis}
	for _, p := range req.Protocols {
		meta.Protocols = append(meta.Protocols, classicProto{Name: p.Name, Metadata: p.Metadata})
	}
	m.Classic = meta
	topics := compactSortedStrings(append([]string(nil), sub.Topics...))
	if equalStrings(topics, m.Topics) {
		return false
	}
	m.Topics = topics
	return true
}

// classicMember finds a classic member of a consumer group and checks
// its identity and generation, as SyncGroup and Heartbeat do.
func (cg *consumerGroup) classicMember(id string, instance *string, generation int32) (*cmember, int16) {
	m := cg.members[id]
	if instance != nil {
		if prev := cg.static(*instance); prev != nil && prev.ID != id {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	switch {
	case m == nil || m.Classic == nil:
		return nil, unknownMember
	case generation != m.Epoch:
		return nil, kerr.IllegalGeneration.Code
	}
	return m, 0
}

// mustRejoin says whether a classic member's assignment should change:
// the group moved on, it has partitions to give up, or partitions it
// waits for are free now.
func (cg *consumerGroup) mustRejoin(m *cmember) bool {
	switch {
	case m.Epoch < cg.Epoch, m.State == memberUnrevoked:
		return true
	case m.State == memberUnreleased:
		held := cg.heldByOthers(m.ID)
		free := false
		for t, ps := range m.Target {
			for _, p := range ps {
				free = free || (!m.Assigned.has(t, p) && !held[topicPart{t, p}])
			}
		}
		return free
	}
	return false
}

// classicSync serves a SyncGroup to a consumer group: the member's
// partitions, as the consumer protocol encodes them; g.mu is held.
func (g *group) classicSync(req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) *kmsg.SyncGroupResponse {
	m, code := g.cg.classicMember(req.MemberID, req.InstanceID, req.Generation)
	if code == 0 {
		proto := m.Classic.Protocols[0].Name
		switch {
		case (req.ProtocolType != nil && *req.ProtocolType != "consumer") || (req.Protocol != nil && *req.Protocol != proto):
			code = kerr.InconsistentGroupProtocol.Code
		case g.cg.Epoch > m.Epoch && m.State != memberUnrevoked:
			code = rebalancing
		default:
			g.touchConsumer(m.ID)
			resp.ProtocolType, resp.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr(proto)
			resp.MemberAssignment = encodeAssignment(m.Assigned, m.Classic.Protocols[0].Metadata)
		}
	}
	resp.ErrorCode = code
	return resp
}

// encodeAssignment is a consumer protocol assignment, at the version of
// the member's subscription.
func encodeAssignment(a assignment, subscription []byte) []byte {
	out := kmsg.NewConsumerMemberAssignment()
	if len(subscription) >= 2 {
		out.Version = min(int16(subscription[0])<<8|int16(subscription[1]), 3)
	}
	for _, t := range sortedKeys(a) {
		out.Topics = append(out.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: t, Partitions: append([]int32(nil), a[t]...)})
	}
	return out.AppendTo(nil)
}

// classicHeartbeat serves a Heartbeat to a consumer group: it keeps the
// session and sends the member to rejoin when its assignment changes;
// g.mu is held.
func (g *group) classicHeartbeat(req *kmsg.HeartbeatRequest, resp *kmsg.HeartbeatResponse) *kmsg.HeartbeatResponse {
	m, code := g.cg.classicMember(req.MemberID, req.InstanceID, req.Generation)
	if code == 0 {
		g.touchConsumer(m.ID)
		if g.cg.mustRejoin(m) {
			code = rebalancing
		}
	}
	resp.ErrorCode = code
	return resp
}

// classicLeave serves a LeaveGroup to a consumer group: each classic
// member named leaves for good; the group moves on once.
func (g *group) classicLeave(ctx context.Context, req *kmsg.LeaveGroupRequest, leaving []kmsg.LeaveGroupRequestMember, resp *kmsg.LeaveGroupResponse) *kmsg.LeaveGroupResponse {
	c := g.s.c
	g.mu.Lock()
	old := g.cg
	g.mu.Unlock()
	next := old.clone()
	removed := false
	for _, l := range leaving {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID, lm.InstanceID = l.MemberID, l.InstanceID
		m := next.members[l.MemberID]
		if l.InstanceID != nil {
			m = next.static(*l.InstanceID)
			if m != nil && l.MemberID != "" && m.ID != l.MemberID {
				lm.ErrorCode = kerr.FencedInstanceID.Code
			}
		}
		switch {
		case lm.ErrorCode != 0:
		case m == nil || m.Classic == nil:
			lm.ErrorCode = unknownMember
		default:
			delete(next.members, m.ID)
			removed = true
		}
		resp.Members = append(resp.Members, lm)
	}
	if removed {
		next.bump = true
		next.refresh(c.topics(), c.cfg.ConsumerAssignor)
		if err := g.installConsumer(ctx, old, next, nil); err != nil {
			resp.ErrorCode = codeOf(err)
			resp.Members = nil
			return resp
		}
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}

// upgrade turns a stable classic consumer group with members into a
// consumer group, for a next-generation member joining it: every member
// keeps its partitions, at an epoch equal to the generation. g.mu is
// held; the caller writes the result.
func (g *group) upgrade() (*consumerGroup, error) {
	if g.protocolType != "consumer" || g.state != stateStable || len(g.pending) > 0 {
		return nil, kerr.GroupIDNotFound
	}
	cg := newConsumerGroup()
	cg.Epoch, cg.TargetEpoch, cg.Assignor = g.generation, g.generation, g.s.c.cfg.ConsumerAssignor
	for _, m := range g.memberList() {
		var sub kmsg.ConsumerMemberMetadata
		var plan kmsg.ConsumerMemberAssignment
		if sub.ReadFrom(m.metadataFor(g.protocol)) != nil || plan.ReadFrom(m.assignment) != nil {
			return nil, kerr.GroupIDNotFound
		}
		a := assignment{}
		for _, t := range plan.Topics {
			a[t.Topic] = compactSorted(append([]int32(nil), t.Partitions...))
		}
		cm := &cmember{ID: m.id, InstanceID: m.instanceID, RackID: sub.Rack, ClientID: m.clientID, ClientHost: m.clientHost,
			Topics: compactSortedStrings(append([]string(nil), sub.Topics...)), RebalanceTimeoutMs: int32(m.rebalanceTimeout.Milliseconds()),
			Epoch: g.generation, PrevEpoch: g.generation, Assigned: a, Target: a.clone(),
			Classic: &classicMeta{SessionTimeoutMs: int32(m.sessionTimeout.Milliseconds())}}
		for _, p := range m.protocols {
			cm.Classic.Protocols = append(cm.Classic.Protocols, classicProto{Name: p.Name, Metadata: p.Metadata})
		}
		cg.add(cm)
	}
	return cg, nil
}

// dropClassicMembers forgets the classic side of a group that became a
// consumer group; g.mu is held.
func (g *group) dropClassicMembers() {
	for _, m := range g.members {
		g.stopMember(m)
	}
	g.members = make(map[string]*member)
	g.statics = make(map[string]string)
	g.protocol, g.leader = "", ""
	g.setState(stateEmpty)
}

// downgrade turns a consumer group whose members are all classic back
// into a classic group, which then rebalances: its members rejoin through
// the classic protocol. g.mu is held.
func (g *group) downgrade() {
	cg := g.cg
	g.cg = nil
	for id := range g.ctimers {
		g.stopConsumerTimers(id)
	}
	g.members = make(map[string]*member)
	g.statics = make(map[string]string)
	// Generations never go back: a record of an older one is skipped
	// when the log is read again.
	g.protocolType, g.generation = "consumer", max(g.generation, cg.Epoch)
	for _, cm := range cg.sortedMembers() {
		m := &member{id: cm.ID, instanceID: cm.InstanceID, clientID: cm.ClientID, clientHost: cm.ClientHost,
			sessionTimeout:   time.Duration(cm.Classic.SessionTimeoutMs) * time.Millisecond,
			rebalanceTimeout: time.Duration(cm.RebalanceTimeoutMs) * time.Millisecond,
			protocolType:     "consumer", seq: g.nextSeq}
		g.nextSeq++
		for _, p := range cm.Classic.Protocols {
			m.protocols = append(m.protocols, kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: p.Metadata})
		}
		m.assignment = encodeAssignment(cm.Target, cm.Classic.Protocols[0].Metadata)
		g.members[m.id] = m
		if m.instanceID != nil {
			g.statics[*m.instanceID] = m.id
		}
		g.touch(m)
	}
	g.protocol = g.chooseProtocol()
	g.leader = g.memberList()[0].id
	g.setState(stateStable)
	g.prepareRebalance()
	g.s.c.logger.Info("consumer group turned classic: its last next-generation member left", "group", g.id, "members", len(g.members))
}
