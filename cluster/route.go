package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// leaderReplica finds the local leader replica of a partition, or the error
// a client should see.
func (n *Node) leaderReplica(topic string, partition int32) (*replica, error) {
	t, ok := n.meta.state().Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition
	}
	r := n.replica(tp{topic, partition})
	if r == nil {
		return nil, kerr.NotLeaderForPartition
	}
	if ok, _ := r.leader(); !ok {
		return nil, kerr.NotLeaderForPartition
	}
	return r, nil
}

// writableReplica finds the replica a produce may go to: like
// leaderReplica, but a leader elected a moment ago takes writes before its
// term's barrier has applied. Other brokers name it leader as soon as it
// wins, and refusing a client sent here makes it wait out its metadata
// backoff (5 s in franz-go). Raft orders the new entries after the
// barrier, and the state machine decides offsets and duplicates as it
// applies them, so nothing depends on the barrier having applied first.
func (n *Node) writableReplica(topic string, partition int32) (*replica, error) {
	t, ok := n.meta.state().Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition
	}
	r := n.replica(tp{topic, partition})
	if r == nil || !r.writable() {
		return nil, kerr.NotLeaderForPartition
	}
	return r, nil
}

// awaitElection holds a request for a partition whose leader is being
// elected among replicas that include this node: no live leader is known
// here, this replica is not raft's leader, and a majority of the replicas
// answers. It waits until ctx ends (the caller bounds it by kafkaapi's
// electionHold for the whole request, since the partitions of one dead
// leader are elected together) for a leader, and reports whether it
// waited. The request then goes through here or is refused naming the
// winner (KIP-951). Refused at once, with no one to name, a client falls
// back on a metadata refresh, which often comes after its minimum
// metadata age (5 s in franz-go): a client sent here by a cut-off
// leader's guess arrives before the election ends.
func (n *Node) awaitElection(ctx context.Context, topic string, part int32) bool {
	waited := false
	for n.electingHere(topic, part) {
		waited = true
		select {
		case <-ctx.Done():
			return true
		case <-time.After(25 * time.Millisecond):
		}
	}
	return waited
}

func (n *Node) electingHere(topic string, part int32) bool {
	t, ok := n.meta.state().Topics[topic]
	if !ok || part < 0 || int(part) >= len(t.Partitions) {
		return false
	}
	key := tp{topic, part}
	r := n.replica(key)
	if r == nil || r.topicID != t.ID || r.group.raft.State() == raft.Leader {
		return false
	}
	leader, _, _ := n.knownLeader(key, t, t.Partitions[part])
	return leader < 0 && n.elections.quorumReachable(r.replicas)
}
