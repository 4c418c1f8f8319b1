// Package groups is the consumer group coordinator. A group's state lives
// in one partition of the internal topic __consumer_offsets, chosen by the
// group id's hash, and the leader of that partition's Raft group is the
// group's coordinator. Every change (a generation's assignment, a commit,
// a deletion) is a record written through that Raft group before it is
// acknowledged, so a new leader rebuilds the same state by reading the
// partition from its start.
//
// The records are Kafka's own (kmsg.GroupMetadataKey/Value and
// kmsg.OffsetCommitKey/Value), keyed so that the latest record per key is
// the state: the topic is compacted, which keeps it bounded.
package groups

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/statelog"
)

// Topic is the internal topic that holds group state.
const Topic = "__consumer_offsets"

// Log is one __consumer_offsets partition as its leader sees it.
type Log = statelog.Log

// Cluster is what the coordinator needs from the node it runs on.
type Cluster interface {
	// Partitions is how many partitions __consumer_offsets has, 0 while
	// it does not exist.
	Partitions() int32
	// Leading returns the partition's log when this node leads it and
	// serves, else an error carrying the Kafka code to answer
	// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
	Leading(partition int32) (Log, error)
	// PartitionCount is a topic's partition count, -1 when it does not
	// exist.
	PartitionCount(topic string) int32
	// Topics lists every topic, for consumer groups' subscriptions. It
	// returns the same *TopicSet until the topics may have changed.
	Topics() *TopicSet
	// AddToTxn adds a __consumer_offsets partition to the producer's
	// transaction through the transaction coordinator, for clients of
	// transaction version 2 (TxnOffsetCommit v5+), which send no
	// AddOffsetsToTxn.
	AddToTxn(ctx context.Context, txnID string, pid int64, epoch int16, partition int32) error
}

// TopicSet is the cluster's topics at one moment.
type TopicSet struct{ Topics []TopicInfo }

// TopicInfo is one topic as consumer group assignment sees it.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Internal   bool
	// Racks holds, per partition, the racks of its replicas (empty where
	// brokers have none): assignment prefers a member in one of them.
	Racks [][]string
}

// Config tunes the coordinator; the names follow Kafka's settings.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound a member's session
	// timeout (group.min/max.session.timeout.ms).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of an empty
	// group waits for more members (group.initial.rebalance.delay.ms).
	InitialRebalanceDelay time.Duration
	// MaxGroupSize bounds the members of one group (group.max.size).
	MaxGroupSize int
	// MaxMetadataBytes bounds a commit's metadata string
	// (offset.metadata.max.bytes).
	MaxMetadataBytes int
	// ConsumerSessionTimeout and ConsumerHeartbeatInterval are the
	// session timeout and heartbeat interval of consumer (KIP-848) group
	// members (group.consumer.session.timeout.ms and
	// group.consumer.heartbeat.interval.ms).
	ConsumerSessionTimeout    time.Duration
	ConsumerHeartbeatInterval time.Duration
	// ConsumerAssignor is the server-side assignor used when members ask
	// for none (the first of group.consumer.assignors).
	ConsumerAssignor string
	// OffsetsRetention is how long an empty group's commits are kept
	// after its last commit, or after it became empty if that was later
	// (offsets.retention.minutes); the group is then deleted. 0 keeps
	// them for ever.
	OffsetsRetention time.Duration
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// DefaultConfig is Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: 3 * time.Second,
		MaxGroupSize:          1000,
		MaxMetadataBytes:      4096,
		// Kafka's interval is 5 s. Heartbeats that change nothing write
		// nothing, so a shorter one costs only a request, and it is what
		// bounds how fast partitions move between members.
		ConsumerSessionTimeout:    45 * time.Second,
		ConsumerHeartbeatInterval: 500 * time.Millisecond,
		ConsumerAssignor:          "uniform",
		OffsetsRetention:          7 * 24 * time.Hour,
		Now:                       time.Now,
	}
}

// MaxGroupIDBytes bounds a group id; Kafka has no limit of its own, but a
// group id is a record key and a metric label.
const MaxGroupIDBytes = 255

// Coordinator serves the groups of the __consumer_offsets partitions this
// node leads.
type Coordinator struct {
	cfg     Config
	cluster Cluster
	logger  hclog.Logger
	shards  statelog.Shards[*shard]
	// expiring is set while a sweep deletes expired groups.
	expiring atomic.Bool

	// view is the topic view of the cluster's topic set viewOf.
	viewMu sync.Mutex
	viewOf *TopicSet
	view   *topicView
}

// topics is the cluster's topics as the assignors see them, made again
// only when they changed.
func (c *Coordinator) topics() *topicView {
	set := c.cluster.Topics()
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if set != c.viewOf || c.view == nil {
		c.viewOf, c.view = set, newTopicView(set.Topics)
	}
	return c.view
}

// New returns a coordinator; Close stops its timers.
func New(cfg Config, cluster Cluster, logger hclog.Logger) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Coordinator{cfg: cfg, cluster: cluster, logger: logger}
	c.shards.Leading = cluster.Leading
	c.shards.New = func(p int32, log Log) *shard { return newShard(c, p, log) }
	return c
}

// Close drops every shard.
func (c *Coordinator) Close() { c.shards.Close() }

// PartitionFor is the __consumer_offsets partition of a group, where
// Kafka would put it with the same partition count.
func PartitionFor(group string, partitions int32) int32 {
	return statelog.PartitionFor(group, partitions)
}

// errClosed answers requests that arrive while the node shuts down.
var errClosed = kerr.CoordinatorNotAvailable

// shardFor returns the loaded shard of a group's partition, loading it
// when this node has just become its leader.
func (c *Coordinator) shardFor(ctx context.Context, group string) (*shard, error) {
	n := c.cluster.Partitions()
	if n <= 0 {
		return nil, kerr.CoordinatorNotAvailable
	}
	return c.shard(ctx, PartitionFor(group, n))
}

// groupShard validates a group id and finds its loaded shard.
func (c *Coordinator) groupShard(ctx context.Context, group string) (*shard, error) {
	if err := validGroupID(group); err != nil {
		return nil, err
	}
	return c.shardFor(ctx, group)
}

func (c *Coordinator) shard(ctx context.Context, p int32) (*shard, error) {
	s, err := c.shards.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Sweep drops the shards of partitions this node no longer leads, so their
// timers stop and their memory is freed, and loads those it newly leads:
// the coordinator of a fail-over is ready sooner, and lag is reported for
// every group. The node calls it every few seconds.
func (c *Coordinator) Sweep() {
	c.shards.Sweep(c.cluster.Partitions())
	if c.cfg.OffsetsRetention > 0 && !c.expiring.Swap(true) {
		go func() {
			defer c.expiring.Store(false)
			c.expire()
		}()
	}
}

// expire deletes the empty groups whose commits are older than the
// retention, as DeleteGroups would: tombstones through Raft.
func (c *Coordinator) expire() {
	cutoff := c.cfg.Now().Add(-c.cfg.OffsetsRetention).UnixMilli()
	for _, s := range c.shards.Sorted() {
		if !s.Loaded() {
			continue
		}
		for _, g := range s.sortedGroups() {
			if !g.expired(cutoff) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			if err := c.deleteGroup(ctx, g.id); err == nil {
				c.logger.Info("expired group deleted", "group", g.id, "retention", c.cfg.OffsetsRetention)
			}
			cancel()
		}
	}
}

// Validate rejects settings out of range, naming the setting.
func (c Config) Validate() error {
	switch {
	case c.MinSessionTimeout < 100*time.Millisecond:
		return fmt.Errorf("group min session timeout %s must be >= 100ms", c.MinSessionTimeout)
	case c.MaxSessionTimeout < c.MinSessionTimeout:
		return fmt.Errorf("group max session timeout %s must be >= the min, %s", c.MaxSessionTimeout, c.MinSessionTimeout)
	case c.InitialRebalanceDelay < 0:
		return fmt.Errorf("group initial rebalance delay %s must be >= 0", c.InitialRebalanceDelay)
	case c.MaxGroupSize < 1:
		return fmt.Errorf("group max size %d must be >= 1", c.MaxGroupSize)
	case c.ConsumerHeartbeatInterval < 10*time.Millisecond || c.ConsumerSessionTimeout <= c.ConsumerHeartbeatInterval:
		return fmt.Errorf("consumer group heartbeat interval %s must be >= 10ms and below the session timeout %s", c.ConsumerHeartbeatInterval, c.ConsumerSessionTimeout)
	case assignors[c.ConsumerAssignor] == nil:
		return fmt.Errorf("consumer group assignor %q is not one of uniform, range", c.ConsumerAssignor)
	case c.OffsetsRetention < 0:
		return fmt.Errorf("offsets retention %s must be >= 0", c.OffsetsRetention)
	case c.MaxMetadataBytes < 0:
		return fmt.Errorf("offset metadata max bytes %d must be >= 0", c.MaxMetadataBytes)
	}
	return nil
}
