package groups

import (
	"context"
	"sort"
)

// PartitionLag is one partition a group committed to: where it is, where
// the log ends, and the difference.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	// LogEnd is the partition's high watermark, -1 when unknown (no
	// live leader answered).
	LogEnd int64 `json:"log_end"`
	Lag    int64 `json:"lag"`
}

// GroupLag is one group this node coordinates, with its lag.
type GroupLag struct {
	Group string `json:"group"`
	// Type is "classic" or "consumer" (next-generation); Generation is a
	// next-generation group's epoch.
	Type       string         `json:"type"`
	State      string         `json:"state"`
	Members    int            `json:"members"`
	Generation int32          `json:"generation"`
	Partitions []PartitionLag `json:"partitions"`
	// MaxLag and TotalLag cover the partitions whose end is known.
	MaxLag   int64 `json:"max_lag"`
	TotalLag int64 `json:"total_lag"`
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// EndOffsets finds the high watermarks of partitions; a partition it
// cannot answer for is left out.
type EndOffsets func(ctx context.Context, parts []TopicPartition) map[TopicPartition]int64

// Lag reports the groups this node coordinates, sorted by id, with each
// committed partition's lag against ends. Only loaded shards count: a
// shard loads with the first request for one of its groups.
func (c *Coordinator) Lag(ctx context.Context, ends EndOffsets) []GroupLag {
	type snap struct {
		lag     GroupLag
		offsets map[topicPart]int64
	}
	var snaps []snap
	need := map[TopicPartition]bool{}
	for _, s := range c.shards.Sorted() {
		if err := s.Ready(ctx); err != nil {
			continue
		}
		for _, g := range s.sortedGroups() {
			g.mu.Lock()
			sn := snap{lag: GroupLag{Group: g.id, Type: g.typeName(), State: g.stateName(), Members: g.memberCount(), Generation: g.generation}, offsets: map[topicPart]int64{}}
			if g.cg != nil {
				sn.lag.Generation = g.cg.Epoch
			}
			for k, o := range g.offsets {
				sn.offsets[k] = o.offset
				need[TopicPartition{k.topic, k.partition}] = true
			}
			g.mu.Unlock()
			snaps = append(snaps, sn)
		}
	}
	parts := make([]TopicPartition, 0, len(need))
	for p := range need {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	known := map[TopicPartition]int64{}
	if len(parts) > 0 {
		known = ends(ctx, parts)
	}
	out := make([]GroupLag, 0, len(snaps))
	for _, sn := range snaps {
		l := sn.lag
		for k, committed := range sn.offsets {
			p := PartitionLag{Topic: k.topic, Partition: k.partition, Committed: committed, LogEnd: -1}
			if end, ok := known[TopicPartition{k.topic, k.partition}]; ok {
				p.LogEnd = end
				p.Lag = max(end-committed, 0)
				l.TotalLag += p.Lag
				l.MaxLag = max(l.MaxLag, p.Lag)
			}
			l.Partitions = append(l.Partitions, p)
		}
		sort.Slice(l.Partitions, func(i, j int) bool {
			a, b := l.Partitions[i], l.Partitions[j]
			if a.Topic != b.Topic {
				return a.Topic < b.Topic
			}
			return a.Partition < b.Partition
		})
		out = append(out, l)
	}
	return out
}
