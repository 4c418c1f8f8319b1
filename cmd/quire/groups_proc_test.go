package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/cluster/groups"
)

// consumed is one record a group member received.
type consumed struct {
	member    string
	partition int32
	offset    int64
	value     string
}

// consumedLog gathers what every member of a test's groups received.
type consumedLog struct {
	mu   sync.Mutex
	recs []consumed
}

func (l *consumedLog) add(c consumed) {
	l.mu.Lock()
	l.recs = append(l.recs, c)
	l.mu.Unlock()
}

func (l *consumedLog) snapshot() []consumed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]consumed(nil), l.recs...)
}

// distinct is how many different values were received.
func (l *consumedLog) distinct() int {
	seen := map[string]bool{}
	for _, c := range l.snapshot() {
		seen[c.value] = true
	}
	return len(seen)
}

// franzMember is one franz-go group consumer polling in the background,
// committing with franz-go's defaults (autocommit, commit on revoke).
type franzMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startFranzMember(t *testing.T, bs []*broker, group, topic, name string, log *consumedLog, opts ...kgo.Opt) *franzMember {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds(bs)...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ClientID(name),
	}
	if os.Getenv("QUIRE_TEST_CLIENT_LOG") != "" {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + " " })))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &franzMember{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				log.add(consumed{member: name, partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			})
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close leaves the group (franz-go commits and sends LeaveGroup).
func (m *franzMember) close() {
	select {
	case <-m.done:
		return
	default:
	}
	m.cancel()
	<-m.done
	m.cl.Close()
}

// produceValues produces n distinct values to topic with acks=all and
// franz-go's defaults, and returns them.
func produceValues(t *testing.T, bs []*broker, topic, prefix string, n int) []string {
	t.Helper()
	// Round robin spreads the records over every partition (the default
	// sticky partitioner would put a synchronous burst in one).
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	values := make([]string, n)
	recs := make([]*kgo.Record, n)
	for i := range values {
		values[i] = fmt.Sprintf("%s-%06d", prefix, i)
		recs[i] = kgo.StringRecord(values[i])
	}
	if err := cl.ProduceSync(testCtx(t, 2*time.Minute), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return values
}

// awaitGroup waits until a group is stable with members members, each
// assigned at least one partition.
func awaitGroup(t *testing.T, bs []*broker, group string, members int) kadm.DescribedGroup {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		described, err := describeGroup(bs, group)
		if err == nil {
			g := described[group]
			last = fmt.Sprintf("state %s, %d members, err %v", g.State, len(g.Members), g.Err)
			if g.Err == nil && g.State == "Stable" && len(g.Members) == members && everyMemberAssigned(g) {
				return g
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s never became stable with %d assigned members: %s", group, members, last)
	return kadm.DescribedGroup{}
}

// describeGroup asks with a new client each time: franz-go keeps a
// group's coordinator cached through failed dials of sharded requests,
// so a client that knew the killed coordinator would keep dialling it.
func describeGroup(bs []*broker, group string) (kadm.DescribedGroups, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return kadm.NewClient(cl).DescribeGroups(ctx, group)
}

func everyMemberAssigned(g kadm.DescribedGroup) bool {
	for _, m := range g.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		n := 0
		for _, t := range ca.Topics {
			n += len(t.Partitions)
		}
		if n == 0 {
			return false
		}
	}
	return true
}

// awaitDistinct waits until log holds want distinct values.
func awaitDistinct(t *testing.T, log *consumedLog, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for log.distinct() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: consumed %d distinct records of %d", what, log.distinct(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkExactlyOnce fails unless every value was received exactly once.
func checkExactlyOnce(t *testing.T, log *consumedLog, values []string, what string) {
	t.Helper()
	count := map[string]int{}
	for _, c := range log.snapshot() {
		count[c.value]++
	}
	for _, v := range values {
		if count[v] != 1 {
			t.Fatalf("%s: %s received %d times", what, v, count[v])
		}
	}
	if len(count) != len(values) {
		t.Fatalf("%s: received %d distinct values, produced %d", what, len(count), len(values))
	}
}

// groupCLI runs `quire group ...` against the cluster.
func groupCLI(t *testing.T, bs []*broker, args ...string) (string, error) {
	t.Helper()
	all := append([]string{"group", "--brokers", strings.Join(seeds(bs), ",")}, args...)
	out, err := exec.Command(quireBinary(t), all...).CombinedOutput()
	return string(out), err
}

// TestConsumerGroupsSteadyStateAndFanOut: three franz-go members of one
// group on six partitions each get their share, and every record is
// consumed by exactly one of them; a second group on the same topic
// receives every record too. The CLI then shows both groups and no lag.
func TestConsumerGroupsSteadyStateAndFanOut(t *testing.T) {
	bs := startCluster(t, 3, "--group-initial-rebalance-delay", "500ms")
	adm := kadm.NewClient(mustClient(t, bs))
	createTopicWith(t, adm, time.Minute, "orders", 6, 3)

	var steady, fanout consumedLog
	for i := 0; i < 3; i++ {
		startFranzMember(t, bs, "steady", "orders", fmt.Sprintf("steady-%d", i), &steady)
	}
	startFranzMember(t, bs, "fanout", "orders", "fanout-0", &fanout)
	g := awaitGroup(t, bs, "steady", 3)
	awaitGroup(t, bs, "fanout", 1)
	t.Logf("steady group: protocol %s", g.Protocol)

	values := produceValues(t, bs, "orders", "steady", 3000)
	awaitDistinct(t, &steady, len(values), "steady group")
	awaitDistinct(t, &fanout, len(values), "fan-out group")
	checkExactlyOnce(t, &steady, values, "steady group")
	checkExactlyOnce(t, &fanout, values, "fan-out group")
	perMember := map[string]int{}
	for _, c := range steady.snapshot() {
		perMember[c.member]++
	}
	if len(perMember) != 3 {
		t.Fatalf("records went to %d members, want 3: %v", len(perMember), perMember)
	}

	out, err := groupCLI(t, bs, "list", "--format", "json")
	if err != nil {
		t.Fatalf("group list: %v\n%s", err, out)
	}
	var listed []client.GroupSummary
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("group list: %v\n%s", err, out)
	}
	// Autocommit runs every 5 s; lag reaches 0 once it has.
	deadline := time.Now().Add(time.Minute)
	for {
		out, err = groupCLI(t, bs, "describe", "steady", "--format", "json")
		var d []client.GroupDetail
		if err == nil && json.Unmarshal([]byte(out), &d) == nil && len(d) == 1 && d[0].TotalLag == 0 && len(d[0].Partitions) == 6 && len(d[0].Members) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group describe never showed 6 partitions, 3 members and no lag: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	checkLagEndpoints(t, bs, "steady", 3)
}

// checkLagEndpoints finds the group on the admin API of exactly one
// broker, its coordinator, with no lag there and in its metrics.
func checkLagEndpoints(t *testing.T, bs []*broker, group string, members int) {
	t.Helper()
	found := 0
	for _, b := range bs {
		var lags []groups.GroupLag
		if err := getJSON("http://"+b.adminAddr+"/v1/groups?group="+group, &lags); err != nil {
			t.Fatalf("broker %d /v1/groups: %v", b.id, err)
		}
		if len(lags) == 0 {
			continue
		}
		found++
		l := lags[0]
		if l.Members != members || l.TotalLag != 0 || len(l.Partitions) == 0 || l.Partitions[0].LogEnd < 0 {
			t.Fatalf("broker %d /v1/groups: %+v", b.id, l)
		}
		url := "http://" + b.adminAddr + "/metrics"
		for _, series := range []string{`quire_group_lag_sum{group="` + group + `"}`, `quire_group_lag_max{group="` + group + `"}`} {
			if v, err := metricValue(url, series); err != nil || v != 0 {
				t.Fatalf("broker %d %s: %v %v", b.id, series, v, err)
			}
		}
		if v, err := metricValue(url, `quire_group_members{group="`+group+`"}`); err != nil || v != float64(members) {
			t.Fatalf("broker %d members metric: %v %v", b.id, v, err)
		}
	}
	if found != 1 {
		t.Fatalf("group %s reported by %d brokers, want its coordinator alone", group, found)
	}
}

func mustClient(t *testing.T, bs []*broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds(bs)...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// offsetWatch polls a group's committed offsets and records any that
// moved backwards.
type offsetWatch struct {
	mu        sync.Mutex
	max       map[int32]int64
	backwards []string
	stop      chan struct{}
	done      chan struct{}
}

func watchOffsets(bs []*broker, group, topic string) *offsetWatch {
	w := &offsetWatch{max: map[int32]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			// A new client each time, as describeGroup explains.
			offs, err := fetchOffsets(bs, group)
			if err != nil || offs.Error() != nil {
				continue
			}
			w.mu.Lock()
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic != topic {
					return
				}
				if prev, ok := w.max[o.Partition]; ok && o.At < prev {
					w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d after %d", o.Partition, o.At, prev))
				}
				if o.At > w.max[o.Partition] {
					w.max[o.Partition] = o.At
				}
			})
			w.mu.Unlock()
		}
	}()
	return w
}

func fetchOffsets(bs []*broker, group string) (kadm.OffsetResponses, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return kadm.NewClient(cl).FetchOffsets(ctx, group)
}

func (w *offsetWatch) finish(t *testing.T) map[int32]int64 {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.backwards) > 0 {
		t.Fatalf("committed offsets moved backwards: %v", w.backwards)
	}
	return w.max
}

// coordinatorOf is the broker that coordinates a group now.
func coordinatorOf(t *testing.T, bs []*broker, group string) int32 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		described, err := describeGroup(bs, group)
		if err == nil && described[group].Err == nil {
			return described[group].Coordinator.NodeID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coordinator for %s: %v", group, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsumerGroupSurvivesMemberAndCoordinatorKill: a member that stops
// heartbeating (a static member, which leaves no LeaveGroup behind) has
// its partitions moved to the others within the session timeout, and
// with committed offsets nothing is skipped. Then the coordinator's node
// is killed with SIGKILL: the group recovers on the new coordinator, its
// commits intact and never moved backwards.
func TestConsumerGroupSurvivesMemberAndCoordinatorKill(t *testing.T) {
	bs := startCluster(t, 3, "--group-initial-rebalance-delay", "500ms")
	adm := kadm.NewClient(mustClient(t, bs))
	createTopicWith(t, adm, time.Minute, "events", 6, 3)
	var log consumedLog
	session := kgo.SessionTimeout(6 * time.Second)
	crash := startFranzMember(t, bs, "survivors", "events", "crash", &log, session, kgo.InstanceID("crash-1"), kgo.AutoCommitInterval(500*time.Millisecond))
	for i := 0; i < 2; i++ {
		startFranzMember(t, bs, "survivors", "events", fmt.Sprintf("keeper-%d", i), &log, session, kgo.AutoCommitInterval(500*time.Millisecond))
	}
	awaitGroup(t, bs, "survivors", 3)
	watch := watchOffsets(bs, "survivors", "events")
	values := produceValues(t, bs, "events", "first", 2000)
	awaitDistinct(t, &log, len(values), "before the kill")

	// A static member's Close sends no LeaveGroup: to the coordinator it
	// is a crash.
	killedAt := time.Now()
	crash.close()
	awaitGroup(t, bs, "survivors", 2)
	moved := time.Since(killedAt)
	t.Logf("partitions of the stopped member moved after %s (session timeout 6s)", moved.Round(time.Millisecond))
	if moved > 20*time.Second {
		t.Fatalf("partitions moved after %s, session timeout is 6s", moved)
	}
	more := produceValues(t, bs, "events", "second", 1000)
	awaitDistinct(t, &log, len(values)+len(more), "after the member stopped")

	coord := coordinatorOf(t, bs, "survivors")
	var victim *broker
	for _, b := range bs {
		if int32(b.id) == coord {
			victim = b
		}
	}
	before := watch.snapshot()
	victim.kill9()
	t.Logf("killed coordinator node %d", coord)
	last := produceValues(t, bs, "events", "third", 1000)
	awaitDistinct(t, &log, len(values)+len(more)+len(last), "after the coordinator was killed")
	if newCoord := coordinatorOf(t, bs, "survivors"); newCoord == coord {
		t.Fatalf("coordinator is still the killed node %d", coord)
	}
	awaitGroup(t, bs, "survivors", 2)
	// The new coordinator takes commits: they reach the end of the log.
	total := int64(len(values) + len(more) + len(last))
	deadline := time.Now().Add(time.Minute)
	for {
		var sum int64
		if offs, err := fetchOffsets(bs, "survivors"); err == nil {
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		}
		if sum == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commits cover %d records after the fail-over, want %d", sum, total)
		}
		time.Sleep(250 * time.Millisecond)
	}
	after := watch.finish(t)
	for p, off := range before {
		if after[p] < off {
			t.Fatalf("partition %d: commit %d after the fail-over, %d before", p, after[p], off)
		}
	}
}

func (w *offsetWatch) snapshot() map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int32]int64, len(w.max))
	for p, o := range w.max {
		out[p] = o
	}
	return out
}

// saramaMember consumes with sarama's consumer group (its defaults: the
// range assignor).
type saramaMember struct{ log *consumedLog }

func (saramaMember) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (m saramaMember) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.log.add(consumed{member: "sarama", partition: msg.Partition, offset: msg.Offset, value: string(msg.Value)})
		s.MarkMessage(msg, "")
	}
	return nil
}

// TestMixedClientsShareOneGroup: a sarama member (V4_0_0_0) and a
// franz-go member share one classic group on the range protocol, then a
// kcat (librdkafka) member joins the same topic in a group of its own;
// every record is consumed once per group. With the members gone, the
// CLI seeks the group back to the start, and refuses while one is
// active.
// startSaramaMember runs a sarama group member (V4_0_0_0, its default
// range assignor, autocommit every 500ms) until the returned func, which
// the test's cleanup also calls, stops it.
func startSaramaMember(t *testing.T, bs []*broker, group, topic string, log *consumedLog) func() {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 500 * time.Millisecond
	sg, err := sarama.NewConsumerGroup(seeds(bs), group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := sg.Consume(ctx, []string{topic}, saramaMember{log}); err != nil && ctx.Err() == nil {
				t.Logf("sarama consume: %v", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			sg.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestMixedClientsShareOneGroup(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not installed (.ci/run installs it): ", err)
	}
	bs := startCluster(t, 3, "--group-initial-rebalance-delay", "500ms")
	adm := kadm.NewClient(mustClient(t, bs))
	createTopicWith(t, adm, time.Minute, "mixed", 4, 3)

	var log consumedLog
	stopSarama := startSaramaMember(t, bs, "mixed", "mixed", &log)
	franz := startFranzMember(t, bs, "mixed", "mixed", "franz", &log,
		kgo.Balancers(kgo.RangeBalancer()), kgo.AutoCommitInterval(500*time.Millisecond))
	g := awaitGroup(t, bs, "mixed", 2)
	if g.Protocol != "range" {
		t.Fatalf("mixed group chose %q, want range", g.Protocol)
	}
	values := produceValues(t, bs, "mixed", "mixed", 2000)
	awaitDistinct(t, &log, len(values), "mixed group")
	checkExactlyOnce(t, &log, values, "mixed group")
	byClient := map[string]int{}
	for _, c := range log.snapshot() {
		byClient[c.member]++
	}
	if byClient["sarama"] == 0 || byClient["franz"] == 0 {
		t.Fatalf("records per client: %v", byClient)
	}

	kcatLines := kcatGroupConsume(t, bs, "kcat-group", "mixed", len(values))
	sort.Strings(kcatLines)
	want := append([]string(nil), values...)
	sort.Strings(want)
	if strings.Join(kcatLines, ",") != strings.Join(want, ",") {
		t.Fatalf("kcat -G consumed %d records, not the %d produced", len(kcatLines), len(want))
	}

	if out, err := groupCLI(t, bs, "seek", "mixed", "--to", "start"); err == nil || !strings.Contains(out, "active members") {
		t.Fatalf("seek of an active group was not refused: %v\n%s", err, out)
	}
	franz.close()
	stopSarama()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := groupCLI(t, bs, "seek", "mixed", "--to", "start", "--format", "json")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seek of the emptied group: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	offs, err := adm.FetchOffsets(testCtx(t, 30*time.Second), "mixed")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	offs.Each(func(o kadm.OffsetResponse) {
		n++
		if o.At != 0 {
			t.Errorf("partition %d committed at %d after seeking to the start", o.Partition, o.At)
		}
	})
	if n != 4 {
		t.Fatalf("%d partitions committed, want 4", n)
	}
}

// kcatGroupConsume runs kcat -G until it has printed want records, then
// kills it, and returns the values it printed.
func kcatGroupConsume(t *testing.T, bs []*broker, group, topic string, want int) []string {
	t.Helper()
	cmd := exec.Command("kcat", "-b", strings.Join(seeds(bs), ","), "-G", group, "-o", "beginning",
		"-X", "session.timeout.ms=6000", "-u", "-f", "%s\n", topic)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, want)
	go func() {
		buf := make([]byte, 0, 64*1024)
		tmp := make([]byte, 32*1024)
		for {
			n, err := stdout.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				select {
				case lines <- string(buf[:i]):
				default:
				}
				buf = buf[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	var got []string
	timeout := time.After(2 * time.Minute)
	for len(got) < want {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kcat -G exited after %d records: %s", len(got), stderr.String())
			}
			got = append(got, l)
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kcat -G printed %d of %d records: %s", len(got), want, stderr.String())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return got
}

// TestGroupBadInput: bad group requests get Kafka error codes, on a
// connection that stays up, and the group they aim at keeps its member
// and generation.
func TestGroupBadInput(t *testing.T) {
	b := newBroker(t, "--group-initial-rebalance-delay", "200ms", "--group-max-size", "50")
	bs := []*broker{b}
	createTopic(t, b.kafkaAddr, "bad", 2)
	var log consumedLog
	startFranzMember(t, bs, "intact", "bad", "member", &log)
	before := awaitGroup(t, bs, "intact", 1)
	memberID := before.Members[0].MemberID

	cl := mustClient(t, bs)
	conn := cl.Broker(1)
	ctx := testCtx(t, 2*time.Minute)
	join := func(group, member string, metadata []byte) int16 {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group, r.MemberID = group, member
		r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 10000
		r.ProtocolType = "consumer"
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "cooperative-sticky", Metadata: metadata}}
		resp, err := conn.Request(ctx, r)
		if err != nil {
			t.Fatalf("join %q: %v", group, err)
		}
		return resp.(*kmsg.JoinGroupResponse).ErrorCode
	}
	good := kmsg.NewConsumerMemberMetadata()
	good.Topics = []string{"bad"}
	expect := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		if got != want.Code {
			t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	expect("empty group id", join("", "", good.AppendTo(nil)), kerr.InvalidGroupID)
	expect("oversized group id", join(strings.Repeat("g", 300), "", good.AppendTo(nil)), kerr.InvalidGroupID)
	expect("garbage protocol metadata", join("intact", "", []byte{0, 9, 9}), kerr.InconsistentGroupProtocol)
	expect("unknown member", join("intact", "stranger", good.AppendTo(nil)), kerr.UnknownMemberID)

	commit := func(group, member string, gen int32, topic string) int16 {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.MemberID, r.Generation = group, member, gen
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
		resp, err := conn.Request(ctx, r)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		return resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	expect("commit from a stale generation", commit("intact", memberID, -5, "bad"), kerr.IllegalGeneration)
	expect("commit to an unknown topic", commit("simple", "", -1, "nope"), kerr.UnknownTopicOrPartition)

	// A flood of joins: each gets a member id to come back with, until
	// the group's size limit.
	refused := 0
	for i := 0; i < 200; i++ {
		if code := join("intact", "", good.AppendTo(nil)); code == kerr.GroupMaxSizeReached.Code {
			refused++
		} else if code != kerr.MemberIDRequired.Code {
			t.Fatalf("join %d of the flood: %v", i, kerr.ErrorForCode(code))
		}
	}
	if refused == 0 {
		t.Fatal("a flood of 200 joins never reached the group size limit of 50")
	}

	internal := "__consumer_offsets"
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: internal, NumPartitions: 1, ReplicationFactor: 1}}
	if resp, err := conn.Request(ctx, ct); err != nil {
		t.Fatal(err)
	} else {
		expect("create __consumer_offsets", resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode, kerr.InvalidRequest)
	}
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{internal}
	dt.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr(internal)}}
	if resp, err := conn.Request(ctx, dt); err != nil {
		t.Fatal(err)
	} else {
		expect("delete __consumer_offsets", resp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode, kerr.InvalidRequest)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.RecordRetries(1), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	perr := prod.ProduceSync(ctx, &kgo.Record{Topic: internal, Value: []byte("forged")}).FirstErr()
	if !errors.Is(perr, kerr.InvalidTopicException) {
		t.Errorf("produce to __consumer_offsets: %v, want INVALID_TOPIC_EXCEPTION", perr)
	}

	// The connection still answers, and the group kept its member.
	if _, err := conn.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatalf("connection after bad input: %v", err)
	}
	after := awaitGroup(t, bs, "intact", 1)
	if after.Members[0].MemberID != memberID {
		t.Fatalf("member %s replaced by %s", memberID, after.Members[0].MemberID)
	}
	if d, err := describeGroup(bs, internal); err == nil && d[internal].Err == nil && d[internal].State != "Dead" {
		t.Fatalf("a group named after the internal topic appeared: %+v", d[internal])
	}
}
