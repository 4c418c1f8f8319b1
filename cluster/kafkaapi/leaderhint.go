package kafkaapi

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Leader hints (KIP-951): a partition refused with NOT_LEADER_OR_FOLLOWER
// names the leader, and its epoch, that the client should try next
// (Broker.LeaderHint), and the response lists where those brokers are. A
// client that reads it (franz-go, the Java client) moves at once, without
// waiting for its next metadata refresh.

// hintBrokers lists the brokers named by leader hints, for a response's
// NodeEndpoints.
type hintBrokers []int32

func (h *hintBrokers) add(id int32) {
	if !slices.Contains(*h, id) {
		*h = append(*h, id)
	}
}

// endpoints returns where the hinted brokers are, as Metadata would.
func endpoints(b Broker, ids hintBrokers) []kmsg.MetadataResponseBroker {
	if len(ids) == 0 {
		return nil
	}
	var out []kmsg.MetadataResponseBroker
	for _, mb := range metadataBrokers(b, b.MetaState()) {
		if slices.Contains(ids, mb.NodeID) {
			out = append(out, mb)
		}
	}
	return out
}

// hintProduce fills in the current leader of a partition refused with
// NOT_LEADER_OR_FOLLOWER, for produce v10+.
func hintProduce(b Broker, topic string, rp *kmsg.ProduceResponseTopicPartition, brokers *hintBrokers) {
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	if leader, epoch, ok := b.LeaderHint(topic, rp.Partition); ok {
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, epoch
		brokers.add(leader)
	}
}

// hintFetch is hintProduce for fetch v12+.
func hintFetch(b Broker, topic string, rp *kmsg.FetchResponseTopicPartition, brokers *hintBrokers) {
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	if leader, epoch, ok := b.LeaderHint(topic, rp.Partition); ok {
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
