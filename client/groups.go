package client

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
)

// GroupSummary is one consumer group as ListGroups reports it.
type GroupSummary struct {
	Group        string `json:"group"`
	Coordinator  int32  `json:"coordinator"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	// Type is "classic" or "consumer" (the next-generation protocol).
	Type string `json:"type"`
}

// ListGroups lists every group of the cluster, sorted by id.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	listed, err := a.adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var out []GroupSummary
	for _, g := range listed.Sorted() {
		out = append(out, GroupSummary{Group: g.Group, Coordinator: g.Coordinator, State: g.State, ProtocolType: g.ProtocolType, Type: g.GroupType})
	}
	return out, nil
}

// PartitionLag is one partition of a group: what it committed, where the
// log ends, and the difference.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	LogEnd    int64  `json:"log_end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"`
	Client    string `json:"client_id,omitempty"`
	Host      string `json:"host,omitempty"`
}

// GroupMember is one member of a group and what it is assigned.
type GroupMember struct {
	MemberID   string  `json:"member_id"`
	InstanceID *string `json:"instance_id,omitempty"`
	ClientID   string  `json:"client_id"`
	Host       string  `json:"host"`
	// Epoch, Protocol and Rack are a next-generation group member's:
	// its member epoch, "consumer" or "classic", and its rack.
	Epoch    *int32  `json:"epoch,omitempty"`
	Protocol string  `json:"protocol,omitempty"`
	Rack     *string `json:"rack,omitempty"`
}

// GroupDetail is a group with its members and its lag per partition.
type GroupDetail struct {
	Group       string `json:"group"`
	Coordinator int32  `json:"coordinator"`
	State       string `json:"state"`
	// Type is "classic" or "consumer" (the next-generation protocol); a
	// consumer group's protocol is its server-side assignor and its
	// generation its group epoch.
	Type       string         `json:"type"`
	Protocol   string         `json:"protocol"`
	Generation int32          `json:"generation,omitempty"`
	Members    []GroupMember  `json:"members"`
	Partitions []PartitionLag `json:"partitions"`
	TotalLag   int64          `json:"total_lag"`
}

// DescribeGroup returns a group's members, commits and lag.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDetail, error) {
	out := GroupDetail{Group: group}
	described, err := a.adm.DescribeGroups(ctx, group)
	if err != nil {
		return out, err
	}
	dg, ok := described[group]
	if !ok {
		return out, fmt.Errorf("group %q: not described", group)
	}
	if dg.Err != nil {
		return out, fmt.Errorf("group %q: %w", group, dg.Err)
	}
	out.Coordinator, out.State, out.Protocol, out.Type = dg.Coordinator.NodeID, dg.State, dg.Protocol, "classic"
	nextGen := map[string]kadm.ConsumerGroupMember{}
	if cg, err := a.adm.DescribeConsumerGroups(ctx, group); err == nil && cg[group].Err == nil {
		out.Type, out.Generation = "consumer", cg[group].Epoch
		for _, m := range cg[group].Members {
			nextGen[m.MemberID] = m
		}
	}
	for _, m := range dg.Members {
		gm := GroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost}
		if cm, ok := nextGen[m.MemberID]; ok {
			epoch := cm.MemberEpoch
			gm.Epoch, gm.Rack, gm.Protocol = &epoch, cm.RackID, "consumer"
			if cm.MemberType == 0 {
				gm.Protocol = "classic"
			}
		}
		out.Members = append(out.Members, gm)
	}
	committed, err := a.adm.FetchOffsets(ctx, group)
	if err != nil {
		return out, err
	}
	if err := committed.Error(); err != nil {
		return out, err
	}
	topics := committed.Offsets().TopicsSet().Topics()
	for _, t := range dg.AssignedPartitions().Topics() {
		if !contains(topics, t) {
			topics = append(topics, t)
		}
	}
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		if ends, err = a.adm.ListEndOffsets(ctx, topics...); err != nil {
			return out, err
		}
	}
	lag := kadm.CalculateGroupLag(dg, committed, ends)
	for _, l := range lag.Sorted() {
		p := PartitionLag{Topic: l.End.Topic, Partition: l.End.Partition, Committed: l.Commit.At, LogEnd: l.End.Offset, Lag: l.Lag}
		if l.Err != nil {
			return out, fmt.Errorf("%s-%d: %w", l.End.Topic, l.End.Partition, l.Err)
		}
		if l.Member != nil {
			p.Member, p.Client, p.Host = l.Member.MemberID, l.Member.ClientID, l.Member.ClientHost
		}
		out.Partitions = append(out.Partitions, p)
		out.TotalLag += max(l.Lag, 0)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// DeleteGroup deletes an empty group and its commits.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	res, err := a.adm.DeleteGroup(ctx, group)
	if err != nil {
		return err
	}
	return res.Err
}

// SeekTarget is where a seek moves a group's commits: Start, End, a
// timestamp in milliseconds, or an exact offset.
type SeekTarget struct {
	Start, End bool
	Timestamp  int64
	Offset     int64
}

// SeekGroup moves a group's commits for the given topics (every topic it
// committed to, when none are given). Kafka refuses commits from outside
// the group while it has members, and so does this: the group must be
// empty.
func (a *Admin) SeekGroup(ctx context.Context, group string, topics []string, to SeekTarget) ([]PartitionLag, error) {
	described, err := a.adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	if dg, ok := described[group]; ok && dg.Err == nil && len(dg.Members) > 0 {
		return nil, fmt.Errorf("group %q has %d active members; stop them before seeking", group, len(dg.Members))
	}
	if len(topics) == 0 {
		committed, err := a.adm.FetchOffsets(ctx, group)
		if err != nil {
			return nil, err
		}
		topics = committed.Offsets().TopicsSet().Topics()
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("group %q has no commits; name the topics to seek", group)
	}
	sort.Strings(topics)
	var listed kadm.ListedOffsets
	switch {
	case to.Start:
		listed, err = a.adm.ListStartOffsets(ctx, topics...)
	case to.End:
		listed, err = a.adm.ListEndOffsets(ctx, topics...)
	case to.Timestamp > 0:
		listed, err = a.adm.ListOffsetsAfterMilli(ctx, to.Timestamp, topics...)
	default:
		listed, err = a.adm.ListEndOffsets(ctx, topics...)
		listed.Each(func(o kadm.ListedOffset) {
			listed[o.Topic][o.Partition] = kadm.ListedOffset{Topic: o.Topic, Partition: o.Partition, Offset: to.Offset, LeaderEpoch: -1}
		})
	}
	if err != nil {
		return nil, err
	}
	if err := listed.Error(); err != nil {
		return nil, err
	}
	res, err := a.adm.CommitOffsets(ctx, group, listed.Offsets())
	if err != nil {
		return nil, err
	}
	if err := res.Error(); err != nil {
		return nil, err
	}
	var out []PartitionLag
	for _, r := range res.Sorted() {
		out = append(out, PartitionLag{Topic: r.Topic, Partition: r.Partition, Committed: r.At})
	}
	return out, nil
}

// CommittedOffsets is a group's committed offset per partition of topic.
func (a *Admin) CommittedOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	return a.committedOffsets(ctx, group, topic)
}

// StableCommittedOffsets is CommittedOffsets once no transaction's offsets
// are pending: until then it fails with UNSTABLE_OFFSET_COMMIT.
func (a *Admin) StableCommittedOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	return a.committedOffsets(kadm.RequireStable(ctx), group, topic)
}

func (a *Admin) committedOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := a.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}
