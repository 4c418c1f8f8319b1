package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	streams      *prometheus.CounterVec
	dialFailures prometheus.Counter
	sessions     prometheus.Gauge
	peersGone    prometheus.Counter
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
	}
}

func (m *metrics) streamOpened(kind byte, direction string) {
	m.streams.WithLabelValues(kindName(kind), direction).Inc()
}
