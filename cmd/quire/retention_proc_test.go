package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeTopicOn asks broker id itself for a topic's configs.
func describeTopicOn(t *testing.T, cl *kgo.Client, id int32, topic string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, r)
	req.IncludeSynonyms = true
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(id)))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("describe %s on broker %d: %+v", topic, id, resp.Resources)
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

// waitConfigEverywhere waits until every broker reports a topic config
// with the value and source given.
func waitConfigEverywhere(t *testing.T, cl *kgo.Client, bs []*broker, topic, name, value string, source kmsg.ConfigSource) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, b := range bs {
		for {
			c := describeTopicOn(t, cl, int32(b.id), topic)[name]
			if c.Value != nil && *c.Value == value && c.Source == source {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("broker %d: %s of %s is %v from %v, want %s from %v", b.id, name, topic, strPtr(c.Value), c.Source, value, source)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func strPtr(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// TestAlterConfigs: kadm's IncrementalAlterConfigs and sarama's
// ClusterAdmin AlterConfigs change topic configs, and a dynamic broker
// default changes a topic without configs of its own; every broker then
// reports the change, with its source. Unknown names and bad values are
// INVALID_CONFIG naming the config; validate_only changes nothing.
func TestAlterConfigs(t *testing.T) {
	bs := startCluster(t, 3)
	cl := mustClient(t, bs)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 2*time.Minute)
	createTopicWith(t, adm, 30*time.Second, "altered", 1, 3)
	createTopicWith(t, adm, 30*time.Second, "plain", 1, 3)

	// Incremental: set, and append to a list.
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("3600000")},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")},
	}, "altered")
	if err == nil {
		_, err = resp.On("altered", nil)
	}
	if err != nil || resp[0].Err != nil {
		t.Fatalf("incremental alter: %v %+v", err, resp)
	}
	waitConfigEverywhere(t, cl, bs, "altered", "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	waitConfigEverywhere(t, cl, bs, "altered", "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)

	// Bad input names the config and changes nothing.
	for _, c := range []struct {
		name, value, want string
	}{
		{"retention.ms", "soon", "retention.ms"},
		{"cleanup.policy", "shred", "cleanup.policy"},
		{"no.such.config", "1", "no.such.config"},
	} {
		resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: c.name, Value: kmsg.StringPtr(c.value)}}, "altered")
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(resp[0].Err, kerr.InvalidConfig) || !strings.Contains(resp[0].ErrMessage, c.want) {
			t.Errorf("%s=%s: %v %q, want INVALID_CONFIG naming %s", c.name, c.value, resp[0].Err, resp[0].ErrMessage, c.want)
		}
	}
	if resp, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("1")}}, "altered"); err != nil || resp[0].Err != nil {
		t.Fatalf("validate only: %v %+v", err, resp)
	}
	waitConfigEverywhere(t, cl, bs, "altered", "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)

	// sarama's AlterConfigs replaces the topic's dynamic configs.
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	sadm, err := sarama.NewClusterAdmin(seeds(bs), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	if err := sadm.AlterConfig(sarama.TopicResource, "altered", map[string]*string{"segment.bytes": kmsg.StringPtr("1048576")}, false); err != nil {
		t.Fatalf("sarama alter: %v", err)
	}
	waitConfigEverywhere(t, cl, bs, "altered", "segment.bytes", "1048576", kmsg.ConfigSourceDynamicTopicConfig)
	waitConfigEverywhere(t, cl, bs, "altered", "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	err = sadm.AlterConfig(sarama.TopicResource, "altered", map[string]*string{"max.message.bytes": kmsg.StringPtr("-5")}, false)
	if !errors.Is(err, sarama.ErrInvalidConfig) {
		t.Errorf("sarama bad value: %v, want INVALID_CONFIG", err)
	}

	// A dynamic cluster-wide broker default reaches topics without their
	// own value, from every broker.
	bresp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: kmsg.StringPtr("7200000")}})
	if err != nil || bresp[0].Err != nil {
		t.Fatalf("broker default: %v %+v", err, bresp)
	}
	waitConfigEverywhere(t, cl, bs, "plain", "retention.ms", "7200000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	bresp, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "broker.id", Value: kmsg.StringPtr("9")}}, 1)
	if err != nil || !errors.Is(bresp[0].Err, kerr.InvalidRequest) {
		t.Errorf("read-only broker config: %v %+v, want INVALID_REQUEST", err, bresp)
	}
}

// randomValue is an incompressible record value.
func randomValue(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestRetentionUnderLoad: with small segments and retention.bytes, every
// replica deletes old segments while a producer runs and keeps its disk
// bounded; their log start offsets are equal, a follower that was down
// while segments were deleted catches up, and retention.ms set later
// deletes every closed segment. Reads below the start are
// OFFSET_OUT_OF_RANGE and ListOffsets earliest answers the start.
func TestRetentionUnderLoad(t *testing.T) {
	bs := startCluster(t, 3, "--retention-check-interval", "500ms")
	cl := mustClient(t, bs, kgo.DefaultProduceTopic("retained"))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 4*time.Minute)
	const segBytes, keepBytes = 64 << 10, 256 << 10
	resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{
		"segment.bytes":   kmsg.StringPtr(fmt.Sprint(segBytes)),
		"retention.bytes": kmsg.StringPtr(fmt.Sprint(keepBytes)),
	}, "retained")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	leader := waitPreferredLeader(t, adm, "retained")
	var follower *broker
	for _, b := range bs {
		if int32(b.id) != leader {
			follower = b
		}
	}
	produce := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: randomValue(1024)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(600)
	follower.kill9()
	produce(1500)
	follower.start()
	follower.waitReady()
	produce(600)

	// Retention keeps whole segments above the limit, plus the active
	// one; a follower's segments are cut where its own log rolled. The
	// leader checks every 500 ms, so a busy machine may see it late.
	views := waitStartsEqual(t, bs, "retained", func(v partitionDigest) bool {
		return v.Start > 0 && v.Bytes <= keepBytes+3*segBytes
	})
	checkReplicasIdentical(t, bs, "retained")
	// The follower was behind the deleted data: its peers' Raft logs no
	// longer held the entries, so it caught up through a snapshot.
	if data, err := os.ReadFile(follower.logPath); err != nil || !strings.Contains(string(data), "replica restored from a snapshot") {
		t.Errorf("the restarted follower did not catch up through a snapshot (%v)", err)
	}
	start := views[0].Start
	lo, err := adm.ListStartOffsets(ctx, "retained")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("retained", 0); o.Offset < start {
		t.Fatalf("ListOffsets earliest %d, log start %d", o.Offset, start)
	}
	fetchBelowStart(t, cl, "retained", 0)

	// retention.ms: every closed segment is older than a second.
	time.Sleep(1100 * time.Millisecond)
	aresp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("1000")},
		{Op: kadm.DeleteConfig, Name: "retention.bytes"},
	}, "retained")
	if err != nil || aresp[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, aresp)
	}
	views = waitStartsEqual(t, bs, "retained", func(v partitionDigest) bool { return v.Segments == 1 && v.Start > start })
	t.Logf("log start %d -> %d; segments %d, bytes %d", start, views[0].Start, views[0].Segments, views[0].Bytes)
}

// waitStartsEqual waits until every broker's replica of the topic's
// partition 0 satisfies ok and all have the same log start offset.
func waitStartsEqual(t *testing.T, bs []*broker, topic string, ok func(partitionDigest) bool) []partitionDigest {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		views := topicDigests(t, bs, topic)
		good := len(views) == len(bs)
		for _, v := range views {
			good = good && ok(v) && v.Start == views[0].Start
		}
		if good {
			return views
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas of %s: %+v", topic, views)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fetchBelowStart fetches at offset, below the log start, from the
// partition's leader and wants OFFSET_OUT_OF_RANGE.
func fetchBelowStart(t *testing.T, cl *kgo.Client, topic string, offset int64) {
	t.Helper()
	adm := kadm.NewClient(cl)
	leader := waitLeader(t, adm, topic)
	md, err := adm.Metadata(testCtx(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, md.Topics[topic].ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at %d below the start: %v, want OFFSET_OUT_OF_RANGE", offset, kerr.ErrorForCode(code))
	}
}

// TestDeleteRecords: kadm's DeleteRecords moves the log start offset on
// every replica; a consumer positioned below it is reset to it; offsets
// past the high watermark are OFFSET_OUT_OF_RANGE; a compact-only topic
// refuses with POLICY_VIOLATION.
func TestDeleteRecords(t *testing.T) {
	bs := startCluster(t, 3)
	cl := mustClient(t, bs, kgo.DefaultProduceTopic("trimmed"))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 2*time.Minute)
	createTopicWith(t, adm, 30*time.Second, "trimmed", 1, 3)
	for i := 0; i < 1000; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("r-%04d", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var to kadm.Offsets
	to.Add(kadm.Offset{Topic: "trimmed", Partition: 0, At: 500})
	dr, err := adm.DeleteRecords(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup("trimmed", 0); r.Err != nil || r.LowWatermark != 500 {
		t.Fatalf("delete records: %+v", r)
	}
	waitStartsEqual(t, bs, "trimmed", func(v partitionDigest) bool { return v.Start == 500 })
	checkReplicasIdentical(t, bs, "trimmed")

	// A consumer asking for offset 100 is out of range and resets to the
	// start (franz-go's default reset is the earliest offset).
	c := mustClient(t, bs, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"trimmed": {0: kgo.NewOffset().At(100)}}))
	fs := c.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != 500 || string(recs[0].Value) != "r-0500" {
		t.Fatalf("consumer below the start got %+v", recs)
	}

	to = kadm.Offsets{}
	to.Add(kadm.Offset{Topic: "trimmed", Partition: 0, At: 5000})
	dr, err = adm.DeleteRecords(ctx, to)
	if r, _ := dr.Lookup("trimmed", 0); err != nil || !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("past the high watermark: %v %+v", err, r)
	}
	to = kadm.Offsets{}
	to.Add(kadm.Offset{Topic: "trimmed", Partition: 0, At: -1})
	dr, err = adm.DeleteRecords(ctx, to)
	if r, _ := dr.Lookup("trimmed", 0); err != nil || r.Err != nil || r.LowWatermark != 1000 {
		t.Fatalf("to the high watermark: %v %+v", err, r)
	}

	resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact")}, "compacted")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, adm, "compacted")
	to = kadm.Offsets{}
	to.Add(kadm.Offset{Topic: "compacted", Partition: 0, At: 0})
	dr, err = adm.DeleteRecords(ctx, to)
	if r, _ := dr.Lookup("compacted", 0); err != nil || !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("compact-only topic: %v %+v", err, r)
	}
}
