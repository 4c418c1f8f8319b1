package cluster

import (
	"strconv"

	"github.com/quirelog/quire/fsm"
)

// The leaders this node tells clients of: in Metadata (partitionLeader)
// and in the leader hints of refused produce and fetch requests
// (leaderHint).

// leaderHint is the leader, and its epoch, that a client refused with
// NOT_LEADER_OR_FOLLOWER should try next (KIP-951): what this node knows of
// the partition's leader, if that is another node that answers. A client
// that reads it (franz-go, the Java client) moves at once, without waiting
// for its next metadata refresh.
func (n *Node) leaderHint(topic string, partition int32) (leader, epoch int32, ok bool) {
	t, found := n.meta.state().Topics[topic]
	if !found || partition < 0 || int(partition) >= len(t.Partitions) {
		return -1, -1, false
	}
	leader, epoch, _ = n.knownLeader(tp{topic, partition}, t, t.Partitions[partition])
	if leader < 0 || leader == n.cfg.NodeID {
		return -1, -1, false
	}
	return leader, epoch, true
}

// leaderLive reports whether a node named leader of a partition can be
// told to clients: it answers this node, or is this node.
func (n *Node) leaderLive(id int32) bool {
	return id == n.cfg.NodeID || (n.alive(id) && n.nt.Reachable(id) && !n.nt.ControlLost(id))
}

// partitionLeader is the leader, epoch and ISR to tell clients. A local
// replica knows first-hand (its Raft group); otherwise the leader's last
// report in the metadata is used while that leader is alive. A leader is
// reported only once it serves: a local leader after its barrier, a remote
// one as Raft sees it.
func (n *Node) partitionLeader(key tp, t *fsm.Topic, a fsm.Assignment) (int32, int32, []int32) {
	leader, epoch, isr := n.knownLeader(key, t, a)
	if leader < 0 {
		if r := n.replica(key); r != nil && r.topicID == t.ID {
			if g := n.likelyLeader(r); g >= 0 {
				// This node's own term: a client that believes the old
				// leader at this term takes an equal epoch naming another
				// leader, and then also takes the real leader's higher
				// one, which an inflated guess would make look stale.
				return g, int32(r.group.raft.CurrentTerm()), []int32{g}
			}
		}
	}
	return leader, epoch, isr
}

// knownLeader is partitionLeader without the guess of a cut-off node:
// only a leader this node knows of. Leader hints (KIP-951) use it: a
// client moved by a hint retries there with backoff, without asking
// Metadata, so a wrong guess would hold it.
func (n *Node) knownLeader(key tp, t *fsm.Topic, a fsm.Assignment) (int32, int32, []int32) {
	if r := n.replica(key); r != nil && r.topicID == t.ID {
		if ok, epoch := r.leader(); ok {
			return n.cfg.NodeID, epoch, n.isr(r)
		}
		_, lid := r.group.raft.LeaderWithID()
		// A follower's raft names its leader until it hears of another,
		// however long ago that leader stopped answering: it is told only
		// while it answers this node.
		term := int32(r.group.raft.CurrentTerm())
		if id, err := strconv.Atoi(string(lid)); err == nil && int32(id) != n.cfg.NodeID && n.leaderLive(int32(id)) {
			isr := a.ISR
			if a.Leader != int32(id) || a.LeaderEpoch != term || len(isr) == 0 {
				isr = []int32{int32(id)}
			}
			return int32(id), term, isr
		}
		return -1, -1, []int32{}
	}
	if a.Leader >= 0 && n.leaderLive(a.Leader) {
		return a.Leader, a.LeaderEpoch, a.ISR
	}
	return -1, -1, []int32{}
}

// likelyLeader is, for a node cut off from a majority of the partition's
// replicas, a replica the others may have elected: they can elect
// without this node, and with equal logs they pick in preference order.
// Naming it sends a client there rather than back to this node, which
// cannot learn the real leader (librdkafka keeps asking the broker it is
// connected to). A wrong guess costs one NOT_LEADER_OR_FOLLOWER, which
// names the real leader (KIP-951), and a Metadata request. A client that
// does not read KIP-951 (librdkafka 2.0) asks this node again, so
// successive answers name the other replicas in turn, the most likely
// first: the longest log, not preference, decides among the survivors,
// and a guess that stayed wrong would hold such a client until it
// happened to ask another broker. -1 when this node is not cut off.
func (n *Node) likelyLeader(r *replica) int32 {
	if n.elections.quorumReachable(r.replicas) || len(r.replicas)-1 < len(r.replicas)/2+1 {
		return -1
	}
	others := make([]int32, 0, len(r.group.voters))
	for _, v := range r.group.voters {
		if v != n.cfg.NodeID {
			others = append(others, v)
		}
	}
	if len(others) == 0 {
		return -1
	}
	return others[int(r.guesses.Add(1)-1)%len(others)]
}
