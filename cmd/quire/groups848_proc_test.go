package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// nextGen opts a franz-go consumer into the next-generation protocol
// (KIP-848): the coordinator assigns, with the uniform assignor for
// franz-go's default cooperative-sticky balancer.
func nextGen() []kgo.Opt {
	return []kgo.Opt{kgo.ServerSideBalancer(), kgo.AutoCommitInterval(500 * time.Millisecond)}
}

// TestHelper848Consumer is not a test: run as a child process by
// TestNextGenGroupRebalances, it is a group member that can be killed -9.
// It prints each value it consumes on a line.
func TestHelper848Consumer(t *testing.T) {
	brokers := os.Getenv("QUIRE_HELPER_848_BROKERS")
	if brokers == "" {
		t.Skip("run by TestNextGenGroupRebalances")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ConsumerGroup(os.Getenv("QUIRE_HELPER_848_GROUP")),
		kgo.ConsumeTopics(os.Getenv("QUIRE_HELPER_848_TOPIC")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ClientID("crash"),
	}, nextGen()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		fs := cl.PollFetches(context.Background())
		fs.EachRecord(func(r *kgo.Record) { fmt.Fprintf(w, "%s\n", r.Value) })
		w.Flush()
	}
}

// startCrashMember runs TestHelper848Consumer in a child process; what it
// consumes goes to log. The returned func kills it with SIGKILL.
func startCrashMember(t *testing.T, bs []*broker, group, topic string, log *consumedLog) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper848Consumer$")
	cmd.Env = append(os.Environ(),
		"QUIRE_HELPER_848_BROKERS="+strings.Join(seeds(bs), ","),
		"QUIRE_HELPER_848_GROUP="+group,
		"QUIRE_HELPER_848_TOPIC="+topic)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v := sc.Text(); strings.Contains(v, "-") && !strings.HasPrefix(v, "PASS") {
				log.add(consumed{member: "crash", value: v})
			}
		}
	}()
	kill := func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(kill)
	return kill
}

// awaitNextGen waits until a next-generation group is stable with
// members members, each assigned partitions no other member holds.
func awaitNextGen(t *testing.T, bs []*broker, group string, members int) kadm.DescribedConsumerGroup {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		g, err := describeNextGen(bs, group)
		if err == nil {
			last = fmt.Sprintf("state %s, epoch %d/%d, %d members", g.State, g.Epoch, g.AssignmentEpoch, len(g.Members))
			if g.State == "Stable" && len(g.Members) == members && disjointAssigned(t, g) {
				return g
			}
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s never became stable with %d members: %s", group, members, last)
	return kadm.DescribedConsumerGroup{}
}

func describeNextGen(bs []*broker, group string) (kadm.DescribedConsumerGroup, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...))
	if err != nil {
		return kadm.DescribedConsumerGroup{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := kadm.NewClient(cl).DescribeConsumerGroups(ctx, group)
	if err != nil {
		return kadm.DescribedConsumerGroup{}, err
	}
	g := gs[group]
	return g, g.Err
}

// disjointAssigned reports whether every member holds partitions and no
// partition is held twice; a double owner fails the test.
func disjointAssigned(t *testing.T, g kadm.DescribedConsumerGroup) bool {
	t.Helper()
	owner := map[string]string{}
	all := true
	for _, m := range g.Members {
		n := 0
		for topic, ps := range m.Assignment {
			for p := range ps {
				key := fmt.Sprintf("%s-%d", topic, p)
				if o, dup := owner[key]; dup {
					t.Fatalf("%s held by %s and %s", key, o, m.MemberID)
				}
				owner[key] = m.MemberID
				n++
			}
		}
		all = all && n > 0
	}
	return all
}

// TestNextGenGroupRebalances: franz-go members speaking KIP-848 share six
// partitions; the group rebalances when a member joins, leaves, and is
// killed -9, and when the coordinator's node is killed -9. Every
// produced record is consumed, and no partition is ever held by two
// members at once.
func TestNextGenGroupRebalances(t *testing.T) {
	bs := startCluster(t, 3, "--group-consumer-session-timeout", "6s")
	adm := kadm.NewClient(mustClient(t, bs))
	createTopicWith(t, adm, time.Minute, "next", 6, 3)
	var log consumedLog
	startFranzMember(t, bs, "ng", "next", "a", &log, nextGen()...)
	b := startFranzMember(t, bs, "ng", "next", "b", &log, nextGen()...)
	kill := startCrashMember(t, bs, "ng", "next", &log)
	g := awaitNextGen(t, bs, "ng", 3)
	if g.AssignorName != "uniform" {
		t.Fatalf("assignor %q, want uniform", g.AssignorName)
	}
	out, err := groupCLI(t, bs, "describe", "ng", "--format", "json")
	if err != nil || !strings.Contains(out, `"type": "consumer"`) || strings.Count(out, `"member_id"`) != 3 || strings.Count(out, `"epoch"`) != 3 {
		t.Fatalf("quire group describe: %v\n%s", err, out)
	}
	if out, err := groupCLI(t, bs, "list"); err != nil || !strings.Contains(out, "consumer") {
		t.Fatalf("quire group list: %v\n%s", err, out)
	}
	var all []string
	produce := func(prefix string, n int) {
		all = append(all, produceValues(t, bs, "next", prefix, n)...)
		awaitDistinct(t, &log, len(all), prefix)
	}
	produce("three", 1200)

	joinedAt := time.Now()
	startFranzMember(t, bs, "ng", "next", "d", &log, nextGen()...)
	awaitNextGen(t, bs, "ng", 4)
	t.Logf("fourth member joined and the group is stable after %s", time.Since(joinedAt).Round(time.Millisecond))
	produce("four", 600)

	leftAt := time.Now()
	b.close()
	awaitNextGen(t, bs, "ng", 3)
	t.Logf("member left and the group is stable after %s", time.Since(leftAt).Round(time.Millisecond))
	produce("left", 600)

	killedAt := time.Now()
	kill()
	awaitNextGen(t, bs, "ng", 2)
	moved := time.Since(killedAt)
	t.Logf("member killed -9; its partitions moved after %s (session timeout 6s)", moved.Round(time.Millisecond))
	if moved > 30*time.Second {
		t.Fatalf("partitions moved after %s, session timeout is 6s", moved)
	}
	produce("crashed", 600)

	coord := coordinatorOf(t, bs, "ng")
	for _, br := range bs {
		if int32(br.id) == coord {
			br.kill9()
		}
	}
	t.Logf("killed coordinator node %d", coord)
	produce("failover", 600)
	awaitNextGen(t, bs, "ng", 2)
	checkAllConsumed(t, &log, all)
}

// TestClassicAndNextGenMembersShareAGroup: a classic group of a sarama and
// a franz-go member (range) turns into a next-generation group when a
// KIP-848 franz-go member joins; the classic members keep consuming, now
// assigned by the coordinator, with no partition held twice. When the
// next-generation member leaves, the group turns classic again and
// rebalances. Every record is consumed throughout.
func TestClassicAndNextGenMembersShareAGroup(t *testing.T) {
	bs := startCluster(t, 3, "--group-initial-rebalance-delay", "500ms", "--group-consumer-session-timeout", "6s")
	adm := kadm.NewClient(mustClient(t, bs))
	createTopicWith(t, adm, time.Minute, "blend", 6, 3)
	var log consumedLog
	startSaramaMember(t, bs, "blend", "blend", &log)
	startFranzMember(t, bs, "blend", "blend", "classic", &log, kgo.Balancers(kgo.RangeBalancer()), kgo.AutoCommitInterval(500*time.Millisecond))
	awaitGroup(t, bs, "blend", 2)
	var all []string
	produce := func(prefix string, n int) {
		all = append(all, produceValues(t, bs, "blend", prefix, n)...)
		awaitDistinct(t, &log, len(all), prefix)
	}
	produce("classic", 600)

	next := startFranzMember(t, bs, "blend", "blend", "nextgen", &log, nextGen()...)
	g := awaitNextGen(t, bs, "blend", 3)
	types := map[string]int{}
	for _, m := range g.Members {
		types[m.ClientID]++
	}
	t.Logf("upgraded to a next-generation group, epoch %d, members by client: %v", g.Epoch, types)
	produce("mixed", 1200)

	next.close()
	awaitGroup(t, bs, "blend", 2)
	if _, err := describeNextGen(bs, "blend"); err == nil {
		t.Fatal("the group is still a next-generation group after its last next-generation member left")
	}
	produce("downgraded", 600)
	checkAllConsumed(t, &log, all)
}

// checkAllConsumed fails unless every value was received at least once.
func checkAllConsumed(t *testing.T, log *consumedLog, values []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range log.snapshot() {
		seen[c.value] = true
	}
	for _, v := range values {
		if !seen[v] {
			t.Fatalf("%s was never consumed", v)
		}
	}
}

// TestNextGenGroupBadInput: malformed ConsumerGroupHeartbeats over the
// wire get Kafka's error codes, the connection stays open, and the
// group's member is undisturbed.
func TestNextGenGroupBadInput(t *testing.T) {
	b := newBroker(t)
	bs := []*broker{b}
	createTopic(t, b.kafkaAddr, "bad848", 2)
	var log consumedLog
	startFranzMember(t, bs, "intact848", "bad848", "member", &log, nextGen()...)
	before := awaitNextGen(t, bs, "intact848", 1)

	conn := mustClient(t, bs).Broker(1)
	ctx := testCtx(t, 2*time.Minute)
	heartbeat := func(mod func(r *kmsg.ConsumerGroupHeartbeatRequest)) int16 {
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Group, r.MemberID, r.MemberEpoch = "intact848", "intruder", 0
		r.RebalanceTimeoutMillis = 10000
		r.SubscribedTopicNames = []string{"bad848"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		mod(r)
		resp, err := conn.Request(ctx, r)
		if err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		return resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode
	}
	for _, c := range []struct {
		what string
		mod  func(r *kmsg.ConsumerGroupHeartbeatRequest)
		want *kerr.Error
	}{
		{"empty member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"oversized group id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = strings.Repeat("g", 300) }, kerr.InvalidGroupID},
		{"invalid regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("(unclosed") }, kerr.InvalidRegularExpression},
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("magic") }, kerr.UnsupportedAssignor},
		{"owned partitions on join", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}
		}, kerr.InvalidRequest},
		{"epoch from the future", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.MemberID, r.MemberEpoch = before.Members[0].MemberID, 9999
		}, kerr.FencedMemberEpoch},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 3 }, kerr.UnknownMemberID},
	} {
		if got := heartbeat(c.mod); got != c.want.Code {
			t.Errorf("%s: %v, want %v", c.what, kerr.ErrorForCode(got), c.want)
		}
	}
	if _, err := conn.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatalf("connection after bad input: %v", err)
	}
	after := awaitNextGen(t, bs, "intact848", 1)
	if after.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("member %s replaced by %s", before.Members[0].MemberID, after.Members[0].MemberID)
	}
}
