// Package client is Quire's small facade over franz-go. The CLI, the
// benchmark and the chaos workloads use it so that they speak to a cluster
// the way an ordinary Kafka application does; it adds defaults and names,
// never protocol code of its own.
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Acks is the producer's acknowledgement level.
type Acks int

const (
	AcksAll    Acks = -1 // committed by a Raft majority
	AcksLeader Acks = 1  // Quire maps this to AcksAll; see README
	AcksNone   Acks = 0
)

// ProducerConfig says how a producer batches and what it waits for.
type ProducerConfig struct {
	Brokers    []string
	Acks       Acks
	Idempotent bool
	// Linger is how long a partition's batch waits for more records. Zero
	// keeps franz-go's default (10ms); negative sends as soon as a request
	// slot is free.
	Linger time.Duration
	// MaxBufferedRecords bounds records produced but not yet acknowledged;
	// Produce blocks above it.
	MaxBufferedRecords int
	// BatchMaxBytes bounds one partition's batch in a request.
	BatchMaxBytes int32
	// MaxInFlight is the number of produce requests outstanding per broker.
	// It is only honoured without idempotence; with it franz-go keeps 5 in
	// flight, as Kafka allows.
	MaxInFlight int
	ClientID    string
	// MetadataMinAge bounds how often the client may refresh metadata
	// (franz-go's default is 5s), which bounds how fast it finds a new
	// leader after a fail-over. Zero keeps the default.
	MetadataMinAge time.Duration
	// RetryBackoff, when set, is the fixed wait between retries (the Java
	// client's retry.backoff.ms, 100ms); franz-go's default backs off
	// exponentially up to 2.5s.
	RetryBackoff time.Duration
	// DeliveryTimeout fails a record not acknowledged within it
	// (delivery.timeout.ms); 0 retries forever. An idempotent producer
	// only fails records it knows were not sent.
	DeliveryTimeout time.Duration
	// RequestTimeout bounds one produce request: the broker may wait this
	// long for the Raft commit, and the client gives up on the request a
	// little later and retries elsewhere. A paused (not dead) broker keeps
	// its connections open and answers nothing, so only this timeout moves
	// a client off it. 0 keeps franz-go's defaults (10s plus 10s).
	RequestTimeout time.Duration
	// Compression is the codec for produce batches. Empty keeps franz-go's
	// default, snappy. franz-go sends a batch uncompressed when the codec
	// does not make it smaller.
	Compression Compression
	// OnBatch, when set, is called for every batch the brokers
	// acknowledged, on franz-go's goroutines.
	OnBatch func(BatchStats)
}

// Compression names a produce batch codec.
type Compression string

const (
	CompressionDefault Compression = "" // franz-go's default: snappy
	CompressionNone    Compression = "none"
	CompressionGzip    Compression = "gzip"
	CompressionSnappy  Compression = "snappy"
	CompressionLZ4     Compression = "lz4"
	CompressionZstd    Compression = "zstd"
)

// ParseCompression checks a codec name; "" is the default.
func ParseCompression(s string) (Compression, error) {
	c := Compression(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := c.codec(); !ok {
		return "", fmt.Errorf("client: unknown compression %q (want none, gzip, snappy, lz4 or zstd)", s)
	}
	return c, nil
}

// codec is the franz-go codec; ok is false for unknown names. For the
// default it returns ok with no codec, leaving franz-go's choice alone.
func (c Compression) codec() (codec *kgo.CompressionCodec, ok bool) {
	var cc kgo.CompressionCodec
	switch c {
	case CompressionDefault:
		return nil, true
	case CompressionNone:
		cc = kgo.NoCompression()
	case CompressionGzip:
		cc = kgo.GzipCompression()
	case CompressionSnappy:
		cc = kgo.SnappyCompression()
	case CompressionLZ4:
		cc = kgo.Lz4Compression()
	case CompressionZstd:
		cc = kgo.ZstdCompression()
	default:
		return nil, false
	}
	return &cc, true
}

// BatchStats describes one acknowledged produce batch.
type BatchStats struct {
	Records int
	// UncompressedBytes is the records as serialized, before compression;
	// CompressedBytes is what was sent for them (equal without
	// compression). Neither counts the record batch header
	// (BatchHeaderBytes).
	UncompressedBytes int
	CompressedBytes   int
}

// BatchHeaderBytes is the fixed header of a v2 record batch, which
// BatchStats leaves out.
const BatchHeaderBytes = 61

// batchHook adapts franz-go's produce hook to ProducerConfig.OnBatch.
type batchHook func(BatchStats)

func (h batchHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h(BatchStats{Records: m.NumRecords, UncompressedBytes: m.UncompressedBytes, CompressedBytes: m.CompressedBytes})
}

// Producer writes records to explicit partitions.
type Producer struct {
	cl *kgo.Client
}

// NewProducer connects a producer. Records go to the partition the caller
// names; hashing keys is not this facade's business.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("client: no brokers")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	if cfg.Linger < 0 {
		opts = append(opts, kgo.ProducerLinger(0))
	} else if cfg.Linger > 0 {
		opts = append(opts, kgo.ProducerLinger(cfg.Linger))
	}
	switch cfg.Acks {
	case AcksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, fmt.Errorf("client: acks %d is not -1, 0 or 1", cfg.Acks)
	}
	if !cfg.Idempotent || cfg.Acks != AcksAll {
		opts = append(opts, kgo.DisableIdempotentWrite())
		if cfg.MaxInFlight > 0 {
			opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(cfg.MaxInFlight))
		}
	}
	if cfg.MaxBufferedRecords > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(cfg.MaxBufferedRecords))
	}
	if cfg.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.BatchMaxBytes))
	}
	opts = append(opts, commonOpts(cfg.ClientID, cfg.MetadataMinAge, cfg.RequestTimeout)...)
	if d := cfg.RetryBackoff; d > 0 {
		opts = append(opts, kgo.RetryBackoffFn(func(int) time.Duration { return d }))
	}
	if cfg.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))
	}
	codec, ok := cfg.Compression.codec()
	if !ok {
		return nil, fmt.Errorf("client: unknown compression %q", cfg.Compression)
	}
	if codec != nil {
		opts = append(opts, kgo.ProducerBatchCompression(*codec))
	}
	if cfg.OnBatch != nil {
		opts = append(opts, kgo.WithHooks(batchHook(cfg.OnBatch)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Producer{cl: cl}, nil
}

// Produce queues one record; done runs once the broker acknowledged it (or
// it failed) with the offset the broker assigned.
func (p *Producer) Produce(ctx context.Context, topic string, partition int32, key, value []byte, done func(offset int64, err error)) {
	r := &kgo.Record{Topic: topic, Partition: partition, Key: key, Value: value}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) { done(r.Offset, err) })
}

// Flush waits until every queued record is acknowledged or failed.
func (p *Producer) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }

// Close flushes nothing; records still queued fail.
func (p *Producer) Close() { p.cl.Close() }

// Record is one consumed record.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
	// Control marks a transaction marker (see ConsumerConfig.KeepControl).
	Control bool
}

// ConsumerConfig picks what a consumer reads: assigned partitions
// directly, from the start, or, with Group set, its share of the topic as
// a member of that consumer group (from the group's commits, else the
// start), committing what it was given.
type ConsumerConfig struct {
	Brokers        []string
	Topic          string
	Partitions     []int32 // empty means every partition
	FetchMaxBytes  int32
	PartitionBytes int32
	ClientID       string

	// Group makes the consumer a member of this consumer group; it then
	// commits every CommitInterval (franz-go's default 5s when zero), and
	// on every revocation.
	Group          string
	CommitInterval time.Duration
	// SessionTimeout is the member's session (franz-go's default 45s
	// when zero); the next-generation protocol takes the broker's.
	SessionTimeout time.Duration
	// NextGen makes the member speak the next-generation protocol
	// (KIP-848), where the brokers assign partitions.
	NextGen bool
	// ReadCommitted reads only committed transactional records, up to
	// the last stable offset.
	ReadCommitted bool
	// KeepControl hands transaction markers to Poll too (Record.Control),
	// so a reader can tell it has passed a partition's last offset when a
	// marker holds it.
	KeepControl bool
}

// Consumer reads records by assignment.
type Consumer struct {
	cl *kgo.Client
}

// NewConsumer connects a consumer that starts at the earliest offset.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("client: no brokers")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	start := kgo.NewOffset().AtStart()
	if cfg.Group != "" {
		opts = append(opts, kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(start))
		if cfg.CommitInterval > 0 {
			opts = append(opts, kgo.AutoCommitInterval(cfg.CommitInterval))
		}
		if cfg.SessionTimeout > 0 {
			opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
		}
		if cfg.NextGen {
			opts = append(opts, kgo.ServerSideBalancer())
		}
	} else if len(cfg.Partitions) == 0 {
		opts = append(opts, kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(start))
	} else {
		parts := make(map[int32]kgo.Offset, len(cfg.Partitions))
		for _, p := range cfg.Partitions {
			parts[p] = start
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}))
	}
	if cfg.FetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(cfg.FetchMaxBytes))
	}
	if cfg.PartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(cfg.PartitionBytes))
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if cfg.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if cfg.KeepControl {
		opts = append(opts, kgo.KeepControlRecords())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Consumer{cl: cl}, nil
}

// Poll returns the next records, blocking until some arrive or ctx ends.
// Fetch errors are joined into the error; records that did arrive are
// returned with it.
func (c *Consumer) Poll(ctx context.Context, each func(Record)) error {
	fs := c.cl.PollFetches(ctx)
	var errs []error
	fs.EachError(func(topic string, p int32, err error) {
		errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, err))
	})
	fs.EachRecord(func(r *kgo.Record) {
		each(Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
			Control: r.Attrs.IsControl()})
	})
	return errors.Join(errs...)
}

// Close disconnects.
func (c *Consumer) Close() { c.cl.Close() }

// Admin creates and inspects topics.
type Admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewAdmin connects an admin client.
func NewAdmin(brokers []string) (*Admin, error) {
	if len(brokers) == 0 {
		return nil, errors.New("client: no brokers")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return &Admin{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// SetTimeout is the timeout admin requests carry to the broker (kadm's
// default is 15s); the client waits that long plus 10s for the answer.
// Quire caps it at 5 minutes.
func (a *Admin) SetTimeout(d time.Duration) { a.adm.SetTimeoutMillis(int32(d.Milliseconds())) }

// CreateTopic creates a topic and waits until the cluster reports a leader
// for every partition, so the first produce does not race its creation.
func (a *Admin) CreateTopic(ctx context.Context, topic string, partitions int32, replicationFactor int16, configs map[string]string) error {
	if err := a.CreateTopicNoWait(ctx, topic, partitions, replicationFactor, configs); err != nil {
		return err
	}
	return a.WaitLeaders(ctx, topic)
}

// CreateTopicNoWait issues one CreateTopics request and returns with the
// broker's answer. Quire answers once the partitions have leaders or the
// request timeout (SetTimeout) passed, whichever is first.
func (a *Admin) CreateTopicNoWait(ctx context.Context, topic string, partitions int32, replicationFactor int16, configs map[string]string) error {
	cfg := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfg[k] = &v
	}
	// kadm returns the topic's error as err too; resp has the broker's
	// message for it.
	resp, err := a.adm.CreateTopic(ctx, partitions, replicationFactor, cfg, topic)
	if resp.Err != nil {
		return fmt.Errorf("create topic %s: %w: %s", topic, resp.Err, resp.ErrMessage)
	}
	return err
}

// WaitLeaders polls Metadata until every partition of topic has a leader.
func (a *Admin) WaitLeaders(ctx context.Context, topic string) error {
	for {
		md, err := a.adm.Metadata(ctx, topic)
		if err == nil {
			td, ok := md.Topics[topic]
			if ok && td.Err == nil && len(td.Partitions) > 0 && allLed(td) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: no leader for every partition: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitPreferredLeaders polls Metadata until every partition of topic is
// led by its preferred replica, the first of its replicas: where a new
// topic's leaderships settle a few seconds after creation. Measurements
// start there, so no leadership moves under them.
func (a *Admin) WaitPreferredLeaders(ctx context.Context, topic string) error {
	for {
		md, err := a.adm.Metadata(ctx, topic)
		if err == nil {
			td, ok := md.Topics[topic]
			if ok && td.Err == nil && len(td.Partitions) > 0 && allLed(td) && allPreferred(td) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: not every partition led by its preferred replica: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allPreferred(td kadm.TopicDetail) bool {
	for _, p := range td.Partitions {
		if len(p.Replicas) == 0 || p.Leader != p.Replicas[0] {
			return false
		}
	}
	return true
}

func allLed(td kadm.TopicDetail) bool {
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// DeleteTopic deletes a topic.
func (a *Admin) DeleteTopic(ctx context.Context, topic string) error {
	resp, err := a.adm.DeleteTopic(ctx, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

// EndOffsets returns the high watermark of every partition of topic.
func (a *Admin) EndOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	lo, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64)
	var errs []error
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
			return
		}
		out[o.Partition] = o.Offset
	})
	return out, errors.Join(errs...)
}

// Close disconnects.
func (a *Admin) Close() { a.cl.Close() }

// SplitBrokers turns "a:1,b:2" into a list, dropping blanks.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// PartitionState is one partition as Metadata reports it.
type PartitionState struct {
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// Partition reports the leader, replicas and ISR of one partition, from a
// fresh Metadata request (kadm's Metadata may answer from a cache up to 5s
// old, which hides a fail-over).
func (a *Admin) Partition(ctx context.Context, topic string, partition int32) (PartitionState, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return PartitionState{Leader: -1}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return PartitionState{Leader: -1}, fmt.Errorf("topic %s: %w", topic, err)
		}
		for _, p := range t.Partitions {
			if p.Partition != partition {
				continue
			}
			st := PartitionState{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR}
			return st, kerr.ErrorForCode(p.ErrorCode)
		}
	}
	return PartitionState{Leader: -1}, fmt.Errorf("topic %s has no partition %d", topic, partition)
}

// Leaders reports the leader of every partition of topic from a fresh
// Metadata request, sent to broker when it is >= 0 and to any broker
// otherwise; -1 stands for a partition without a leader or with an error.
// (kadm's Metadata answers from the client's cache, up to 5s old.) A
// topic the broker does not know yet gives an empty map and no error.
func (a *Admin) Leaders(ctx context.Context, topic string, broker int32) (map[int32]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	// A poll that races CreateTopics must not auto-create the topic with
	// the broker's default partition count.
	req.AllowAutoTopicCreation = false
	var raw kmsg.Response
	var err error
	if broker >= 0 {
		raw, err = a.cl.Broker(int(broker)).Request(ctx, req)
	} else {
		raw, err = a.cl.Request(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int32)
	for _, t := range raw.(*kmsg.MetadataResponse).Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return out, nil
			}
			return nil, fmt.Errorf("topic %s: %w", topic, err)
		}
		for _, p := range t.Partitions {
			out[p.Partition] = p.Leader
			if p.ErrorCode != 0 {
				out[p.Partition] = -1
			}
		}
	}
	return out, nil
}
