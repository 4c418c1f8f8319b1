package cluster

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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
func (n *Node) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	n.awaitController(ctx, metadataControllerHold)
	deadline := time.Now().Add(metadataLeaderHold)
	for {
		resp := n.metadataOnce(ctx, req)
		if time.Now().After(deadline) {
			return resp
		}
		if !n.electing(resp) && n.confirmLeaders(ctx, resp, deadline) {
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
func (n *Node) electing(resp *kmsg.MetadataResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Leader < 0 && p.ErrorCode == kerr.LeaderNotAvailable.Code && n.quorumReachable(p.Replicas) {
				return true
			}
		}
	}
	return false
}

// confirmLeaders pings every other node that resp names as a leader and
// reports whether all of them answered before deadline. Leaders this node
// already counts as gone are not asked: a cut-off node's guess is one.
func (n *Node) confirmLeaders(ctx context.Context, resp *kmsg.MetadataResponse, deadline time.Time) bool {
	var ids []int32
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Leader >= 0 && p.Leader != n.cfg.NodeID && !slices.Contains(ids, p.Leader) && n.leaderLive(p.Leader) {
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
		go func() { errs <- n.nt.Confirm(cctx, id) }()
	}
	ok := true
	for range ids {
		if err := <-errs; err != nil {
			ok = false
		}
	}
	return ok
}

// awaitController waits, at most max or until ctx ends, until the cluster
// has a controller and this node has caught up with it. Only a node that
// has not caught up since it started waits: later, while a new controller
// is elected, its metadata is still good to answer from, and partition
// leaders come from the partitions' own groups.
func (n *Node) awaitController(ctx context.Context, max time.Duration) {
	if n.joinIndex.Load() != 0 {
		return
	}
	deadline := time.Now().Add(max)
	for n.controllerID() < 0 || n.metaCaughtUp() != nil {
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) metadataOnce(ctx context.Context, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	state := n.metaFSM.State()
	resp.Brokers = n.metadataBrokers(state)
	cid := n.cfg.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = n.controllerID()

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
	// A topic auto-created while the cluster forms would get the
	// replication factor of the brokers registered so far.
	n.awaitCluster(cctx)
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
	if live := int16(len(n.liveBrokers())); rf > live && live > 0 {
		rf = live
	}
	return rf
}

// metadataBrokers lists every registered broker, and this broker even
// before its registration commits. Dead ones stay listed, as their
// partitions do: a client replaces its whole broker list with each
// Metadata response, so a node cut off from the others that listed only
// itself would strand its clients on it. Connecting to a dead broker just
// fails, and the client moves on.
func (n *Node) metadataBrokers(state *fsm.MetaState) []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	add := func(id int32, addr, rack string) {
		host, port := splitHostPort(addr)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = id, host, port
		if rack != "" {
			b.Rack = kmsg.StringPtr(rack)
		}
		out = append(out, b)
	}
	self := false
	for _, b := range state.SortedBrokers() {
		if b.ID == n.cfg.NodeID {
			self = true
			add(b.ID, n.advKafka, n.cfg.Rack)
		} else {
			add(b.ID, b.KafkaAddr, b.Rack)
		}
	}
	if !self {
		add(n.cfg.NodeID, n.advKafka, n.cfg.Rack)
	}
	return out
}

func (n *Node) describeTopic(t *fsm.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	for i, a := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Replicas = a.Replicas
		mp.Leader, mp.LeaderEpoch, mp.ISR = n.partitionLeader(tp{t.Name, int32(i)}, t, a)
		mp.OfflineReplicas = []int32{}
		for _, id := range a.Replicas {
			if !n.alive(id) {
				mp.OfflineReplicas = append(mp.OfflineReplicas, id)
			}
		}
		if mp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
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
	if n.quorumReachable(r.replicas) || len(r.replicas)-1 < len(r.replicas)/2+1 {
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

func splitHostPort(addr string) (string, int32) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	port, _ := strconv.Atoi(portStr)
	return host, int32(port)
}
