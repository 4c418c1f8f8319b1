package cluster

import (
	"context"
	"errors"
	"sync"
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
	queue    chan *proposal
	slots    chan struct{}
	metrics  *nodeMetrics

	stopOnce sync.Once
	stopCh   chan struct{}
	wg       sync.WaitGroup
	// mu makes "not stopped, so enqueue" atomic against stop, so no batch
	// is queued after the loop's last drain (it would wait out its
	// request timeout instead of getting NOT_LEADER at once).
	mu      sync.RWMutex
	stopped bool
}

func newProposer(r *raft.Raft, maxBytes, inFlight int, m *nodeMetrics) *proposer {
	p := &proposer{
		raft:     r,
		maxBytes: maxBytes,
		queue:    make(chan *proposal, 4096),
		slots:    make(chan struct{}, inFlight),
		metrics:  m,
		stopCh:   make(chan struct{}),
	}
	p.wg.Add(1)
	go p.loop()
	return p
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
	select {
	case p.queue <- pr:
	case <-p.stopCh:
		pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
	case <-ctx.Done():
		pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.RequestTimedOut})
	}
	return pr
}

func (pr *proposal) finish(r fsm.BatchResult) {
	pr.res = r
	close(pr.done)
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
		select {
		case p.slots <- struct{}{}:
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
	cmd := fsm.NewProduceCommand(size + 8*len(batch))
	for _, pr := range batch {
		cmd.Add(pr.batch)
	}
	start := time.Now()
	f := p.raft.Apply(cmd.Bytes(), 0)
	p.metrics.entryBatches.Observe(float64(len(batch)))
	p.metrics.entryBytes.Observe(float64(size))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		err := f.Error()
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
	for {
		select {
		case pr := <-p.queue:
			pr.finish(fsm.BatchResult{BaseOffset: -1, Err: kerr.NotLeaderForPartition})
		default:
			return
		}
	}
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
