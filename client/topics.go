package client

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TopicInfo is one topic as `quire topic list` shows it.
type TopicInfo struct {
	Name              string `json:"name"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

// PartitionInfo is one partition of a described topic.
type PartitionInfo struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	StartOffset int64   `json:"log_start_offset"`
	EndOffset   int64   `json:"high_watermark"`
}

// ConfigInfo is one config in force on a topic and where it comes from.
type ConfigInfo struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// TopicDetail is a topic with its partitions and configs.
type TopicDetail struct {
	TopicInfo
	PartitionDetails []PartitionInfo `json:"partition_details"`
	Configs          []ConfigInfo    `json:"configs"`
}

func topicInfo(td kadm.TopicDetail) TopicInfo {
	ti := TopicInfo{Name: td.Topic, ID: td.ID.String(), Partitions: len(td.Partitions), Internal: td.IsInternal}
	if p, ok := td.Partitions[0]; ok {
		ti.ReplicationFactor = len(p.Replicas)
	}
	return ti
}

// ListTopics lists every topic, by name.
func (a *Admin) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	tds, err := a.adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return nil, err
	}
	out := []TopicInfo{}
	for _, td := range tds.Sorted() {
		if td.Err == nil {
			out = append(out, topicInfo(td))
		}
	}
	return out, nil
}

// DescribeTopic gives a topic's partitions, with their offsets, and its
// configs with their sources.
func (a *Admin) DescribeTopic(ctx context.Context, topic string) (TopicDetail, error) {
	tds, err := a.adm.ListTopicsWithInternal(ctx, topic)
	if err != nil {
		return TopicDetail{}, err
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		return TopicDetail{}, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	d := TopicDetail{TopicInfo: topicInfo(td)}
	starts, err := a.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return d, err
	}
	ends, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return d, err
	}
	for _, p := range td.Partitions.Sorted() {
		pi := PartitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR,
			StartOffset: -1, EndOffset: -1}
		if o, ok := starts.Lookup(topic, p.Partition); ok && o.Err == nil {
			pi.StartOffset = o.Offset
		}
		if o, ok := ends.Lookup(topic, p.Partition); ok && o.Err == nil {
			pi.EndOffset = o.Offset
		}
		d.PartitionDetails = append(d.PartitionDetails, pi)
	}
	rcs, err := a.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return d, err
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return d, err
	}
	for _, c := range rc.Configs {
		ci := ConfigInfo{Name: c.Key, Source: c.Source.String()}
		if c.Value != nil {
			ci.Value = *c.Value
		}
		d.Configs = append(d.Configs, ci)
	}
	sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Name < d.Configs[j].Name })
	return d, nil
}

// AddPartitions gives a topic add more partitions.
func (a *Admin) AddPartitions(ctx context.Context, topic string, add int) error {
	resp, err := a.adm.CreatePartitions(ctx, add, topic)
	if err != nil {
		return err
	}
	r, ok := resp[topic]
	if !ok {
		return fmt.Errorf("no answer for topic %s", topic)
	}
	if r.Err != nil {
		return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
	}
	return nil
}

// ConfigChange is one change `quire topic alter-config` makes: Set with
// a value, or Delete (back to the broker's default), or Append and
// Subtract on a list config.
type ConfigChange struct {
	Name  string
	Value string
	Op    kadm.IncrementalOp
}

// AlterTopicConfig changes a topic's configs incrementally; validateOnly
// checks them without changing anything.
func (a *Admin) AlterTopicConfig(ctx context.Context, topic string, changes []ConfigChange, validateOnly bool) error {
	var acs []kadm.AlterConfig
	for _, c := range changes {
		ac := kadm.AlterConfig{Op: c.Op, Name: c.Name}
		if c.Op != kadm.DeleteConfig {
			v := c.Value
			ac.Value = &v
		}
		acs = append(acs, ac)
	}
	alter := a.adm.AlterTopicConfigs
	if validateOnly {
		alter = a.adm.ValidateAlterTopicConfigs
	}
	resp, err := alter(ctx, acs, topic)
	if err != nil {
		return err
	}
	r, err := resp.On(topic, nil)
	if err != nil {
		return err
	}
	if r.Err != nil {
		return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
	}
	return nil
}

// Trimmed is a partition's log start offset after TrimPrefix.
type Trimmed struct {
	Partition   int32  `json:"partition"`
	StartOffset int64  `json:"log_start_offset"`
	Error       string `json:"error,omitempty"`
}

// TrimPrefix deletes the records of the given partitions (every one when
// none is named) below offset (-1: the high watermark), through
// DeleteRecords.
func (a *Admin) TrimPrefix(ctx context.Context, topic string, partitions []int32, offset int64) ([]Trimmed, error) {
	if len(partitions) == 0 {
		tds, err := a.adm.ListTopics(ctx, topic)
		if err != nil {
			return nil, err
		}
		td, ok := tds[topic]
		if !ok || td.Err != nil {
			return nil, fmt.Errorf("topic %s: %v", topic, td.Err)
		}
		partitions = td.Partitions.Numbers()
	}
	var to kadm.Offsets
	for _, p := range partitions {
		to.Add(kadm.Offset{Topic: topic, Partition: p, At: offset})
	}
	resp, err := a.adm.DeleteRecords(ctx, to)
	if err != nil {
		return nil, err
	}
	var out []Trimmed
	for _, p := range partitions {
		t := Trimmed{Partition: p, StartOffset: -1}
		r, ok := resp.Lookup(topic, p)
		switch {
		case !ok:
			t.Error = "no answer"
		case r.Err != nil:
			t.Error = r.Err.Error()
		default:
			t.StartOffset = r.LowWatermark
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}
