package kafkaapi

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/partition"
)

// Produce v3-12 (v3 is the first with record batch v2; v12 is the same
// request from clients of transaction version 2, whose partitions join the
// transaction when they are first produced to).
//
// acks=-1 answers after the batch is committed by the partition's Raft
// group (a majority has it fsync'd in its Raft log) and applied. acks=1 is
// treated exactly like acks=-1: Quire has no weaker "leader only" path, so
// acks=1 is never less durable than acks=all. acks=0 queues the batches and
// sends no response.
//
// A transactional batch opens its producer's transaction on the partition
// (read_committed readers stop there) until a WriteTxnMarkers marker ends
// it; the first one is taken only once the transaction's coordinator
// confirms the partition is in the transaction (see verifyTxn), and a
// batch from an epoch older than the producer's last marker is refused
// with INVALID_PRODUCER_EPOCH.
//
// On a topic whose message.timestamp.type is LogAppendTime the leader
// stamps each batch with the time it takes it (in the Raft entry, so
// every replica stores the same bytes), and answers that time.
func init() { register(kmsg.Produce, 3, 12, ordered(serveProduce)) }

// electionHold bounds the time one request waits in Broker.AwaitElection:
// a raft election with every voter answering takes a few hundred
// milliseconds.
const electionHold = 2 * time.Second

// serveProduce queues the batches to their partitions, in request order,
// and returns the wait for their commits.
func serveProduce(ctx context.Context, b Broker, req *kmsg.ProduceRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type pending struct {
		rp    *kmsg.ProduceResponseTopicPartition
		p     WritablePartition
		props []Proposal
		bytes int
	}
	var waits []pending
	validAcks := req.Acks == -1 || req.Acks == 0 || req.Acks == 1
	wctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	electing, stopElecting := context.WithTimeout(wctx, electionHold)
	defer stopElecting()
	verifyBy := time.Now().Add(verifyPatience) // for the whole request
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
			wp, batches, err := produceTarget(electing, b, t.Topic, p.Partition, p.Records)
			if err == nil && req.Acks != 0 && wp.InSync() < wp.MinInSync() {
				err = kerr.NotEnoughReplicas
			}
			if err == nil {
				err = verifyTxn(wctx, b, req.TransactionID, req.Version >= 12, wp, t.Topic, p.Partition, batches, verifyBy)
			}
			if err != nil {
				rp.ErrorCode = kafkaerr.Code(err)
				continue
			}
			w := pending{rp: rp, p: wp}
			if wp.LogAppendTime() {
				now := time.Now().UnixMilli()
				for _, batch := range batches {
					partition.StampLogAppendTime(batch, now)
				}
				rp.LogAppendTime = now
			}
			for _, batch := range batches {
				w.props = append(w.props, wp.Submit(wctx, batch))
				w.bytes += len(batch)
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
		defer hintLeaders(b, resp)
		for _, w := range waits {
			for i, pr := range w.props {
				res := pr.Wait(wctx)
				if res.Err != nil {
					w.rp.ErrorCode = kafkaerr.Code(res.Err)
					w.rp.BaseOffset, w.rp.LogAppendTime = -1, -1
					break
				}
				if i == 0 {
					w.rp.BaseOffset = res.BaseOffset
				}
			}
			if w.rp.ErrorCode == 0 {
				b.ProducedBytes(w.bytes)
			}
			w.rp.LogStartOffset = w.p.StartOffset()
		}
		return resp
	}
}

// verifyTxn checks a partition's transactional batches before they are
// queued: the first batch of a transaction on a partition is taken only
// if the transaction's coordinator says the partition is in it (KIP-890).
// A late batch from an ended transaction, or one the producer never
// added, would otherwise open a transaction here that no marker closes,
// holding read_committed readers back for ever.
//
// With transaction version 2 (add) the partition is added to the
// transaction instead: the client sends no AddPartitionsToTxn.
func verifyTxn(ctx context.Context, b Broker, txnID *string, add bool, wp WritablePartition, topic string, part int32, batches [][]byte, by time.Time) error {
	for _, batch := range batches {
		h, _ := partition.ParseBatchHeader(batch)
		if !h.IsTransactional() || wp.HasOpenTxn(h.ProducerID, h.ProducerEpoch) {
			continue
		}
		if txnID == nil {
			return kerr.InvalidTxnState
		}
		if err := verifyWaiting(ctx, b, *txnID, h.ProducerID, h.ProducerEpoch, topic, part, add, by); err != nil {
			if kafkaerr.Code(err) == kerr.ProducerFenced.Code {
				return kerr.InvalidProducerEpoch
			}
			return err
		}
		return nil // the rest of the request's batches continue it
	}
	return nil
}

// Verification answered CONCURRENT_TRANSACTIONS is retried here, until
// the deadline (verifyPatience after the request began, for all its
// partitions), backing off from verifyBackoff: the coordinator is
// writing the markers of the producer's previous transaction, a matter of
// milliseconds, and a producer of transaction version 2 starts its next
// transaction at once. Answered to the client, franz-go waits for a
// metadata refresh before it retries, seconds per transaction (Kafka's
// brokers retry too: add.partitions.to.txn.retry.backoff.ms).
const (
	verifyBackoff    = 5 * time.Millisecond
	verifyPatience   = time.Second
	verifyMaxBackoff = 100 * time.Millisecond
)

func verifyWaiting(ctx context.Context, b Broker, id string, pid int64, epoch int16, topic string, part int32, add bool, deadline time.Time) error {
	for backoff := verifyBackoff; ; backoff = min(2*backoff, verifyMaxBackoff) {
		err := b.VerifyTxn(ctx, id, pid, epoch, topic, part, add)
		if kafkaerr.Code(err) != kerr.ConcurrentTransactions.Code || time.Now().Add(backoff).After(deadline) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// hintLeaders names the current leader of every partition refused with
// NOT_LEADER_OR_FOLLOWER (KIP-951, v10+).
func hintLeaders(b Broker, resp *kmsg.ProduceResponse) {
	if resp.Version < 10 {
		return
	}
	var brokers hintBrokers
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			hintProduce(b, t.Topic, &t.Partitions[j], &brokers)
		}
	}
	resp.Brokers = produceBrokers(endpoints(b, brokers))
}

// produceTarget validates one partition's records and finds its leader,
// waiting for an election here until electing ends.
func produceTarget(electing context.Context, b Broker, topic string, part int32, records []byte) (WritablePartition, [][]byte, error) {
	if IsInternal(topic) {
		// Only the coordinators write their state, through Raft.
		return nil, nil, kerr.InvalidTopicException
	}
	p, err := b.ProduceTarget(topic, part)
	if err == kerr.NotLeaderForPartition && b.AwaitElection(electing, topic, part) {
		p, err = b.ProduceTarget(topic, part)
	}
	if err != nil {
		return nil, nil, err
	}
	batches, err := partition.SplitBatches(records)
	if err != nil || len(batches) == 0 {
		return nil, nil, kerr.CorruptMessage
	}
	for _, batch := range batches {
		if len(batch) > int(p.MaxMessageBytes()) {
			return nil, nil, kerr.MessageTooLarge
		}
		h, _ := partition.ParseBatchHeader(batch)
		if h.IsControl() {
			return nil, nil, kerr.InvalidRecord
		}
		if h.ProducerID >= 0 && h.BaseSequence < 0 {
			// Only coordinators write a producer's batches without a
			// sequence; from a client it would skip de-duplication.
			return nil, nil, kerr.InvalidRecord
		}
		if h.Compression() > 4 {
			return nil, nil, kerr.UnsupportedCompressionType
		}
		if h.NumRecords < 1 || int64(h.NumRecords) != int64(h.LastOffsetDelta)+1 {
			// As Kafka's validator: the record count must match the
			// offsets the batch claims.
			return nil, nil, kerr.InvalidRecord
		}
		if p.Compacted() {
			// A compacted topic keeps the latest record of each key; a
			// record without one has no place in it.
			null, err := partition.HasNullKey(batch)
			if err != nil {
				return nil, nil, kerr.CorruptMessage
			}
			if null {
				return nil, nil, kafkaerr.Errorf(kerr.InvalidRecord, "compacted topic %s refuses records without a key", topic)
			}
		}
	}
	if codec := p.Compression(); codec >= 0 {
		for i, batch := range batches {
			nb, err := partition.Recompress(batch, codec)
			if err != nil {
				return nil, nil, kerr.CorruptMessage
			}
			if len(nb) > int(p.MaxMessageBytes()) {
				return nil, nil, kerr.MessageTooLarge
			}
			batches[i] = nb
		}
	}
	return p, batches, nil
}
