package groups

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/statelog/statelogtest"
)

func TestUniformAssignorIsBalancedAndSticky(t *testing.T) {
	topics := map[string]int32{"t": 12}
	sub := map[string]bool{"t": true}
	members := []assignee{{id: "a", topics: sub}, {id: "b", topics: sub}, {id: "c", topics: sub}}
	first := assignUniform(members, topics, nil)
	for _, m := range members {
		if n := first[m.id].size(); n != 4 {
			t.Fatalf("%s got %d partitions, want 4: %v", m.id, n, first)
		}
	}
	for i := range members {
		members[i].prev = first[members[i].id]
	}
	members = append(members, assignee{id: "d", topics: sub})
	second := assignUniform(members, topics, nil)
	moved := 0
	for _, m := range members {
		if n := second[m.id].size(); n != 3 {
			t.Fatalf("%s got %d partitions, want 3: %v", m.id, n, second)
		}
		if m.id != "d" && !second[m.id].subsetOf(first[m.id]) {
			t.Fatalf("%s was given a partition it did not have: %v -> %v", m.id, first[m.id], second[m.id])
		}
		moved += second[m.id].filter(func(t string, p int32) bool { return !first[m.id].has(t, p) }).size()
	}
	if moved != 3 {
		t.Fatalf("%d partitions moved, want 3", moved)
	}
	// Every partition has exactly one owner.
	seen := map[topicPart]string{}
	for id, a := range second {
		for tp, ps := range a {
			for _, p := range ps {
				if o, dup := seen[topicPart{tp, p}]; dup {
					t.Fatalf("%s-%d assigned to %s and %s", tp, p, o, id)
				}
				seen[topicPart{tp, p}] = id
			}
		}
	}
	if len(seen) != 12 {
		t.Fatalf("%d partitions assigned, want 12", len(seen))
	}
}

func TestUniformAssignorHeterogeneous(t *testing.T) {
	topics := map[string]int32{"x": 4, "y": 2}
	members := []assignee{
		{id: "a", topics: map[string]bool{"x": true, "y": true}},
		{id: "b", topics: map[string]bool{"x": true}},
		{id: "c", topics: map[string]bool{"y": true}},
	}
	out := assignUniform(members, topics, nil)
	if out["c"].size() == 0 || out["b"].size() == 0 || len(out["b"]["y"]) > 0 || len(out["c"]["x"]) > 0 {
		t.Fatalf("assignment ignores subscriptions: %v", out)
	}
	if total := out["a"].size() + out["b"].size() + out["c"].size(); total != 6 {
		t.Fatalf("%d partitions assigned, want 6: %v", total, out)
	}
}

// TestUniformAssignorPrefersLocalReplicas: with racks known, each member
// is given the partitions with a replica in its rack, and balance holds.
func TestUniformAssignorPrefersLocalReplicas(t *testing.T) {
	sub := map[string]bool{"t": true}
	racks := func(tp topicPart) []string {
		if tp.partition%2 == 0 {
			return []string{"east"}
		}
		return []string{"west"}
	}
	members := []assignee{{id: "a", rack: "west", topics: sub}, {id: "b", rack: "east", topics: sub}}
	out := assignUniform(members, map[string]int32{"t": 6}, racks)
	if fmt.Sprint(out["a"]["t"]) != "[1 3 5]" || fmt.Sprint(out["b"]["t"]) != "[0 2 4]" {
		t.Fatalf("rack-aware assignment %v", out)
	}
	// A member in the west joins one in the east that holds everything:
	// the partitions it is given are the west ones.
	alone := []assignee{{id: "a", rack: "east", topics: sub, prev: assignment{"t": {0, 1, 2, 3}}}, {id: "b", rack: "west", topics: sub}}
	if got := assignUniform(alone, map[string]int32{"t": 4}, racks); fmt.Sprint(got["b"]["t"]) != "[1 3]" {
		t.Fatalf("the joining west member got %v", got)
	}
	// A third member in the east joins: balance comes first (it takes a
	// west partition from a, the only one a can give), and the others keep
	// what they had.
	for i := range members {
		members[i].prev = out[members[i].id]
	}
	members = append(members, assignee{id: "c", rack: "east", topics: sub})
	next := assignUniform(members, map[string]int32{"t": 6}, racks)
	for _, m := range members {
		if n := next[m.id].size(); n != 2 {
			t.Fatalf("%s got %d partitions: %v", m.id, n, next)
		}
		if m.id != "c" && !next[m.id].subsetOf(out[m.id]) {
			t.Fatalf("%s was given a new partition: %v -> %v", m.id, out[m.id], next[m.id])
		}
	}
}

func TestRangeAssignorGivesContiguousRanges(t *testing.T) {
	sub := map[string]bool{"t": true, "u": true}
	out := assignRange([]assignee{{id: "a", topics: sub}, {id: "b", topics: sub}}, map[string]int32{"t": 5, "u": 5}, nil)
	if fmt.Sprint(out["a"]["t"]) != "[0 1 2]" || fmt.Sprint(out["b"]["t"]) != "[3 4]" || fmt.Sprint(out["a"]["u"]) != "[0 1 2]" {
		t.Fatalf("range assignment %v", out)
	}
}

type cgMember struct {
	id    string
	epoch int32
	owned assignment
}

func cgHeartbeat(t *testing.T, c *Coordinator, m *cgMember, full bool) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch = "cg", m.id, m.epoch
	if full || m.epoch == 0 {
		r.RebalanceTimeoutMillis = 5000
		r.SubscribedTopicNames = []string{"t"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if m.epoch != 0 {
			for _, tp := range sortedKeys(m.owned) {
				r.Topics = append(r.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: topicID(tp), Partitions: m.owned[tp]})
			}
		}
	}
	resp := c.ConsumerGroupHeartbeat(context.Background(), Client{ID: "c"}, r)
	if resp.ErrorCode == 0 {
		m.epoch = resp.MemberEpoch
		if resp.Assignment != nil {
			m.owned = assignment{}
			for _, at := range resp.Assignment.Topics {
				m.owned[string(trimID(at.TopicID))] = at.Partitions
			}
		}
	}
	return resp
}

func trimID(id [16]byte) []byte {
	for i, b := range id {
		if b == 0 {
			return id[:i]
		}
	}
	return id[:]
}

// TestConsumerGroupReconciles: a second member gets partitions only after
// the first has released them, and no partition is ever owned twice.
func TestConsumerGroupReconciles(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	a, b := &cgMember{id: "a"}, &cgMember{id: "b"}
	if r := cgHeartbeat(t, c, a, true); r.ErrorCode != 0 || a.owned.size() != 4 || a.epoch != 1 {
		t.Fatalf("a joins: code %d epoch %d owned %v", r.ErrorCode, a.epoch, a.owned)
	}
	if r := cgHeartbeat(t, c, b, true); r.ErrorCode != 0 || b.owned.size() != 0 || b.epoch != 2 {
		t.Fatalf("b joins: code %d epoch %d owned %v (a still owns all)", r.ErrorCode, b.epoch, b.owned)
	}
	if r := cgHeartbeat(t, c, a, false); r.ErrorCode != 0 || a.owned.size() != 2 || a.epoch != 1 {
		t.Fatalf("a is told to revoke: code %d epoch %d owned %v", r.ErrorCode, a.epoch, a.owned)
	}
	if r := cgHeartbeat(t, c, b, false); r.ErrorCode != 0 || b.owned.size() != 0 {
		t.Fatalf("b must wait for a: owned %v", b.owned)
	}
	if r := cgHeartbeat(t, c, a, true); r.ErrorCode != 0 || a.epoch != 2 {
		t.Fatalf("a acknowledges: code %d epoch %d", r.ErrorCode, a.epoch)
	}
	if r := cgHeartbeat(t, c, b, false); r.ErrorCode != 0 || b.owned.size() != 2 || a.owned.intersects(b.owned) {
		t.Fatalf("b gets the rest: %v (a has %v)", b.owned, a.owned)
	}

	// Fencing: a future epoch, an unknown member, a stale commit.
	stale := &cgMember{id: "a", epoch: 7}
	if r := cgHeartbeat(t, c, stale, false); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("future epoch: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := cgHeartbeat(t, c, &cgMember{id: "zz", epoch: 3}, false); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := commitAs(c, 9, "cg", "a", 1, 0, 5); code != kerr.StaleMemberEpoch.Code {
		t.Fatalf("stale commit: %v", kerr.ErrorForCode(code))
	}
	if code := commitAs(c, 9, "cg", "a", a.epoch, 0, 5); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}

	// b leaves: a gets everything back, once it heartbeats.
	leave := &cgMember{id: "b", epoch: -1}
	if r := cgHeartbeat(t, c, leave, false); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.MemberEpoch)
	}
	if r := cgHeartbeat(t, c, a, false); r.ErrorCode != 0 || a.owned.size() != 4 {
		t.Fatalf("after b left a owns %v", a.owned)
	}
}

// TestConsumerGroupSurvivesFailover: the next coordinator rebuilds
// epochs, assignments and commits from the log.
func TestConsumerGroupSurvivesFailover(t *testing.T) {
	log := statelogtest.New(1)
	c, _ := testCoordinator(t, log)
	a, b := &cgMember{id: "a"}, &cgMember{id: "b"}
	cgHeartbeat(t, c, a, true)
	cgHeartbeat(t, c, b, true)
	cgHeartbeat(t, c, a, false)
	cgHeartbeat(t, c, a, true)
	cgHeartbeat(t, c, b, false)
	before := describeCG(t, c)
	c.Close()

	next, _ := testCoordinator(t, log.Successor(2))
	after := describeCG(t, next)
	if before != after {
		t.Fatalf("state changed across fail-over:\n%s\n%s", before, after)
	}
	if r := cgHeartbeat(t, next, b, false); r.ErrorCode != 0 || r.MemberEpoch != b.epoch {
		t.Fatalf("b heartbeats the new coordinator: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.MemberEpoch)
	}
}

func describeCG(t *testing.T, c *Coordinator) string {
	t.Helper()
	r := kmsg.NewPtrConsumerGroupDescribeRequest()
	r.Version, r.Groups = 1, []string{"cg"}
	g := c.ConsumerGroupDescribe(context.Background(), r).Groups[0]
	if g.ErrorCode != 0 {
		t.Fatalf("describe: %v", kerr.ErrorForCode(g.ErrorCode))
	}
	out := fmt.Sprintf("%s epoch=%d target=%d assignor=%s", g.State, g.Epoch, g.AssignmentEpoch, g.AssignorName)
	for _, m := range g.Members {
		out += fmt.Sprintf(" [%s e%d %v -> %v]", m.MemberID, m.MemberEpoch, m.Assignment.TopicPartitions, m.TargetAssignment.TopicPartitions)
	}
	return out
}

// TestConsumerGroupSessionAndStaticMembers: a member that stops
// heartbeating is removed; a static member that leaves with -2 comes back
// under a new id with its partitions and epoch.
func TestConsumerGroupSessionAndStaticMembers(t *testing.T) {
	log := statelogtest.New(1)
	cfg := DefaultConfig()
	cfg.ConsumerSessionTimeout = 300 * time.Millisecond
	cfg.ConsumerHeartbeatInterval = 50 * time.Millisecond
	cl := &oneLeader{log: log, topics: map[string]int32{"t": 4}}
	c := New(cfg, cl, nil)
	t.Cleanup(c.Close)

	static := func(id string, epoch int32) *kmsg.ConsumerGroupHeartbeatResponse {
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Version, r.Group, r.MemberID, r.MemberEpoch = 1, "cg", id, epoch
		r.InstanceID = kmsg.StringPtr("i1")
		r.RebalanceTimeoutMillis = 5000
		r.SubscribedTopicNames = []string{"t"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		return c.ConsumerGroupHeartbeat(context.Background(), Client{ID: "c"}, r)
	}
	first := static("s1", 0)
	if first.ErrorCode != 0 || len(first.Assignment.Topics) != 1 {
		t.Fatalf("static join: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	if r := static("s2", 0); r.ErrorCode != kerr.UnreleasedInstanceID.Code {
		t.Fatalf("second holder of the instance id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := static("s1", -2); r.ErrorCode != 0 || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	back := static("s2", 0)
	if back.ErrorCode != 0 || back.MemberEpoch != first.MemberEpoch || len(back.Assignment.Topics[0].Partitions) != 4 {
		t.Fatalf("static rejoin: %v epoch %d (was %d) %v", kerr.ErrorForCode(back.ErrorCode), back.MemberEpoch, first.MemberEpoch, back.Assignment)
	}
	deadline := time.Now().Add(10 * time.Second)
	for describeCG(t, c) != "Empty epoch=2 target=2 assignor=uniform" {
		if time.Now().After(deadline) {
			t.Fatalf("member not expired: %s", describeCG(t, c))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsumerGroupRegexAndBadInput: a regex subscription follows the
// topics that exist; bad requests get their codes.
func TestConsumerGroupRegexAndBadInput(t *testing.T) {
	c, cl := testCoordinator(t, statelogtest.New(1))
	cl.topics["orders-eu"], cl.topics["orders-us"], cl.topics["other"] = 2, 3, 1
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version, r.Group, r.MemberID = 1, "cg", "m"
	r.RebalanceTimeoutMillis = 5000
	r.SubscribedTopicRegex = kmsg.StringPtr("orders-.*")
	resp := c.ConsumerGroupHeartbeat(context.Background(), Client{}, r)
	if resp.ErrorCode != 0 || len(resp.Assignment.Topics) != 2 {
		t.Fatalf("regex join: %v %v", kerr.ErrorForCode(resp.ErrorCode), resp.Assignment)
	}
	for _, bad := range []struct {
		name string
		mod  func(r *kmsg.ConsumerGroupHeartbeatRequest)
		code int16
	}{
		{"empty member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest.Code},
		{"bad regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("(") }, kerr.InvalidRegularExpression.Code},
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("magic") }, kerr.UnsupportedAssignor.Code},
		{"join without subscription", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = nil }, kerr.InvalidRequest.Code},
		{"empty group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "" }, kerr.InvalidGroupID.Code},
		{"epoch -3", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -3 }, kerr.InvalidRequest.Code},
	} {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Version, req.Group, req.MemberID = 1, "cg", "n"
		req.RebalanceTimeoutMillis = 5000
		req.SubscribedTopicRegex = kmsg.StringPtr("orders-.*")
		bad.mod(req)
		if code := c.ConsumerGroupHeartbeat(context.Background(), Client{}, req).ErrorCode; code != bad.code {
			t.Errorf("%s: %v, want %v", bad.name, kerr.ErrorForCode(code), kerr.ErrorForCode(bad.code))
		}
	}
	// The group is intact: m is still its only member.
	if d := describeCG(t, c); d[:6] != "Stable" {
		t.Fatalf("group disturbed: %s", d)
	}
}

// TestEmptyClassicGroupBecomesConsumerGroup: commits made outside any
// group survive the group turning into a consumer group.
func TestEmptyClassicGroupBecomesConsumerGroup(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	if code := commitAs(c, 9, "cg", "", -1, 1, 42); code != 0 {
		t.Fatalf("simple commit: %v", kerr.ErrorForCode(code))
	}
	m := &cgMember{id: "a"}
	if r := cgHeartbeat(t, c, m, true); r.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	fr := kmsg.NewPtrOffsetFetchRequest()
	fr.Version = 9
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group, g.MemberID, g.MemberEpoch = "cg", kmsg.StringPtr("a"), m.epoch
	g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1}}}
	fr.Groups = []kmsg.OffsetFetchRequestGroup{g}
	resp := c.OffsetFetch(context.Background(), fr)
	if resp.Groups[0].ErrorCode != 0 || resp.Groups[0].Topics[0].Partitions[0].Offset != 42 {
		t.Fatalf("fetch: %+v", resp.Groups[0])
	}
	fr.Groups[0].MemberEpoch = m.epoch + 5
	if code := c.OffsetFetch(context.Background(), fr).Groups[0].ErrorCode; code != kerr.StaleMemberEpoch.Code {
		t.Fatalf("stale fetch: %v", kerr.ErrorForCode(code))
	}
}

// TestClassicMembersInConsumerGroup: a classic member joins a consumer
// group and gets its partitions from the server's assignor, through
// JoinGroup, SyncGroup and heartbeats that send it to rejoin; when the
// last next-generation member leaves the group turns classic, and a
// next-generation member joining turns it back.
func TestClassicMembersInConsumerGroup(t *testing.T) {
	log := statelogtest.New(1)
	c, _ := testCoordinator(t, log)
	ctx := context.Background()
	a := &cgMember{id: "a"}
	cgHeartbeat(t, c, a, true)

	classicJoin := func(member string) *kmsg.JoinGroupResponse {
		r := joinReq(member, nil, 10*time.Second)
		r.Group = "cg"
		return c.JoinGroup(ctx, Client{ID: "classic"}, r)
	}
	sync := func(member string, gen int32) (int16, assignment) {
		r := syncReq(member, gen, nil)
		r.Group = "cg"
		resp := c.SyncGroup(ctx, r)
		var plan kmsg.ConsumerMemberAssignment
		got := assignment{}
		if resp.ErrorCode == 0 && plan.ReadFrom(resp.MemberAssignment) == nil {
			for _, tp := range plan.Topics {
				got[tp.Topic] = tp.Partitions
			}
		}
		return resp.ErrorCode, got
	}
	hb := func(member string, gen int32) int16 {
		r := kmsg.NewPtrHeartbeatRequest()
		r.Group, r.MemberID, r.Generation = "cg", member, gen
		return c.Heartbeat(ctx, r).ErrorCode
	}

	first := classicJoin("")
	if first.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first classic join: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	id := first.MemberID
	j := classicJoin(id)
	if j.ErrorCode != 0 || j.Generation != 2 || j.LeaderID == id || *j.Protocol != "range" {
		t.Fatalf("classic join: %v gen %d leader %q", kerr.ErrorForCode(j.ErrorCode), j.Generation, j.LeaderID)
	}
	if code, got := sync(id, j.Generation); code != 0 || got.size() != 0 {
		t.Fatalf("classic sync while a holds everything: %v %v", kerr.ErrorForCode(code), got)
	}
	if code := hb(id, j.Generation); code != 0 {
		t.Fatalf("heartbeat: %v", kerr.ErrorForCode(code))
	}
	cgHeartbeat(t, c, a, false) // told to revoke two
	cgHeartbeat(t, c, a, true)  // released them
	if code := hb(id, j.Generation); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat once partitions are free: %v", kerr.ErrorForCode(code))
	}
	j = classicJoin(id)
	code, got := sync(id, j.Generation)
	if code != 0 || got.size() != 2 || got.intersects(a.owned) {
		t.Fatalf("classic member gets the released partitions: %v %v (a has %v)", kerr.ErrorForCode(code), got, a.owned)
	}
	if d := describeCG(t, c); d[:6] != "Stable" {
		t.Fatalf("mixed group: %s", d)
	}
	if code := commitAs(c, 8, "cg", id, j.Generation, got["t"][0], 7); code != 0 {
		t.Fatalf("classic member commits: %v", kerr.ErrorForCode(code))
	}
	if code := commitAs(c, 8, "cg", id, j.Generation-1, got["t"][0], 7); code != kerr.IllegalGeneration.Code {
		t.Fatalf("classic member commits in an old generation: %v", kerr.ErrorForCode(code))
	}

	// a leaves: only a classic member is left, and the group turns classic.
	cgHeartbeat(t, c, &cgMember{id: "a", epoch: -1}, false)
	if code := hb(id, j.Generation); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat after the downgrade: %v", kerr.ErrorForCode(code))
	}
	j = classicJoin(id)
	if j.ErrorCode != 0 || j.LeaderID != id {
		t.Fatalf("classic rejoin after the downgrade: %v leader %q", kerr.ErrorForCode(j.ErrorCode), j.LeaderID)
	}
	r := syncReq(id, j.Generation, map[string][]byte{id: encodeAssignment(assignment{"t": {0, 1, 2, 3}}, nil)})
	r.Group = "cg"
	if code := c.SyncGroup(ctx, r).ErrorCode; code != 0 {
		t.Fatalf("classic leader sync: %v", kerr.ErrorForCode(code))
	}

	// A next-generation member turns the stable classic group back.
	b := &cgMember{id: "b"}
	if resp := cgHeartbeat(t, c, b, true); resp.ErrorCode != 0 {
		t.Fatalf("upgrade: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if code := hb(id, j.Generation); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("classic member after the upgrade: %v", kerr.ErrorForCode(code))
	}
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Version, d.Groups = 1, []string{"cg"}
	g := c.ConsumerGroupDescribe(ctx, d).Groups[0]
	types := map[string]int8{}
	for _, m := range g.Members {
		types[m.MemberID] = m.MemberType
	}
	if g.ErrorCode != 0 || types[id] != 0 || types["b"] != 1 {
		t.Fatalf("describe after the upgrade: %v %v", kerr.ErrorForCode(g.ErrorCode), types)
	}

	// The upgraded group is what a new coordinator reads back.
	before := describeCG(t, c)
	c.Close()
	next, _ := testCoordinator(t, log.Successor(2))
	if after := describeCG(t, next); after != before {
		t.Fatalf("upgraded group changed across fail-over:\n%s\n%s", before, after)
	}
}

// TestMemberThatKeepsPartitionsIsRemoved: a member told to release
// partitions that keeps heartbeating without releasing them is removed
// after its rebalance timeout, and the partitions move on.
func TestMemberThatKeepsPartitionsIsRemoved(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version, r.Group, r.MemberID = 1, "cg", "slow"
	r.RebalanceTimeoutMillis = 300
	r.SubscribedTopicNames = []string{"t"}
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	resp := c.ConsumerGroupHeartbeat(context.Background(), Client{}, r)
	if resp.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	b := &cgMember{id: "b"}
	cgHeartbeat(t, c, b, true)
	keepalive := func() int16 {
		k := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		k.Version, k.Group, k.MemberID, k.MemberEpoch = 1, "cg", "slow", resp.MemberEpoch
		k.RebalanceTimeoutMillis = -1
		return c.ConsumerGroupHeartbeat(context.Background(), Client{}, k).ErrorCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for keepalive() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a member that never released its partitions was never removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := keepalive(); code != kerr.UnknownMemberID.Code {
		t.Fatalf("removed member: %v", kerr.ErrorForCode(code))
	}
	if cgHeartbeat(t, c, b, false); b.owned.size() != 4 {
		t.Fatalf("b owns %v after the slow member was removed", b.owned)
	}
}

// TestEmptyGroupsExpire: an empty group's commits are deleted once older
// than the retention; a group with members keeps them.
func TestEmptyGroupsExpire(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := DefaultConfig()
	cfg.Now, cfg.OffsetsRetention = clock, time.Hour
	c := New(cfg, &oneLeader{log: statelogtest.New(1), topics: map[string]int32{"t": 4}}, nil)
	t.Cleanup(c.Close)
	commitTo := func(group string) {
		if code := commitAs(c, 8, group, "", -1, 0, 5); code != 0 {
			t.Fatalf("commit: %v", kerr.ErrorForCode(code))
		}
	}
	commitTo("idle")
	commitTo("cg")
	cgHeartbeat(t, c, &cgMember{id: "a"}, true) // cg now has a member
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	c.expire()
	listed := c.ListGroups(context.Background(), kmsg.NewPtrListGroupsRequest())
	var names []string
	for _, g := range listed.Groups {
		names = append(names, g.Group)
	}
	if fmt.Sprint(names) != "[cg]" {
		t.Fatalf("groups after expiry: %v, want only the one with a member", names)
	}
}

// TestDeleteConsumerGroup: an empty consumer group is deleted with its
// commits, and stays deleted for the next coordinator; one with members
// is refused.
func TestDeleteConsumerGroup(t *testing.T) {
	log := statelogtest.New(1)
	c, _ := testCoordinator(t, log)
	ctx := context.Background()
	a := &cgMember{id: "a"}
	cgHeartbeat(t, c, a, true)
	if code := commitAs(c, 9, "cg", "a", a.epoch, 0, 3); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"cg"}
	if code := c.DeleteGroups(ctx, del).Groups[0].ErrorCode; code != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete with a member: %v", kerr.ErrorForCode(code))
	}
	cgHeartbeat(t, c, &cgMember{id: "a", epoch: -1}, false)
	if code := c.DeleteGroups(ctx, del).Groups[0].ErrorCode; code != 0 {
		t.Fatalf("delete: %v", kerr.ErrorForCode(code))
	}
	c.Close()
	next, _ := testCoordinator(t, log.Successor(2))
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{"cg"}
	if code := next.ConsumerGroupDescribe(ctx, d).Groups[0].ErrorCode; code != kerr.GroupIDNotFound.Code {
		t.Fatalf("deleted group after fail-over: %v", kerr.ErrorForCode(code))
	}
	if off := fetchedFrom(t, next, "cg", 0); off != -1 {
		t.Fatalf("deleted group's commit is %d after fail-over", off)
	}
}

func fetchedFrom(t *testing.T, c *Coordinator, group string, part int32) int64 {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{part}}}}}
	resp := c.OffsetFetch(context.Background(), r)
	if resp.Groups[0].ErrorCode != 0 {
		t.Fatalf("offset fetch: %v", kerr.ErrorForCode(resp.Groups[0].ErrorCode))
	}
	return resp.Groups[0].Topics[0].Partitions[0].Offset
}
