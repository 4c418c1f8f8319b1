package kafkaapi

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/partition"
)

// Fetch v4-16 (v13+ address topics by id).
//
// Reads stored batches as they are (no re-encoding) up to the high
// watermark, honouring partition and response byte limits (the first
// batch is always returned whole, as Kafka does), and long-polls for
// min_bytes up to max_wait_ms. Topic ids are used from v13.
//
// read_committed reads stop at the last stable offset, and the response
// lists the aborted transactions the returned batches overlap, so that
// clients drop their records.
//
// Not yet: fetch sessions (we always answer session id 0, so clients send
// full requests), follower fetching.
func init() { register(kmsg.Fetch, 4, 16, plain(serveFetch)) }

func serveFetch(ctx context.Context, b Broker, req *kmsg.FetchRequest) kmsg.Response {
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if maxWait < 0 {
		maxWait = 0
	}
	if maxWait > 30*time.Second {
		maxWait = 30 * time.Second
	}
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for {
		resp, total, done, wake := fetchOnce(b, req)
		if done || total >= int(req.MinBytes) || len(wake) == 0 {
			b.FetchedBytes(total)
			return resp
		}
		cases := make([]reflect.SelectCase, 0, len(wake)+2)
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline.C)})
		for _, ch := range wake {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if i, _, _ := reflect.Select(cases); i < 2 {
			resp, total, _, _ = fetchOnce(b, req)
			b.FetchedBytes(total)
			return resp
		}
	}
}

// fetchOnce reads every requested partition once. done is true when the
// response must be sent now (an error to report); wake holds the channels
// that signal new data on the partitions read.
func fetchOnce(b Broker, req *kmsg.FetchRequest) (resp *kmsg.FetchResponse, total int, done bool, wake []<-chan struct{}) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	remaining := int(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = 1 << 30
	}
	state := b.MetaState()
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		name := t.Topic
		unknownID := false
		if req.Version >= 13 {
			if topic := state.TopicByID(t.TopicID); topic != nil {
				name = topic.Name
			} else {
				unknownID = true
			}
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			// Empty, not null: librdkafka rejects a null record set.
			rp.RecordBatches = []byte{}
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			if unknownID {
				rp.ErrorCode = kerr.UnknownTopicID.Code
			} else {
				var ch <-chan struct{}
				var got int
				got, ch = fetchPartition(b, name, req.IsolationLevel, p, &rp, total, remaining)
				total += got
				remaining -= got
				if ch != nil {
					wake = append(wake, ch)
				}
			}
			done = done || rp.ErrorCode != 0
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if done && req.Version >= 12 {
		var brokers hintBrokers
		for i := range resp.Topics {
			t := &resp.Topics[i]
			name := t.Topic
			if topic := state.TopicByID(t.TopicID); req.Version >= 13 && topic != nil {
				name = topic.Name
			}
			for j := range t.Partitions {
				hintFetch(b, name, &t.Partitions[j], &brokers)
			}
		}
		if req.Version >= 16 {
			resp.Brokers = fetchBrokers(endpoints(b, brokers))
		}
	}
	return resp, total, done, wake
}

func fetchPartition(b Broker, topic string, isolation int8, p kmsg.FetchRequestTopicPartition, rp *kmsg.FetchResponseTopicPartition, sofar, remaining int) (int, <-chan struct{}) {
	lp, err := b.LeaderPartition(topic, p.Partition)
	if err == nil {
		err = checkLeaderEpoch(p.CurrentLeaderEpoch, lp.LeaderEpoch())
	}
	if err != nil {
		rp.ErrorCode = kafkaerr.Code(err)
		return 0, nil
	}
	// Take the notification channel before reading so an append between
	// the read and the wait is not missed.
	ch := lp.Changed()
	hw := lp.HighWatermark()
	rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = hw, lp.LastStableOffset(), lp.StartOffset()
	limit := int(p.PartitionMaxBytes)
	if limit > remaining {
		limit = remaining
	}
	if limit <= 0 && sofar > 0 {
		return 0, ch
	}
	if limit <= 0 {
		limit = 1
	}
	read := lp.Read
	if isolation == readCommitted {
		read = lp.ReadCommitted
	}
	data, err := read(p.FetchOffset, limit)
	if err != nil {
		if errors.Is(err, partition.ErrOffsetOutOfRange) {
			rp.ErrorCode = kerr.OffsetOutOfRange.Code
		} else {
			b.Logger().Error("fetch read failed", "topic", topic, "partition", p.Partition, "offset", p.FetchOffset, "error", err)
			rp.ErrorCode = kerr.KafkaStorageError.Code
		}
		return 0, nil
	}
	if data != nil {
		rp.RecordBatches = data
	}
	if isolation == readCommitted && len(data) > 0 {
		rp.AbortedTransactions = abortedIn(lp, p.FetchOffset, data)
	}
	return len(data), ch
}

// readCommitted is the isolation level of read_committed fetches.
const readCommitted = 1

// abortedIn lists the aborted transactions that overlap the batches read
// from offset, in the response's form. An empty list, not null: clients
// tell "none" from "not asked" by it.
func abortedIn(lp Partition, from int64, data []byte) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	end := from
	for len(data) >= partition.BatchHeaderSize {
		h, err := partition.ParseBatchHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		end = h.LastOffset() + 1
		data = data[h.Size():]
	}
	out := []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
	for _, a := range lp.AbortedTxns(from, end) {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		out = append(out, at)
	}
	return out
}
