package groups

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// DescribeGroups v0-5. A group this coordinator does not know is
// described as Dead, as Kafka does before v6.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		dg.State = stateDead.String()
		dg.AuthorizedOperations = -2147483648
		if s, err := c.groupShard(ctx, id); err != nil {
			dg.ErrorCode = kafkaerr.Code(err)
		} else if g := s.group(id, false); g != nil {
			g.describe(&dg)
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (g *group) describe(dg *kmsg.DescribeGroupsResponseGroup) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cg != nil {
		g.cg.describeClassic(dg)
		return
	}
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	if g.state == stateStable {
		dg.Protocol = g.protocol
	}
	for _, m := range g.memberList() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		if g.state == stateStable {
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		dg.Members = append(dg.Members, dm)
	}
}

// ListGroups v0-5: the groups this node coordinates, filtered by state
// (v4+) and type (v5+; every classic group is "classic").
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for p := int32(0); p < c.cluster.Partitions(); p++ {
		s, err := c.shard(ctx, p)
		if err != nil {
			continue
		}
		for _, g := range s.sortedGroups() {
			g.mu.Lock()
			state, ptype, gtype := g.stateName(), g.protocolType, g.typeName()
			if g.cg != nil {
				ptype = "consumer"
			}
			g.mu.Unlock()
			if !matchesAny(req.StatesFilter, state) || !matchesAny(req.TypesFilter, gtype) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, ptype, state, gtype
			resp.Groups = append(resp.Groups, lg)
		}
	}
	return resp
}

func matchesAny(filter []string, v string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if strings.EqualFold(f, v) {
			return true
		}
	}
	return false
}

// DeleteGroups v0-2: an empty group's metadata and commits are deleted
// (tombstones through Raft).
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		dg.ErrorCode = kafkaerr.Code(c.deleteGroup(ctx, id))
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, id string) error {
	s, err := c.groupShard(ctx, id)
	if err != nil {
		return err
	}
	g := s.group(id, false)
	if g == nil {
		return kerr.GroupIDNotFound
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	if g.state != stateEmpty || (g.cg != nil && len(g.cg.members) > 0) {
		g.mu.Unlock()
		return kerr.NonEmptyGroup
	}
	keys, values := [][]byte{metadataKey(id)}, [][]byte{nil}
	if g.cg != nil {
		keys, values = append(keys, cgKey(id)), append(values, nil)
	}
	for k := range g.offsets {
		keys = append(keys, offsetKey(id, k.topic, k.partition))
		values = append(values, nil)
	}
	// Dead while the tombstones are written: a join now is told to retry.
	g.setState(stateDead)
	g.mu.Unlock()
	if err := s.write(ctx, keys, values); err != nil {
		g.mu.Lock()
		g.setState(stateEmpty)
		g.mu.Unlock()
		return err
	}
	s.forget(g)
	return nil
}

// stateName is the group's state as ListGroups and DescribeGroups name
// it; g.mu is held.
func (g *group) stateName() string {
	if g.cg != nil {
		return g.cg.state()
	}
	return g.state.String()
}

// typeName is the group's type (ListGroups v5+); g.mu is held.
func (g *group) typeName() string {
	if g.cg != nil {
		return "consumer"
	}
	return "classic"
}

// memberCount is how many members the group has; g.mu is held.
func (g *group) memberCount() int {
	if g.cg != nil {
		return len(g.cg.members)
	}
	return len(g.members)
}
