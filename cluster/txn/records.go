package txn

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/partition"
)

// txnState is what the coordinator records of one transactional id.
type txnState struct {
	id        string
	pid       int64
	epoch     int16
	prevPID   int64
	timeoutMs int32
	state     stateOf
	// parts is the partitions of the current (or last) transaction,
	// sorted.
	parts []TopicPartition
	// start is when the current transaction added its first partition,
	// in milliseconds; -1 when none is under way.
	start int64
	// tv2 says the client ends transactions with transaction version 2:
	// every end bumps the epoch.
	tv2 bool
}

// txnMeta is a transactional id's state and the lock that serialises its
// transitions: a transition writes the next state through Raft and only
// then takes it.
type txnMeta struct {
	mu sync.Mutex
	txnState
	// completing is set while a goroutine writes the markers of a
	// decided commit or abort.
	completing bool
}

// markerProducer is the producer id and epoch the markers of a decided
// transaction are written with: the state's own, except after a
// transaction version 2 end that ran out of epochs. Then the producer
// already holds a new id at epoch 0, and the markers close the old id's
// transaction with the one epoch past any it wrote with.
func (t *txnState) markerProducer() (int64, int16) {
	if t.tv2 && t.epoch == 0 && t.prevPID >= 0 && t.state.preparing() {
		return t.prevPID, math.MaxInt16
	}
	return t.pid, t.epoch
}

// has reports whether the transaction holds tp.
func (t *txnState) has(tp TopicPartition) bool {
	i := sort.Search(len(t.parts), func(i int) bool { return !tpLess(t.parts[i], tp) })
	return i < len(t.parts) && t.parts[i] == tp
}

// withParts returns the partitions of t and add, sorted, without
// duplicates.
func (t *txnState) withParts(add []TopicPartition) []TopicPartition {
	out := append([]TopicPartition(nil), t.parts...)
	for _, tp := range add {
		if !t.has(tp) && !containsTP(out[len(t.parts):], tp) {
			out = append(out, tp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return tpLess(out[i], out[j]) })
	return out
}

// TopicPartitions is one topic's partitions.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// ByTopic groups partitions, sorted by topic, by topic.
func ByTopic(parts []TopicPartition) []TopicPartitions {
	var out []TopicPartitions
	for _, tp := range parts {
		if n := len(out); n > 0 && out[n-1].Topic == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

func containsTP(s []TopicPartition, tp TopicPartition) bool {
	for _, x := range s {
		if x == tp {
			return true
		}
	}
	return false
}

func tpLess(a, b TopicPartition) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

// encodeRecord is the __transaction_state record of st, in Kafka's format.
func encodeRecord(st txnState, now int64) partition.Record {
	key := kmsg.NewTxnMetadataKey()
	key.TransactionalID = st.id
	v := kmsg.NewTxnMetadataValue()
	v.Version = 1
	v.ProducerID, v.ProducerEpoch, v.PreviousProducerID = st.pid, st.epoch, st.prevPID
	v.TimeoutMillis, v.State = st.timeoutMs, kmsg.TransactionState(st.state)
	v.LastUpdateTimestamp, v.StartTimestamp = now, st.start
	if st.tv2 {
		v.ClientTransactionVersion = 2
	}
	for _, tps := range ByTopic(st.parts) {
		t := kmsg.NewTxnMetadataValueTopic()
		t.Topic, t.Partitions = tps.Topic, tps.Partitions
		v.Topics = append(v.Topics, t)
	}
	return partition.Record{Key: key.AppendTo(nil), Value: v.AppendTo(nil), Timestamp: now}
}

// decodeRecord reads a __transaction_state record: the id and its state,
// or a nil state for a tombstone.
func decodeRecord(r partition.Record) (string, *txnMeta, error) {
	var key kmsg.TxnMetadataKey
	if err := key.ReadFrom(r.Key); err != nil {
		return "", nil, fmt.Errorf("key: %w", err)
	}
	if r.Value == nil {
		return key.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(r.Value); err != nil {
		return "", nil, fmt.Errorf("transaction %q: %w", key.TransactionalID, err)
	}
	m := &txnMeta{txnState: txnState{id: key.TransactionalID, pid: v.ProducerID, epoch: v.ProducerEpoch,
		prevPID: v.PreviousProducerID, timeoutMs: v.TimeoutMillis, state: stateOf(v.State),
		start: v.StartTimestamp, tv2: v.ClientTransactionVersion >= 2}}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.parts = append(m.parts, TopicPartition{t.Topic, p})
		}
	}
	sort.Slice(m.parts, func(i, j int) bool { return tpLess(m.parts[i], m.parts[j]) })
	return key.TransactionalID, m, nil
}
