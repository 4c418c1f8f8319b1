package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
)

// holdFor is how long a call to a raft group that is not running here is
// held before it is answered "no group": groups of a new topic start on
// every node at about the same time, and a vote refused only because the
// voter had not started yet would stall the first election for a whole
// election timeout.
const holdFor = 5 * time.Second

// maxHeld bounds the calls held for groups that have not started.
const maxHeld = 200000

// errNoGroupHere answers a call for a group that does not run here.
var errNoGroupHere = errors.New("raft group not running")

// inbound is one call for a local raft group, with how to answer it.
type inbound struct {
	rpc    raft.RPC
	resp   chan raft.RPCResponse
	answer func(raft.RPCResponse)
}

// muxServer answers the calls a peer sends on one of its mux streams.
type muxServer struct {
	t    *Transport
	peer int32
	// names and groups belong to the reader goroutine.
	names  map[uint64]string
	groups map[uint64]*RaftGroup

	mu     sync.Mutex
	frames frameBuf
	closed bool
	writer *frameWriter
}

// serveMux answers calls on an inbound mux connection until it fails.
func (t *Transport) serveMux(class string, peer int32, c net.Conn) {
	s := &muxServer{t: t, peer: peer, names: make(map[uint64]string), groups: make(map[uint64]*RaftGroup)}
	s.writer = newFrameWriter(&s.mu, &s.frames, t.cfg.Linger, t.metrics)
	done := make(chan struct{})
	if !t.goFunc(func() {
		if err := s.writer.run(delayWriter{c, t, peer}, done); err != nil {
			c.Close()
		}
	}) {
		c.Close()
		return
	}
	err := s.read(bufio.NewReaderSize(c, 256<<10))
	if err != nil && !isClosedErr(err) {
		t.logger.Debug("raft stream from peer ended", "peer", peer, "error", err)
	}
	s.mu.Lock()
	s.closed = true
	s.frames.buf = nil
	s.mu.Unlock()
	close(done)
	c.Close()
}

func (s *muxServer) read(r *bufio.Reader) error {
	for {
		typ, p, err := readFrame(r)
		if err != nil {
			return err
		}
		switch typ {
		case frameDefine:
			d := &decoder{b: p}
			gid := d.uint()
			if d.err != nil || len(d.b) == 0 {
				return fmt.Errorf("%w: bad group definition", errBadFrame)
			}
			s.names[gid] = string(d.b)
			delete(s.groups, gid)
		case frameCall:
			if err := s.call(p); err != nil {
				return err
			}
		case framePing:
			// A ping with a body is someone waiting on the answer
			// (Transport.Confirm); a bare one is the liveness pinger's.
			s.reply(framePong, len(p) == 0, func(*encoder) {})
		default:
			return fmt.Errorf("%w: frame type %d from the dialer", errBadFrame, typ)
		}
	}
}

// call decodes one call and hands it to its group. A call the codec cannot
// read ends the stream: the peer runs a different version or is broken.
func (s *muxServer) call(p []byte) error {
	d := &decoder{b: p}
	id, gid := d.uint(), d.uint()
	if d.err != nil || len(d.b) == 0 {
		return fmt.Errorf("%w: short call", errBadFrame)
	}
	kind := d.b[0]
	name, ok := s.names[gid]
	if !ok {
		return fmt.Errorf("%w: call for undefined group %d", errBadFrame, gid)
	}
	cmd, err := decodeRaftRequest(kind, d.b[1:])
	if err != nil {
		return err
	}
	// Only answers to appends that carry entries are urgent: the leader
	// commits, and a produce is answered, when they arrive.
	lazy := false
	if ae, ok := cmd.(*raft.AppendEntriesRequest); ok && len(ae.Entries) == 0 {
		lazy = true
	}
	g := s.groups[gid]
	if g == nil || g.isClosed() {
		if g = s.t.raftGroup(name); g != nil {
			s.groups[gid] = g
		}
	}
	if g != nil && g.urgent.Load() {
		lazy = false
	}
	in := &inbound{rpc: raft.RPC{Command: cmd}, answer: func(r raft.RPCResponse) { s.answer(id, kind, lazy, r) }}
	if g == nil {
		s.t.hold(name, in)
		return nil
	}
	g.deliver(in)
	return nil
}

func (s *muxServer) answer(id uint64, kind byte, lazy bool, r raft.RPCResponse) {
	s.reply(frameReply, lazy, func(e *encoder) {
		e.uint(id)
		appendReply(e, kind, r)
	})
}

// appendReply appends a reply's status and raft's response or error.
func appendReply(e *encoder, kind byte, r raft.RPCResponse) {
	switch {
	case errors.Is(r.Error, errNoGroupHere):
		e.b = append(e.b, replyNoGroup)
	case r.Error != nil:
		e.b = append(e.b, replyError)
		e.b = append(e.b, r.Error.Error()...)
	default:
		at := len(e.b)
		e.b = append(e.b, replyOK)
		if err := encodeRaftResponse(e, kind, r.Response); err != nil {
			e.b = append(e.b[:at], replyError)
			e.b = append(e.b, err.Error()...)
		}
	}
}

func (s *muxServer) reply(typ byte, lazy bool, body func(*encoder)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	at := s.frames.begin(typ, lazy)
	e := encoder{b: s.frames.buf}
	body(&e)
	s.frames.buf = e.b
	s.frames.end(at)
	kick := s.frames.needKick()
	s.mu.Unlock()
	if kick {
		s.writer.kick()
	}
}

// heldCalls are calls waiting for a group to start.
type heldCalls struct {
	calls []*inbound
	timer *time.Timer
}

// hold keeps in until group name starts here, or answers it "no group"
// after holdFor.
func (t *Transport) hold(name string, in *inbound) {
	t.mu.Lock()
	if g := t.rgroups[name]; g != nil {
		t.mu.Unlock()
		g.deliver(in)
		return
	}
	if t.closed || t.heldCount >= maxHeld {
		t.mu.Unlock()
		in.answer(raft.RPCResponse{Error: errNoGroupHere})
		return
	}
	h := t.held[name]
	if h == nil {
		h = &heldCalls{}
		t.held[name] = h
		h.timer = time.AfterFunc(holdFor, func() { t.expireHeld(name, h) })
	}
	h.calls = append(h.calls, in)
	t.heldCount++
	t.mu.Unlock()
}

func (t *Transport) expireHeld(name string, h *heldCalls) {
	t.mu.Lock()
	if t.held[name] != h {
		t.mu.Unlock()
		return
	}
	delete(t.held, name)
	t.heldCount -= len(h.calls)
	t.mu.Unlock()
	for _, in := range h.calls {
		in.answer(raft.RPCResponse{Error: errNoGroupHere})
	}
}

// takeHeldLocked removes the calls held for name; t.mu is held.
func (t *Transport) takeHeldLocked(name string) []*inbound {
	h := t.held[name]
	if h == nil {
		return nil
	}
	h.timer.Stop()
	delete(t.held, name)
	t.heldCount -= len(h.calls)
	return h.calls
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, yamux.ErrStreamClosed) ||
		errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, yamux.ErrConnectionReset)
}
