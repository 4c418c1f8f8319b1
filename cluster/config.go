package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/transport/kafka"
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

	// GroupCommitBytes bounds the record-batch bytes packed into one Raft
	// entry. Bytes.
	GroupCommitBytes int
	// GroupCommitInFlight bounds the Raft entries of one partition that
	// are proposed but not yet committed.
	GroupCommitInFlight int
	// ElectionTimeout is raft's heartbeat/election timeout for partition
	// and metadata groups.
	ElectionTimeout time.Duration
	// SnapshotThreshold is how many Raft entries a partition group logs
	// before it takes a (cheap, hard-linked) snapshot and trims its log.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries are kept behind a snapshot for
	// slow followers.
	TrailingLogs uint64
	// SnapshotInterval is how often a partition group checks
	// SnapshotThreshold. Partition snapshots only hard-link segments, so
	// checking often keeps the Raft log (a second copy of the records)
	// short.
	SnapshotInterval time.Duration
}

// DefaultConfig returns defaults for a single local node.
func DefaultConfig() Config {
	return Config{
		NodeID:                   1,
		DataDir:                  "./data",
		Kafka:                    kafka.DefaultConfig(),
		AdminAddr:                "127.0.0.1:9644",
		ClusterID:                "quire",
		AutoCreateTopics:         true,
		DefaultPartitions:        1,
		DefaultReplicationFactor: 1,
		MaxMessageBytes:          1048588,
		MaxPartitionsPerNode:     2000,
		Log:                      partition.DefaultConfig(),
		GroupCommitBytes:         1 << 20,
		GroupCommitInFlight:      4,
		ElectionTimeout:          500 * time.Millisecond,
		SnapshotThreshold:        512,
		TrailingLogs:             128,
		SnapshotInterval:         2 * time.Second,
	}
}

// Validate rejects settings out of range, naming the setting.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID < 0 {
		errs = append(errs, fmt.Errorf("id %d must be >= 0", c.NodeID))
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
	if c.SnapshotInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("snapshot interval %s must be >= 100ms", c.SnapshotInterval))
	}
	if c.SnapshotThreshold < 1 {
		errs = append(errs, errors.New("snapshot threshold must be >= 1"))
	}
	return errors.Join(errs...)
}

func (c Config) advertisedKafka() string {
	if c.AdvertiseKafkaAddr != "" {
		return c.AdvertiseKafkaAddr
	}
	return c.Kafka.Addr
}
