package kafkaapi

import (
	"context"
	"github.com/twmb/franz-go/pkg/kmsg"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/txn"
	"github.com/quirelog/quire/fsm"
)

// Broker is what the Kafka handlers need from the node they run on
// (package cluster implements it). The handlers own the Kafka side:
// building responses, validating batches, fencing, the waits that keep
// clients from acting on an answer about to change. The Broker owns Raft,
// gossip and the replicas: who leads, who is alive, what is committed.
type Broker interface {
	Runtime
	Partitions
	Leaders
	Topics
	Coordinators
	Metrics
}

// Coordinators are the coordinators that own state beyond a partition's
// records.
type Coordinators interface {
	// Groups is the consumer group coordinator of this node.
	Groups() *groups.Coordinator
	// GroupsTopic is __consumer_offsets, created (internal) when it does
	// not exist yet.
	GroupsTopic(ctx context.Context) (*fsm.Topic, error)
	// Txns is the transaction coordinator of this node.
	Txns() *txn.Coordinator
	// TxnTopic is __transaction_state, created (internal) when it does not
	// exist yet.
	TxnTopic(ctx context.Context) (*fsm.Topic, error)
	// VerifyTxn asks the transactional id's coordinator, wherever it is,
	// whether the producer's current transaction holds the partition, or
	// (add) to add it.
	VerifyTxn(ctx context.Context, id string, pid int64, epoch int16, topic string, partition int32, add bool) error
}

// Runtime is the running broker itself.
type Runtime interface {
	// AwaitStarted waits until the node has started every part, and
	// reports false when ctx ends or the node closes first.
	AwaitStarted(ctx context.Context) bool
	// Settings are the node's configuration values the handlers read.
	Settings() Settings
	Logger() hclog.Logger
}

// Settings are the node's configuration values the handlers read.
type Settings struct {
	NodeID    int32
	ClusterID string
	// Advertised is this broker's Kafka address (host:port) as clients
	// should dial it.
	Advertised string
	Rack       string
	// AutoCreateTopics is auto.create.topics.enable.
	AutoCreateTopics bool
	// DefaultPartitions and DefaultReplicationFactor replace -1 in
	// CreateTopics; DefaultPartitions also sizes auto-created topics.
	DefaultPartitions        int32
	DefaultReplicationFactor int16
}

// Partitions finds the local replicas requests read from and write to.
type Partitions interface {
	// LeaderPartition is the local replica of a partition when it leads
	// and serves, or the error a client should see (a kerr.Error).
	LeaderPartition(topic string, partition int32) (Partition, error)
	// ProduceTarget is the local replica a produce may go to: like
	// LeaderPartition, but a leader elected a moment ago takes writes
	// before its term's barrier has applied.
	ProduceTarget(topic string, partition int32) (WritablePartition, error)
	// AwaitElection holds a request, until ctx ends, for a partition
	// whose leader is being elected among replicas that include this
	// node, and reports whether it waited.
	AwaitElection(ctx context.Context, topic string, partition int32) bool
}

// Partition is a local leader replica, for reads.
type Partition interface {
	// LeaderEpoch is the replica's leader epoch (Raft term) now, -1 if
	// it no longer leads.
	LeaderEpoch() int32
	HighWatermark() int64
	StartOffset() int64
	// Read returns stored batches from offset, up to maxBytes (the first
	// batch whole); partition.ErrOffsetOutOfRange outside the log.
	Read(offset int64, maxBytes int) ([]byte, error)
	// ReadCommitted is Read stopping at the last stable offset.
	ReadCommitted(offset int64, maxBytes int) ([]byte, error)
	// LastStableOffset is where the oldest open transaction begins, or the
	// high watermark when none is open.
	LastStableOffset() int64
	// AbortedTxns lists the aborted transactions that overlap [from, to).
	AbortedTxns(from, to int64) []fsm.AbortedTxn
	// Changed is closed when the partition next takes new data.
	Changed() <-chan struct{}
	// OffsetForTimestamp finds the first batch whose max timestamp is at
	// or after ts.
	OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error)
	// MaxTimestampOffset finds the first record with the largest
	// timestamp below end.
	MaxTimestampOffset(end int64) (offset, timestamp int64, found bool, err error)
	// EndOffsetForEpoch is the largest epoch <= epoch and where the
	// epoch after it begins (KIP-101).
	EndOffsetForEpoch(epoch int32) (int32, int64)
}

// WritablePartition is a local replica that takes produce requests.
type WritablePartition interface {
	// MaxMessageBytes is the topic's max.message.bytes.
	MaxMessageBytes() int32
	// MinInSync is the topic's min.insync.replicas.
	MinInSync() int
	// InSync is how many replicas count as in sync for MinInSync.
	InSync() int
	// LogAppendTime is the topic's message.timestamp.type=LogAppendTime.
	LogAppendTime() bool
	// Compacted is cleanup.policy with compact: records need a key.
	Compacted() bool
	// Compression is the codec compression.type stores batches with, or
	// -1 for the producer's.
	Compression() int8
	// Submit queues one record batch for the partition's Raft group.
	Submit(ctx context.Context, batch []byte) Proposal
	// WriteMarker commits a transaction marker through the partition's
	// Raft group and returns its offset.
	WriteMarker(ctx context.Context, m fsm.Marker) (int64, error)
	// HasOpenTxn reports whether the producer's transaction of this epoch
	// is already open on the partition.
	HasOpenTxn(pid int64, epoch int16) bool
	StartOffset() int64
}

// Proposal is one submitted record batch.
type Proposal interface {
	// Wait blocks until the batch is committed (or failed) or ctx ends.
	Wait(ctx context.Context) fsm.BatchResult
}

// Leaders is what the node knows of partition leaders and of the other
// brokers.
type Leaders interface {
	// LeaderHint is the leader, and its epoch, that a client refused
	// with NOT_LEADER_OR_FOLLOWER should try next (KIP-951).
	LeaderHint(topic string, partition int32) (leader, epoch int32, ok bool)
	// PartitionMetadata is what Metadata tells clients of one partition
	// of t.
	PartitionMetadata(t *fsm.Topic, partition int32) PartitionMetadata
	// LeaderLive reports whether a node named leader of a partition can
	// be told to clients.
	LeaderLive(id int32) bool
	// ConfirmLeader pings another node and reports whether it answered.
	ConfirmLeader(ctx context.Context, id int32) error
	// QuorumReachable reports whether a majority of replicas answers
	// this node.
	QuorumReachable(replicas []int32) bool
}

// PartitionMetadata is a partition's leader, leader epoch (-1, -1 when
// none serves), ISR and offline replicas as clients are told them.
type PartitionMetadata struct {
	Leader, LeaderEpoch int32
	ISR                 []int32
	OfflineReplicas     []int32
}

// Topics is the cluster metadata and its controller.
type Topics interface {
	// MetaState is the metadata as this node has applied it.
	MetaState() *fsm.MetaState
	// ControllerID is the controller's broker id, or -1.
	ControllerID() int32
	// AwaitController waits, at most max or until ctx ends, for a
	// controller this node has caught up with (only until it first has).
	AwaitController(ctx context.Context, max time.Duration)
	// AwaitCluster waits, until ctx ends, for what a topic's creation
	// needs from a cluster that is still forming.
	AwaitCluster(ctx context.Context)
	// AutoCreateRF is the replication factor of an auto-created topic.
	AutoCreateRF() int16
	// CreateTopic validates, places and (unless spec.ValidateOnly)
	// commits a new topic.
	CreateTopic(ctx context.Context, spec TopicSpec) (*fsm.Topic, error)
	// WaitTopicReady waits, until ctx ends, until every local replica of
	// t has a leader.
	WaitTopicReady(ctx context.Context, t *fsm.Topic)
	// DeleteTopic removes a topic from the metadata.
	DeleteTopic(ctx context.Context, name string) error
	// DescribeConfigs lists the configs of a topic or of this broker.
	DescribeConfigs(typ kmsg.ConfigResourceType, name string) ([]ConfigValue, error)
	// DeleteRecords moves a partition's log start offset forward to
	// offset (-1: the high watermark) through its Raft group, on the
	// leader, and returns the start afterwards.
	DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error)
	// AlterConfigs changes the dynamic configs of a topic or of brokers
	// through the metadata group.
	AlterConfigs(ctx context.Context, a ConfigAlteration) error
	// AddPartitions grows a topic to count partitions, placed as
	// CreateTopic places them; it returns the grown topic.
	AddPartitions(ctx context.Context, name string, count int32, validateOnly bool) (*fsm.Topic, error)
	// NextProducerID hands out a fresh producer id from a block reserved
	// through the metadata.
	NextProducerID(ctx context.Context) (int64, error)
}

// ConfigValue is one config as DescribeConfigs reports it: its value in
// force and where that comes from, with the synonyms it overrides, in
// order of precedence.
type ConfigValue struct {
	Name, Value string
	Source      kmsg.ConfigSource
	ReadOnly    bool
	Type        kmsg.ConfigType
	Doc         string
	Synonyms    []ConfigSynonym
}

// ConfigAlteration is one resource's config change: AlterConfigs replaces
// every dynamic config of the resource (Replace), IncrementalAlterConfigs
// sets and deletes the ones it names. Name is a topic, or for brokers ""
// (the cluster-wide defaults) or a broker id.
type ConfigAlteration struct {
	Type         kmsg.ConfigResourceType
	Name         string
	Replace      bool
	Set          map[string]string
	Delete       []string
	ValidateOnly bool
}

// ConfigSynonym is a config a value may come from.
type ConfigSynonym struct {
	Name, Value string
	Source      kmsg.ConfigSource
}

// TopicSpec is a topic creation request after defaults are applied.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
	ValidateOnly      bool
}

// Metrics counts what the handlers serve.
type Metrics interface {
	// ProducedBytes counts record-batch bytes acknowledged to producers.
	ProducedBytes(n int)
	// FetchedBytes counts record-batch bytes returned to fetchers.
	FetchedBytes(n int)
}
