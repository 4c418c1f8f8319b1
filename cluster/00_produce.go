package cluster

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/partition"
)

// Produce v3-11.
//
// acks=-1 answers after the batch is committed by the partition's Raft
// group (a majority has it fsync'd in its Raft log) and applied. acks=1 is
// treated exactly like acks=-1: Quire has no weaker "leader only" path, so
// acks=1 is never less durable than acks=all. acks=0 queues the batches and
// sends no response.
//
// Not yet: transactional produce (the batches are appended, but no
// transaction coordinator exists), LogAppendTime topics.
func (n *Node) handleProduce(ctx context.Context, req *kmsg.ProduceRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type pending struct {
		rp    *kmsg.ProduceResponseTopicPartition
		r     *replica
		props []*proposal
		bytes int
	}
	var waits []pending
	validAcks := req.Acks == -1 || req.Acks == 0 || req.Acks == 1
	wctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	electing, stopElecting := context.WithTimeout(wctx, electionHold)
	defer stopElecting()
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.BaseOffset = -1
			rp.LogAppendTime = -1
			rp.LogStartOffset = -1
			if !validAcks {
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			}
			r, batches, err := n.produceTarget(electing, t.Topic, p.Partition, p.Records)
			if err == nil && req.Acks != 0 && n.inSync(r) < r.minISR {
				err = kerr.NotEnoughReplicas
			}
			if err != nil {
				rp.ErrorCode = errCode(err)
				continue
			}
			w := pending{rp: rp, r: r}
			for _, b := range batches {
				w.props = append(w.props, r.proposer.submit(wctx, b))
				w.bytes += len(b)
			}
			waits = append(waits, w)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return func() kmsg.Response {
		defer cancel()
		if req.Acks == 0 {
			return nil
		}
		defer n.hintLeaders(resp)
		for _, w := range waits {
			for i, pr := range w.props {
				res := pr.wait(wctx)
				if res.Err != nil {
					w.rp.ErrorCode = errCode(res.Err)
					w.rp.BaseOffset = -1
					break
				}
				if i == 0 {
					w.rp.BaseOffset = res.BaseOffset
				}
			}
			if w.rp.ErrorCode == 0 {
				n.metrics.producedBytes.Add(float64(w.bytes))
			}
			w.rp.LogStartOffset = w.r.fsm.StartOffset()
		}
		return resp
	}
}

// hintLeaders names the current leader of every partition refused with
// NOT_LEADER_OR_FOLLOWER (KIP-951, v10+).
func (n *Node) hintLeaders(resp *kmsg.ProduceResponse) {
	if resp.Version < 10 {
		return
	}
	var brokers hintBrokers
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			n.hintProduce(t.Topic, &t.Partitions[j], &brokers)
		}
	}
	resp.Brokers = produceBrokers(n.endpoints(brokers))
}

// produceTarget validates one partition's records and finds its leader,
// waiting for an election here until electing ends.
func (n *Node) produceTarget(electing context.Context, topic string, part int32, records []byte) (*replica, [][]byte, error) {
	r, err := n.writableReplica(topic, part)
	if err == kerr.NotLeaderForPartition && n.awaitElection(electing, topic, part) {
		r, err = n.writableReplica(topic, part)
	}
	if err != nil {
		return nil, nil, err
	}
	batches, err := partition.SplitBatches(records)
	if err != nil || len(batches) == 0 {
		return nil, nil, kerr.CorruptMessage
	}
	for _, b := range batches {
		if len(b) > int(r.maxMessageBytes) {
			return nil, nil, kerr.MessageTooLarge
		}
		h, _ := partition.ParseBatchHeader(b)
		if h.IsControl() {
			return nil, nil, kerr.InvalidRecord
		}
		if h.Compression() > 4 {
			return nil, nil, kerr.UnsupportedCompressionType
		}
	}
	return r, batches, nil
}
