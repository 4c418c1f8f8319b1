package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// maxPipeline bounds the AppendEntries in flight on one pipeline. Each
// carries up to raft's MaxAppendEntries entries, so a few dozen keep the
// link busy; a node has a pipeline per follower of every group it leads.
const maxPipeline = 32

// AppendEntriesPipeline implements raft.Transport.
func (g *RaftGroup) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	peer, err := ParseServerAddress(target)
	if err != nil {
		return nil, err
	}
	return &pipeline{g: g, peer: peer, slots: make(chan struct{}, maxPipeline),
		doneCh: make(chan raft.AppendFuture, 2*maxPipeline), closeCh: make(chan struct{})}, nil
}

// pipeline sends appends to one follower without waiting for each answer.
// Answers are handed to raft in the order the appends were sent, failures
// included, as raft's pipeline decoder requires.
type pipeline struct {
	g       *RaftGroup
	peer    int32
	slots   chan struct{}
	doneCh  chan raft.AppendFuture
	closeCh chan struct{}
	once    sync.Once

	mu     sync.Mutex
	queue  []*pipeFuture // sent and not yet handed to raft, in order
	closed bool
	// sent counts appends, so an idle check can tell whether raft sent
	// more while it waited (see armIdle).
	sent      atomic.Uint64
	idleArmed atomic.Bool
	// lastOK says the last answer handed to raft was a success.
	lastOK atomic.Bool
}

// pipelineIdleDelay is how long a pipeline must have nothing in flight,
// after a successful answer, before the group is told (see OnIdle).
const pipelineIdleDelay = 20 * time.Millisecond

type pipeFuture struct {
	call  muxCall
	req   *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	start time.Time
	done  bool // under pipeline.mu
}

func (f *pipeFuture) Error() error                          { return f.call.err }
func (f *pipeFuture) Start() time.Time                      { return f.start }
func (f *pipeFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *pipeFuture) Response() *raft.AppendEntriesResponse { return f.resp }

var errPipelineClosed = errors.New("node transport: pipeline closed")

// AppendEntries implements raft.AppendPipeline.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case p.slots <- struct{}{}:
	case <-p.closeCh:
		return nil, errPipelineClosed
	}
	p.sent.Add(1)
	f := &pipeFuture{req: args, resp: resp, start: time.Now()}
	// raft gives each pipelined append a response of its own and reads it
	// only from the future, so the reader may decode into it directly.
	f.call.resp = resp
	f.call.onDone = func() { p.completed(f) }
	c, err := p.g.t.mux(p.peer, muxData)
	if err != nil {
		<-p.slots
		return nil, err
	}
	p.mu.Lock()
	p.queue = append(p.queue, f)
	p.mu.Unlock()
	if err := c.call(p.g.name, rpcAppendEntries, false, &f.call, func(e *encoder) {
		e.b = growFor(e.b, appendEntriesSize(args))
		encodeAppendEntries(e, args)
	}); err != nil {
		f.call.complete(err)
	}
	return f, nil
}

// completed hands raft every answered append at the head of the queue.
func (p *pipeline) completed(f *pipeFuture) {
	p.mu.Lock()
	f.done = true
	var ready []*pipeFuture
	for len(p.queue) > 0 && p.queue[0].done {
		ready = append(ready, p.queue[0])
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
	closed := p.closed
	idle := len(p.queue) == 0
	p.mu.Unlock()
	ok := len(ready) > 0
	for _, f := range ready {
		ok = f.call.err == nil && f.resp.Success
		p.g.appendDone(p.peer, f.req, f.resp, f.call.err)
		if f.call.err == nil {
			p.g.learn(p.peer, f.req, f.resp)
		}
		<-p.slots
		if closed {
			continue
		}
		select {
		case p.doneCh <- f:
		default:
			// raft's decoder has stopped reading; the pipeline is ending.
		}
	}
	if len(ready) > 0 {
		p.lastOK.Store(ok)
	}
	if idle && ok && !closed {
		p.armIdle()
	}
}

// armIdle tells the group, after pipelineIdleDelay, that this pipeline
// has had nothing in flight since its last answer, unless raft sent more
// meanwhile. hashicorp/raft sends a pipelined follower one append of at
// most MaxAppendEntries entries per new entry or commit timeout: a
// follower that was further behind when the pipeline started, or whose
// leader took a burst while it was away, waits for the next write, and an
// idle partition group's commit timeout is minutes.
func (p *pipeline) armIdle() {
	if !p.idleArmed.CompareAndSwap(false, true) {
		return
	}
	sent := p.sent.Load()
	time.AfterFunc(pipelineIdleDelay, func() {
		p.idleArmed.Store(false)
		p.mu.Lock()
		idle := len(p.queue) == 0 && !p.closed
		p.mu.Unlock()
		switch {
		case !idle || !p.lastOK.Load():
			// An append in flight re-arms when it is answered; a failed
			// one leaves the follower to the stalled path.
		case p.sent.Load() != sent:
			// Raft sent more, and its answer came while this timer was
			// armed (so it could not arm another): look again later.
			p.armIdle()
		default:
			p.g.pipelineIdle(p.peer)
		}
	})
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close implements raft.AppendPipeline. Raft closes a pipeline when it
// stops leading, when an append fails (the follower is then stalled, see
// Stalled), and when the follower needs entries its log no longer has: a
// snapshot, which raft sends only on its next new entry or commit
// timeout. The group is told as for an idle pipeline, so that the node
// prompts raft if the follower lacks entries.
func (p *pipeline) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.closeCh)
		p.g.pipelineIdle(p.peer)
	})
	return nil
}
