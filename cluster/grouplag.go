package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quirelog/quire/cluster/groups"
)

// rpcEndOffsets asks a node for the high watermarks of partitions it
// leads, for group lag.
const rpcEndOffsets = "partitions.ends"

// endOffset is one answered partition of rpcEndOffsets.
type endOffset struct {
	groups.TopicPartition
	End int64 `json:"end"`
}

// endOffsets finds the high watermarks of parts: from local leader
// replicas, else from their leaders, else from a local follower (a little
// behind, but known).
func (n *Node) endOffsets(ctx context.Context, parts []groups.TopicPartition) map[groups.TopicPartition]int64 {
	out := make(map[groups.TopicPartition]int64, len(parts))
	remote := map[int32][]groups.TopicPartition{}
	state := n.meta.state()
	for _, p := range parts {
		if r, err := n.leaderReplica(p.Topic, p.Partition); err == nil {
			out[p] = r.fsm.HighWatermark()
			continue
		}
		t := state.Topics[p.Topic]
		if t == nil || p.Partition < 0 || int(p.Partition) >= len(t.Partitions) {
			continue
		}
		if leader, _, _ := n.knownLeader(tp{p.Topic, p.Partition}, t, t.Partitions[p.Partition]); leader >= 0 && leader != n.cfg.NodeID {
			remote[leader] = append(remote[leader], p)
		}
	}
	for id, ps := range remote {
		req, _ := json.Marshal(ps)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := n.nt.Call(cctx, id, rpcEndOffsets, req)
		cancel()
		var got []endOffset
		if err == nil && json.Unmarshal(resp, &got) == nil {
			for _, e := range got {
				out[e.TopicPartition] = e.End
			}
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; ok {
			continue
		}
		if r := n.replica(tp{p.Topic, p.Partition}); r != nil {
			out[p] = r.fsm.HighWatermark()
		}
	}
	return out
}

func (n *Node) handleEndOffsets(_ context.Context, _ int32, req []byte) ([]byte, error) {
	var parts []groups.TopicPartition
	if err := json.Unmarshal(req, &parts); err != nil {
		return nil, err
	}
	out := make([]endOffset, 0, len(parts))
	for _, p := range parts {
		if r, err := n.leaderReplica(p.Topic, p.Partition); err == nil {
			out = append(out, endOffset{p, r.fsm.HighWatermark()})
		}
	}
	return json.Marshal(out)
}

// GroupLag reports the groups this node coordinates, with their lag.
func (n *Node) GroupLag(ctx context.Context) []groups.GroupLag {
	return n.groupCoord.Lag(ctx, n.endOffsets)
}

// serveGroups answers /v1/groups: the groups this node coordinates, each
// with its committed offsets, log end offsets and lag.
func (n *Node) serveGroups(w http.ResponseWriter, r *http.Request) {
	select {
	case <-n.started:
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	all := n.GroupLag(ctx)
	if g := r.URL.Query().Get("group"); g != "" {
		var one []groups.GroupLag
		for _, l := range all {
			if l.Group == g {
				one = append(one, l)
			}
		}
		all = one
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(all)
}

// groupLagCollector exports group lag at scrape time, for the groups this
// node coordinates (so each group is exported by one node). Per-partition
// series are opt-in: a group on thousands of partitions would otherwise
// make thousands of series.
type groupLagCollector struct {
	n          *Node
	partitions bool
	maxLag     *prometheus.Desc
	sumLag     *prometheus.Desc
	members    *prometheus.Desc
	partLag    *prometheus.Desc
}

func newGroupLagCollector(n *Node, partitions bool) *groupLagCollector {
	return &groupLagCollector{
		n:          n,
		partitions: partitions,
		maxLag:     prometheus.NewDesc("quire_group_lag_max", "Largest lag (log end offset minus committed offset) of a partition the group committed to.", []string{"group"}, nil),
		sumLag:     prometheus.NewDesc("quire_group_lag_sum", "Lag summed over the partitions the group committed to.", []string{"group"}, nil),
		members:    prometheus.NewDesc("quire_group_members", "Members of the group.", []string{"group"}, nil),
		partLag:    prometheus.NewDesc("quire_group_partition_lag", "Lag of one partition of a group (only with --group-lag-partition-metrics).", []string{"group", "topic", "partition"}, nil),
	}
}

func (c *groupLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.maxLag
	ch <- c.sumLag
	ch <- c.members
	if c.partitions {
		ch <- c.partLag
	}
}

func (c *groupLagCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.n.started:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, g := range c.n.GroupLag(ctx) {
		ch <- prometheus.MustNewConstMetric(c.maxLag, prometheus.GaugeValue, float64(g.MaxLag), g.Group)
		ch <- prometheus.MustNewConstMetric(c.sumLag, prometheus.GaugeValue, float64(g.TotalLag), g.Group)
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(g.Members), g.Group)
		if !c.partitions {
			continue
		}
		for _, p := range g.Partitions {
			if p.LogEnd >= 0 {
				ch <- prometheus.MustNewConstMetric(c.partLag, prometheus.GaugeValue, float64(p.Lag), g.Group, p.Topic, strconv.Itoa(int(p.Partition)))
			}
		}
	}
}
