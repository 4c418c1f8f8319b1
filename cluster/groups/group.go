package groups

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is a classic group's state, as DescribeGroups names it.
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

type topicPart struct {
	topic     string
	partition int32
}

// committed is one committed offset.
type committed struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	timestamp   int64
}

// member is one member of a classic group.
type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte
	// seq orders members by when they first joined.
	seq uint64

	// joinCh is set while the member waits for the rebalance to end;
	// syncCh while it waits for the leader's assignment.
	joinCh chan *kmsg.JoinGroupResponse
	syncCh chan *kmsg.SyncGroupResponse
	// expires is the session timer; timerSeq tells a stale firing apart.
	expires  *time.Timer
	timerSeq uint64
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) supports(protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

// group is one consumer group. mu guards everything but writeMu, which
// orders the group's records in the log: records of one key are written
// one at a time, so the log's order is the order they took effect here.
type group struct {
	s  *shard
	id string

	writeMu sync.Mutex

	mu           sync.Mutex
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	stateTime    int64
	members      map[string]*member
	statics      map[string]string
	// pending holds member ids handed out with MEMBER_ID_REQUIRED, until
	// the member joins with it or its session timeout passes.
	pending map[string]*time.Timer
	offsets map[topicPart]committed
	nextSeq uint64

	// rebalance ends the join phase when members are slow to rejoin;
	// initialUntil is when an empty group's first join phase may end.
	rebalance    *time.Timer
	rebalanceSeq uint64
	initialUntil time.Time
	// cg is set while the group is a consumer (KIP-848) group; ctimers
	// are its members' timers.
	cg       *consumerGroup
	ctimers  map[string]*ctimer
	timerSeq uint64
	// syncing is set while the leader's assignment is being written.
	syncing bool
	// version counts state changes, for a write that must not apply to a
	// later generation.
	stopped bool
}

func newGroup(s *shard, id string) *group {
	return &group{
		s: s, id: id,
		members: make(map[string]*member),
		statics: make(map[string]string),
		pending: make(map[string]*time.Timer),
		offsets: make(map[topicPart]committed),
	}
}

// expired reports whether the group is empty and has had no commit, and
// no state change, since cutoff (milliseconds).
func (g *group) expired(cutoff int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateEmpty || len(g.members) > 0 || len(g.pending) > 0 || (g.cg != nil && len(g.cg.members) > 0) {
		return false
	}
	last := g.stateTime
	for _, o := range g.offsets {
		last = max(last, o.timestamp)
	}
	return last < cutoff
}

// memberList is the members in join order.
func (g *group) memberList() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (g *group) now() time.Time { return g.s.c.cfg.Now() }

func (g *group) setState(s groupState) {
	g.state = s
	g.stateTime = g.now().UnixMilli()
}

// restore takes a stored generation (load).
func (g *group) restore(v *kmsg.GroupMetadataValue) {
	for _, m := range g.members {
		g.stopMember(m)
	}
	g.members = make(map[string]*member)
	g.statics = make(map[string]string)
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	g.protocol, g.leader = "", ""
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	g.stateTime = v.CurrentStateTimestamp
	for _, mv := range v.Members {
		m := &member{
			id: mv.MemberID, instanceID: mv.InstanceID, clientID: mv.ClientID, clientHost: mv.ClientHost,
			sessionTimeout:   time.Duration(mv.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(mv.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: mv.Subscription}},
			assignment:       mv.Assignment,
			seq:              g.nextSeq,
		}
		g.nextSeq++
		g.members[m.id] = m
		if m.instanceID != nil {
			g.statics[*m.instanceID] = m.id
		}
	}
	if len(g.members) == 0 {
		g.state = stateEmpty
	} else {
		g.state = stateStable
	}
}

// resume starts the session timers of a loaded group's members: they
// get a whole session to find the new coordinator.
func (g *group) resume() {
	for _, m := range g.members {
		g.touch(m)
	}
	if g.cg != nil {
		// When it became empty is not stored: retention counts from now.
		g.stateTime = max(g.stateTime, g.now().UnixMilli())
		for _, m := range g.cg.sortedMembers() {
			g.touchConsumer(m.ID)
			g.armRevocation(m)
		}
	}
}

// stop ends every timer; the shard is gone.
func (g *group) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	for _, t := range g.pending {
		t.Stop()
	}
	for _, m := range g.members {
		g.stopMember(m)
	}
	for id := range g.ctimers {
		g.stopConsumerTimers(id)
	}
}

func (g *group) stopMember(m *member) {
	if m.expires != nil {
		m.expires.Stop()
	}
	m.timerSeq++
}

// touch restarts a member's session timer.
func (g *group) touch(m *member) {
	if g.stopped {
		return
	}
	g.stopMember(m)
	seq := m.timerSeq
	m.expires = time.AfterFunc(m.sessionTimeout, func() { g.expire(m, seq) })
}

// expire removes a member whose session timed out. One that waits for a
// join or sync answer is not expired: the coordinator owes it the answer.
func (g *group) expire(m *member, seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped || m.timerSeq != seq || g.members[m.id] != m {
		return
	}
	if m.joinCh != nil || m.syncCh != nil {
		g.touch(m)
		return
	}
	g.s.c.logger.Info("group member session expired", "group", g.id, "member", m.id)
	g.remove(m)
}

// remove takes a member out and starts a rebalance.
func (g *group) remove(m *member) {
	g.stopMember(m)
	delete(g.members, m.id)
	if m.instanceID != nil && g.statics[*m.instanceID] == m.id {
		delete(g.statics, *m.instanceID)
	}
	if m.joinCh != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.Generation, resp.MemberID = unknownMember, -1, m.id
		m.joinCh <- resp
		m.joinCh = nil
	}
	if m.syncCh != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = unknownMember
		m.syncCh <- resp
		m.syncCh = nil
	}
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalance()
	case statePreparingRebalance:
		g.maybeCompleteJoin()
	}
}

func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return prefix + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
