package groups

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/statelog/statelogtest"
)

type memLog = statelogtest.MemLog

// oneLeader leads a single __consumer_offsets partition.
type oneLeader struct {
	log    *memLog
	topics map[string]int32
}

func (o *oneLeader) Partitions() int32 { return 1 }
func (o *oneLeader) Leading(int32) (Log, error) {
	if o.log == nil {
		return nil, kerr.NotCoordinator
	}
	return o.log, nil
}
func (o *oneLeader) PartitionCount(t string) int32 {
	if n, ok := o.topics[t]; ok {
		return n
	}
	return -1
}

func (o *oneLeader) AddToTxn(context.Context, string, int64, int16, int32) error { return nil }

// Topics is made anew on every call, so a test may change o.topics.
func (o *oneLeader) Topics() *TopicSet {
	set := &TopicSet{}
	for name, n := range o.topics {
		set.Topics = append(set.Topics, TopicInfo{Name: name, ID: topicID(name), Partitions: n, Internal: name == Topic})
	}
	return set
}

// topicID is a test topic's id: its name, padded.
func topicID(name string) (id [16]byte) {
	copy(id[:], name)
	return id
}

func testCoordinator(t *testing.T, log *memLog) (*Coordinator, *oneLeader) {
	cfg := DefaultConfig()
	cfg.MinSessionTimeout = 100 * time.Millisecond
	cfg.InitialRebalanceDelay = 300 * time.Millisecond
	cl := &oneLeader{log: log, topics: map[string]int32{"t": 4}}
	c := New(cfg, cl, nil)
	t.Cleanup(c.Close)
	return c, cl
}

func subscription(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func joinReq(member string, instance *string, session time.Duration) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID, r.InstanceID = "g", member, instance
	r.SessionTimeoutMillis = int32(session.Milliseconds())
	r.RebalanceTimeoutMillis = 5000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: subscription("t")}}
	return r
}

// join runs the MEMBER_ID_REQUIRED round and returns the joined answer.
func join(t *testing.T, c *Coordinator, member string) *kmsg.JoinGroupResponse {
	t.Helper()
	ctx := context.Background()
	if member == "" {
		r := c.JoinGroup(ctx, Client{ID: "c"}, joinReq("", nil, 10*time.Second))
		if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
			t.Fatalf("first join: code %d member %q", r.ErrorCode, r.MemberID)
		}
		member = r.MemberID
	}
	return c.JoinGroup(ctx, Client{ID: "c"}, joinReq(member, nil, 10*time.Second))
}

func syncReq(member string, gen int32, assign map[string][]byte) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = "g", member, gen
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return r
}

// formTwo has two members join and sync; it returns their ids, leader
// first, and the generation.
func formTwo(t *testing.T, c *Coordinator) (string, string, int32) {
	t.Helper()
	var wg sync.WaitGroup
	resps := make([]*kmsg.JoinGroupResponse, 2)
	for i := range resps {
		wg.Add(1)
		go func() { defer wg.Done(); resps[i] = join(t, c, "") }()
	}
	wg.Wait()
	for _, r := range resps {
		if r.ErrorCode != 0 {
			t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	}
	if resps[0].LeaderID != resps[1].LeaderID || resps[0].Generation != resps[1].Generation {
		t.Fatalf("members disagree: %+v %+v", resps[0], resps[1])
	}
	leader, follower := resps[0], resps[1]
	if follower.MemberID == follower.LeaderID {
		leader, follower = follower, leader
	}
	if len(leader.Members) != 2 || len(follower.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(leader.Members), len(follower.Members))
	}
	gen := leader.Generation
	done := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { done <- c.SyncGroup(context.Background(), syncReq(follower.MemberID, gen, nil)) }()
	lr := c.SyncGroup(context.Background(), syncReq(leader.MemberID, gen, map[string][]byte{leader.MemberID: []byte("L"), follower.MemberID: []byte("F")}))
	fr := <-done
	if lr.ErrorCode != 0 || fr.ErrorCode != 0 || string(lr.MemberAssignment) != "L" || string(fr.MemberAssignment) != "F" {
		t.Fatalf("sync: leader %d %q follower %d %q", lr.ErrorCode, lr.MemberAssignment, fr.ErrorCode, fr.MemberAssignment)
	}
	return leader.MemberID, follower.MemberID, gen
}

func heartbeat(c *Coordinator, member string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Group, r.MemberID, r.Generation = "g", member, gen
	return c.Heartbeat(context.Background(), r).ErrorCode
}

func commit(c *Coordinator, member string, gen int32, part int32, off int64) int16 {
	return commitAs(c, 8, "g", member, gen, part, off)
}

// commitAs commits one offset of topic t and returns the partition's code.
func commitAs(c *Coordinator, version int16, group, member string, gen int32, part int32, off int64) int16 {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.MemberID, r.Generation = version, group, member, gen
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: -1}}}}
	return c.OffsetCommit(context.Background(), r).Topics[0].Partitions[0].ErrorCode
}

func fetched(t *testing.T, c *Coordinator, part int32) int64 {
	t.Helper()
	return fetchedFrom(t, c, "g", part)
}

func TestJoinSyncCommitAndFencing(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	leader, follower, gen := formTwo(t, c)
	if code := heartbeat(c, follower, gen); code != 0 {
		t.Fatalf("heartbeat: %v", kerr.ErrorForCode(code))
	}
	if code := commit(c, leader, gen, 2, 42); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	if got := fetched(t, c, 2); got != 42 {
		t.Fatalf("fetched offset %d, want 42", got)
	}
	cases := []struct {
		name   string
		member string
		gen    int32
		part   int32
		want   *kerr.Error
	}{
		{"stale generation", leader, gen - 1, 1, kerr.IllegalGeneration},
		{"unknown member", "nobody", gen, 1, kerr.UnknownMemberID},
		{"unknown partition", leader, gen, 9, kerr.UnknownTopicOrPartition},
	}
	for _, tc := range cases {
		if code := commit(c, tc.member, tc.gen, tc.part, 7); code != tc.want.Code {
			t.Errorf("%s: got %v, want %v", tc.name, kerr.ErrorForCode(code), tc.want)
		}
	}
	if got := fetched(t, c, 2); got != 42 {
		t.Fatalf("refused commits moved the offset to %d", got)
	}
	if code := heartbeat(c, follower, gen+1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("heartbeat of a wrong generation: %v", kerr.ErrorForCode(code))
	}
}

func TestNewLeaderRebuildsGroups(t *testing.T) {
	log := statelogtest.New(1)
	c, _ := testCoordinator(t, log)
	leader, follower, gen := formTwo(t, c)
	if code := commit(c, follower, gen, 0, 100); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	c.Close()

	// The same log under a new epoch, as a new leader sees it.
	next := log.Successor(2)
	c2, _ := testCoordinator(t, next)
	if got := fetched(t, c2, 0); got != 100 {
		t.Fatalf("rebuilt offset %d, want 100", got)
	}
	for _, m := range []string{leader, follower} {
		if code := heartbeat(c2, m, gen); code != 0 {
			t.Fatalf("member %s after fail-over: %v", m, kerr.ErrorForCode(code))
		}
	}
	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Groups = []string{"g"}
	dg := c2.DescribeGroups(context.Background(), d).Groups[0]
	if dg.State != "Stable" || len(dg.Members) != 2 || dg.Protocol != "range" {
		t.Fatalf("rebuilt group: state %s, %d members, protocol %q", dg.State, len(dg.Members), dg.Protocol)
	}
}

func TestLostLeadershipAnswersNotCoordinator(t *testing.T) {
	c, cl := testCoordinator(t, statelogtest.New(1))
	leader, _, gen := formTwo(t, c)
	cl.log = nil
	if code := heartbeat(c, leader, gen); code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat after losing leadership: %v", kerr.ErrorForCode(code))
	}
}

func TestExpiredMemberTriggersRebalance(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	ctx := context.Background()
	r := c.JoinGroup(ctx, Client{ID: "a"}, joinReq("", nil, 200*time.Millisecond))
	a := c.JoinGroup(ctx, Client{ID: "a"}, joinReq(r.MemberID, nil, 200*time.Millisecond))
	if a.ErrorCode != 0 || a.Generation != 1 {
		t.Fatalf("join: %v gen %d", kerr.ErrorForCode(a.ErrorCode), a.Generation)
	}
	c.SyncGroup(ctx, syncReq(a.MemberID, 1, map[string][]byte{a.MemberID: []byte("x")}))
	// b joins; a stops heartbeating, so the join phase ends without it
	// once its session expires... but a is owed nothing, so it expires.
	b := join(t, c, "")
	if b.ErrorCode != 0 || b.LeaderID != b.MemberID || len(b.Members) != 1 {
		t.Fatalf("join after expiry: %v leader %s members %d", kerr.ErrorForCode(b.ErrorCode), b.LeaderID, len(b.Members))
	}
	if code := heartbeat(c, a.MemberID, a.Generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("expired member's heartbeat: %v", kerr.ErrorForCode(code))
	}
}

func TestStaticMemberTakesItsPlace(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	ctx := context.Background()
	inst := kmsg.StringPtr("i-1")
	a := c.JoinGroup(ctx, Client{ID: "a"}, joinReq("", inst, 10*time.Second))
	if a.ErrorCode != 0 {
		t.Fatalf("static join: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	o := kmsg.NewPtrJoinGroupRequest()
	*o = *joinReq("", kmsg.StringPtr("i-2"), 10*time.Second)
	done := make(chan *kmsg.JoinGroupResponse)
	go func() { done <- c.JoinGroup(ctx, Client{ID: "b"}, o) }()
	waitState(t, c, "PreparingRebalance")
	// a rejoins to take part in the rebalance b started.
	a2 := c.JoinGroup(ctx, Client{ID: "a"}, joinReq(a.MemberID, inst, 10*time.Second))
	b := <-done
	if a2.ErrorCode != 0 || b.ErrorCode != 0 {
		t.Fatalf("joins: %v %v", kerr.ErrorForCode(a2.ErrorCode), kerr.ErrorForCode(b.ErrorCode))
	}
	follower := b
	if b.MemberID == b.LeaderID {
		follower = a2
	}
	go c.SyncGroup(ctx, syncReq(follower.MemberID, follower.Generation, nil))
	leaderID := b.LeaderID
	c.SyncGroup(ctx, syncReq(leaderID, b.Generation, map[string][]byte{a2.MemberID: []byte("A"), b.MemberID: []byte("B")}))

	// The follower restarts with the same instance id and no member id.
	inst2 := follower.MemberID == b.MemberID
	id := inst
	if inst2 {
		id = kmsg.StringPtr("i-2")
	}
	re := c.JoinGroup(ctx, Client{ID: "x"}, joinReq("", id, 10*time.Second))
	if re.ErrorCode != 0 || re.Generation != follower.Generation || re.MemberID == follower.MemberID {
		t.Fatalf("static rejoin: %v gen %d (was %d) member %s", kerr.ErrorForCode(re.ErrorCode), re.Generation, follower.Generation, re.MemberID)
	}
	if code := heartbeat(c, follower.MemberID, follower.Generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("replaced member id: %v", kerr.ErrorForCode(code))
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "g", follower.MemberID, follower.Generation, id
	if code := c.Heartbeat(ctx, hb).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Fatalf("old instance member: %v, want FENCED_INSTANCE_ID", kerr.ErrorForCode(code))
	}
}

func TestBadJoinsLeaveTheGroupAlone(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	leader, follower, gen := formTwo(t, c)
	ctx := context.Background()
	bad := []func(r *kmsg.JoinGroupRequest){
		func(r *kmsg.JoinGroupRequest) { r.Group = "" },
		func(r *kmsg.JoinGroupRequest) { r.Group = string(make([]byte, 300)) },
		func(r *kmsg.JoinGroupRequest) { r.Protocols[0].Metadata = []byte{0, 1, 2} },
		func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "" },
		func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 1 },
		func(r *kmsg.JoinGroupRequest) { r.MemberID = "stranger" },
		func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "connect" },
	}
	for i, mutate := range bad {
		r := joinReq("", nil, 10*time.Second)
		mutate(r)
		if resp := c.JoinGroup(ctx, Client{ID: "bad"}, r); resp.ErrorCode == 0 || resp.ErrorCode == kerr.MemberIDRequired.Code {
			t.Errorf("bad join %d accepted: %v", i, kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	for _, m := range []string{leader, follower} {
		if code := heartbeat(c, m, gen); code != 0 {
			t.Fatalf("group disturbed: %v", kerr.ErrorForCode(code))
		}
	}
}

func TestDeleteGroupNeedsEmpty(t *testing.T) {
	c, _ := testCoordinator(t, statelogtest.New(1))
	leader, follower, gen := formTwo(t, c)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g", "missing"}
	resp := c.DeleteGroups(context.Background(), del)
	if resp.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code || resp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete: %v %v", kerr.ErrorForCode(resp.Groups[0].ErrorCode), kerr.ErrorForCode(resp.Groups[1].ErrorCode))
	}
	commit(c, leader, gen, 1, 5)
	for _, m := range []string{leader, follower} {
		l := kmsg.NewPtrLeaveGroupRequest()
		l.Version = 4
		l.Group = "g"
		l.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m}}
		if code := c.LeaveGroup(context.Background(), l).Members[0].ErrorCode; code != 0 {
			t.Fatalf("leave: %v", kerr.ErrorForCode(code))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = c.DeleteGroups(context.Background(), del)
		if resp.Groups[0].ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delete of an empty group: %v", kerr.ErrorForCode(resp.Groups[0].ErrorCode))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fetched(t, c, 1); got != -1 {
		t.Fatalf("deleted group's offset %d", got)
	}
}

func waitState(t *testing.T, c *Coordinator, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := c.DescribeGroups(context.Background(), &kmsg.DescribeGroupsRequest{Groups: []string{"g"}})
		if d.Groups[0].State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group state %s, want %s", d.Groups[0].State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
