package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminServer serves Prometheus metrics, health checks and pprof.
type adminServer struct {
	ln  net.Listener
	srv *http.Server
}

func startAdmin(n *Node) (*adminServer, error) {
	ln, err := net.Listen("tcp", n.cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health/live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/debug/partitions", n.servePartitions)
	mux.HandleFunc("/v1/groups", n.serveGroups)
	mux.HandleFunc("/v1/transactions", n.serveTransactions)
	if n.cfg.FaultInjection {
		mux.HandleFunc("/debug/faults", n.serveFaults)
		mux.HandleFunc("/debug/faults/kafka", n.serveKafkaFaults)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a := &adminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("admin server stopped", "error", err)
		}
	}()
	return a, nil
}

// partitionView is one local replica as /debug/partitions reports it.
type partitionView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Leader    int32  `json:"leader"`
	Epoch     int32  `json:"leader_epoch"`
	HW        int64  `json:"high_watermark"`
	CRC32C    uint32 `json:"crc32c"`
	// Start is the log start offset, Segments and Bytes what this replica
	// keeps on disk: the start is agreed through Raft, the segments may
	// be cut at other offsets on another replica.
	Start    int64  `json:"log_start_offset"`
	Segments int    `json:"segments"`
	Bytes    int64  `json:"size_bytes"`
	Error    string `json:"error,omitempty"`
	// Raft is the replica's group as this node's raft sees it, for
	// telling a follower that lacks entries from one that was never told
	// they are committed.
	Raft *raftView `json:"raft,omitempty"`
}

type raftView struct {
	State   string `json:"state"`
	Term    string `json:"term"`
	Last    string `json:"last_log_index"`
	Commit  string `json:"commit_index"`
	Applied string `json:"applied_index"`
	Contact string `json:"last_contact"`
}

// servePartitions lists every local replica with its high watermark and a
// checksum of its data below it, so replicas can be compared for
// divergence (chaos checkers, operators) without reading the data.
func (n *Node) servePartitions(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-n.started:
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	keys := n.replicas.running.keys()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	out := make([]partitionView, 0, len(keys))
	for _, k := range keys {
		v := partitionView{Topic: k.topic, Partition: k.partition}
		v.Leader, v.Epoch = n.PartitionLeader(k.topic, k.partition)
		hw, sum, ok, err := n.PartitionDigest(k.topic, k.partition)
		if !ok {
			continue
		}
		v.HW, v.CRC32C = hw, sum
		if err != nil {
			v.Error = err.Error()
		}
		if r := n.replica(k); r != nil {
			v.Start, v.Segments, v.Bytes = r.fsm.StartOffset(), len(r.fsm.Log().Segments()), r.fsm.Log().Size()
			st := r.group.raft.Stats()
			v.Raft = &raftView{State: st["state"], Term: st["term"], Last: st["last_log_index"],
				Commit: st["commit_index"], Applied: st["applied_index"], Contact: st["last_contact"]}
		}
		out = append(out, v)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// serveFaults shows (GET) or replaces (PUT/POST, a JSON list of rules) the
// network faults this node applies to its own node-transport writes and
// gossip packets. A runner sets the same full list on every node; each
// node acts on the rules whose "from" is itself and drops gossip from
// blocked peers.
func (n *Node) serveFaults(w http.ResponseWriter, r *http.Request) {
	serveRules(w, r, n, "network faults", n.cfg.Faults.SetRules, n.cfg.Faults.Rules)
}

// serveKafkaFaults reads and replaces the Kafka listener's faults:
// responses of chosen APIs lost, their connection closed instead.
func (n *Node) serveKafkaFaults(w http.ResponseWriter, r *http.Request) {
	serveRules(w, r, n, "Kafka listener faults", n.cfg.Kafka.Faults.Set, n.cfg.Kafka.Faults.Rules)
}

// serveRules answers GET with the rules in force and takes a new list
// with PUT or POST.
func serveRules[T any](w http.ResponseWriter, r *http.Request, n *Node, what string, set func([]T), get func() []T) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut, http.MethodPost:
		var rules []T
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rules); err != nil {
			http.Error(w, "bad "+what+": "+err.Error(), http.StatusBadRequest)
			return
		}
		set(rules)
		n.logger.Warn(what+" set through the admin API", "rules", len(rules))
	default:
		http.Error(w, "use GET, PUT or POST", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(get())
}

func (a *adminServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return a.srv.Shutdown(ctx)
}

// nodeMetrics are the broker-level metrics.
type nodeMetrics struct {
	entryBatches  prometheus.Histogram
	entryBytes    prometheus.Histogram
	commitSeconds prometheus.Histogram
	producedBytes prometheus.Counter
	fetchedBytes  prometheus.Counter
	replicas      prometheus.Gauge
	// replicaRebuilds counts replicas found damaged at start and rebuilt.
	replicaRebuilds prometheus.Counter
	// retentionTrims counts log start moves retention committed.
	retentionTrims prometheus.Counter
	// compactedBytes and compactionRemoved count compaction's input
	// bytes and the records it removed.
	compactedBytes    prometheus.Counter
	compactionRemoved prometheus.Counter
	compactionSeconds prometheus.Counter
	// raftLogSync and raftLogRecords describe the shared Raft log's
	// commit rounds: one write and one fdatasync each.
	raftLogSync    prometheus.Histogram
	raftLogRecords prometheus.Histogram
	// nudgedElections counts elections this node started for partition
	// groups without a live leader (see elections.go).
	nudgedElections prometheus.Counter
	// quietGroups counts partition leaders that went quiet (quiesce.go).
	quietGroups prometheus.Counter
	// observations counts raft observations by kind (leader, heartbeat
	// failed or resumed), for every group on the node.
	observations *prometheus.CounterVec
	// leaderReports counts passes over the replicas that report
	// leaderships to the controller.
	leaderReports prometheus.Counter
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	f := promauto.With(reg)
	return &nodeMetrics{
		entryBatches: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_raft_entry_batches",
			Help:    "Record batches packed into one partition Raft entry (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		entryBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_raft_entry_bytes",
			Help:    "Record-batch bytes packed into one partition Raft entry.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 9),
		}),
		commitSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_raft_commit_seconds",
			Help:    "Time from proposing a partition entry to its commit and apply.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		producedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_produced_bytes_total",
			Help: "Record-batch bytes acknowledged to producers.",
		}),
		fetchedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_fetched_bytes_total",
			Help: "Record-batch bytes returned to fetchers.",
		}),
		replicas: f.NewGauge(prometheus.GaugeOpts{
			Name: "quire_partition_replicas",
			Help: "Partition replicas this node hosts.",
		}),
		replicaRebuilds: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_replica_rebuilds_total",
			Help: "Replicas whose data failed verification at start and were rebuilt from their peers.",
		}),
		retentionTrims: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_retention_trims_total",
			Help: "Times retention moved the log start offset of a partition this node leads (deleting closed segments on every replica).",
		}),
		compactedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_compaction_input_bytes_total",
			Help: "Bytes of closed segments compaction went through on this node (each is read for keys, then rewritten where records go).",
		}),
		compactionRemoved: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_compaction_removed_records_total",
			Help: "Records compaction removed on this node: superseded by a later record of their key, tombstones past delete.retention.ms, aborted.",
		}),
		compactionSeconds: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_compaction_seconds_total",
			Help: "Time this node's cleaner spent compacting (scanning keys and rewriting segments).",
		}),
		raftLogSync: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_raft_log_sync_seconds",
			Help:    "Time one commit round of the node's shared Raft log took to write and fdatasync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		raftLogRecords: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "quire_raft_log_round_records",
			Help:    "Records (from all partition groups) made durable by one commit round of the shared Raft log.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		observations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_raft_observations_total",
			Help: "Raft observations of every group on the node, by kind: leader (a leadership change seen by a replica), heartbeat_failed and heartbeat_resumed (a leader's heartbeats to a follower).",
		}, []string{"kind"}),
		leaderReports: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_leader_report_passes_total",
			Help: "Passes over this node's replicas that report their leaderships and ISRs to the controller.",
		}),
		quietGroups: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_raft_quiesced_total",
			Help: "Partition groups led here that went quiet after taking no writes: their heartbeats go out a quarter as often.",
		}),
		nudgedElections: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_raft_nudged_elections_total",
			Help: "Elections this node started for partition groups whose voters agreed they had no live leader (a dead or cut-off leader, a new topic, a restart).",
		}),
	}
}
