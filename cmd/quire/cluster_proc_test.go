package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startCluster runs n real quire processes that form one cluster by
// gossip (bootstrap-expect n, all joining node 1) and waits until every
// one is ready.
func startCluster(t *testing.T, n int, extra ...string) []*broker {
	t.Helper()
	dir := t.TempDir()
	var bs []*broker
	for i := 0; i < n; i++ {
		b := &broker{t: t, id: i + 1, dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			kafkaAddr: freePort(t), adminAddr: freePort(t), nodeAddr: freePort(t), gossipAddr: freePort(t)}
		b.logPath = filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))
		bs = append(bs, b)
	}
	// Last first, a little apart: every node joins node 1, which starts
	// last, so the cluster only forms because joining is retried.
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		b.extra = append([]string{"--bootstrap-expect", strconv.Itoa(n), "--join", bs[0].gossipAddr}, extra...)
		// QUIRE_TEST_BROKER_ARGS adds flags to every broker (say
		// --log-level debug) when chasing a failure.
		b.extra = append(b.extra, strings.Fields(os.Getenv("QUIRE_TEST_BROKER_ARGS"))...)
		b.launch()
		t.Cleanup(b.stop)
		time.Sleep(300 * time.Millisecond)
	}
	for _, b := range bs {
		b.waitReady()
	}
	t.Cleanup(func() { keepLogs(t, dir) })
	return bs
}

// createTopicWith creates a topic and fails the test unless the cluster took it.
func createTopicWith(t *testing.T, adm *kadm.Client, timeout time.Duration, topic string, partitions int32, rf int16) {
	t.Helper()
	resp, err := adm.CreateTopic(testCtx(t, timeout), partitions, rf, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// keepLogs copies a failed test's broker logs to $QUIRE_TEST_LOGS, so
// that a failure seen once in CI can be read after the temp dir is gone.
func keepLogs(t *testing.T, dir string) {
	dst := os.Getenv("QUIRE_TEST_LOGS")
	if dst == "" || !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		out := filepath.Join(dst, t.Name()+"-"+filepath.Base(l))
		if os.MkdirAll(dst, 0o755) == nil && os.WriteFile(out, data, 0o644) == nil {
			t.Logf("broker log kept: %s", out)
		}
	}
}

func seeds(bs []*broker) []string {
	var out []string
	for _, b := range bs {
		if b.alive() {
			out = append(out, b.kafkaAddr)
		}
	}
	return out
}

// TestThreeProcessKill9Leader runs three quire processes, produces with
// acks=all to an RF=3 topic, kill -9s the partition leader mid-stream,
// restarts it, and finds every acknowledged record at its offset on every
// broker.
func TestThreeProcessKill9Leader(t *testing.T) {
	bs := startCluster(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopicWith(t, adm, 30*time.Second, "k9", 1, 3)
	leader, epoch := waitLeaderEpoch(t, adm, "k9")

	var acks ackCollector
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			r := &kgo.Record{Topic: "k9", Partition: 0, Value: []byte(fmt.Sprintf("k9-%07d", i))}
			cl.Produce(ctx, r, acks.add)
			if i%32 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitCount := func(target int64) {
		deadline := time.Now().Add(90 * time.Second)
		for acks.n.Load() < target && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if acks.n.Load() < target {
			t.Fatalf("only %d records acknowledged, waiting for %d", acks.n.Load(), target)
		}
	}
	waitCount(2000)
	killed := bs[leader-1]
	killed.kill9()
	before := acks.n.Load()
	t.Logf("killed leader %d after %d acknowledged records", leader, before)
	checkPlacementSkipsGone(t, adm, bs, killed, leader)
	waitCount(before + 2000) // a new leader acknowledges again
	checkEarlyElection(t, bs, killed)
	killed.launch()
	checkBackNamesLeader(t, killed, "k9", leader, epoch)
	killed.waitReady()
	cancel()
	<-done
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	cl.Flush(fctx)
	fcancel()
	all := acks.records()
	t.Logf("%d records acknowledged in all", len(all))
	for _, b := range bs {
		got := consumeAllAvailable(t, b.kafkaAddr, "k9")
		checkConsumed(t, all, got)
	}
	checkReplicasIdentical(t, bs, "k9")
	checkAdminEndpoints(t, bs[0])
}

// checkBackNamesLeader asks a broker that comes back (restarted, or woken
// from a pause) for a partition's metadata from the moment its listener
// accepts, for a few seconds: every answer names a live leader other than
// that broker in its old leadership, of epoch oldEpoch (that one is over;
// the preferred-leader pass may rightly hand the broker a new one).
// Clients ask such a broker as soon as it answers; an answer without a
// leader sends franz-go to its 5 s metadata minimum age.
func checkBackNamesLeader(t *testing.T, b *broker, topic string, old, oldEpoch int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	start := time.Now()
	answers := 0
	for time.Since(start) < 5*time.Second {
		asked := time.Now()
		resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // not listening yet
			continue
		}
		answers++
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Leader < 0 || (p.Leader == old && p.LeaderEpoch <= oldEpoch) {
			t.Fatalf("broker %d, %v after it came back, answered leader %d epoch %d (was %d) error %d after %v",
				old, asked.Sub(start), p.Leader, p.LeaderEpoch, oldEpoch, p.ErrorCode, time.Since(asked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("broker %d named a leader in all %d answers after it came back", old, answers)
}

// TestPausedLeaderWakesNamingTheNewLeader: a leader frozen by SIGSTOP
// past its peers' liveness timeout is replaced, and when it wakes its
// Metadata answers name the new leader from the first one. The woken
// node's gossip suspects every peer for a second or two, as its probes
// went unanswered while it was stopped; counting suspects as dead, it
// once named no leader then, which cost a default franz-go client its
// 5 s metadata age.
func TestPausedLeaderWakesNamingTheNewLeader(t *testing.T) {
	bs := startCluster(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopicWith(t, adm, 30*time.Second, "frozen", 1, 3)
	leader, epoch := waitLeaderEpoch(t, adm, "frozen")
	paused := bs[leader-1]
	var survivors []string
	for _, b := range bs {
		if b != paused {
			survivors = append(survivors, b.kafkaAddr)
		}
	}
	pausedAt := time.Now()
	paused.cmd.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { paused.cmd.Process.Signal(syscall.SIGCONT) })
	scl, err := kgo.NewClient(kgo.SeedBrokers(survivors...))
	if err != nil {
		t.Fatal(err)
	}
	defer scl.Close()
	sadm := kadm.NewClient(scl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := sadm.Metadata(testCtx(t, 10*time.Second), "frozen")
		if err == nil {
			if p, ok := md.Topics["frozen"].Partitions[0]; ok && p.Leader > 0 && p.Leader != leader {
				t.Logf("node %d leads after %v of node %d's pause", p.Leader, time.Since(pausedAt), leader)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader 30s into node %d's pause", leader)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Long enough for the frozen node's gossip to miss several probes.
	time.Sleep(time.Until(pausedAt.Add(5 * time.Second)))
	paused.cmd.Process.Signal(syscall.SIGCONT)
	checkBackNamesLeader(t, paused, "frozen", leader, epoch)
}

// checkEarlyElection: the survivors found the killed leader's process gone
// and started elections for the groups it led themselves (node liveness),
// rather than waiting out raft's long group timeout.
func checkEarlyElection(t *testing.T, bs []*broker, killed *broker) {
	t.Helper()
	var nudged float64
	for _, b := range bs {
		if b == killed {
			continue
		}
		v, err := metricValue("http://"+b.adminAddr+"/metrics", "quire_raft_nudged_elections_total")
		if err != nil {
			t.Fatal(err)
		}
		nudged += v
	}
	if nudged == 0 {
		t.Fatalf("no survivor of %s's kill -9 started an election", killed.kafkaAddr)
	}
}

// checkPlacementSkipsGone: once the survivors' transports have found the
// killed node's listener refusing, a topic created at once places no
// replica on it, though gossip (seconds to suspect a crash with the
// default timings) still reports it alive.
func checkPlacementSkipsGone(t *testing.T, adm *kadm.Client, bs []*broker, killed *broker, killedID int32) {
	t.Helper()
	for _, b := range bs {
		if b == killed {
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := metricValue("http://"+b.adminAddr+"/metrics", "quire_node_transport_peers_gone_total")
			if err == nil && v > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never found the killed node gone: %v", b.adminAddr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	createTopicWith(t, adm, 30*time.Second, "k9-placed", 6, 2)
	md, err := adm.Metadata(testCtx(t, 30*time.Second), "k9-placed")
	if err != nil {
		t.Fatal(err)
	}
	parts := md.Topics["k9-placed"].Partitions
	if len(parts) != 6 {
		t.Fatalf("k9-placed has %d partitions, want 6", len(parts))
	}
	for _, p := range parts {
		if slices.Contains(p.Replicas, killedID) {
			t.Fatalf("partition %d placed on killed node %d: replicas %v", p.Partition, killedID, p.Replicas)
		}
	}
}

// metricValue reads one unlabelled series from a Prometheus endpoint.
func metricValue(url, name string) (float64, error) {
	hc := http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no series %s", url, name)
}

type partitionDigest struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	HW        int64  `json:"high_watermark"`
	CRC32C    uint32 `json:"crc32c"`
	Start     int64  `json:"log_start_offset"`
	Segments  int    `json:"segments"`
	Bytes     int64  `json:"size_bytes"`
	// Raft is printed when replicas differ, not compared.
	Raft *json.RawMessage `json:"raft"`
}

// topicDigests are every broker's /debug/partitions entries for a topic.
func topicDigests(t *testing.T, bs []*broker, topic string) []partitionDigest {
	t.Helper()
	var out []partitionDigest
	for _, b := range bs {
		var ds []partitionDigest
		if err := getJSON("http://"+b.adminAddr+"/debug/partitions", &ds); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Topic == topic {
				out = append(out, d)
			}
		}
	}
	return out
}

// checkReplicasIdentical compares every broker's /debug/partitions digest
// of the topic: after the restart they must converge on the same high
// watermark and the same bytes.
func checkReplicasIdentical(t *testing.T, bs []*broker, topic string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		digests := topicDigests(t, bs, topic)
		same := len(digests) == len(bs)
		for _, d := range digests {
			same = same && d.HW == digests[0].HW && d.CRC32C == digests[0].CRC32C
		}
		if same && digests[0].HW > 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, d := range digests {
				var raft bytes.Buffer
				if d.Raft != nil {
					json.Compact(&raft, *d.Raft)
				}
				fmt.Fprintf(&b, "\n  HW %d crc32c %d raft %s", d.HW, d.CRC32C, raft.String())
			}
			keepGoroutines(t, bs)
			t.Fatalf("replicas of %s differ:%s", topic, b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// keepGoroutines saves every live broker's goroutine dump to
// $QUIRE_TEST_LOGS: where a replication loop waits is what a stuck
// replica's logs cannot say.
func keepGoroutines(t *testing.T, bs []*broker) {
	dst := os.Getenv("QUIRE_TEST_LOGS")
	if dst == "" {
		return
	}
	for _, b := range bs {
		if !b.alive() {
			continue
		}
		resp, err := http.Get("http://" + b.adminAddr + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out := filepath.Join(dst, fmt.Sprintf("%s-node%d.goroutines", t.Name(), b.id))
		if os.MkdirAll(dst, 0o755) == nil && os.WriteFile(out, data, 0o644) == nil {
			t.Logf("goroutines kept: %s", out)
		}
	}
}

// checkAdminEndpoints: health answers, and /metrics carries the broker's
// own series next to the Go runtime's.
func checkAdminEndpoints(t *testing.T, b *broker) {
	t.Helper()
	for _, path := range []string{"/health/live", "/health/ready"} {
		resp, err := http.Get("http://" + b.adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	resp, err := http.Get("http://" + b.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, series := range []string{"quire_kafka_requests_total", "quire_raft_entry_batches", "quire_node_transport_sessions", "go_goroutines"} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

func waitLeader(t *testing.T, adm *kadm.Client, topic string) int32 {
	t.Helper()
	leader, _ := waitLeaderEpoch(t, adm, topic)
	return leader
}

// waitPreferredLeader waits until partition 0 of topic is led by its
// preferred replica and answers it. A test that talks to one leader
// directly starts from there: a new topic's first leader may be any
// voter, and the early preferred-leader passes (seconds after creation)
// move leadership that is not on the preferred replica.
func waitPreferredLeader(t *testing.T, adm *kadm.Client, topic string) int32 {
	t.Helper()
	// Past the last early pass (30 s), leadership stays where it is
	// until the periodic one, minutes away: take it from there.
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		md, err := adm.Metadata(testCtx(t, 10*time.Second), topic)
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[0]; ok && len(p.Replicas) > 0 && p.Leader == p.Replicas[0] {
				return p.Leader
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return waitLeader(t, adm, topic)
}

// waitLeaderEpoch is waitLeader that also answers the leadership's epoch.
func waitLeaderEpoch(t *testing.T, adm *kadm.Client, topic string) (int32, int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		md, err := adm.Metadata(testCtx(t, 10*time.Second), topic)
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[0]; ok && p.Leader > 0 {
				return p.Leader, p.LeaderEpoch
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader for %s", topic)
	return -1, -1
}
