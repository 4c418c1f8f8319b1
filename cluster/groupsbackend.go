package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/fsm"
)

// groupsCluster gives the group coordinator the __consumer_offsets
// partitions this node leads, and the cluster's topics.
type groupsCluster struct {
	n *Node

	mu    sync.Mutex
	state *fsm.MetaState
	set   *groups.TopicSet
}

var _ groups.Cluster = (*groupsCluster)(nil)

func (g *groupsCluster) Partitions() int32 {
	if t := g.n.meta.state().Topics[groups.Topic]; t != nil {
		return int32(len(t.Partitions))
	}
	return 0
}

func (g *groupsCluster) Leading(p int32) (groups.Log, error) { return g.n.leadingLog(groups.Topic, p) }

func (g *groupsCluster) PartitionCount(topic string) int32 { return g.n.partitionCount(topic) }

// AddToTxn adds a __consumer_offsets partition to a transaction, through
// the transaction's coordinator wherever it is.
func (g *groupsCluster) AddToTxn(ctx context.Context, txnID string, pid int64, epoch int16, part int32) error {
	return kafkaBroker{g.n}.VerifyTxn(ctx, txnID, pid, epoch, groups.Topic, part, true)
}

// leadingLog is a partition of an internal topic as its coordinator
// writes it: only while this node leads it, in the epoch it leads in.
func (n *Node) leadingLog(topic string, p int32) (statelog.Log, error) {
	r, err := n.leaderReplica(topic, p)
	if err != nil {
		return nil, kerr.NotCoordinator
	}
	ok, epoch := r.leader()
	if !ok {
		return nil, kerr.NotCoordinator
	}
	return &offsetsLog{r: r, epoch: epoch}, nil
}

// partitionCount is a topic's partition count, -1 when it does not exist.
func (n *Node) partitionCount(topic string) int32 {
	if t := n.meta.state().Topics[topic]; t != nil {
		return int32(len(t.Partitions))
	}
	return -1
}

// Topics is made once per metadata state: every consumer group heartbeat
// asks.
func (g *groupsCluster) Topics() *groups.TopicSet {
	state := g.n.meta.state()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set != nil && g.state == state {
		return g.set
	}
	out := make([]groups.TopicInfo, 0, len(state.Topics))
	for name, t := range state.Topics {
		info := groups.TopicInfo{Name: name, ID: t.ID, Partitions: int32(len(t.Partitions)), Internal: kafkaapi.IsInternal(name)}
		for _, a := range t.Partitions {
			var racks []string
			for _, id := range a.Replicas {
				if b := state.Brokers[id]; b != nil && b.Rack != "" {
					racks = append(racks, b.Rack)
				}
			}
			info.Racks = append(info.Racks, racks)
		}
		out = append(out, info)
	}
	g.state, g.set = state, &groups.TopicSet{Topics: out}
	return g.set
}

// offsetsLog is one partition of an internal topic in one leader epoch.
type offsetsLog struct {
	r     *replica
	epoch int32
}

func (l *offsetsLog) Epoch() int32         { return l.epoch }
func (l *offsetsLog) StartOffset() int64   { return l.r.fsm.StartOffset() }
func (l *offsetsLog) HighWatermark() int64 { return l.r.fsm.HighWatermark() }
func (l *offsetsLog) Read(off int64, max int) ([]byte, error) {
	return l.r.fsm.Read(off, max)
}

// Append writes only while the replica still leads in the epoch the
// coordinator loaded its state in: a write from an older epoch's state
// could undo what another leader wrote since.
func (l *offsetsLog) Append(ctx context.Context, batch []byte) (int64, error) {
	if ok, epoch := l.r.leader(); !ok || epoch != l.epoch {
		return -1, kerr.NotCoordinator
	}
	res := l.r.proposer.submit(ctx, batch).wait(ctx)
	return res.BaseOffset, res.Err
}

// GroupsTopic returns __consumer_offsets (see Node.groupsTopic).
func (n kafkaBroker) GroupsTopic(ctx context.Context) (*fsm.Topic, error) { return n.groupsTopic(ctx) }

// groupsTopic returns __consumer_offsets, creating it when the first
// group asks (see internalTopic).
func (n *Node) groupsTopic(ctx context.Context) (*fsm.Topic, error) {
	return n.internalTopic(ctx, groups.Topic, n.cfg.OffsetsTopicPartitions, n.cfg.OffsetsTopicReplicationFactor)
}

// internalTopic returns an internal topic, creating it when it does not
// exist: with the given partitions, and the replication factor lowered to
// the live brokers. Internal topics are compacted, as in Kafka: the
// coordinators rebuild their state from the latest record of each key.
func (n *Node) internalTopic(ctx context.Context, name string, partitions int32, rf int16) (*fsm.Topic, error) {
	if t := n.meta.state().Topics[name]; t != nil {
		return t, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n.awaitCluster(cctx)
	if live := int16(len(n.liveBrokers())); rf > live && live > 0 {
		rf = live
	}
	t, err := n.createTopic(cctx, kafkaapi.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: rf,
		Configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": itoa(n.cfg.InternalSegmentBytes)}})
	if err != nil {
		if t := n.meta.state().Topics[name]; t != nil {
			return t, nil
		}
		n.logger.Warn("creating an internal topic failed", "topic", name, "error", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	n.logger.Info("created an internal topic", "topic", name, "partitions", len(t.Partitions), "replication_factor", rf)
	n.waitTopicReady(cctx, t)
	return t, nil
}

// Groups is this node's group coordinator.
func (n kafkaBroker) Groups() *groups.Coordinator { return n.groupCoord }
