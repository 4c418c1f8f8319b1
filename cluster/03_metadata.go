package cluster

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/fsm"
)

// Metadata v0-12: brokers, controller, topics with partition leader (Raft
// leader), leader epoch (Raft term), replicas and ISR. Unknown topics are
// auto-created when auto.create.topics.enable is on and the client allows
// it (v4+). A partition without a leader is reported with
// LEADER_NOT_AVAILABLE, never with epoch -1.
func (n *Node) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	host, port := splitHostPort(n.advKafka)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = n.cfg.NodeID, host, port
	resp.Brokers = append(resp.Brokers, b)
	cid := n.cfg.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = n.cfg.NodeID

	state := n.metaFSM.State()
	var topics []*fsm.Topic
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		topics = state.SortedTopics()
	}
	for _, rt := range req.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		} else if t := state.TopicByID(rt.TopicID); t != nil {
			name = t.Name
		}
		t, err := n.metadataTopic(ctx, req, state, name)
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			mt.TopicID = rt.TopicID
			mt.ErrorCode = errCode(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		topics = append(topics, t)
	}
	for _, t := range topics {
		resp.Topics = append(resp.Topics, n.describeTopic(t))
	}
	return resp
}

// metadataTopic finds a requested topic, creating it when allowed.
func (n *Node) metadataTopic(ctx context.Context, req *kmsg.MetadataRequest, state *fsm.MetaState, name string) (*fsm.Topic, error) {
	if t, ok := state.Topics[name]; ok {
		return t, nil
	}
	if !n.cfg.AutoCreateTopics || (req.Version >= 4 && !req.AllowAutoTopicCreation) {
		return nil, kerr.UnknownTopicOrPartition
	}
	if err := validTopicName(name); err != nil {
		return nil, kerr.InvalidTopicException
	}
	cctx, cancel := context.WithTimeout(ctx, 10e9)
	defer cancel()
	t, err := n.createTopic(cctx, topicSpec{name: name, partitions: n.cfg.DefaultPartitions, rf: n.autoCreateRF()})
	if errCode(err) == kerr.TopicAlreadyExists.Code {
		if t, ok := n.metaFSM.State().Topics[name]; ok {
			return t, nil
		}
	}
	if err != nil {
		n.logger.Warn("auto-create topic failed", "topic", name, "error", err)
		return nil, kerr.LeaderNotAvailable
	}
	n.waitTopicReady(cctx, t)
	return t, nil
}

func (n *Node) autoCreateRF() int16 {
	rf := n.cfg.DefaultReplicationFactor
	if live := int16(len(n.liveBrokers())); rf > live {
		rf = live
	}
	return rf
}

func (n *Node) describeTopic(t *fsm.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	for i, a := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Replicas = a.Replicas
		mp.Leader, mp.LeaderEpoch = -1, -1
		r := n.replica(tp{t.Name, int32(i)})
		if r != nil {
			if ok, epoch := r.leader(); ok {
				mp.Leader, mp.LeaderEpoch = n.cfg.NodeID, epoch
				mp.ISR = []int32{n.cfg.NodeID}
			}
		}
		if mp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.ISR = []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

func splitHostPort(addr string) (string, int32) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	port, _ := strconv.Atoi(portStr)
	return host, int32(port)
}
