package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/fsm"
)

// proposal is one record batch waiting for its Raft commit.
type proposal struct {
	batch []byte
	done  chan struct{}
	res   fsm.BatchResult
	once  sync.Once
}

// wait blocks until the batch is committed (or failed) or ctx ends.
func (p *proposal) wait(ctx context.Context) fsm.BatchResult {
	select {
	case <-p.done:
		return p.res
	case <-ctx.Done():
		return fsm.BatchResult{BaseOffset: -1, Err: kerr.RequestTimedOut}
	}
}

// proposer is the group-commit stage of one partition: it packs the
// batches of concurrent produce requests into as few Raft entries as it can.
// While GroupCommitInFlight entries are uncommitted, new batches pile up in
// the queue and the next entry takes them all, so the entry size grows with
// load and no linger timer is needed.
type proposer struct {
	raft     *raft.Raft
	maxBytes int
	inFlight int
	metrics  *nodeMetrics
	// onPropose, if set, runs before each entry is proposed.
	onPropose func()

	// The queue and the loop goroutine exist only once a batch arrives,
	// which on most replicas (followers) it never does: a node hosts
	// thousands of them.
	startOnce sync.Once
	started   atomic.Bool
	queue     chan *proposal
	slots     chan struct{}

	stopOnce sync.Once
	stopCh   chan struct{}
	wg       sync.WaitGroup
	// mu makes "not stopped, so enqueue" atomic against stop, so no batch
	// is queued after the loop's last drain (it would wait out its
	// request timeout instead of getting NOT_LEADER at once).
	mu      sync.RWMutex
	stopped bool

	// inflight holds the entries proposed and not yet resolved, so that
	// abort can answer their batches.
	inflightMu sync.Mutex
	inflight   map[*[]*proposal]struct{}
	// waiting is the batch the loop holds while every slot is taken, so
	// that abort answers it too: the slots may be held by entries that
	// cannot commit.
	waiting *proposal
}

func newProposer(r *raft.Raft, maxBytes, inFlight int, m *nodeMetrics) *proposer {
	return &proposer{
		raft:     r,
		maxBytes: maxBytes,
		inFlight: inFlight,
		inflight: make(map[*[]*proposal]struct{}),
		metrics:  m,
		stopCh:   make(chan struct{}),
	}
}

// start makes the queue and starts the loop, once; the caller holds mu
// for reading and has seen the proposer not stopped.
func (p *proposer) start() {
	p.startOnce.Do(func() {
		// The in-flight entries take every batch that arrives while they
		// commit, so the queue need not be long.
		p.queue = make(chan *proposal, 256)
		p.slots = make(chan struct{}, p.inFlight)
		p.wg.Add(1)
		go p.loop()
		p.started.Store(true)
	})
}

// submit queues a batch; it blocks only when the queue is full
// (backpressure onto the connection).
func (p *proposer) submit(ctx context.Context, batch []byte) *proposal {
	pr := &proposal{batch: batch, done: make(chan struct{})}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped {
		pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
		return pr
	}
	p.start()
	select {
	case p.queue <- pr:
	case <-p.stopCh:
		pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
	case <-ctx.Done():
		pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.RequestTimedOut})
	}
	return pr
}

// finish settles the proposal; only the first outcome counts (abort may
// settle it before raft does).
func (pr *proposal) finish(r fsm.BatchResult) {
	pr.once.Do(func() {
		pr.res = r
		close(pr.done)
	})
}

func (p *proposer) loop() {
	defer p.wg.Done()
	for {
		var first *proposal
		select {
		case first = <-p.queue:
		case <-p.stopCh:
			p.drain()
			return
		}
		p.inflightMu.Lock()
		p.waiting = first
		p.inflightMu.Unlock()
		select {
		case p.slots <- struct{}{}:
			p.inflightMu.Lock()
			p.waiting = nil
			p.inflightMu.Unlock()
			select {
			case <-first.done:
				// abort answered it: proposing it now could commit a batch
				// its client was told failed.
				<-p.slots
				continue
			default:
			}
		case <-p.stopCh:
			first.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
			p.drain()
			return
		}
		batch := p.collect(first)
		p.propose(batch)
	}
}

// collect takes queued proposals after first up to maxBytes.
func (p *proposer) collect(first *proposal) []*proposal {
	batch := []*proposal{first}
	size := len(first.batch)
	for size < p.maxBytes {
		select {
		case pr := <-p.queue:
			batch = append(batch, pr)
			size += len(pr.batch)
		default:
			return batch
		}
	}
	return batch
}

func (p *proposer) propose(batch []*proposal) {
	size := 0
	for _, pr := range batch {
		size += len(pr.batch)
	}
	if p.onPropose != nil {
		p.onPropose()
	}
	cmd := fsm.NewProduceCommand(size + 8*len(batch))
	for _, pr := range batch {
		cmd.Add(pr.batch)
	}
	start := time.Now()
	f := p.raft.Apply(cmd.Bytes(), 0)
	p.metrics.entryBatches.Observe(float64(len(batch)))
	p.metrics.entryBytes.Observe(float64(size))
	p.inflightMu.Lock()
	p.inflight[&batch] = struct{}{}
	p.inflightMu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		err := f.Error()
		p.inflightMu.Lock()
		delete(p.inflight, &batch)
		p.inflightMu.Unlock()
		p.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		p.complete(batch, f, err)
	}()
}

func (p *proposer) complete(batch []*proposal, f raft.ApplyFuture, err error) {
	if err != nil {
		kerrv := raftErrToKafka(err)
		for _, pr := range batch {
			pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerrv})
		}
		return
	}
	res, ok := f.Response().(*fsm.ProduceResult)
	if !ok || len(res.Batches) != len(batch) {
		// The entry was committed but this node skipped applying it (it was
		// replayed): the outcome is unknown to us, so let the client retry.
		for _, pr := range batch {
			pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.RequestTimedOut})
		}
		return
	}
	for i, pr := range batch {
		pr.finish(res.Batches[i])
	}
}

// raftErrToKafka maps a failed Raft apply to the error a client should see.
// Leadership loss means the entry may or may not commit later: a retriable
// error lets idempotent producers retry safely.
func raftErrToKafka(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
		return kerr.NotLeaderForPartition
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return kerr.RequestTimedOut
	default:
		return kerr.UnknownServerError
	}
}

func (p *proposer) drain() {
	if !p.started.Load() {
		return
	}
	for {
		select {
		case pr := <-p.queue:
			pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
		default:
			return
		}
	}
}

// abort answers every queued and in-flight batch with
// NOT_LEADER_OR_FOLLOWER now: the leader lost its quorum, and the client
// had better find the new one than wait out its timeout. An entry that
// commits after all (the partition heals first) is then acknowledged to
// no one; an idempotent producer's retry of it is deduplicated.
func (p *proposer) abort() {
	p.inflightMu.Lock()
	var batches []*[]*proposal
	for b := range p.inflight {
		batches = append(batches, b)
	}
	if p.waiting != nil {
		p.waiting.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
	}
	p.inflightMu.Unlock()
	for _, b := range batches {
		for _, pr := range *b {
			pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
		}
	}
	p.drain()
}

// stop fails queued batches and waits for in-flight entries to resolve
// (raft shutdown resolves them).
func (p *proposer) stop() {
	p.stopOnce.Do(func() {
		close(p.stopCh) // wakes submits blocked on a full queue
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
	})
}

// wait waits for the loop to end, then fails what was queued after its
// last drain but before stop took effect.
func (p *proposer) wait() {
	p.wg.Wait()
	p.drain()
}
