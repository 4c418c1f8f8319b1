package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/client"
)

// Process ids of the transactional workload.
const (
	firstTxnProducer = 400
	copierProcess    = 500
)

// txnTimeout is the transaction timeout of the workload's producers: short,
// so a transaction a fault leaves open is aborted within the run.
const txnTimeout = 10 * time.Second

// txnStats are the transactional workload's live counters.
type txnStats struct {
	committed, aborted, unknown, copied atomic.Int64
}

// outputTopic is where the copier writes.
func (r *run) outputTopic() string { return r.cfg.Topic + "-out" }

// copierGroup is the copier's consumer group.
func (r *run) copierGroup() string { return r.cfg.Topic + "-copier" }

// startTxnWorkload starts the transactional producers and the
// read_committed consumers; they stop when ctx ends.
func (r *run) startTxnWorkload(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.TxnProducers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.transact(ctx, firstTxnProducer+i, fmt.Sprintf("t%d", i+1))
		}()
	}
	r.startConsumers(ctx, &wg)
	return &wg
}

// startCopier starts the copier and the watcher of its group's commits;
// the run ends them after the producers stopped and the copier caught up.
func (r *run) startCopier(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.copyLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		r.watchCommits(ctx, r.copierGroup())
	}()
	return &wg
}

// transact runs one transactional producer: transactions of one to four
// records over random partitions, a fifth of them aborted on purpose, at
// most Rate/10 a second. A producer whose end failed is replaced by a new
// one of the same transactional id, as an application restarting would:
// the new one fences the old and settles its transaction.
func (r *run) transact(ctx context.Context, proc int, name string) {
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(proc)))
	newProducer := func() *client.TxnProducer {
		for ctx.Err() == nil {
			p, err := client.NewTxnProducer(client.TxnProducerConfig{Brokers: r.cfg.Target.Brokers(),
				TransactionalID: r.cfg.Topic + "-" + name, ClientID: "quire-chaos-" + name, TxnTimeout: txnTimeout,
				MetadataMinAge: 250 * time.Millisecond, RequestTimeout: requestTimeout, DeliveryTimeout: deliveryTimeout})
			if err == nil {
				return p
			}
			r.note(fmt.Sprintf("producer %s: %v", name, err))
			sleepCtx(ctx, time.Second)
		}
		return nil
	}
	p := newProducer()
	if p == nil {
		return
	}
	defer func() { p.Close() }()
	interval := time.Second / time.Duration(max(1, r.cfg.Rate/10))
	for txn := 1; ctx.Err() == nil; txn++ {
		sleepCtx(ctx, interval)
		if ctx.Err() != nil {
			return
		}
		if ok := r.oneTxn(ctx, proc, name, txn, p, rng); !ok {
			p.Close()
			if p = newProducer(); p == nil {
				return
			}
		}
	}
}

// oneTxn runs one transaction and records it; false means the producer
// must be replaced.
func (r *run) oneTxn(ctx context.Context, proc int, name string, txn int, p *client.TxnProducer, rng *rand.Rand) bool {
	id := fmt.Sprintf("%s.%d", name, txn)
	if err := p.Begin(); err != nil {
		r.note(fmt.Sprintf("producer %s: begin: %v", name, err))
		return false
	}
	wctx := context.WithoutCancel(ctx) // the end decides, not the stop
	size := 1 + rng.IntN(4)
	for i := range size {
		part := int32(rng.IntN(int(r.cfg.Partitions)))
		value := fmt.Sprintf("%s.%d", id, i)
		r.rec.Record(Op{Process: proc, Type: Invoke, Kind: TxnProduce, Topic: r.cfg.Topic, Partition: part,
			Offset: -1, Value: value, Producer: name, Txn: id})
		r.stats.invoked.Add(1)
		p.Produce(wctx, r.cfg.Topic, part, []byte(value), func(offset int64, err error) {
			op := Op{Process: proc, Type: OK, Kind: TxnProduce, Topic: r.cfg.Topic, Partition: part,
				Offset: offset, Value: value, Producer: name, Txn: id}
			if err != nil {
				op.Type, op.Offset, op.Error = Info, -1, err.Error()
			}
			r.rec.Record(op)
		})
	}
	ask := "commit"
	if rng.IntN(5) == 0 {
		ask = "abort"
	}
	r.rec.Record(Op{Process: proc, Type: Invoke, Kind: TxnEnd, Offset: -1, Value: ask, Producer: name, Txn: id})
	ectx, cancel := context.WithTimeout(wctx, 2*deliveryTimeout)
	defer cancel()
	committed, err := p.End(ectx, ask == "commit")
	done := Op{Process: proc, Type: OK, Kind: TxnEnd, Offset: -1, Value: "abort", Producer: name, Txn: id}
	switch {
	case err != nil:
		done.Type, done.Value, done.Error = Info, "", err.Error()
		r.txn.unknown.Add(1)
	case committed:
		done.Value = "commit"
		r.txn.committed.Add(1)
		r.stats.ok.Add(int64(size))
	default:
		r.txn.aborted.Add(1)
	}
	r.rec.Record(done)
	return err == nil
}

// copyLoop runs the copier, replacing it after an error as a restarted
// application would, until ctx ends.
func (r *run) copyLoop(ctx context.Context) {
	for ctx.Err() == nil {
		c, err := client.NewCopier(client.CopierConfig{Brokers: r.cfg.Target.Brokers(), TransactionalID: r.copierGroup(),
			Group: r.copierGroup(), From: r.cfg.Topic, To: r.outputTopic(), ClientID: "quire-chaos-copier",
			SessionTimeout: 10 * time.Second, TxnTimeout: txnTimeout, MetadataMinAge: 250 * time.Millisecond,
			RequestTimeout: requestTimeout})
		if err != nil {
			r.note(fmt.Sprintf("copier: %v", err))
			sleepCtx(ctx, time.Second)
			continue
		}
		for ctx.Err() == nil {
			n, committed, err := c.Step(ctx, 50)
			if err != nil {
				if ctx.Err() == nil {
					r.note(fmt.Sprintf("copier: %v", err))
				}
				break
			}
			if committed {
				r.txn.copied.Add(int64(n))
			}
		}
		c.Close()
	}
}

// drainCopier waits, at most limit, until the copier has copied nothing
// new for 5 s, so the copy checker judges a copier that caught up.
func (r *run) drainCopier(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, since := r.txn.copied.Load(), time.Now()
	for time.Since(since) < 5*time.Second {
		if time.Now().After(deadline) {
			r.note(fmt.Sprintf("copier still copying after %v", limit))
			return
		}
		if sleepCtx(ctx, 500*time.Millisecond); ctx.Err() != nil {
			return
		}
		if n := r.txn.copied.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

// recordStableCommits records group's committed offsets once none is
// pending: the copier's last transaction may have ended with its offsets'
// marker still on the way, and the output it wrote will be read.
func (r *run) recordStableCommits(ctx context.Context, group string) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		offs, err := r.admin.StableCommittedOffsets(cctx, group, r.cfg.Topic)
		cancel()
		if err == nil {
			for p, o := range offs {
				r.rec.Record(Op{Process: commitWatcher, Type: OK, Kind: GroupCommit, Topic: r.cfg.Topic, Partition: p, Offset: o})
			}
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.note(fmt.Sprintf("committed offsets of %s never stable: %v", group, err))
			return
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}
