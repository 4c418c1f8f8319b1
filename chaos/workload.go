package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/client"
)

// Process ids of the workload's clients.
const (
	firstProducer = 1
	firstConsumer = 100
	finalReader   = 1000
)

// deliveryTimeout bounds how long a produce may stay unresolved, so that
// every invoke gets an outcome in the history.
const deliveryTimeout = 10 * time.Second

// requestTimeout moves producers off a paused broker within a few seconds
// instead of franz-go's default 20, so pause faults measure the cluster's
// fail-over rather than the client's patience.
const requestTimeout = 3 * time.Second

// stats are live counters for progress lines.
type stats struct {
	invoked, ok, failed, consumed atomic.Int64
}

// startWorkload starts every producer and consumer; they stop when ctx
// ends, after producers flushed what they had in flight.
func (r *run) startWorkload(ctx context.Context) *sync.WaitGroup {
	if r.cfg.Workload == WorkloadTxn {
		return r.startTxnWorkload(ctx)
	}
	var wg sync.WaitGroup
	proc := firstProducer
	for i := 0; i < r.cfg.Idempotent+r.cfg.Plain; i++ {
		idem := i < r.cfg.Idempotent
		name := fmt.Sprintf("i%d", i+1)
		if !idem {
			name = fmt.Sprintf("p%d", i-r.cfg.Idempotent+1)
		}
		wg.Add(1)
		go func(proc int) {
			defer wg.Done()
			if err := r.produce(ctx, proc, name, idem); err != nil {
				r.note(fmt.Sprintf("producer %s: %v", name, err))
			}
		}(proc)
		proc++
	}
	r.startConsumers(ctx, &wg)
	return &wg
}

// startConsumers starts the consumers reading every partition.
func (r *run) startConsumers(ctx context.Context, wg *sync.WaitGroup) {
	for i := 0; i < r.cfg.Consumers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.consume(ctx, firstConsumer+i); err != nil {
				r.note(fmt.Sprintf("consumer %d: %v", i+1, err))
			}
		}()
	}
}

// produce writes unique values round-robin over the partitions at the
// configured rate, recording each invocation and its outcome.
func (r *run) produce(ctx context.Context, proc int, name string, idempotent bool) error {
	cfg := client.ProducerConfig{Brokers: r.cfg.Target.Brokers(), Acks: client.AcksAll, Idempotent: idempotent,
		MetadataMinAge: 250 * time.Millisecond, RetryBackoff: 100 * time.Millisecond,
		DeliveryTimeout: deliveryTimeout, RequestTimeout: requestTimeout,
		ClientID: "quire-chaos-" + name, MaxBufferedRecords: 20 * r.cfg.Rate}
	if !idempotent {
		cfg.MaxInFlight = 1 // keeps a retrying plain producer in order
	}
	p, err := client.NewProducer(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	tick := time.NewTicker(time.Second / time.Duration(r.cfg.Rate))
	defer tick.Stop()
	for seq := int64(1); ; seq++ {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*deliveryTimeout)
			defer cancel()
			return p.Flush(fctx)
		case <-tick.C:
		}
		part := int32(seq % int64(r.cfg.Partitions))
		value := fmt.Sprintf("%s-%d", name, seq)
		var key []byte
		if r.cfg.Keys > 0 {
			// Every producer updates the same keys.
			key = []byte(fmt.Sprintf("k%d", seq%int64(r.cfg.Keys)))
		}
		r.rec.Record(Op{Process: proc, Type: Invoke, Kind: Produce, Topic: r.cfg.Topic, Partition: part,
			Offset: -1, Value: value, Key: string(key), Producer: name, Seq: seq, MayDuplicate: !idempotent})
		r.stats.invoked.Add(1)
		// The produce context outlives ctx so that stopping the workload
		// lets in-flight records finish instead of failing them.
		p.Produce(context.WithoutCancel(ctx), r.cfg.Topic, part, key, []byte(value), func(offset int64, err error) {
			op := Op{Process: proc, Type: OK, Kind: Produce, Topic: r.cfg.Topic, Partition: part,
				Offset: offset, Value: value, Key: string(key), Producer: name, Seq: seq}
			if err != nil {
				// Whether a failed produce was stored is unknown to the
				// client in general; the checkers allow both.
				op.Type, op.Offset, op.Error = Info, -1, err.Error()
				r.stats.failed.Add(1)
			} else {
				r.stats.ok.Add(1)
			}
			r.rec.Record(op)
		})
	}
}

// consume reads every partition from the start for as long as ctx lasts,
// recording each record it is given; the transactional workload's
// consumers read committed records only.
func (r *run) consume(ctx context.Context, proc int) error {
	c, err := client.NewConsumer(client.ConsumerConfig{Brokers: r.cfg.Target.Brokers(), Topic: r.cfg.Topic,
		Partitions: r.allPartitions(), ClientID: fmt.Sprintf("quire-chaos-consumer-%d", proc),
		ReadCommitted: r.cfg.Workload == WorkloadTxn})
	if err != nil {
		return err
	}
	defer c.Close()
	for ctx.Err() == nil {
		_ = c.Poll(ctx, func(rec client.Record) {
			r.rec.Record(Op{Process: proc, Type: OK, Kind: Consume, Topic: r.cfg.Topic,
				Partition: rec.Partition, Offset: rec.Offset, Value: string(rec.Value)})
			r.stats.consumed.Add(1)
		})
	}
	return nil
}

func (r *run) allPartitions() []int32 {
	ps := make([]int32, r.cfg.Partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

// reportProgress prints a line every 5 s until the returned func is called.
func (r *run) reportProgress(ctx context.Context) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		var lastOK, lastInv int64
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			inv, ok := r.stats.invoked.Load(), r.stats.ok.Load()
			if r.cfg.Workload == WorkloadTxn {
				r.logf("t=%3.0fs  transactions committed %d, aborted %d, unknown %d; records copied %d, consumed %d  faults: %s",
					time.Since(start).Seconds(), r.txn.committed.Load(), r.txn.aborted.Load(), r.txn.unknown.Load(),
					r.txn.copied.Load(), r.stats.consumed.Load(), r.activeFaults())
				continue
			}
			r.logf("t=%3.0fs  produce %5.0f/s invoked, %5.0f/s ok  (total ok %d, unknown %d, consumed %d)  faults: %s",
				time.Since(start).Seconds(), float64(inv-lastInv)/5, float64(ok-lastOK)/5,
				ok, r.stats.failed.Load(), r.stats.consumed.Load(), r.activeFaults())
			lastOK, lastInv = ok, inv
		}
	}()
	return func() { cancel(); <-done }
}

// finalRead waits for every partition to have a leader, then records every
// stored record up to each partition's high watermark; the transactional
// workload reads committed records, of its output topic too.
func (r *run) finalRead(ctx context.Context) error {
	if r.cfg.Workload != WorkloadTxn {
		return r.readAll(ctx, r.cfg.Topic, FinalRead, false)
	}
	if err := r.readAll(ctx, r.cfg.Topic, FinalRead, true); err != nil {
		return err
	}
	return r.readAll(ctx, r.outputTopic(), OutputRead, true)
}

// readAll records every record of topic below the high watermarks as
// kind. Read committed, transaction markers come too (unrecorded), so the
// reader knows it reached the end of a partition that ends in one.
func (r *run) readAll(ctx context.Context, topic string, kind OpKind, committed bool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := r.admin.WaitLeaders(ctx, topic); err != nil {
		return fmt.Errorf("leaders of %s: %w", topic, err)
	}
	var ends map[int32]int64
	for {
		var err error
		if ends, err = r.admin.EndOffsets(ctx, topic); err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		sleepCtx(ctx, time.Second)
	}
	// left is the partitions not read to their end yet. A partition is
	// done at its first record (a marker included) at or past end-1: a
	// record redelivered must not count twice, and a transaction open at
	// end-1 when the ends were read has its marker past end.
	left := map[int32]bool{}
	for p, e := range ends {
		if e > 0 {
			left[p] = true
		}
	}
	r.logf("final read of %s: %d partitions, %v", topic, len(ends), ends)
	c, err := client.NewConsumer(client.ConsumerConfig{Brokers: r.cfg.Target.Brokers(), Topic: topic,
		Partitions: r.allPartitions(), ClientID: "quire-chaos-final-read", ReadCommitted: committed, KeepControl: committed})
	if err != nil {
		return err
	}
	defer c.Close()
	for len(left) > 0 {
		err := c.Poll(ctx, func(rec client.Record) {
			end := ends[rec.Partition]
			if rec.Offset >= end-1 {
				delete(left, rec.Partition)
			}
			if rec.Offset >= end {
				return
			}
			if rec.Control {
				return
			}
			r.rec.Record(Op{Process: finalReader, Type: OK, Kind: kind, Topic: topic,
				Partition: rec.Partition, Offset: rec.Offset, Value: string(rec.Value), Key: string(rec.Key)})
		})
		if ctx.Err() != nil {
			return fmt.Errorf("read %s, %d partitions short of their end (%v): %w", topic, len(left), err, errIncomplete)
		}
	}
	return nil
}

// recordDigests waits for every replica of the topic to report the same
// high watermark and checksum, then records each node's digests. Replicas
// that never agree are recorded as they last stood, for the divergence
// checker to report.
func (r *run) recordDigests(ctx context.Context, rp Replicas) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		byNode, converged := r.digests(ctx, rp)
		if converged || time.Now().After(deadline) || ctx.Err() != nil {
			r.addMissingReplicas(ctx, byNode)
			for _, id := range r.cfg.Target.Nodes() {
				for _, op := range byNode[id] {
					r.rec.Record(op)
				}
			}
			if !converged {
				r.logf("replicas did not converge within 90s")
			}
			return
		}
		sleepCtx(ctx, time.Second)
	}
}

// addMissingReplicas adds a failed digest for every assigned replica that
// no node reported, so a replica that never came back counts as divergent
// instead of being compared by its absence.
func (r *run) addMissingReplicas(ctx context.Context, byNode map[int32][]Op) {
	for p := int32(0); p < r.cfg.Partitions; p++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := r.admin.Partition(actx, r.cfg.Topic, p)
		cancel()
		if err != nil {
			r.note(fmt.Sprintf("replicas of partition %d unknown: %v", p, err))
			continue
		}
		for _, id := range st.Replicas {
			found := false
			for _, op := range byNode[id] {
				found = found || op.Partition == p
			}
			if !found {
				byNode[id] = append(byNode[id], Op{Process: NemesisProcess, Type: Fail, Kind: Digest, Node: id,
					Topic: r.cfg.Topic, Partition: p, Offset: -1, Error: "assigned replica not reported by its node"})
			}
		}
	}
}

// digests collects each node's digest ops for the topic and whether all
// replicas of every partition agree.
func (r *run) digests(ctx context.Context, rp Replicas) (map[int32][]Op, bool) {
	byNode := map[int32][]Op{}
	seen := map[int32][]Op{} // partition -> digests
	converged := true
	for _, id := range r.cfg.Target.Nodes() {
		ds, err := rp.Replicas(ctx, id)
		if err != nil {
			converged = false
			for p := int32(0); p < r.cfg.Partitions; p++ {
				byNode[id] = append(byNode[id], Op{Process: NemesisProcess, Type: Fail, Kind: Digest, Node: id,
					Topic: r.cfg.Topic, Partition: p, Offset: -1, Error: err.Error()})
			}
			continue
		}
		for _, d := range ds {
			if d.Topic != r.cfg.Topic {
				continue
			}
			op := Op{Process: NemesisProcess, Type: OK, Kind: Digest, Node: id, Topic: d.Topic,
				Partition: d.Partition, Offset: d.HW, Value: fmt.Sprintf("%08x", d.CRC32C)}
			if d.Error != "" {
				op.Type, op.Error = Fail, d.Error
			}
			byNode[id] = append(byNode[id], op)
			seen[d.Partition] = append(seen[d.Partition], op)
		}
	}
	for p := int32(0); p < r.cfg.Partitions; p++ {
		ops := seen[p]
		if len(ops) < int(r.cfg.Replication) {
			converged = false
		}
		for _, op := range ops {
			if op.Type != OK || op.Offset != ops[0].Offset || op.Value != ops[0].Value {
				converged = false
			}
		}
	}
	return byNode, converged
}
