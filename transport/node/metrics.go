package node

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	streams      *prometheus.CounterVec
	dialFailures prometheus.Counter
	sessions     prometheus.Gauge
	peersGone    prometheus.Counter
	reachable    *prometheus.GaugeVec
	frames       prometheus.Counter
	writes       prometheus.Counter
	bytes        prometheus.Counter
	// muxFrames and muxWrites count the same as frames and writes, for
	// tests to read.
	muxFrames, muxWrites atomic.Int64
}

// muxWrite counts one write of n raft mux frames.
func (m *metrics) muxWrite(n, size int) {
	m.frames.Add(float64(n))
	m.writes.Inc()
	m.bytes.Add(float64(size))
	m.muxFrames.Add(int64(n))
	m.muxWrites.Add(1)
}

// newMetrics registers on reg; a nil reg yields working but unexported
// metrics, so the transport never checks for them.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		streams: f.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_node_transport_streams_opened_total",
			Help: "Node-to-node streams opened, by kind (raft, rpc) and direction (in, out).",
		}, []string{"kind", "direction"}),
		dialFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_node_transport_dial_failures_total",
			Help: "Failed attempts to open a session to a peer node.",
		}),
		sessions: f.NewGauge(prometheus.GaugeOpts{
			Name: "quire_node_transport_sessions",
			Help: "Open yamux sessions to and from peer nodes.",
		}),
		peersGone: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_node_transport_peers_gone_total",
			Help: "Probes after a lost session that found the peer's listener refusing connections: its process was gone.",
		}),
		reachable: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quire_node_peer_reachable",
			Help: "1 while a watched peer answers this node's pings within the liveness timeout, else 0.",
		}, []string{"peer"}),
		frames: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_node_raft_frames_total",
			Help: "Raft frames (calls, replies, pings) written to peers, every group's together.",
		}),
		writes: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_node_raft_writes_total",
			Help: "Writes that carried raft frames to peers; frames per write is how much heartbeats and replies share.",
		}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "quire_node_raft_bytes_total",
			Help: "Bytes of raft frames written to peers.",
		}),
	}
}

func (m *metrics) streamOpened(kind byte, direction string) {
	m.streams.WithLabelValues(kindName(kind), direction).Inc()
}

func peerLabel(id int32) string { return strconv.Itoa(int(id)) }
