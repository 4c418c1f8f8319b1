package cluster

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// leaderHint is the leader, and its epoch, that a client refused with
// NOT_LEADER_OR_FOLLOWER should try next (KIP-951): what this node knows of
// the partition's leader, if that is another node that answers. A client
// that reads it (franz-go, the Java client) moves at once, without waiting
// for its next metadata refresh.
func (n *Node) leaderHint(topic string, partition int32) (leader, epoch int32, ok bool) {
	t, found := n.metaFSM.State().Topics[topic]
	if !found || partition < 0 || int(partition) >= len(t.Partitions) {
		return -1, -1, false
	}
	leader, epoch, _ = n.knownLeader(tp{topic, partition}, t, t.Partitions[partition])
	if leader < 0 || leader == n.cfg.NodeID {
		return -1, -1, false
	}
	return leader, epoch, true
}

// hintBrokers lists the brokers named by leader hints, for a response's
// NodeEndpoints.
type hintBrokers []int32

func (h *hintBrokers) add(id int32) {
	if !slices.Contains(*h, id) {
		*h = append(*h, id)
	}
}

// endpoints returns where the hinted brokers are, as Metadata would.
func (n *Node) endpoints(ids hintBrokers) []kmsg.MetadataResponseBroker {
	if len(ids) == 0 {
		return nil
	}
	var out []kmsg.MetadataResponseBroker
	for _, b := range n.metadataBrokers(n.metaFSM.State()) {
		if slices.Contains(ids, b.NodeID) {
			out = append(out, b)
		}
	}
	return out
}

// hintProduce fills in the current leader of a partition refused with
// NOT_LEADER_OR_FOLLOWER, for produce v10+.
func (n *Node) hintProduce(topic string, rp *kmsg.ProduceResponseTopicPartition, brokers *hintBrokers) {
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	if leader, epoch, ok := n.leaderHint(topic, rp.Partition); ok {
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, epoch
		brokers.add(leader)
	}
}

// hintFetch is hintProduce for fetch v12+.
func (n *Node) hintFetch(topic string, rp *kmsg.FetchResponseTopicPartition, brokers *hintBrokers) {
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	if leader, epoch, ok := n.leaderHint(topic, rp.Partition); ok {
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, epoch
		brokers.add(leader)
	}
}

func produceBrokers(bs []kmsg.MetadataResponseBroker) []kmsg.ProduceResponseBroker {
	out := make([]kmsg.ProduceResponseBroker, 0, len(bs))
	for _, b := range bs {
		pb := kmsg.NewProduceResponseBroker()
		pb.NodeID, pb.Host, pb.Port, pb.Rack = b.NodeID, b.Host, b.Port, b.Rack
		out = append(out, pb)
	}
	return out
}

func fetchBrokers(bs []kmsg.MetadataResponseBroker) []kmsg.FetchResponseBroker {
	out := make([]kmsg.FetchResponseBroker, 0, len(bs))
	for _, b := range bs {
		fb := kmsg.NewFetchResponseBroker()
		fb.NodeID, fb.Host, fb.Port, fb.Rack = b.NodeID, b.Host, b.Port, b.Rack
		out = append(out, fb)
	}
	return out
}

// leaderLive reports whether a node named leader of a partition can be
// told to clients: it answers this node, or is this node.
func (n *Node) leaderLive(id int32) bool {
	return id == n.cfg.NodeID || (n.alive(id) && n.nt.Reachable(id) && !n.nt.ControlLost(id))
}
