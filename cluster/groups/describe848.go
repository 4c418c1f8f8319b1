package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// ConsumerGroupDescribe v0-1: a consumer group's epochs, assignor and
// members, each with its current and target assignment.
func (c *Coordinator) ConsumerGroupDescribe(ctx context.Context, req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewConsumerGroupDescribeResponseGroup()
		dg.Group = id
		s, err := c.groupShard(ctx, id)
		if err != nil {
			dg.ErrorCode = kafkaerr.Code(err)
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		g := s.group(id, false)
		if g == nil {
			dg.ErrorCode = kerr.GroupIDNotFound.Code
			dg.ErrorMessage = kmsg.StringPtr("group " + id + " not found")
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		v := c.topics()
		g.mu.Lock()
		if g.cg == nil {
			dg.ErrorCode = kerr.GroupIDNotFound.Code
			dg.ErrorMessage = kmsg.StringPtr("group " + id + " is not a consumer group")
		} else {
			g.cg.describe(&dg, v, req.Version)
		}
		g.mu.Unlock()
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (cg *consumerGroup) describe(dg *kmsg.ConsumerGroupDescribeResponseGroup, v *topicView, version int16) {
	dg.State, dg.Epoch, dg.AssignmentEpoch = cg.state(), cg.Epoch, cg.TargetEpoch
	dg.AssignorName = cg.Assignor
	for _, m := range cg.sortedMembers() {
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.RackID, dm.MemberEpoch = m.ID, m.InstanceID, m.RackID, m.Epoch
		dm.ClientID, dm.ClientHost = m.ClientID, m.ClientHost
		dm.SubscribedTopics = append([]string{}, m.Topics...)
		if m.Regex != "" {
			dm.SubscribedTopicRegex = kmsg.StringPtr(m.Regex)
		}
		dm.Assignment, dm.TargetAssignment = describedAssignment(m.Assigned, v), describedAssignment(m.Target, v)
		if version >= 1 {
			dm.MemberType = 1 // the consumer protocol
			if m.Classic != nil {
				dm.MemberType = 0
			}
		}
		dg.Members = append(dg.Members, dm)
	}
}

func describedAssignment(a assignment, v *topicView) kmsg.Assignment {
	out := kmsg.Assignment{TopicPartitions: []kmsg.AssignmentTopicPartition{}}
	for _, t := range sortedKeys(a) {
		tp := kmsg.AssignmentTopicPartition{Topic: t, TopicID: v.byName[t].ID, Partitions: append([]int32(nil), a[t]...)}
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}

// describeClassic shows a consumer group to DescribeGroups as a classic
// consumer group would be: the assignor as its protocol, and each member's
// partitions encoded as a consumer protocol assignment, so that tools
// which only know the classic API still see who reads what.
func (cg *consumerGroup) describeClassic(dg *kmsg.DescribeGroupsResponseGroup) {
	dg.State, dg.ProtocolType, dg.Protocol = cg.state(), "consumer", cg.Assignor
	for _, m := range cg.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.ID, m.InstanceID, m.ClientID, m.ClientHost
		md := kmsg.NewConsumerMemberMetadata()
		md.Topics = append([]string{}, m.Topics...)
		dm.ProtocolMetadata = md.AppendTo(nil)
		ma := kmsg.NewConsumerMemberAssignment()
		for _, t := range sortedKeys(m.Assigned) {
			ma.Topics = append(ma.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: t, Partitions: append([]int32(nil), m.Assigned[t]...)})
		}
		dm.MemberAssignment = ma.AppendTo(nil)
		dg.Members = append(dg.Members, dm)
	}
}
