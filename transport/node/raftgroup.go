package node

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultRaftTimeout bounds a raft call that gets no answer.
const DefaultRaftTimeout = 10 * time.Second

var (
	errGroupClosed = errors.New("node transport: raft group closed")
	errRefused     = errors.New("node transport: follower refused the append")
)

// RaftGroup is one raft group's raft.Transport on a node Transport. Every
// group shares the node's mux streams to each peer: a call costs a frame
// on a stream, not a connection, and heartbeats of all groups to a peer
// leave in one write (see frameBuf). Raft addresses are node ids (see
// ServerAddress).
//
// Beyond raft.Transport it lets the node inject calls (Inject), and it
// piggybacks the leader's commit index on heartbeats (SetCommitIndex), so
// that raft's commit timeout, which would otherwise send every follower
// of every group an AppendEntries many times a second, can be long.
type RaftGroup struct {
	t        *Transport
	name     string
	consumer chan raft.RPC
	hb       atomic.Pointer[func(raft.RPC)]
	closeCh  chan struct{}
	once     sync.Once

	// inMu guards the inbox and pumping: calls wait in the inbox, in
	// arrival order, for the group's one pump goroutine to hand them to
	// raft and wait for its answer. No goroutine runs while it is empty.
	inMu    sync.Mutex
	inbox   []*inbound
	pumping bool
	closed  bool

	commit    atomic.Pointer[func() uint64]
	onStale   atomic.Pointer[func(term uint64)]
	onIdle    atomic.Pointer[func(peer int32, matched uint64)]
	progMu    sync.Mutex
	progress  map[int32]*followerProgress
	snapshots atomic.Int64 // installs in progress, for tests
	// lastHB is an empty append as raft's latest request would look: the
	// template of the commit flushes (flushCommit), which must speak for
	// this leader in its term.
	lastHB     atomic.Pointer[raft.AppendEntriesRequest]
	flushArmed atomic.Bool
	// urgent groups never linger (see SetUrgent).
	urgent atomic.Bool
	// stalled holds, under progMu, the followers whose last append failed
	// (see Stalled).
	stalled map[int32]bool
}

// followerProgress is what this node, as leader, last learned of a
// follower's log from its answers: a prefix that matches ours, and the
// commit index it was last told.
type followerProgress struct {
	term      uint64 // the leader term the match was learned in
	matchIdx  uint64
	matchTerm uint64
	told      uint64
	// appended is when entries were last sent to it.
	appended time.Time
}

// commitFlushDelay is how long after its last append a follower that has
// not been told the commit index gets a flush (see flushCommit).
const commitFlushDelay = 20 * time.Millisecond

var (
	_ raft.Transport   = (*RaftGroup)(nil)
	_ raft.WithPreVote = (*RaftGroup)(nil)
	_ raft.WithClose   = (*RaftGroup)(nil)
)

// ServerAddress is the raft address of node id under this package's
// convention: the id in decimal.
func ServerAddress(id int32) raft.ServerAddress {
	return raft.ServerAddress(strconv.FormatInt(int64(id), 10))
}

// ParseServerAddress is the inverse of ServerAddress.
func ParseServerAddress(a raft.ServerAddress) (int32, error) {
	id, err := strconv.ParseInt(string(a), 10, 32)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("node transport: raft address %q is not a node id", a)
	}
	return int32(id), nil
}

// RaftGroup registers raft group name and returns its transport. A name
// may be registered again once its previous transport is closed. Calls
// that peers sent for the group before it registered, and that were held
// (see holdFor), are delivered now.
func (t *Transport) RaftGroup(name string) (*RaftGroup, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	g := &RaftGroup{t: t, name: name, consumer: make(chan raft.RPC), closeCh: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := t.rgroups[name]; ok {
		t.mu.Unlock()
		return nil, fmt.Errorf("group %q: %w", name, ErrGroupExists)
	}
	t.rgroups[name] = g
	held := t.takeHeldLocked(name)
	t.mu.Unlock()
	for _, in := range held {
		g.deliver(in)
	}
	return g, nil
}

// raftGroup is the registered group called name, or nil.
func (t *Transport) raftGroup(name string) *RaftGroup {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rgroups[name]
}

// SetUrgent makes every frame of the group, and every answer to it, leave
// at once instead of lingering for company: for a group with short
// timeouts (the metadata group), whose heartbeats must not wait.
func (g *RaftGroup) SetUrgent(urgent bool) { g.urgent.Store(urgent) }

// Name is the group's name.
func (g *RaftGroup) Name() string { return g.name }

// Consumer implements raft.Transport.
func (g *RaftGroup) Consumer() <-chan raft.RPC { return g.consumer }

// LocalAddr implements raft.Transport.
func (g *RaftGroup) LocalAddr() raft.ServerAddress { return ServerAddress(g.t.id) }

// EncodePeer implements raft.Transport.
func (g *RaftGroup) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte { return []byte(addr) }

// DecodePeer implements raft.Transport.
func (g *RaftGroup) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport: heartbeats are answered
// by cb on the stream's reader, without a trip through raft's main loop.
func (g *RaftGroup) SetHeartbeatHandler(cb func(raft.RPC)) {
	if cb == nil {
		g.hb.Store(nil)
		return
	}
	g.hb.Store(&cb)
}

// SetCommitIndex gives the group its raft's commit index, which it then
// carries to followers on heartbeats (see withCommit).
func (g *RaftGroup) SetCommitIndex(fn func() uint64) { g.commit.Store(&fn) }

// OnStaleTerm sets fn to run when a follower answers this node with a
// newer term than the one the request was sent in, which fn is given.
// hashicorp/raft ignores the term in heartbeat answers; only a
// replication round makes it step down, and an idle group may not have
// one for a long time. The answer can arrive after this node has been
// elected again in a later term, which it says nothing about.
func (g *RaftGroup) OnStaleTerm(fn func(term uint64)) { g.onStale.Store(&fn) }

// OnIdle sets fn to run when the pipeline to a follower has had nothing
// in flight for a moment after a successful append, with the last index
// the follower is known to hold in this term. If the leader's log goes
// further, raft will not send the rest until its next write or commit
// timeout: fn is where the node prompts it (see armIdle).
func (g *RaftGroup) OnIdle(fn func(peer int32, matched uint64)) { g.onIdle.Store(&fn) }

// pipelineIdle tells the node about an idle or closed pipeline to peer,
// unless peer's last append failed: a stalled follower is retried by the
// node's stalled path, with its back-off.
func (g *RaftGroup) pipelineIdle(peer int32) {
	fn := g.onIdle.Load()
	if fn == nil || g.isClosed() {
		return
	}
	g.progMu.Lock()
	p := g.progress[peer]
	var matched uint64
	if p != nil {
		matched = p.matchIdx
	}
	stalled := g.stalled[peer]
	g.progMu.Unlock()
	if p == nil || stalled {
		return
	}
	(*fn)(peer, matched)
}

// Close implements raft.WithClose: the group stops taking calls, and the
// ones waiting are failed.
func (g *RaftGroup) Close() error {
	g.once.Do(func() {
		g.inMu.Lock()
		g.closed = true
		pending := g.inbox
		g.inbox = nil
		g.inMu.Unlock()
		close(g.closeCh)
		g.t.setStalled(g, false)
		for _, in := range pending {
			in.answer(raft.RPCResponse{Error: errGroupClosed})
		}
		g.t.mu.Lock()
		if g.t.rgroups[g.name] == g {
			delete(g.t.rgroups, g.name)
		}
		g.t.mu.Unlock()
	})
	return nil
}

func (g *RaftGroup) isClosed() bool {
	select {
	case <-g.closeCh:
		return true
	default:
		return false
	}
}

// deliver hands an inbound call to raft: a heartbeat straight to raft's
// heartbeat handler, anything else through the inbox.
func (g *RaftGroup) deliver(in *inbound) {
	in.resp = make(chan raft.RPCResponse, 1)
	in.rpc.RespChan = in.resp
	if ae, ok := in.rpc.Command.(*raft.AppendEntriesRequest); ok && isHeartbeat(ae) {
		if fn := g.hb.Load(); fn != nil && !g.isClosed() {
			(*fn)(in.rpc)
			select {
			case r := <-in.resp:
				in.answer(r)
			default:
				// raft is shutting down and dropped it.
				in.answer(raft.RPCResponse{Error: errGroupClosed})
			}
			return
		}
	}
	g.inMu.Lock()
	if g.closed {
		g.inMu.Unlock()
		in.answer(raft.RPCResponse{Error: errGroupClosed})
		return
	}
	g.inbox = append(g.inbox, in)
	start := !g.pumping
	g.pumping = true
	g.inMu.Unlock()
	if start && !g.t.goFunc(g.pump) {
		g.Close()
	}
}

// pump feeds the inbox to raft one call at a time, in order: raft's main
// loop takes them in turn anyway, and pipelined appends must stay ordered.
func (g *RaftGroup) pump() {
	for {
		g.inMu.Lock()
		if len(g.inbox) == 0 || g.closed {
			g.pumping = false
			g.inbox = nil
			g.inMu.Unlock()
			return
		}
		in := g.inbox[0]
		g.inbox[0] = nil
		g.inbox = g.inbox[1:]
		g.inMu.Unlock()
		select {
		case g.consumer <- in.rpc:
		case <-g.closeCh:
			in.answer(raft.RPCResponse{Error: errGroupClosed})
			continue
		}
		select {
		case r := <-in.resp:
			in.answer(r)
		case <-g.closeCh:
			in.answer(raft.RPCResponse{Error: errGroupClosed})
		}
	}
}

// Inject hands cmd to the local raft as if a peer had sent it, and
// returns where its answer will arrive. The node uses it to start an
// election at once (a TimeoutNowRequest) when it learns that a group's
// leader is gone.
func (g *RaftGroup) Inject(cmd any) <-chan raft.RPCResponse {
	out := make(chan raft.RPCResponse, 1)
	g.deliver(&inbound{rpc: raft.RPC{Command: cmd}, answer: func(r raft.RPCResponse) { out <- r }})
	return out
}

// AppendEntries implements raft.Transport.
func (g *RaftGroup) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	peer, err := ParseServerAddress(target)
	if err != nil {
		return err
	}
	hb := isHeartbeat(args)
	req, class := args, muxData
	if last := g.lastHB.Load(); last == nil || last.Term != args.Term {
		g.lastHB.Store(&raft.AppendEntriesRequest{RPCHeader: args.RPCHeader, Term: args.Term, Leader: args.Leader})
	}
	if hb {
		class = muxControl
		if with := g.withCommit(peer, args); with != nil {
			req = with
		}
	} else if len(args.Entries) > 0 {
		g.appending(peer)
	}
	// Only appends that carry entries are urgent: a produce waits for them.
	lazy := len(req.Entries) == 0 && !g.urgent.Load()
	call := &muxCall{resp: new(raft.AppendEntriesResponse)}
	err = g.t.raftCall(peer, class, g.name, rpcAppendEntries, lazy, g.t.raftTimeout, g.closeCh, call, func(e *encoder) {
		e.b = growFor(e.b, appendEntriesSize(req))
		encodeAppendEntries(e, req)
	})
	if err != nil {
		if !hb {
			g.appendDone(peer, req, nil, err)
		}
		return err
	}
	r := call.resp.(*raft.AppendEntriesResponse)
	if !hb {
		g.appendDone(peer, req, r, nil)
	}
	g.learn(peer, req, r)
	if req != args && !r.Success && r.Term == req.Term {
		// The follower lacks the entry it was known to hold: it lost its
		// log (a rebuilt replica). Heartbeats stay plain until raft's
		// replication finds where it is.
		g.ForgetProgress(peer)
	}
	if req != args {
		// Raft asked for a heartbeat, whose success means only that the
		// follower took this node as its leader.
		r.Success = r.Term <= args.Term
	}
	*resp = *r
	return nil
}

// growFor makes room for n more bytes in b at once.
func growFor(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n+len(b)/4)
	copy(nb, b)
	return nb
}

// withCommit turns a heartbeat into an AppendEntries without entries that
// tells the follower the commit index, when it has not been told it yet.
// Safety: the request names, as its previous entry, the last entry the
// follower is known to hold as this leader holds it (it answered an append
// of it in this term), and the commit index sent is at most that entry, so
// the follower commits only entries it holds and the leader committed.
func (g *RaftGroup) withCommit(peer int32, hb *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	fn := g.commit.Load()
	if fn == nil {
		return nil
	}
	commit := (*fn)()
	g.progMu.Lock()
	p := g.progress[peer]
	if p == nil || p.term != hb.Term || commit < p.matchIdx || p.matchIdx <= p.told {
		g.progMu.Unlock()
		return nil
	}
	idx, term := p.matchIdx, p.matchTerm
	g.progMu.Unlock()
	with := *hb
	with.PrevLogEntry, with.PrevLogTerm, with.LeaderCommitIndex = idx, term, idx
	return &with
}

// appendDone records how an append to peer went. After one that failed,
// or that the follower refused for want of earlier entries in a pipeline
// (which raft then abandons), hashicorp/raft tries again only when new
// entries arrive or its commit timeout passes, which for an idle
// partition group is minutes: the node restarts replication to a stalled
// follower itself (see Stalled).
func (g *RaftGroup) appendDone(peer int32, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, err error) {
	if err == nil && !resp.Success && resp.Term == req.Term {
		err = errRefused
	}
	g.progMu.Lock()
	defer g.progMu.Unlock()
	if err == nil {
		if g.stalled[peer] {
			delete(g.stalled, peer)
			if len(g.stalled) == 0 {
				g.t.setStalled(g, false)
			}
		}
		return
	}
	if g.stalled == nil {
		g.stalled = make(map[int32]bool)
	}
	if !g.stalled[peer] {
		g.stalled[peer] = true
		g.t.setStalled(g, true)
	}
}

// Stalled lists the followers whose last append from this node failed.
func (g *RaftGroup) Stalled() []int32 {
	g.progMu.Lock()
	defer g.progMu.Unlock()
	out := make([]int32, 0, len(g.stalled))
	for p := range g.stalled {
		out = append(out, p)
	}
	return out
}

// StalledGroups lists the groups with a follower whose last append
// failed.
func (t *Transport) StalledGroups() []*RaftGroup {
	t.stalledMu.Lock()
	defer t.stalledMu.Unlock()
	out := make([]*RaftGroup, 0, len(t.stalled))
	for g := range t.stalled {
		out = append(out, g)
	}
	return out
}

func (t *Transport) setStalled(g *RaftGroup, stalled bool) {
	t.stalledMu.Lock()
	defer t.stalledMu.Unlock()
	if stalled {
		t.stalled[g] = true
	} else {
		delete(t.stalled, g)
	}
}

// appending notes that entries are on their way to peer.
func (g *RaftGroup) appending(peer int32) {
	g.progMu.Lock()
	if p := g.progress[peer]; p != nil {
		p.appended = time.Now()
	}
	g.progMu.Unlock()
}

// flushCommit tells each follower that has matched entries beyond the
// commit index it was last told, and has had no append for
// commitFlushDelay, the commit index, with the same request a heartbeat
// carries it in (see withCommit). Raft would tell it only with its next
// append or at its commit timeout, which for a partition group is long:
// a follower could then lag the leader's high watermark by that much after
// every burst of writes.
func (g *RaftGroup) flushCommit() {
	g.flushArmed.Store(false)
	fn, tmpl := g.commit.Load(), g.lastHB.Load()
	if fn == nil || tmpl == nil || g.isClosed() {
		return
	}
	commit := (*fn)()
	type flush struct {
		peer int32
		req  *raft.AppendEntriesRequest
	}
	var due []flush
	again := false
	g.progMu.Lock()
	for peer, p := range g.progress {
		if p.term != tmpl.Term || p.matchIdx <= p.told || commit < p.matchIdx {
			continue
		}
		if time.Since(p.appended) < commitFlushDelay {
			again = true // still appending: the next append tells it
			continue
		}
		req := *tmpl
		req.PrevLogEntry, req.PrevLogTerm, req.LeaderCommitIndex = p.matchIdx, p.matchTerm, p.matchIdx
		due = append(due, flush{peer, &req})
	}
	g.progMu.Unlock()
	if again {
		g.armFlush()
	}
	for _, f := range due {
		g.t.goFunc(func() {
			call := &muxCall{resp: new(raft.AppendEntriesResponse)}
			err := g.t.raftCall(f.peer, muxControl, g.name, rpcAppendEntries, true, g.t.raftTimeout, g.closeCh, call,
				func(e *encoder) { encodeAppendEntries(e, f.req) })
			if err == nil {
				g.learn(f.peer, f.req, call.resp.(*raft.AppendEntriesResponse))
			}
		})
	}
}

func (g *RaftGroup) armFlush() {
	if g.flushArmed.CompareAndSwap(false, true) {
		time.AfterFunc(commitFlushDelay, g.flushCommit)
	}
}

// learn records what a follower's answer says about its log, and tells
// the node when the answer carries a newer term.
func (g *RaftGroup) learn(peer int32, req *raft.AppendEntriesRequest, r *raft.AppendEntriesResponse) {
	if r.Term > req.Term {
		if fn := g.onStale.Load(); fn != nil {
			(*fn)(req.Term)
		}
		return
	}
	if !r.Success || r.Term != req.Term {
		return
	}
	idx, term := req.PrevLogEntry, req.PrevLogTerm
	if n := len(req.Entries); n > 0 {
		idx, term = req.Entries[n-1].Index, req.Entries[n-1].Term
	}
	g.progMu.Lock()
	defer g.progMu.Unlock()
	if g.progress == nil {
		g.progress = make(map[int32]*followerProgress)
	}
	p := g.progress[peer]
	if p == nil || p.term < req.Term {
		p = &followerProgress{term: req.Term}
		g.progress[peer] = p
	}
	if p.term != req.Term {
		return
	}
	if idx > p.matchIdx {
		p.matchIdx, p.matchTerm = idx, term
	}
	if told := min(req.LeaderCommitIndex, idx); told > p.told {
		p.told = told
	}
	if p.told < p.matchIdx && g.commit.Load() != nil {
		g.armFlush()
	}
}

// Matched is the last log index peer is known to hold as this leader
// holds it, in term; ok is false when nothing is known for that term.
func (g *RaftGroup) Matched(peer int32, term uint64) (idx uint64, ok bool) {
	g.progMu.Lock()
	defer g.progMu.Unlock()
	p := g.progress[peer]
	if p == nil || p.term != term {
		return 0, false
	}
	return p.matchIdx, true
}

// ForgetProgress drops what is known of peer's log: it restarted, and may
// have lost its commit index or, rebuilt, its log. Heartbeats carry the
// commit index again once replication has matched its log anew.
func (g *RaftGroup) ForgetProgress(peer int32) {
	g.progMu.Lock()
	delete(g.progress, peer)
	g.progMu.Unlock()
}

// RequestVote implements raft.Transport.
func (g *RaftGroup) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return g.callControl(target, rpcRequestVote, resp, func(e *encoder) { encodeRequestVote(e, args) })
}

// RequestPreVote implements raft.WithPreVote.
func (g *RaftGroup) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return g.callControl(target, rpcRequestPreVote, resp, func(e *encoder) { encodeRequestPreVote(e, args) })
}

// TimeoutNow implements raft.Transport.
func (g *RaftGroup) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return g.callControl(target, rpcTimeoutNow, resp, func(e *encoder) { e.header(args.RPCHeader) })
}

// callControl makes a call on the control stream and copies its answer
// into out, a pointer to a raft response.
func (g *RaftGroup) callControl(target raft.ServerAddress, kind byte, out any, body func(*encoder)) error {
	peer, err := ParseServerAddress(target)
	if err != nil {
		return err
	}
	var own any
	switch out.(type) {
	case *raft.RequestVoteResponse:
		own = new(raft.RequestVoteResponse)
	case *raft.RequestPreVoteResponse:
		own = new(raft.RequestPreVoteResponse)
	case *raft.TimeoutNowResponse:
		own = new(raft.TimeoutNowResponse)
	}
	call := &muxCall{resp: own}
	if err := g.t.raftCall(peer, muxControl, g.name, kind, false, g.t.raftTimeout, g.closeCh, call, body); err != nil {
		return err
	}
	switch o := out.(type) {
	case *raft.RequestVoteResponse:
		*o = *own.(*raft.RequestVoteResponse)
	case *raft.RequestPreVoteResponse:
		*o = *own.(*raft.RequestPreVoteResponse)
	case *raft.TimeoutNowResponse:
		*o = *own.(*raft.TimeoutNowResponse)
	}
	return nil
}
