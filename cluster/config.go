package cluster

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/txn"
	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/transport/kafka"
	"github.com/quirelog/quire/transport/node"
)

// Config configures one node.
type Config struct {
	// NodeID is the broker id; unique in the cluster, >= 0.
	NodeID int32
	// DataDir holds every file the node writes.
	DataDir string
	// Kafka is the client listener.
	Kafka kafka.Config
	// AdvertiseKafkaAddr is the host:port clients are told to dial; empty
	// means Kafka.Addr.
	AdvertiseKafkaAddr string
	// AdminAddr serves /metrics and /health/*; empty disables it.
	AdminAddr string

	// NodeAddr is the one TCP listener for all node-to-node traffic (every
	// Raft group and internal RPC); AdvertiseNodeAddr is what peers dial
	// when it differs.
	NodeAddr          string
	AdvertiseNodeAddr string
	// GossipAddr is the memberlist bind address (TCP and UDP);
	// AdvertiseGossipAddr is what peers gossip to when it differs.
	GossipAddr          string
	AdvertiseGossipAddr string
	// Join lists gossip addresses of other nodes; joining is retried in the
	// background so nodes may start in any order.
	Join []string
	// BootstrapExpect is how many controller-eligible nodes must have met
	// by gossip before a brand-new cluster forms its metadata group (as
	// Consul's bootstrap_expect). 1 with no Join bootstraps alone.
	BootstrapExpect int
	// Controller makes this node eligible to vote in the metadata group.
	Controller bool
	// Rack is used for rack-aware replica placement.
	Rack string
	// ReplicaLagTimeMax drops a follower from the ISR once the leader's
	// heartbeats to it have failed for this long (replica.lag.time.max.ms).
	ReplicaLagTimeMax time.Duration
	// LeaderRebalanceInterval is how often each node hands the partitions
	// it leads back to their preferred (first) replica when that replica
	// is in sync (auto.leader.rebalance.enable with
	// leader.imbalance.check.interval.seconds). 0 disables.
	LeaderRebalanceInterval time.Duration
	// Faults, when set, injects network faults into the node transport
	// and gossip (tests and chaos only).
	Faults *node.Faults
	// FaultInjection serves /debug/faults on the admin listener, through
	// which a chaos runner in another process sets this node's network
	// faults. Never enable it on a cluster you care about.
	FaultInjection bool
	// FastGossip uses test timings for failure detection.
	FastGossip bool
	// ClusterID is reported in Metadata responses.
	ClusterID string

	// AutoCreateTopics creates unknown topics named in Metadata requests
	// (auto.create.topics.enable).
	AutoCreateTopics bool
	// DefaultPartitions is num.partitions for auto-created topics and
	// CreateTopics with -1.
	DefaultPartitions int32
	// DefaultReplicationFactor is used for CreateTopics with -1.
	DefaultReplicationFactor int16
	// MaxMessageBytes is the largest record batch accepted
	// (max.message.bytes default for new topics). Bytes.
	MaxMessageBytes int32
	// MaxPartitionsPerNode bounds the partition replicas one node hosts;
	// each is a Raft group with its own store and goroutines, so an
	// unbounded CreateTopics could exhaust the node.
	MaxPartitionsPerNode int
	// Log holds the segment defaults for new partitions.
	Log partition.Config
	// TopicDefaults are the broker defaults of topic configs that have no
	// field of their own, under Kafka's broker names (log.retention.ms);
	// set them with SetBrokerDefault. Unset ones take Kafka's default.
	TopicDefaults map[string]string
	// RetentionCheckInterval is how often each partition leader looks for
	// segments past retention (log.retention.check.interval.ms).
	RetentionCheckInterval time.Duration
	// CompactionCheckInterval is how often each leader of a compacted
	// partition looks at how dirty its log is (log.cleaner.backoff.ms).
	CompactionCheckInterval time.Duration
	// CompactionMaxBytesPerSec caps how fast a compaction pass reads
	// segments, so it leaves the disk and CPU to produce and fetch
	// (log.cleaner.io.max.bytes.per.second); 0 is no cap.
	CompactionMaxBytesPerSec int64

	// OffsetsTopicPartitions is the partition count of __consumer_offsets
	// when it is created (offsets.topic.num.partitions). Each partition
	// is a Raft group whose leader coordinates the groups hashed to it.
	OffsetsTopicPartitions int32
	// OffsetsTopicReplicationFactor is its replication factor, lowered
	// to the live brokers when there are fewer
	// (offsets.topic.replication.factor).
	OffsetsTopicReplicationFactor int16
	// InternalSegmentBytes is segment.bytes of the internal topics when
	// they are created (offsets.topic.segment.bytes,
	// transaction.state.log.segment.bytes): they are compacted, and only
	// closed segments are.
	InternalSegmentBytes int64
	// TransactionStatePartitions and TransactionStateReplicationFactor
	// are those of __transaction_state when it is created
	// (transaction.state.log.num.partitions and
	// transaction.state.log.replication.factor).
	TransactionStatePartitions        int32
	TransactionStateReplicationFactor int16
	// Txn tunes the transaction coordinator.
	Txn txn.Config
	// Groups tunes the consumer group coordinator (session timeout
	// bounds, initial rebalance delay, group size).
	Groups groups.Config
	// GroupLagPartitionMetrics adds a lag series per group and partition
	// to the per-group max and sum.
	GroupLagPartitionMetrics bool

	// ProducerIDExpiration is how long a partition remembers an idle
	// idempotent producer after its last write there
	// (producer.id.expiration.ms); a producer with an open transaction is
	// kept. ProducerIDExpirationCheck is how often each leader looks
	// (producer.id.expiration.check.interval.ms).
	ProducerIDExpiration      time.Duration
	ProducerIDExpirationCheck time.Duration

	// GroupCommitBytes bounds the record-batch bytes packed into one Raft
	// entry. Bytes.
	GroupCommitBytes int
	// GroupCommitInFlight bounds the Raft entries of one partition that
	// are proposed but not yet committed.
	GroupCommitInFlight int
	// ElectionTimeout is raft's heartbeat/election timeout for the metadata
	// group.
	ElectionTimeout time.Duration
	// GroupTimeout is raft's heartbeat, election, lease and commit timeout
	// for partition groups. Node liveness elects their leaders (within
	// LivenessTimeout of a failure), so this is only a fallback, and it is
	// long because each group's idle cost is one heartbeat per follower
	// every tenth of it.
	GroupTimeout time.Duration
	// LivenessTimeout is how long a peer may leave this node's pings
	// unanswered before it counts as down: the partitions it leads get
	// new leaders, and those led here that no longer reach a majority
	// stop serving.
	LivenessTimeout time.Duration
	// SnapshotThreshold is how many Raft entries a partition group logs
	// before it takes a (cheap, hard-linked) snapshot and trims its log.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries are kept behind a snapshot for
	// slow followers.
	TrailingLogs uint64
	// SnapshotInterval is how often the node checks its partition groups
	// against SnapshotThreshold. Partition snapshots only hard-link segments, so
	// checking often keeps the Raft log (a second copy of the records)
	// short.
	SnapshotInterval time.Duration
	// MemoryLimit is the Go heap soft limit of a node with no partitions,
	// in bytes; each hosted replica adds to it (see setMemoryLimit). The
	// garbage collector works harder near it. 0 leaves the limit alone.
	MemoryLimit int64
	// RaftLog is where partition groups keep their Raft logs: RaftLogShared
	// (one log per node, one fsync per round for all of them) or
	// RaftLogPerGroup (a raft.db per partition). The metadata group always
	// has its own.
	RaftLog string
}

// Raft log layouts (Config.RaftLog).
const (
	RaftLogShared   = "shared"
	RaftLogPerGroup = "per-group"
)

// DefaultConfig returns defaults for a single local node.
func DefaultConfig() Config {
	return Config{
		NodeID:                            1,
		DataDir:                           "./data",
		Kafka:                             kafka.DefaultConfig(),
		AdminAddr:                         "127.0.0.1:9644",
		NodeAddr:                          "127.0.0.1:33145",
		GossipAddr:                        "127.0.0.1:33146",
		BootstrapExpect:                   1,
		Controller:                        true,
		ReplicaLagTimeMax:                 10 * time.Second,
		LeaderRebalanceInterval:           5 * time.Minute,
		ClusterID:                         "quire",
		AutoCreateTopics:                  true,
		DefaultPartitions:                 1,
		DefaultReplicationFactor:          1,
		MaxMessageBytes:                   1048588,
		MaxPartitionsPerNode:              2000,
		Log:                               partition.DefaultConfig(),
		RetentionCheckInterval:            5 * time.Minute,
		CompactionCheckInterval:           15 * time.Second,
		OffsetsTopicPartitions:            16,
		OffsetsTopicReplicationFactor:     3,
		InternalSegmentBytes:              100 << 20,
		Groups:                            groups.DefaultConfig(),
		TransactionStatePartitions:        16,
		TransactionStateReplicationFactor: 3,
		Txn:                               txn.DefaultConfig(),
		ProducerIDExpiration:              24 * time.Hour,
		ProducerIDExpirationCheck:         10 * time.Minute,
		GroupCommitBytes:                  1 << 20,
		GroupCommitInFlight:               4,
		ElectionTimeout:                   2 * time.Second,
		GroupTimeout:                      time.Minute,
		LivenessTimeout:                   time.Second,
		SnapshotThreshold:                 512,
		TrailingLogs:                      128,
		SnapshotInterval:                  2 * time.Second,
		RaftLog:                           RaftLogShared,
	}
}

// Validate rejects settings out of range, naming the setting.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID < 0 {
		errs = append(errs, fmt.Errorf("id %d must be >= 0", c.NodeID))
	}
	if c.NodeAddr == "" {
		errs = append(errs, errors.New("node addr must be set"))
	}
	if c.GossipAddr == "" {
		errs = append(errs, errors.New("gossip addr must be set"))
	}
	if c.BootstrapExpect < 1 || c.BootstrapExpect > 7 {
		errs = append(errs, fmt.Errorf("bootstrap expect %d must be in [1, 7]", c.BootstrapExpect))
	}
	if c.BootstrapExpect > 1 && !c.Controller {
		errs = append(errs, errors.New("bootstrap expect needs a controller-eligible node"))
	}
	if c.ReplicaLagTimeMax < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("replica lag time max %s must be >= 100ms", c.ReplicaLagTimeMax))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DefaultPartitions < 1 {
		errs = append(errs, fmt.Errorf("default partitions %d must be >= 1", c.DefaultPartitions))
	}
	if c.DefaultReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("default replication factor %d must be >= 1", c.DefaultReplicationFactor))
	}
	if err := intRange(1024, math.MaxInt32)(itoa(c.InternalSegmentBytes)); err != nil {
		errs = append(errs, fmt.Errorf("internal topic segment bytes: %w", err))
	}
	for name, v := range c.TopicDefaults {
		if err := (&Config{}).SetBrokerDefault(name, v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OffsetsTopicPartitions < 1 || c.OffsetsTopicPartitions > 1000 {
		errs = append(errs, fmt.Errorf("offsets topic partitions %d must be in [1, 1000]", c.OffsetsTopicPartitions))
	}
	if c.TransactionStatePartitions < 1 || c.TransactionStatePartitions > 1000 {
		errs = append(errs, fmt.Errorf("transaction state partitions %d must be in [1, 1000]", c.TransactionStatePartitions))
	}
	if c.TransactionStateReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("transaction state replication factor %d must be >= 1", c.TransactionStateReplicationFactor))
	}
	if err := c.Txn.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.OffsetsTopicReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("offsets topic replication factor %d must be >= 1", c.OffsetsTopicReplicationFactor))
	}
	if err := c.Groups.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxPartitionsPerNode < 1 {
		errs = append(errs, fmt.Errorf("max partitions per node %d must be >= 1", c.MaxPartitionsPerNode))
	}
	if c.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("max message bytes %d must be >= 1024", c.MaxMessageBytes))
	}
	if c.GroupCommitBytes < 1024 {
		errs = append(errs, fmt.Errorf("group commit bytes %d must be >= 1024", c.GroupCommitBytes))
	}
	if c.GroupCommitInFlight < 1 {
		errs = append(errs, fmt.Errorf("group commit in-flight %d must be >= 1", c.GroupCommitInFlight))
	}
	if c.ElectionTimeout < 50*time.Millisecond {
		errs = append(errs, fmt.Errorf("election timeout %s must be >= 50ms", c.ElectionTimeout))
	}
	if c.GroupTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("raft group timeout %s must be >= 100ms", c.GroupTimeout))
	}
	if c.LivenessTimeout < 200*time.Millisecond {
		errs = append(errs, fmt.Errorf("liveness timeout %s must be >= 200ms", c.LivenessTimeout))
	}
	if c.SnapshotInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("snapshot interval %s must be >= 100ms", c.SnapshotInterval))
	}
	if c.RaftLog != RaftLogShared && c.RaftLog != RaftLogPerGroup {
		errs = append(errs, fmt.Errorf("raft log %q must be %q or %q", c.RaftLog, RaftLogShared, RaftLogPerGroup))
	}
	if c.ProducerIDExpiration < time.Second || c.ProducerIDExpirationCheck < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("producer id expiration %s must be >= 1s and its check interval %s >= 100ms", c.ProducerIDExpiration, c.ProducerIDExpirationCheck))
	}
	if c.SnapshotThreshold < 1 {
		errs = append(errs, errors.New("snapshot threshold must be >= 1"))
	}
	return errors.Join(errs...)
}

func (c Config) advertisedNode(bound string) string {
	if c.AdvertiseNodeAddr != "" {
		return c.AdvertiseNodeAddr
	}
	return bound
}

func (c Config) advertisedKafka() string {
	if c.AdvertiseKafkaAddr != "" {
		return c.AdvertiseKafkaAddr
	}
	return c.Kafka.Addr
}
