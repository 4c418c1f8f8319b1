package cluster

import (
	"time"

	"github.com/quirelog/quire/fsm"
)

// expireProducersLoop has each partition this node leads forget the
// idempotent producers idle for longer than ProducerIDExpiration, through
// an entry in the partition's Raft group: the leader's clock picks the
// cut-off once, and every replica forgets the same producers at the same
// point of the log.
func (n *Node) expireProducersLoop() {
	n.loop(n.cfg.ProducerIDExpirationCheck, nil, n.expireProducers)
}

func (n *Node) expireProducers() {
	before := time.Now().Add(-n.cfg.ProducerIDExpiration).UnixMilli()
	for _, r := range n.allReplicas() {
		if r.fsm.ProducerCount() == 0 {
			continue
		}
		if ok, _ := r.leader(); !ok {
			continue
		}
		f := r.group.raft.Apply(fsm.ExpireProducers(before), 10*time.Second)
		if err := f.Error(); err != nil {
			n.logger.Debug("producer expiry not committed", "partition", r.tp.String(), "error", err)
			continue
		}
		if res, ok := f.Response().(*fsm.ExpireResult); ok && res.Expired > 0 {
			n.logger.Debug("idle producers forgotten", "partition", r.tp.String(), "producers", res.Expired)
		}
	}
}
