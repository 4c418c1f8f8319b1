package kafkaapi

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// Metadata v0-12: brokers, controller, topics with partition leader (Raft
// leader), leader epoch (Raft term), replicas and ISR. Unknown topics are
// auto-created when auto.create.topics.enable is on and the client allows
// it (v4+). A partition without a leader is reported with
// LEADER_NOT_AVAILABLE, never with epoch -1.
//
// Waits keep clients from acting on an answer that is about to change:
// until the cluster has a controller (a client started with the cluster),
// at most metadataControllerHold. Then, at most metadataLeaderHold, while
// a partition asked about has no leader but a majority of its replicas
// answers this node, so one is being elected; and until every other node
// named as a leader has answered a ping sent after the request came. A
// client whose connection to a leader just broke asks at once, often
// before this node has read the same leader's closed connection, and an
// answer naming the dead leader costs it a metadata cycle (franz-go's is
// 5 s).
func init() { register(kmsg.Metadata, 0, 12, plain(serveMetadata)) }

func serveMetadata(ctx context.Context, b Broker, req *kmsg.MetadataRequest) kmsg.Response {
	b.AwaitController(ctx, metadataControllerHold)
	deadline := time.Now().Add(metadataLeaderHold)
	for {
		resp := metadataOnce(ctx, b, req)
		if time.Now().After(deadline) {
			return resp
		}
		if !electing(b, resp) && confirmLeaders(ctx, b, resp, deadline) {
			return resp
		}
		select {
		case <-ctx.Done():
			return resp
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// How long Metadata waits for a controller, and for leaders being elected.
const (
	metadataControllerHold = 10 * time.Second
	metadataLeaderHold     = 2 * time.Second
)

// electing reports whether a partition in resp has no leader though a
// majority of its replicas answers this node: one is being elected.
func electing(b Broker, resp *kmsg.MetadataResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Leader < 0 && p.ErrorCode == kerr.LeaderNotAvailable.Code && b.QuorumReachable(p.Replicas) {
				return true
			}
		}
	}
	return false
}

// confirmLeaders pings every other node that resp names as a leader and
// reports whether all of them answered before deadline. Leaders this node
// already counts as gone are not asked: a cut-off node's guess is one.
func confirmLeaders(ctx context.Context, b Broker, resp *kmsg.MetadataResponse, deadline time.Time) bool {
	self := b.Settings().NodeID
	var ids []int32
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Leader >= 0 && p.Leader != self && !slices.Contains(ids, p.Leader) && b.LeaderLive(p.Leader) {
				ids = append(ids, p.Leader)
			}
		}
	}
	if len(ids) == 0 {
		return true
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() { errs <- b.ConfirmLeader(cctx, id) }()
	}
	ok := true
	for range ids {
		if err := <-errs; err != nil {
			ok = false
		}
	}
	return ok
}

func metadataOnce(ctx context.Context, b Broker, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	state := b.MetaState()
	resp.Brokers = metadataBrokers(b, state)
	cid := b.Settings().ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = b.ControllerID()

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
		t, err := metadataTopic(ctx, b, req, state, name)
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kafkaerr.Code(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		topics = append(topics, t)
	}
	for _, t := range topics {
		resp.Topics = append(resp.Topics, describeTopic(b, t))
	}
	return resp
}

// metadataTopic finds a requested topic, creating it when allowed.
func metadataTopic(ctx context.Context, b Broker, req *kmsg.MetadataRequest, state *fsm.MetaState, name string) (*fsm.Topic, error) {
	if t, ok := state.Topics[name]; ok {
		return t, nil
	}
	if name == groups.Topic {
		// Created as the coordinator needs it, never as a plain topic.
		return b.GroupsTopic(ctx)
	}
	s := b.Settings()
	if !s.AutoCreateTopics || (req.Version >= 4 && !req.AllowAutoTopicCreation) {
		return nil, kerr.UnknownTopicOrPartition
	}
	if err := ValidTopicName(name); err != nil {
		return nil, kerr.InvalidTopicException
	}
	cctx, cancel := context.WithTimeout(ctx, 10e9)
	defer cancel()
	// A topic auto-created while the cluster forms would get the
	// replication factor of the brokers registered so far.
	b.AwaitCluster(cctx)
	t, err := b.CreateTopic(cctx, TopicSpec{Name: name, Partitions: s.DefaultPartitions, ReplicationFactor: b.AutoCreateRF()})
	if kafkaerr.Code(err) == kerr.TopicAlreadyExists.Code {
		if t, ok := b.MetaState().Topics[name]; ok {
			return t, nil
		}
	}
	if err != nil {
		b.Logger().Warn("auto-create topic failed", "topic", name, "error", err)
		return nil, kerr.LeaderNotAvailable
	}
	b.WaitTopicReady(cctx, t)
	return t, nil
}

// metadataBrokers lists every registered broker, and this broker even
// before its registration commits. Dead ones stay listed, as their
// partitions do: a client replaces its whole broker list with each
// Metadata response, so a node cut off from the others that listed only
// itself would strand its clients on it. Connecting to a dead broker just
// fails, and the client moves on.
func metadataBrokers(b Broker, state *fsm.MetaState) []kmsg.MetadataResponseBroker {
	s := b.Settings()
	var out []kmsg.MetadataResponseBroker
	add := func(id int32, addr, rack string) {
		host, port := splitHostPort(addr)
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = id, host, port
		if rack != "" {
			mb.Rack = kmsg.StringPtr(rack)
		}
		out = append(out, mb)
	}
	self := false
	for _, br := range state.SortedBrokers() {
		if br.ID == s.NodeID {
			self = true
			add(br.ID, s.Advertised, s.Rack)
		} else {
			add(br.ID, br.KafkaAddr, br.Rack)
		}
	}
	if !self {
		add(s.NodeID, s.Advertised, s.Rack)
	}
	return out
}

func describeTopic(b Broker, t *fsm.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = IsInternal(t.Name)
	for i, a := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Replicas = a.Replicas
		pm := b.PartitionMetadata(t, int32(i))
		mp.Leader, mp.LeaderEpoch, mp.ISR = pm.Leader, pm.LeaderEpoch, pm.ISR
		mp.OfflineReplicas = pm.OfflineReplicas
		if mp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
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
