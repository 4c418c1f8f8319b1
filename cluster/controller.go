package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/gossip"
	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// createTopic validates, places and commits a new topic.
func (n *Node) createTopic(ctx context.Context, spec kafkaapi.TopicSpec) (*fsm.Topic, error) {
	if err := kafkaapi.ValidTopicName(spec.Name); err != nil {
		return nil, err
	}
	if spec.Partitions < 1 || spec.Partitions > 100000 {
		return nil, kafkaerr.Errorf(kerr.InvalidPartitions, "%d partitions; must be in [1, 100000]", spec.Partitions)
	}
	brokers := n.liveBrokers()
	if spec.ReplicationFactor < 1 || int(spec.ReplicationFactor) > len(brokers) {
		return nil, kafkaerr.Errorf(kerr.InvalidReplicationFactor, "replication factor %d is larger than the %d live brokers", spec.ReplicationFactor, len(brokers))
	}
	if err := validateTopicConfigs(spec.Configs); err != nil {
		return nil, kafkaerr.Errorf(kerr.InvalidConfig, "%v", err)
	}
	state := n.meta.state()
	if _, ok := state.Topics[spec.Name]; ok {
		return nil, kafkaerr.Errorf(kerr.TopicAlreadyExists, "topic %q already exists", spec.Name)
	}
	t := fsm.Topic{Name: spec.Name, Configs: spec.Configs, Partitions: place(brokers, state, spec.Partitions, spec.ReplicationFactor)}
	if err := n.checkPartitionLimit(state, t.Partitions); err != nil {
		return nil, err
	}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return nil, err
	}
	if spec.ValidateOnly {
		return &t, nil
	}
	res, err := n.proposeMeta(ctx, &fsm.CreateTopicCmd{Topic: t})
	if err != nil {
		return nil, metaErr(err)
	}
	if res.Err != nil {
		return nil, res.Err
	}
	n.triggerReconcile()
	return &t, nil
}

// addPartitions grows a topic to count partitions, placing the new ones
// as createTopic would, with the topic's replication factor.
func (n *Node) addPartitions(ctx context.Context, name string, count int32, validateOnly bool) (*fsm.Topic, error) {
	if kafkaapi.IsInternal(name) {
		return nil, kafkaerr.Errorf(kerr.InvalidRequest, "the partitions of internal topic %s cannot be changed: the coordinators hash onto them", name)
	}
	state := n.meta.state()
	t, ok := state.Topics[name]
	if !ok {
		return nil, kafkaerr.Errorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	have := int32(len(t.Partitions))
	switch {
	case count == have:
		return nil, kafkaerr.Errorf(kerr.InvalidPartitions, "topic %s already has %d partitions", name, have)
	case count < have:
		return nil, kafkaerr.Errorf(kerr.InvalidPartitions, "topic %s has %d partitions, more than the %d asked; partitions can only be added", name, have, count)
	case count > 100000:
		return nil, kafkaerr.Errorf(kerr.InvalidPartitions, "%d partitions; must be at most 100000", count)
	}
	rf := int16(len(t.Partitions[0].Replicas))
	brokers := n.liveBrokers()
	if int(rf) > len(brokers) {
		return nil, kafkaerr.Errorf(kerr.InvalidReplicationFactor, "topic %s has replication factor %d, more than the %d live brokers", name, rf, len(brokers))
	}
	add := place(brokers, state, count-have, rf)
	if err := n.checkPartitionLimit(state, add); err != nil {
		return nil, err
	}
	grown := *t
	grown.Partitions = append(append([]fsm.Assignment(nil), t.Partitions...), add...)
	if validateOnly {
		return &grown, nil
	}
	res, err := n.proposeMeta(ctx, &fsm.AddPartitionsCmd{Topic: name, TopicID: t.ID, From: have, Add: add})
	if err != nil {
		return nil, metaErr(err)
	}
	if res.Err != nil {
		// A proposal retried after a leadership change may find its
		// first attempt applied: the topic grew as asked.
		if now := n.meta.state().Topics[name]; now == nil || now.ID != t.ID || int32(len(now.Partitions)) != count {
			return nil, res.Err
		}
	}
	n.triggerReconcile()
	return &grown, nil
}

// deleteTopic removes a topic from the metadata; each node then stops its
// replicas and deletes their files.
func (n *Node) deleteTopic(ctx context.Context, name string) error {
	res, err := n.proposeMeta(ctx, &fsm.DeleteTopicCmd{Name: name})
	if err != nil {
		return metaErr(err)
	}
	return res.Err
}

// checkPartitionLimit refuses a placement that would put more than
// MaxPartitionsPerNode replicas on any broker.
func (n *Node) checkPartitionLimit(state *fsm.MetaState, add []fsm.Assignment) error {
	count := make(map[int32]int)
	for _, t := range state.Topics {
		for _, a := range t.Partitions {
			for _, b := range a.Replicas {
				count[b]++
			}
		}
	}
	for _, a := range add {
		for _, b := range a.Replicas {
			count[b]++
			if count[b] > n.cfg.MaxPartitionsPerNode {
				return kafkaerr.Errorf(kerr.InvalidPartitions, "broker %d would host more than %d partition replicas (max partitions per node)", b, n.cfg.MaxPartitionsPerNode)
			}
		}
	}
	return nil
}

// place assigns replicas the way Kafka does, rack-aware: brokers are
// ordered so that consecutive ones alternate racks, and each partition
// takes rf consecutive brokers from a rotating start, so replicas of one
// partition land on different racks where there are enough. The rotation
// starts at the broker that leads the fewest partitions, which keeps
// replica and leader counts balanced as topics are added. The first replica
// is the preferred leader.
func place(brokers []*fsm.Broker, state *fsm.MetaState, partitions int32, rf int16) []fsm.Assignment {
	order := rackAlternating(brokers)
	leads := make(map[int32]int)
	for _, t := range state.Topics {
		for _, a := range t.Partitions {
			if len(a.Replicas) > 0 {
				leads[a.Replicas[0]]++
			}
		}
	}
	start := 0
	for i, b := range order {
		if leads[b] < leads[order[start]] {
			start = i
		}
	}
	rackOf := make(map[int32]string, len(brokers))
	for _, b := range brokers {
		rackOf[b.ID] = b.Rack
	}
	out := make([]fsm.Assignment, partitions)
	for p := range out {
		first := start + p
		// Past one full rotation, shift the followers too so that
		// pairs of brokers do not always share partitions.
		shift := (p / len(order)) % max(1, len(order)-1)
		leader := order[first%len(order)]
		var followers []int32
		for k := 0; k < len(order)-1; k++ {
			followers = append(followers, order[(first+1+(shift+k)%(len(order)-1))%len(order)])
		}
		out[p] = fsm.Assignment{Replicas: pickReplicas(leader, followers, int(rf), rackOf), Leader: -1, LeaderEpoch: -1}
	}
	return out
}

// pickReplicas takes rf-1 followers in order after the leader, preferring
// racks not used yet, as Kafka's rack-aware assignment skips a broker whose
// rack already holds a replica while another rack is free.
func pickReplicas(leader int32, candidates []int32, rf int, rackOf map[int32]string) []int32 {
	replicas := []int32{leader}
	usedRack := map[string]bool{rackOf[leader]: true}
	taken := map[int32]bool{leader: true}
	for pass := 0; pass < 2 && len(replicas) < rf; pass++ {
		for _, id := range candidates {
			if len(replicas) == rf {
				break
			}
			if taken[id] || (pass == 0 && usedRack[rackOf[id]]) {
				continue
			}
			replicas = append(replicas, id)
			taken[id] = true
			usedRack[rackOf[id]] = true
		}
	}
	return replicas
}

// rackAlternating orders brokers rack by rack in turn (racks by name,
// brokers by id within a rack), as Kafka's rack-aware assignment does.
func rackAlternating(brokers []*fsm.Broker) []int32 {
	byRack := make(map[string][]int32)
	var racks []string
	for _, b := range brokers {
		if _, ok := byRack[b.Rack]; !ok {
			racks = append(racks, b.Rack)
		}
		byRack[b.Rack] = append(byRack[b.Rack], b.ID)
	}
	sort.Strings(racks)
	for _, r := range racks {
		sort.Slice(byRack[r], func(i, j int) bool { return byRack[r][i] < byRack[r][j] })
	}
	var out []int32
	for i := 0; len(out) < len(brokers); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}

// metaErr maps a failed metadata proposal to a Kafka error.
func metaErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return kerr.NotController
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut
	}
	return err
}

// waitTopicReady waits until every local replica of the topic has a leader
// (or ctx ends), so a client's first Metadata after CreateTopics sees
// leaders instead of LEADER_NOT_AVAILABLE.
func (n *Node) waitTopicReady(ctx context.Context, t *fsm.Topic) {
	for {
		ready := true
		for i := range t.Partitions {
			r := n.replica(tp{t.Name, int32(i)})
			if r == nil {
				ready = false
				break
			}
			if !r.leaderKnown() {
				ready = false
				break
			}
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitController waits, at most max or until ctx ends, until the cluster
// has a controller and this node has caught up with it. Only a node that
// has not caught up since it started waits: later, while a new controller
// is elected, its metadata is still good to answer from, and partition
// leaders come from the partitions' own groups.
func (n *Node) awaitController(ctx context.Context, max time.Duration) {
	if n.meta.sync.joinIndex() != 0 {
		return
	}
	deadline := time.Now().Add(max)
	for n.meta.controllerID() < 0 || n.metaCaughtUp() != nil {
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

// awaitCluster waits, until ctx ends, for what a topic's creation needs
// from a cluster that is still forming: a controller this node has caught
// up with, and every broker that gossip knows registered with it. A client
// started together with the cluster then succeeds on its first try, where
// it would get NOT_CONTROLLER or INVALID_REPLICATION_FACTOR.
func (n *Node) awaitCluster(ctx context.Context) {
	n.awaitController(ctx, time.Hour)
	for {
		members := 0
		if g := n.gossip.Load(); g != nil {
			for _, m := range g.Members() {
				if m.State == gossip.StateAlive && m.Meta.ClusterID == n.cfg.ClusterID {
					members++
				}
			}
		}
		if len(n.liveBrokers()) >= members {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pidBlockSize is how many producer ids a node reserves per metadata write.
const pidBlockSize = 1000

// pidBlock is the block of producer ids a node reserved through the
// metadata group: ids are never reused, whichever node hands them out.
type pidBlock struct {
	mu        sync.Mutex
	next, end int64
}

// take hands out the next id, reserving a new block with reserve when the
// block is used up.
func (b *pidBlock) take(ctx context.Context, reserve func(context.Context) (int64, error)) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next >= b.end {
		first, err := reserve(ctx)
		if err != nil {
			return 0, err
		}
		b.next, b.end = first, first+pidBlockSize
	}
	id := b.next
	b.next++
	return id, nil
}

// nextProducerID hands out a fresh producer id (InitProducerID).
func (n *Node) nextProducerID(ctx context.Context) (int64, error) {
	return n.pids.take(ctx, func(ctx context.Context) (int64, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := n.proposeMeta(cctx, &fsm.AllocPIDsCmd{Count: pidBlockSize})
		if err != nil {
			return 0, metaErr(err)
		}
		return res.FirstProducerID, nil
	})
}
