package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/partition/batchtest"
)

// TestTransactions runs the transactional clients' checks and then the
// markers' check on one three-process cluster.
func TestTransactions(t *testing.T) {
	bs := startCluster(t, 3)
	// The clients' checks first: the markers' check kills a node.
	t.Run("franz-go", func(t *testing.T) { checkFranzGoTransactions(t, bs) })
	t.Run("sarama", func(t *testing.T) { checkSaramaTransactions(t, bs) })
	t.Run("markers", func(t *testing.T) { checkMarkersAndReadCommitted(t, bs) })
}

// checkMarkersAndReadCommitted: transaction markers written with
// WriteTxnMarkers as a transaction coordinator writes them.
// read_committed readers (franz-go, and librdkafka through kcat) stop at
// an open transaction, drop an aborted one and see a committed one;
// read_uncommitted readers see everything; a batch outside a transaction
// the coordinator knows, or late from the aborted one, is refused; the
// open transactions are visible to operators; and all of it holds on the
// replica that leads after kill -9 of the leader.
func checkMarkersAndReadCommitted(t *testing.T, bs []*broker) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const topic = "txn-markers"
	createTopicWith(t, adm, 30*time.Second, topic, 1, 3)
	leader := waitPreferredLeader(t, adm, topic)
	pidA, pidB := beginRawTxn(t, cl, "raw-a", topic), beginRawTxn(t, cl, "raw-b", topic)
	ts := time.Now().UnixMilli()
	// A transactional batch is taken only inside a transaction the
	// coordinator knows holds the partition.
	if code := produceRaw(t, cl, leader, topic, nil, batchtest.Transactional(0, ts, pidA, 0, 0, []byte("x"))); code != kerr.InvalidTxnState.Code {
		t.Fatalf("transactional batch without a transactional id: %v", kerr.ErrorForCode(code))
	}
	if code := produceRaw(t, cl, leader, topic, kmsg.StringPtr("raw-a"), batchtest.Transactional(0, ts, pidA, 1, 0, []byte("x"))); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("transactional batch of an epoch the coordinator never gave: %v", kerr.ErrorForCode(code))
	}
	for _, b := range []struct {
		txn   *string
		batch []byte
	}{
		{nil, batchtest.Batch(0, ts, []byte("p0"))},
		{kmsg.StringPtr("raw-a"), batchtest.Transactional(0, ts, pidA, 0, 0, []byte("a1"), []byte("a2"))},
		{kmsg.StringPtr("raw-b"), batchtest.Transactional(0, ts, pidB, 0, 0, []byte("c1"))},
		{nil, batchtest.Batch(0, ts, []byte("p1"))},
	} {
		if code := produceRaw(t, cl, leader, topic, b.txn, b.batch); code != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(code))
		}
	}
	if got := listEnd(t, cl, leader, topic, 1); got != 1 {
		t.Fatalf("read_committed end offset with A's transaction open at 1: %d", got)
	}
	checkOpenTxnsVisible(t, bs, topic, "raw-a", "raw-b")
	if got := listEnd(t, cl, leader, topic, 0); got != 5 {
		t.Fatalf("read_uncommitted end offset: %d, want 5", got)
	}

	// Abort A with a bumped epoch (transaction version 2), commit B.
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	for _, m := range []struct {
		pid    int64
		epoch  int16
		commit bool
	}{{pidA, 1, false}, {pidB, 0, true}} {
		rm := kmsg.NewWriteTxnMarkersRequestMarker()
		rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.pid, m.epoch, m.commit, 1
		rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		rm.Topics = append(rm.Topics, rt)
		req.Markers = append(req.Markers, rm)
	}
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.Markers {
		if code := m.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("marker for producer %d: %v", m.ProducerID, kerr.ErrorForCode(code))
		}
	}
	if got := listEnd(t, cl, leader, topic, 1); got != 7 {
		t.Fatalf("read_committed end offset after both markers: %d, want 7", got)
	}
	// A batch of A's aborted transaction that arrives late is fenced.
	late := batchtest.Transactional(0, ts, pidA, 0, 1, []byte("a3"))
	if code := produceRaw(t, cl, leader, topic, kmsg.StringPtr("raw-a"), late); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("late batch of the aborted transaction: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}

	committed, all := []string{"p0", "c1", "p1"}, []string{"p0", "a1", "a2", "c1", "p1"}
	checkRead(t, seeds(bs), topic, kgo.ReadCommitted(), committed)
	checkRead(t, seeds(bs), topic, kgo.ReadUncommitted(), all)
	checkKcatRead(t, bs[0].kafkaAddr, topic, committed)

	bs[leader-1].kill9()
	var next int32
	deadline := time.Now().Add(60 * time.Second)
	for next = waitLeader(t, adm, topic); next == leader && time.Now().Before(deadline); next = waitLeader(t, adm, topic) {
		time.Sleep(200 * time.Millisecond)
	}
	if next == leader {
		t.Fatal("no new leader after kill -9 of the old one")
	}
	if got := listEnd(t, cl, next, topic, 1); got != 7 {
		t.Fatalf("new leader's read_committed end offset: %d, want 7", got)
	}
	checkRead(t, seeds(bs), topic, kgo.ReadCommitted(), committed)
	checkRead(t, seeds(bs), topic, kgo.ReadUncommitted(), all)
}

// beginRawTxn starts a transaction of a new transactional id that holds
// partition 0 of topic, as a producer would, and returns its producer id
// (epoch 0).
func beginRawTxn(t *testing.T, cl *kgo.Client, id, topic string) int64 {
	t.Helper()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
	resp, err := init.RequestWith(testCtx(t, 30*time.Second), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, resp.ProducerID, resp.ProducerEpoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	added, err := add.RequestWith(testCtx(t, 30*time.Second), cl)
	if err == nil {
		err = kerr.ErrorForCode(added.Topics[0].Partitions[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("add partition: %v", err)
	}
	return resp.ProducerID
}

// produceRaw sends one batch, as built, to the leader with acks=all (as
// part of the transactional id's transaction when not nil) and returns the
// partition's error code.
func produceRaw(t *testing.T, cl *kgo.Client, leader int32, topic string, txnID *string, batch []byte) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10000, txnID
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// listEnd is ListOffsets' latest offset of partition 0 at the isolation
// level (0 read_uncommitted, 1 read_committed).
func listEnd(t *testing.T, cl *kgo.Client, leader int32, topic string, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("list offsets: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

// checkRead consumes the topic from the start at the isolation level
// until the record "p1", which every reader sees last, and compares what
// came with want.
func checkRead(t *testing.T, brokers []string, topic string, level kgo.IsolationLevel, want []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 60*time.Second)
	var got []string
	for !slices.Contains(got, "p1") {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%v: read %v before the deadline, want %v", level, got, want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%v read %v, want %v", level, got, want)
	}
}

// checkKcatRead reads the topic with kcat, whose librdkafka reads
// read_committed by default.
func checkKcatRead(t *testing.T, addr, topic string, want []string) {
	t.Helper()
	out, err := exec.Command("kcat", "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n").Output()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kcat read %v, want %v", got, want)
	}
}

// checkFranzGoTransactions: franz-go's transactional producer against a three-process cluster:
// committed transactions are read by read_committed consumers, aborted
// ones only by read_uncommitted ones, and a second producer instance with
// the same transactional id fences the first.
func checkFranzGoTransactions(t *testing.T, bs []*broker) {
	// By default franz-go sees transaction.version 2 advertised and ends
	// every transaction with an epoch bump, adding partitions as it
	// produces; capped at EndTxn v4 it speaks version 1.
	t.Run("version 2", func(t *testing.T) { checkFranzGoTxnVersion(t, bs, "v2", 2) })
	t.Run("version 1", func(t *testing.T) {
		v1 := kversion.Stable()
		v1.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
		checkFranzGoTxnVersion(t, bs, "v1", 1, kgo.MaxVersions(v1))
	})
}

func checkFranzGoTxnVersion(t *testing.T, bs []*broker, name string, version int, opts ...kgo.Opt) {
	adm := kadm.NewClient(mustClient(t, bs))
	topic, id := "txn-franz-"+name, "franz-tx-"+name
	createTopicWith(t, adm, 30*time.Second, topic, 3, 3)
	prod := mustClient(t, bs, append([]kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	ctx := testCtx(t, 2*time.Minute)
	txnOf := func(prefix string, n int, commit bool) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := prod.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("%s-%d", prefix, i))).FirstErr(); err != nil {
				t.Fatalf("produce in %s: %v", prefix, err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
	}
	txnOf("c1", 6, true)
	txnOf("a1", 6, false)
	txnOf("c2", 6, true)
	// Version 2 bumped the epoch at each of the three ends.
	d, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]int16{1: 0, 2: 3}[version]; d[id].ProducerEpoch != want {
		t.Fatalf("transaction version %d: epoch %d after three transactions, want %d", version, d[id].ProducerEpoch, want)
	}

	// A second instance fences the first: the first's next transaction
	// fails.
	second := mustClient(t, bs, append([]kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err := second.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := second.ProduceSync(ctx, kgo.StringRecord("last")).FirstErr(); err != nil {
		t.Fatalf("second instance: %v", err)
	}
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("second instance commits: %v", err)
	}
	if err := prod.BeginTransaction(); err == nil {
		err = prod.ProduceSync(ctx, kgo.StringRecord("zombie")).FirstErr()
		if err == nil {
			err = prod.EndTransaction(ctx, kgo.TryCommit)
		}
		if err == nil {
			t.Fatal("the fenced instance committed a transaction")
		}
	}

	committed := readValues(t, bs, topic, kgo.ReadCommitted(), 13)
	for _, v := range committed {
		if strings.HasPrefix(v, "a1-") || v == "zombie" {
			t.Fatalf("read_committed read %q", v)
		}
	}
	all := readValues(t, bs, topic, kgo.ReadUncommitted(), 19)
	aborted := 0
	for _, v := range all {
		if strings.HasPrefix(v, "a1-") {
			aborted++
		}
	}
	if aborted != 6 {
		t.Fatalf("read_uncommitted read %d of the aborted records, want 6", aborted)
	}
}

// readValues reads want records of the topic from the start at the
// isolation level, then makes sure no more come.
func readValues(t *testing.T, bs []*broker, topic string, level kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl := mustClient(t, bs, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	ctx := testCtx(t, 60*time.Second)
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%v: read %d records, want %d: %v", level, len(got), want, got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	extra, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	if len(got) != want {
		t.Fatalf("%v: read %d records, want %d: %v", level, len(got), want, got)
	}
	return got
}

// checkSaramaTransactions: sarama's transactional producer, at its default protocol version and at
// V4_0_0_0, commits and aborts: read_committed readers see the committed
// transactions only.
func checkSaramaTransactions(t *testing.T, bs []*broker) {
	adm := kadm.NewClient(mustClient(t, bs))
	for _, v := range []struct {
		name    string
		version sarama.KafkaVersion
	}{{"default", sarama.NewConfig().Version}, {"4.0", sarama.V4_0_0_0}} {
		t.Run(v.name, func(t *testing.T) {
			topic := "txn-sarama-" + strings.ReplaceAll(v.name, ".", "")
			createTopicWith(t, adm, 30*time.Second, topic, 2, 3)
			cfg := sarama.NewConfig()
			cfg.Version = v.version
			cfg.Producer.Idempotent = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Transaction.ID = "sarama-tx-" + v.name
			cfg.Net.MaxOpenRequests = 1
			prod, err := sarama.NewSyncProducer(seeds(bs), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			send := func(prefix string, commit bool) {
				t.Helper()
				if err := prod.BeginTxn(); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 4; i++ {
					msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", prefix, i))}
					if _, _, err := prod.SendMessage(msg); err != nil {
						t.Fatalf("send in %s: %v", prefix, err)
					}
				}
				end := prod.CommitTxn
				if !commit {
					end = prod.AbortTxn
				}
				if err := end(); err != nil {
					t.Fatalf("end %s: %v", prefix, err)
				}
			}
			send("c1", true)
			send("a1", false)
			send("c2", true)
			got := readValues(t, bs, topic, kgo.ReadCommitted(), 8)
			for _, v := range got {
				if strings.HasPrefix(v, "a1-") {
					t.Fatalf("read_committed read the aborted %q", v)
				}
			}
			readValues(t, bs, topic, kgo.ReadUncommitted(), 12)
		})
	}
}

// checkOpenTxnsVisible finds the transactions under way where operators
// look: `quire txn list` and `describe`, /v1/transactions on the
// coordinators, and the oldest-open-transaction metric.
func checkOpenTxnsVisible(t *testing.T, bs []*broker, topic string, ids ...string) {
	t.Helper()
	want := topic + "-0"
	out, err := exec.Command(quireBinary(t), "txn", "list", "--brokers", strings.Join(seeds(bs), ","),
		"--state", "Ongoing", "--format", "json").Output()
	if err != nil {
		t.Fatalf("quire txn list: %v\n%s", err, out)
	}
	var listed []client.TxnInfo
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("quire txn list: %v\n%s", err, out)
	}
	for _, id := range ids {
		i := slices.IndexFunc(listed, func(x client.TxnInfo) bool { return x.ID == id })
		if i < 0 || listed[i].State != "Ongoing" || !slices.Contains(listed[i].Partitions, want) || listed[i].StartMs <= 0 {
			t.Fatalf("quire txn list has no ongoing %s on %s: %s", id, want, out)
		}
	}
	text, err := exec.Command(quireBinary(t), "txn", "describe", "--brokers", strings.Join(seeds(bs), ","), ids[0]).Output()
	if err != nil || !strings.Contains(string(text), ids[0]) || !strings.Contains(string(text), "Ongoing") {
		t.Fatalf("quire txn describe %s: %v\n%s", ids[0], err, text)
	}
	var onAdmin []string
	oldest := 0.0
	for _, b := range bs {
		var ds []struct {
			ID    string `json:"transactional_id"`
			State string `json:"state"`
		}
		if err := getJSON("http://"+b.adminAddr+"/v1/transactions?state=Ongoing", &ds); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			onAdmin = append(onAdmin, d.ID)
		}
		v, err := metricValue("http://"+b.adminAddr+"/metrics", "quire_txn_oldest_open_seconds")
		if err != nil {
			t.Fatal(err)
		}
		oldest = max(oldest, v)
	}
	for _, id := range ids {
		if !slices.Contains(onAdmin, id) {
			t.Fatalf("/v1/transactions lists %v, not %s", onAdmin, id)
		}
	}
	if oldest <= 0 {
		t.Fatal("quire_txn_oldest_open_seconds is 0 on every broker with transactions open")
	}
}

// A transaction coordinator killed -9 after EndTxn has recorded a commit
// but before its markers reached the partition: the coordinator that
// takes over finishes the commit, and the records appear exactly once.
// The markers are held back by cutting the coordinator's node off from
// the partition leader's (node transport faults) until the kill.
func TestTxnCoordinatorKilledBeforeMarkers(t *testing.T) {
	bs := startCluster(t, 3, "--enable-fault-injection")
	cl := mustClient(t, bs)
	adm := kadm.NewClient(cl)
	const topic = "txn-coord-kill"
	createTopicWith(t, adm, 30*time.Second, topic, 1, 3)
	leader := waitPreferredLeader(t, adm, topic)
	// A transactional id whose coordinator is not the partition leader.
	var id string
	var coord int32
	for i := 0; id == ""; i++ {
		cand := fmt.Sprintf("coord-kill-%d", i)
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorType = cand, 1
		resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
		if err != nil || resp.ErrorCode != 0 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp.NodeID != leader {
			id, coord = cand, resp.NodeID
		}
	}
	prod := mustClient(t, bs, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	ctx := testCtx(t, 2*time.Minute)
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := prod.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("k-%d", i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cut := []byte(fmt.Sprintf(`[{"from":%d,"to":%d,"drop":true}]`, coord, leader))
	for _, b := range bs {
		putFaults(t, b, cut)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	prod.Close()
	// Asked of the coordinator's admin listener: brokers cut off from it
	// do not name it in Metadata, so a Kafka client may not find it now.
	var held []struct {
		State string `json:"state"`
	}
	if err := getJSON("http://"+bs[coord-1].adminAddr+"/v1/transactions?transactional_id="+id, &held); err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].State != "PrepareCommit" {
		t.Fatalf("transaction %s before the kill: %+v, want PrepareCommit (markers held back)", id, held)
	}
	bs[coord-1].kill9()
	for _, b := range bs {
		if b.alive() {
			putFaults(t, b, []byte("[]"))
		}
	}
	got := readValues(t, bs, topic, kgo.ReadCommitted(), 10)
	seen := map[string]bool{}
	for _, v := range got {
		if seen[v] {
			t.Fatalf("%s read twice", v)
		}
		seen[v] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := kadm.NewClient(mustClient(t, bs)).DescribeTransactions(testCtx(t, 30*time.Second), id)
		if err == nil && d[id].State == "CompleteCommit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s not complete after the fail-over: %v %v", id, d[id].State, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func putFaults(t *testing.T, b *broker, rules []byte) { putAdmin(t, b, "/debug/faults", rules) }

func putAdmin(t *testing.T, b *broker, path string, rules []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+b.adminAddr+path, bytes.NewReader(rules))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s on node %d: %s", path, b.id, resp.Status)
	}
}
