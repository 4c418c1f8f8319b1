package cluster

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/cluster/txn"
	"github.com/quirelog/quire/fsm"
)

// txnCluster gives the transaction coordinator the __transaction_state
// partitions this node leads, producer ids, and a way to every partition
// leader for the markers.
type txnCluster struct{ n *Node }

var _ txn.Cluster = txnCluster{}

func (t txnCluster) Partitions() int32 {
	if p := t.n.partitionCount(txn.Topic); p > 0 {
		return p
	}
	return 0
}

func (t txnCluster) Leading(p int32) (statelog.Log, error) { return t.n.leadingLog(txn.Topic, p) }
func (t txnCluster) PartitionCount(topic string) int32     { return t.n.partitionCount(topic) }
func (t txnCluster) NextProducerID(ctx context.Context) (int64, error) {
	return t.n.nextProducerID(ctx)
}

// rpcTxnMarkers carries a WriteTxnMarkers request (kmsg-encoded, version
// 2, which says the transaction version) from a transaction coordinator to
// the leader of the partitions in it.
const (
	rpcTxnMarkers  = "txn.markers"
	markersVersion = 2
)

// WriteMarker commits m on tp through its leader: this node's replica, or
// the leader's over the node port. A partition that has no use for the
// marker any more counts as done: its topic was deleted, or a newer epoch
// of the producer has already ended the transaction there.
func (t txnCluster) WriteMarker(ctx context.Context, tp txn.TopicPartition, m fsm.Marker) error {
	n := t.n
	leader, _ := n.PartitionLeader(tp.Topic, tp.Partition)
	if leader < 0 {
		if n.meta.state().Topics[tp.Topic] == nil {
			return nil
		}
		return kerr.NotLeaderForPartition
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = markersVersion
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.Epoch, m.Commit, m.CoordinatorEpoch
	if m.TV2 {
		rm.TransactionVersion = 2
	}
	rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
	rm.Topics = append(rm.Topics, rt)
	req.Markers = append(req.Markers, rm)
	var resp *kmsg.WriteTxnMarkersResponse
	if leader == n.cfg.NodeID {
		resp = kafkaapi.WriteTxnMarkers(ctx, kafkaBroker{n}, req).(*kmsg.WriteTxnMarkersResponse)
	} else {
		out, err := n.nt.Call(ctx, leader, rpcTxnMarkers, req.AppendTo(nil))
		if err != nil {
			return err
		}
		resp = kmsg.NewPtrWriteTxnMarkersResponse()
		resp.Version = markersVersion
		if err := resp.ReadFrom(out); err != nil {
			return fmt.Errorf("marker response from %d: %w", leader, err)
		}
	}
	if len(resp.Markers) != 1 || len(resp.Markers[0].Topics) != 1 || len(resp.Markers[0].Topics[0].Partitions) != 1 {
		return fmt.Errorf("marker response from %d does not answer for %s-%d", leader, tp.Topic, tp.Partition)
	}
	switch code := resp.Markers[0].Topics[0].Partitions[0].ErrorCode; code {
	case 0, kerr.InvalidProducerEpoch.Code:
		return nil
	case kerr.UnknownTopicOrPartition.Code:
		if n.meta.state().Topics[tp.Topic] == nil {
			return nil
		}
		return kerr.ErrorForCode(code)
	default:
		return kerr.ErrorForCode(code)
	}
}

// handleTxnMarkers writes, on this node's leader replicas, the markers a
// transaction coordinator on another node sent.
func (n *Node) handleTxnMarkers(ctx context.Context, _ int32, body []byte) ([]byte, error) {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = markersVersion
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%s: %w", rpcTxnMarkers, err)
	}
	return kafkaapi.WriteTxnMarkers(ctx, kafkaBroker{n}, req).AppendTo(nil), nil
}

// rpcTxnVerify carries an AddPartitionsToTxn request (kmsg-encoded,
// version 4; verify_only, or an add for transaction version 2) from a
// partition leader or group coordinator to a transaction coordinator on
// another node.
const rpcTxnVerify = "txn.verify"

// VerifyTxn asks the transactional id's coordinator whether the producer's
// current transaction holds the partition (or, with add, to add it): this
// node's coordinator, or the one on the node leading the id's
// __transaction_state partition.
func (n kafkaBroker) VerifyTxn(ctx context.Context, id string, pid int64, epoch int16, topic string, part int32, add bool) error {
	count := n.partitionCount(txn.Topic)
	if count <= 0 {
		return kerr.CoordinatorNotAvailable
	}
	leader, _ := n.PartitionLeader(txn.Topic, statelog.PartitionFor(id, count))
	if leader < 0 {
		return kerr.CoordinatorNotAvailable
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, pid, epoch, !add
	tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: topic, Partitions: []int32{part}}}
	req.Transactions = append(req.Transactions, tx)
	var resp *kmsg.AddPartitionsToTxnResponse
	if leader == n.cfg.NodeID {
		resp = kafkaapi.AddPartitionsToTxn(ctx, n, req).(*kmsg.AddPartitionsToTxnResponse)
	} else {
		out, err := n.nt.Call(ctx, leader, rpcTxnVerify, req.AppendTo(nil))
		if err != nil {
			return kerr.CoordinatorNotAvailable
		}
		resp = kmsg.NewPtrAddPartitionsToTxnResponse()
		resp.Version = 4
		if err := resp.ReadFrom(out); err != nil {
			return fmt.Errorf("verification answer from %d: %w", leader, err)
		}
	}
	if len(resp.Transactions) != 1 || len(resp.Transactions[0].Topics) != 1 || len(resp.Transactions[0].Topics[0].Partitions) != 1 {
		return fmt.Errorf("verification answer from %d does not answer for %s-%d", leader, topic, part)
	}
	return kerr.ErrorForCode(resp.Transactions[0].Topics[0].Partitions[0].ErrorCode)
}

// handleTxnVerify answers a partition leader's verification request.
func (n *Node) handleTxnVerify(ctx context.Context, _ int32, body []byte) ([]byte, error) {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%s: %w", rpcTxnVerify, err)
	}
	return kafkaapi.AddPartitionsToTxn(ctx, kafkaBroker{n}, req).AppendTo(nil), nil
}

// TxnTopic returns __transaction_state, creating it when the first
// transactional producer asks for its coordinator.
func (n kafkaBroker) TxnTopic(ctx context.Context) (*fsm.Topic, error) {
	return n.internalTopic(ctx, txn.Topic, n.cfg.TransactionStatePartitions, n.cfg.TransactionStateReplicationFactor)
}

// Txns is this node's transaction coordinator.
func (n kafkaBroker) Txns() *txn.Coordinator { return n.txnCoord }
