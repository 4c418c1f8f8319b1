package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// OffsetCommit v0-9. A member commits in its generation; a client outside
// any group (generation -1, no member id) commits to an empty group. The
// commit is acknowledged once it is committed through Raft.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	fill := func(code int16) *kmsg.OffsetCommitResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		return fill(kafkaerr.Code(err))
	}
	simple := req.Generation < 0 && req.MemberID == ""
	g := s.group(req.Group, simple)
	if g == nil {
		return fill(kerr.IllegalGeneration.Code)
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	if code := g.checkCommit(req, simple); code != 0 {
		return fill(code)
	}
	var keys, values [][]byte
	var accepted []func()
	now := c.cfg.Now().UnixMilli()
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		count := c.cluster.PartitionCount(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			o, code := c.commitEntry(count, p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, now)
			rp.ErrorCode = code
			if code == 0 {
				key := topicPart{t.Topic, p.Partition}
				keys = append(keys, offsetKey(g.id, key.topic, key.partition))
				values = append(values, offsetValue(o))
				accepted = append(accepted, func() { g.offsets[key] = o })
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(keys) == 0 {
		return resp
	}
	if err := s.write(ctx, keys, values); err != nil {
		code := kafkaerr.Code(err)
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
		return resp
	}
	g.mu.Lock()
	for _, apply := range accepted {
		apply()
	}
	g.mu.Unlock()
	return resp
}

// commitEntry checks one partition's commit against the topic's partition
// count and returns the value to store, or the partition's error code.
func (c *Coordinator) commitEntry(count, part int32, offset int64, leaderEpoch int32, metadata *string, now int64) (committed, int16) {
	switch {
	case part < 0 || part >= count:
		return committed{}, kerr.UnknownTopicOrPartition.Code
	case metadata != nil && len(*metadata) > c.cfg.MaxMetadataBytes:
		return committed{}, kerr.OffsetMetadataTooLarge.Code
	}
	o := committed{offset: offset, leaderEpoch: leaderEpoch, timestamp: now}
	if metadata != nil {
		o.metadata = *metadata
	}
	return o, 0
}

// checkCommit applies Kafka's rules for who may commit now.
func (g *group) checkCommit(req *kmsg.OffsetCommitRequest, simple bool) int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return kerr.NotCoordinator.Code
	}
	if g.cg != nil {
		return g.cg.checkCommit(req, simple)
	}
	if simple {
		if g.state != stateEmpty {
			return unknownMember
		}
		return 0
	}
	m, code := g.checkMember(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		return code
	}
	if g.state == stateCompletingRebalance {
		return rebalancing
	}
	g.touch(m)
	return 0
}

// checkCommit is a consumer group's rule: a member commits in its current
// epoch (v9+), anyone else only while the group has no members.
func (cg *consumerGroup) checkCommit(req *kmsg.OffsetCommitRequest, simple bool) int16 {
	if simple {
		if len(cg.members) > 0 {
			return unknownMember
		}
		return 0
	}
	m := cg.members[req.MemberID]
	switch {
	case m == nil:
		return unknownMember
	case m.Classic != nil && req.InstanceID != nil && (m.InstanceID == nil || *m.InstanceID != *req.InstanceID):
		return kerr.FencedInstanceID.Code
	case m.Left:
		// A static member that left is at epoch -2 to Kafka.
		return kerr.StaleMemberEpoch.Code
	case m.Classic != nil && req.Generation != m.Epoch:
		return kerr.IllegalGeneration.Code
	case m.Classic != nil:
		return 0
	case req.Version < 9:
		return kerr.UnsupportedVersion.Code
	case req.Generation != m.Epoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// OffsetFetch v0-9; v8+ asks for several groups at once. Partitions with
// no commit answer offset -1; a nil topic list asks for every commit.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchGroup(ctx, rg, req.RequireStable))
		}
		return resp
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil {
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
		for _, t := range req.Topics {
			rg.Topics = append(rg.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
	}
	g := c.fetchGroup(ctx, rg, req.RequireStable)
	resp.ErrorCode = g.ErrorCode
	for _, t := range g.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Version < 2 && resp.ErrorCode != 0 {
		// v0-1 have no group-level error: each partition carries it.
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = resp.ErrorCode
			}
		}
	}
	return resp
}

// fetchGroup answers for one group. With requireStable (v7+), a partition
// whose offsets a transaction has pending answers UNSTABLE_OFFSET_COMMIT,
// which clients retry until the transaction ends.
func (c *Coordinator) fetchGroup(ctx context.Context, rg kmsg.OffsetFetchRequestGroup, requireStable bool) kmsg.OffsetFetchResponseGroup {
	out := kmsg.NewOffsetFetchResponseGroup()
	out.Group = rg.Group
	s, err := c.groupShard(ctx, rg.Group)
	if err != nil {
		out.ErrorCode = kafkaerr.Code(err)
		return out
	}
	g := s.group(rg.Group, false)
	offsets := map[topicPart]committed{}
	if g != nil {
		g.mu.Lock()
		if code := g.checkFetch(rg); code != 0 {
			g.mu.Unlock()
			out.ErrorCode = code
			return out
		}
		for k, v := range g.offsets {
			offsets[k] = v
		}
		g.mu.Unlock()
	}
	topics := rg.Topics
	if topics == nil {
		byTopic := map[string][]int32{}
		for k := range offsets {
			byTopic[k.topic] = append(byTopic[k.topic], k.partition)
		}
		for _, name := range sortedKeys(byTopic) {
			topics = append(topics, kmsg.OffsetFetchRequestGroupTopic{Topic: name, Partitions: sortedInt32(byTopic[name])})
		}
	}
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			if o, ok := offsets[topicPart{t.Topic, p}]; ok {
				rp.Offset, rp.LeaderEpoch = o.offset, o.leaderEpoch
				rp.Metadata = kmsg.StringPtr(o.metadata)
			}
			if requireStable && s.unstable(rg.Group, topicPart{t.Topic, p}) {
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out.Topics = append(out.Topics, rt)
	}
	return out
}

// OffsetDelete v0: removes a group's commits for partitions of topics it
// is not subscribed to.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	g := s.group(req.Group, false)
	if g == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	subscribed := g.subscribedTopics()
	g.mu.Unlock()
	var keys, values [][]byte
	var gone []topicPart
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if subscribed[t.Topic] {
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				keys = append(keys, offsetKey(g.id, t.Topic, p.Partition))
				values = append(values, nil)
				gone = append(gone, topicPart{t.Topic, p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(keys) == 0 {
		return resp
	}
	if err := s.write(ctx, keys, values); err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		resp.Topics = nil
		return resp
	}
	g.mu.Lock()
	for _, k := range gone {
		delete(g.offsets, k)
	}
	g.mu.Unlock()
	return resp
}

// subscribedTopics is the topics the group's members subscribe to, as
// their consumer protocol metadata says.
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	if g.cg != nil {
		for _, m := range g.cg.members {
			for t := range m.Target {
				out[t] = true
			}
			for _, t := range m.Topics {
				out[t] = true
			}
		}
		return out
	}
	if g.protocolType != "consumer" {
		return out
	}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if md.ReadFrom(m.metadataFor(g.protocol)) == nil {
			for _, t := range md.Topics {
				out[t] = true
			}
		}
	}
	return out
}

// checkFetch is a consumer group member's rule (v9+): it fetches in its
// current epoch. Fetches without a member id are anyone's.
func (g *group) checkFetch(rg kmsg.OffsetFetchRequestGroup) int16 {
	if g.cg == nil || rg.MemberID == nil {
		return 0
	}
	m := g.cg.members[*rg.MemberID]
	switch {
	case m == nil:
		return unknownMember
	case m.Left || rg.MemberEpoch != m.Epoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}
