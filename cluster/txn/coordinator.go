// Package txn is the transaction coordinator. A transactional id's state
// lives in one partition of the internal topic __transaction_state, chosen
// by the id's hash, and the leader of that partition's Raft group is its
// coordinator. Every transition (a producer epoch handed out, partitions
// added, a commit or abort decided, the markers written) is a record
// written through that Raft group before it is acted on, so a coordinator
// that takes over replays the partition and finishes whatever its
// predecessor had decided: a transaction is never left hanging.
//
// The records are Kafka's own (kmsg.TxnMetadataKey and TxnMetadataValue),
// keyed by transactional id: the latest record per id is the state.
package txn

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/fsm"
)

// Topic is the internal topic that holds transaction state.
const Topic = "__transaction_state"

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Cluster is what the coordinator needs from the node it runs on.
type Cluster interface {
	// Partitions is how many partitions __transaction_state has, 0 while
	// it does not exist.
	Partitions() int32
	// Leading returns the partition's log when this node leads it and
	// serves, else an error carrying the Kafka code to answer
	// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
	Leading(partition int32) (statelog.Log, error)
	// PartitionCount is a topic's partition count, -1 when it does not
	// exist.
	PartitionCount(topic string) int32
	// NextProducerID hands out a producer id never handed out before.
	NextProducerID(ctx context.Context) (int64, error)
	// WriteMarker commits a transaction marker on one partition, through
	// its leader wherever that is. A nil error means the marker is
	// committed, or the partition no longer needs one (the topic is gone,
	// or a newer epoch of the producer already ended the transaction
	// there).
	WriteMarker(ctx context.Context, tp TopicPartition, m fsm.Marker) error
}

// Config tunes the coordinator; the names follow Kafka's settings.
type Config struct {
	// MaxTimeout bounds the transaction timeout a producer may ask for
	// (transaction.max.timeout.ms).
	MaxTimeout time.Duration
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// DefaultConfig is Kafka's defaults.
func DefaultConfig() Config {
	return Config{MaxTimeout: 15 * time.Minute, Now: time.Now}
}

// Validate rejects settings out of range, naming the setting.
func (c Config) Validate() error {
	if c.MaxTimeout < time.Second {
		return fmt.Errorf("transaction max timeout %s must be >= 1s", c.MaxTimeout)
	}
	return nil
}

// MaxIDBytes bounds a transactional id, a record key and a metric label.
const MaxIDBytes = 255

// Coordinator serves the transactional ids of the __transaction_state
// partitions this node leads.
type Coordinator struct {
	cfg     Config
	cluster Cluster
	logger  hclog.Logger
	shards  statelog.Shards[*shard]
}

// New returns a coordinator; Close stops its work.
func New(cfg Config, cluster Cluster, logger hclog.Logger) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Coordinator{cfg: cfg, cluster: cluster, logger: logger}
	c.shards.Leading = cluster.Leading
	c.shards.New = func(p int32, log statelog.Log) *shard { return newShard(c, p, log) }
	return c
}

// Close drops every shard; completions in flight stop retrying.
func (c *Coordinator) Close() { c.shards.Close() }

// shardFor validates a transactional id and returns its loaded shard,
// loading it when this node has just become the partition's leader.
func (c *Coordinator) shardFor(ctx context.Context, id string) (*shard, error) {
	if id == "" || len(id) > MaxIDBytes {
		return nil, kerr.InvalidRequest
	}
	n := c.cluster.Partitions()
	if n <= 0 {
		return nil, kerr.CoordinatorNotAvailable
	}
	return c.shards.Get(ctx, statelog.PartitionFor(id, n))
}

// Sweep drops the shards of partitions this node no longer leads, loads
// those it newly leads (finishing the transactions their last leader had
// decided), and aborts transactions that ran past their timeout. The node
// calls it every second or so.
func (c *Coordinator) Sweep() {
	c.shards.Sweep(c.cluster.Partitions())
	now := c.cfg.Now()
	for _, s := range c.shards.Sorted() {
		if s.Loaded() {
			s.abortExpired(now)
		}
	}
}

// errNotFound answers for a transactional id this coordinator does not
// know.
var errNotFound = kerr.TransactionalIDNotFound
