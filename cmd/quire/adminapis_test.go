package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/client"
)

// TestDescribeCluster: sarama's ClusterAdmin at V4_0_0_0 describes the
// cluster through the DescribeCluster API (it falls back to Metadata only
// when the API is missing), and a request for controller endpoints gets
// UNSUPPORTED_ENDPOINT_TYPE, as from a Kafka broker.
func TestDescribeCluster(t *testing.T) {
	b := newBroker(t)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	adm, err := sarama.NewClusterAdmin([]string{b.kafkaAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	brokers, controller, err := adm.DescribeCluster()
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || brokers[0].ID() != 1 || brokers[0].Addr() != b.kafkaAddr || controller != 1 {
		t.Fatalf("brokers %v, controller %d; want broker 1 at %s, controller 1", brokers, controller, b.kafkaAddr)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = 2
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controller endpoints: error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	req.EndpointType = 1
	if resp, err = req.RequestWith(testCtx(t, 30*time.Second), cl); err != nil || resp.ErrorCode != 0 || resp.ClusterID == "" {
		t.Fatalf("broker endpoints: %+v, %v", resp, err)
	}
}

// TestDescribeConfigs: kadm and sarama read a topic's configs and a
// broker's. A config set on the topic is a dynamic topic config over the
// broker's; the others are the broker's, under the broker's name; an
// unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeConfigs(t *testing.T) {
	b := newBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, time.Minute)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("1048576")}, "configured"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "configured")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("configured", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe: %v %v", err, rc.Err)
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	seg, mmb := got["segment.bytes"], got["max.message.bytes"]
	if seg.Value == nil || *seg.Value != "1048576" || seg.Source != kmsg.ConfigSourceDynamicTopicConfig ||
		len(seg.Synonyms) != 2 || seg.Synonyms[1].Key != "log.segment.bytes" {
		t.Errorf("segment.bytes: %+v", seg)
	}
	if mmb.Value == nil || mmb.Source != kmsg.ConfigSourceDefaultConfig || len(mmb.Synonyms) != 1 || mmb.Synonyms[0].Key != "message.max.bytes" {
		t.Errorf("max.message.bytes: %+v", mmb)
	}
	brs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, br := range brs {
		for _, c := range br.Configs {
			found = found || (c.Key == "broker.id" && c.Value != nil && *c.Value == "1")
		}
	}
	if !found {
		t.Errorf("broker configs lack broker.id=1: %+v", brs)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "nope")
	if rc, _ := rcs.On("nope", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", rc.Err)
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	sadm, err := sarama.NewClusterAdmin([]string{b.kafkaAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	entries, err := sadm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "configured", ConfigNames: []string{"segment.bytes"}})
	if err != nil || len(entries) != 1 || entries[0].Value != "1048576" || entries[0].Source != sarama.SourceTopic {
		t.Errorf("sarama: %+v, %v", entries, err)
	}
}

// TestTopicCLI: `quire topic` creates a topic with a config, lists and
// describes it (the config with its source), grows it and deletes it.
func TestTopicCLI(t *testing.T) {
	b := newBroker(t)
	run := func(args ...string) string {
		t.Helper()
		all := append([]string{"topic", "--brokers", b.kafkaAddr}, args...)
		out, err := exec.Command(quireBinary(t), all...).CombinedOutput()
		if err != nil {
			t.Fatalf("quire %v: %v\n%s", all, err, out)
		}
		return string(out)
	}
	run("create", "cli-topic", "-p", "3", "-r", "1", "-c", "segment.bytes=1048576")
	var listed []client.TopicInfo
	if err := json.Unmarshal([]byte(run("list", "--format", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(listed, func(ti client.TopicInfo) bool { return ti.Name == "cli-topic" && ti.Partitions == 3 }) {
		t.Fatalf("list: %+v", listed)
	}
	run("add-partitions", "cli-topic", "--num", "2")
	var described []client.TopicDetail
	if err := json.Unmarshal([]byte(run("describe", "cli-topic", "--format", "json")), &described); err != nil {
		t.Fatal(err)
	}
	d := described[0]
	if d.Partitions != 5 || len(d.PartitionDetails) != 5 {
		t.Fatalf("after add-partitions: %+v", d)
	}
	if !slices.Contains(d.Configs, client.ConfigInfo{Name: "segment.bytes", Value: "1048576", Source: "DYNAMIC_TOPIC_CONFIG"}) {
		t.Fatalf("configs: %+v", d.Configs)
	}
	if text := run("describe", "cli-topic"); !strings.Contains(text, "DYNAMIC_TOPIC_CONFIG") || !strings.Contains(text, "HIGH-WATERMARK") {
		t.Fatalf("describe text:\n%s", text)
	}
	var altered []client.TopicDetail
	if err := json.Unmarshal([]byte(run("alter-config", "cli-topic", "--set", "retention.ms=3600000", "--append", "cleanup.policy=compact", "--format", "json")), &altered); err != nil {
		t.Fatal(err)
	}
	for _, want := range []client.ConfigInfo{
		{Name: "retention.ms", Value: "3600000", Source: "DYNAMIC_TOPIC_CONFIG"},
		{Name: "cleanup.policy", Value: "delete,compact", Source: "DYNAMIC_TOPIC_CONFIG"},
		{Name: "segment.bytes", Value: "1048576", Source: "DYNAMIC_TOPIC_CONFIG"},
	} {
		if !slices.Contains(altered[0].Configs, want) {
			t.Fatalf("after alter-config, %s missing: %+v", want.Name, altered[0].Configs)
		}
	}
	if text := run("alter-config", "cli-topic", "--delete", "retention.ms"); !regexp.MustCompile(`retention.ms +604800000 +DEFAULT_CONFIG`).MatchString(text) {
		t.Fatalf("alter-config --delete:\n%s", text)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.DefaultProduceTopic("cli-topic"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The topic is compacted now: records need keys.
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(testCtx(t, 30*time.Second), &kgo.Record{Partition: 1, Key: []byte(fmt.Sprint(i)), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var trimmed []client.Trimmed
	if err := json.Unmarshal([]byte(run("trim-prefix", "cli-topic", "-p", "1", "--offset", "7", "--format", "json")), &trimmed); err != nil {
		t.Fatal(err)
	}
	if len(trimmed) != 1 || trimmed[0] != (client.Trimmed{Partition: 1, StartOffset: 7}) {
		t.Fatalf("trim-prefix: %+v", trimmed)
	}
	run("delete", "cli-topic")
	if strings.Contains(run("list"), "cli-topic") {
		t.Fatal("deleted topic still listed")
	}
}

// TestListOffsetsMaxTimestamp: kadm's max-timestamp lookup (ListOffsets
// v7, timestamp -3) finds the record with the largest timestamp inside a
// snappy batch franz-go wrote, and the local log start (v8, -4) is the
// log start.
func TestListOffsetsMaxTimestamp(t *testing.T) {
	b := newBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.DefaultProduceTopic("stamps"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, time.Minute)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "stamps"); err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(1_700_000_000_000)
	var recs []*kgo.Record
	for i := range 20 {
		ts := base.Add(time.Duration(i) * time.Second)
		if i == 13 || i == 17 {
			ts = base.Add(time.Hour) // the largest, twice: the first counts
		}
		recs = append(recs, &kgo.Record{Value: bytes.Repeat([]byte{byte(i)}, 200), Timestamp: ts})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	maxes, err := adm.ListMaxTimestampOffsets(ctx, "stamps")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := maxes.Lookup("stamps", 0)
	if !ok || o.Err != nil || o.Offset != 13 || o.Timestamp != base.Add(time.Hour).UnixMilli() {
		t.Fatalf("max timestamp: %+v (found %v); want offset 13 at %d", o, ok, base.Add(time.Hour).UnixMilli())
	}
	starts, err := adm.ListLocalLogStartOffsets(ctx, "stamps")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := starts.Lookup("stamps", 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("local log start: %+v", o)
	}

	// A timestamp lookup into a range DeleteRecords removed lands on the
	// log start, not on a record that is gone.
	var to kadm.Offsets
	to.Add(kadm.Offset{Topic: "stamps", Partition: 0, At: 5})
	if _, err := adm.DeleteRecords(ctx, to); err != nil {
		t.Fatal(err)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, base.UnixMilli(), "stamps")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := byTime.Lookup("stamps", 0); !ok || o.Err != nil || o.Offset != 5 {
		t.Fatalf("timestamp lookup below the start: %+v", o)
	}
	// No tiered storage: the latest tiered offset (v9, -5) is -1.
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "stamps"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp, rp.CurrentLeaderEpoch = -5, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != -1 || resp.Version < 9 {
		t.Fatalf("latest tiered offset (v%d): %+v", resp.Version, p)
	}
}

// TestLogAppendTime: on a topic of message.timestamp.type LogAppendTime
// the leader's time replaces the producer's, and a franz-go consumer sees
// it as a log-append-time timestamp.
func TestLogAppendTime(t *testing.T) {
	b := newBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.DefaultProduceTopic("appended"),
		kgo.ConsumeTopics("appended"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, time.Minute)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"message.timestamp.type": kmsg.StringPtr("LogAppendTime")}, "appended"); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Now().Add(-time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Second)
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Attrs.TimestampType() != 1 || r.Timestamp.Before(before) || r.Timestamp.After(after) {
		t.Fatalf("timestamp %v (type %d); want the append time, between %v and %v", r.Timestamp, r.Attrs.TimestampType(), before, after)
	}
}

// TestCompressionType: a topic with compression.type=zstd stores what a
// franz-go producer sends snappy-compressed as zstd batches, recompressed
// by the leader, and consumers read the same records back; "producer"
// keeps the producer's codec.
func TestCompressionType(t *testing.T) {
	b := newBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, time.Minute)
	for topic, codec := range map[string]string{"zstd-topic": "zstd", "as-sent": "producer"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"compression.type": kmsg.StringPtr(codec)}, topic); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := 0; i < 100; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strings.Repeat(fmt.Sprint(i), 50))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for topic, want := range map[string]int16{"zstd-topic": 4, "as-sent": 2} {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, md.Topics[topic].ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		raw := resp.Topics[0].Partitions[0].RecordBatches
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(raw); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if codec := batch.Attributes & 0x07; codec != want {
			t.Errorf("%s: batches stored with codec %d, want %d", topic, codec, want)
		}
		got := consumeAllAvailable(t, b.kafkaAddr, topic)
		if n := len(got[0]); n != 100 || string(got[0][7].value) != strings.Repeat("7", 50) {
			t.Errorf("%s: consumed %d records", topic, n)
		}
	}
}
