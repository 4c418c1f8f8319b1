package cluster

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quirelog/quire/cluster/txn"
)

// serveTransactions is /v1/transactions: the transactional ids this node
// coordinates, as JSON; ?state= keeps one state (Ongoing, say), and
// ?transactional_id= one id.
func (n *Node) serveTransactions(w http.ResponseWriter, r *http.Request) {
	select {
	case <-n.started:
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	var f txn.Filter
	if s := r.URL.Query().Get("state"); s != "" {
		f.States = []string{s}
	}
	all := n.txnCoord.List(f)
	if id := r.URL.Query().Get("transactional_id"); id != "" {
		var one []txn.Described
		for _, d := range all {
			if d.ID == id {
				one = append(one, d)
			}
		}
		all = one
	}
	if all == nil {
		all = []txn.Described{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(all)
}

// txnCollector exports, at scrape time, the age of the oldest transaction
// under way that this node coordinates: a hanging transaction holds every
// read_committed reader of its partitions back, and this is how an
// operator sees one.
type txnCollector struct {
	n      *Node
	oldest *prometheus.Desc
	open   *prometheus.Desc
}

func newTxnCollector(n *Node) *txnCollector {
	return &txnCollector{n: n,
		oldest: prometheus.NewDesc("quire_txn_oldest_open_seconds", "Age of the oldest transaction under way (Ongoing, PrepareCommit or PrepareAbort) that this node coordinates; 0 when none is.", nil, nil),
		open:   prometheus.NewDesc("quire_txn_open", "Transactions under way that this node coordinates.", nil, nil),
	}
}

func (c *txnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.oldest
	ch <- c.open
}

func (c *txnCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.n.started:
	default:
		return
	}
	open := c.n.txnCoord.List(txn.Filter{States: []string{"Ongoing", "PrepareCommit", "PrepareAbort"}})
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, c.n.txnCoord.OldestOpen().Seconds())
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(len(open)))
}
