package cluster

import (
	"context"
	"github.com/twmb/franz-go/pkg/kmsg"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/fsm"
)

// kafkaBroker is the Broker the node's Kafka API (package kafkaapi)
// serves: its methods are that API's view of Raft, gossip and the
// replicas. A type of its own keeps them off Node's exported surface.
type kafkaBroker struct{ *Node }

var _ kafkaapi.Broker = kafkaBroker{}

// AwaitStarted waits until start has set up every part of the node; it
// reports false when ctx ends or the node closes first. The Kafka
// listener accepts before the node has started.
func (n kafkaBroker) AwaitStarted(ctx context.Context) bool {
	select {
	case <-n.started:
		return true
	case <-ctx.Done():
		return false
	case <-n.ctx.Done():
		return false
	}
}

// Settings are the configuration values the Kafka API reads.
func (n kafkaBroker) Settings() kafkaapi.Settings {
	return kafkaapi.Settings{
		NodeID:                   n.cfg.NodeID,
		ClusterID:                n.cfg.ClusterID,
		Advertised:               n.advKafka,
		Rack:                     n.cfg.Rack,
		AutoCreateTopics:         n.cfg.AutoCreateTopics,
		DefaultPartitions:        n.cfg.DefaultPartitions,
		DefaultReplicationFactor: n.cfg.DefaultReplicationFactor,
	}
}

// Logger is the node's logger.
func (n kafkaBroker) Logger() hclog.Logger { return n.logger }

// LeaderPartition is the local replica of a partition when it leads and
// serves, for reads.
func (n kafkaBroker) LeaderPartition(topic string, partition int32) (kafkaapi.Partition, error) {
	r, err := n.leaderReplica(topic, partition)
	if err != nil {
		return nil, err
	}
	return kafkaPartition{r.fsm, n.Node, r}, nil
}

// ProduceTarget is the local replica a produce may go to (see
// writableReplica).
func (n kafkaBroker) ProduceTarget(topic string, partition int32) (kafkaapi.WritablePartition, error) {
	r, err := n.writableReplica(topic, partition)
	if err != nil {
		return nil, err
	}
	return kafkaPartition{r.fsm, n.Node, r}, nil
}

// AwaitElection holds a request while the partition's leader is being
// elected among replicas that include this node (see awaitElection).
func (n kafkaBroker) AwaitElection(ctx context.Context, topic string, partition int32) bool {
	return n.awaitElection(ctx, topic, partition)
}

// kafkaPartition is a local replica as the Kafka API reads and writes it.
type kafkaPartition struct {
	*fsm.PartitionFSM
	n *Node
	r *replica
}

func (p kafkaPartition) LeaderEpoch() int32 {
	_, epoch := p.r.leader()
	return epoch
}

func (p kafkaPartition) MaxMessageBytes() int32 { return p.r.settings.Load().maxMessageBytes }
func (p kafkaPartition) MinInSync() int         { return p.r.settings.Load().minISR }
func (p kafkaPartition) LogAppendTime() bool    { return p.r.settings.Load().logAppendTime }
func (p kafkaPartition) Compacted() bool        { return p.r.settings.Load().compactPolicy }
func (p kafkaPartition) Compression() int8      { return p.r.settings.Load().codec() }
func (p kafkaPartition) InSync() int            { return p.n.inSync(p.r) }

func (p kafkaPartition) Submit(ctx context.Context, batch []byte) kafkaapi.Proposal {
	return p.r.proposer.submit(ctx, batch)
}

// WriteMarker commits a transaction marker through the partition's Raft
// group. It goes around the produce group commit: a marker is an entry of
// its own, ordered with the batches by Raft alone.
func (p kafkaPartition) WriteMarker(ctx context.Context, m fsm.Marker) (int64, error) {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := p.r.group.raft.Apply(fsm.EncodeMarker(m), timeout)
	if err := f.Error(); err != nil {
		return -1, raftErrToKafka(err)
	}
	res, ok := f.Response().(*fsm.MarkerResult)
	if !ok {
		// Applied before this process restarted: the outcome is unknown
		// here, and a retry is safe (a marker for a closed transaction
		// only appends another).
		return -1, kerr.RequestTimedOut
	}
	return res.Offset, res.Err
}

// Wait implements kafkaapi.Proposal.
func (p *proposal) Wait(ctx context.Context) fsm.BatchResult { return p.wait(ctx) }

// LeaderHint is the leader a client refused with NOT_LEADER_OR_FOLLOWER
// should try next (KIP-951; see leaderHint).
func (n kafkaBroker) LeaderHint(topic string, partition int32) (leader, epoch int32, ok bool) {
	return n.leaderHint(topic, partition)
}

// PartitionMetadata is what Metadata tells clients of partition i of t:
// its leader (see partitionLeader) and the replicas this node counts as
// dead.
func (n kafkaBroker) PartitionMetadata(t *fsm.Topic, i int32) kafkaapi.PartitionMetadata {
	a := t.Partitions[i]
	var pm kafkaapi.PartitionMetadata
	pm.Leader, pm.LeaderEpoch, pm.ISR = n.partitionLeader(tp{t.Name, i}, t, a)
	pm.OfflineReplicas = []int32{}
	for _, id := range a.Replicas {
		if !n.alive(id) {
			pm.OfflineReplicas = append(pm.OfflineReplicas, id)
		}
	}
	return pm
}

// LeaderLive reports whether a node named leader of a partition can be
// told to clients (see leaderLive).
func (n kafkaBroker) LeaderLive(id int32) bool { return n.leaderLive(id) }

// ConfirmLeader pings node id over the node transport.
func (n kafkaBroker) ConfirmLeader(ctx context.Context, id int32) error { return n.nt.Confirm(ctx, id) }

// QuorumReachable reports whether a majority of replicas answers this node.
func (n kafkaBroker) QuorumReachable(replicas []int32) bool {
	return n.elections.quorumReachable(replicas)
}

// MetaState is the metadata as this node has applied it.
func (n kafkaBroker) MetaState() *fsm.MetaState { return n.meta.state() }

// AwaitController waits for a controller this node has caught up with
// (see awaitController).
func (n kafkaBroker) AwaitController(ctx context.Context, max time.Duration) {
	n.awaitController(ctx, max)
}

// AwaitCluster waits for what a topic's creation needs from a cluster
// that is still forming (see awaitCluster).
func (n kafkaBroker) AwaitCluster(ctx context.Context) { n.awaitCluster(ctx) }

// AutoCreateRF is the replication factor of an auto-created topic: the
// default, bounded by the live brokers.
func (n kafkaBroker) AutoCreateRF() int16 {
	rf := n.cfg.DefaultReplicationFactor
	if live := int16(len(n.liveBrokers())); rf > live && live > 0 {
		rf = live
	}
	return rf
}

// CreateTopic validates, places and commits a new topic.
func (n kafkaBroker) CreateTopic(ctx context.Context, spec kafkaapi.TopicSpec) (*fsm.Topic, error) {
	return n.createTopic(ctx, spec)
}

// WaitTopicReady waits until every local replica of t has a leader.
func (n kafkaBroker) WaitTopicReady(ctx context.Context, t *fsm.Topic) { n.waitTopicReady(ctx, t) }

// DeleteTopic removes a topic from the metadata.
func (n kafkaBroker) DeleteTopic(ctx context.Context, name string) error {
	return n.deleteTopic(ctx, name)
}

// DescribeConfigs lists the configs of a topic or of this broker.
func (n kafkaBroker) DescribeConfigs(typ kmsg.ConfigResourceType, name string) ([]kafkaapi.ConfigValue, error) {
	return n.describeConfigs(typ, name)
}

// DeleteRecords moves a partition's log start offset.
func (n kafkaBroker) DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error) {
	return n.deleteRecords(ctx, topic, partition, offset)
}

// AlterConfigs changes a topic's or the brokers' dynamic configs.
func (n kafkaBroker) AlterConfigs(ctx context.Context, a kafkaapi.ConfigAlteration) error {
	return n.alterConfigs(ctx, a)
}

// AddPartitions grows a topic.
func (n kafkaBroker) AddPartitions(ctx context.Context, name string, count int32, validateOnly bool) (*fsm.Topic, error) {
	return n.addPartitions(ctx, name, count, validateOnly)
}

// NextProducerID hands out a fresh producer id.
func (n kafkaBroker) NextProducerID(ctx context.Context) (int64, error) { return n.nextProducerID(ctx) }

// ProducedBytes counts record-batch bytes acknowledged to producers.
func (n kafkaBroker) ProducedBytes(bytes int) { n.metrics.producedBytes.Add(float64(bytes)) }

// FetchedBytes counts record-batch bytes returned to fetchers.
func (n kafkaBroker) FetchedBytes(bytes int) { n.metrics.fetchedBytes.Add(float64(bytes)) }
