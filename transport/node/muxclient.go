package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Raft traffic to a peer travels on two mux streams, each carrying the
// calls of every group: the control stream takes heartbeats, votes and
// pings, which are small and must not queue behind a megabyte of entries
// on the data stream.
const (
	muxControl = "c"
	muxData    = "d"
)

// DefaultLinger is how long a lazy frame (a heartbeat, an append with no
// entries, a reply to either, a liveness ping) may wait for others to
// share its write: thousands of groups' heartbeats then cost a few writes
// a second. Partition groups' timeouts are a minute, liveness allows a
// second, and the metadata group's frames never linger (SetUrgent).
const DefaultLinger = 100 * time.Millisecond

var (
	errMuxClosed = errors.New("node transport: raft stream closed")
	// ErrNoGroup means the peer does not run the raft group (yet).
	ErrNoGroup = errors.New("node transport: raft group not running on peer")
)

// muxCall is one call waiting for its reply.
type muxCall struct {
	// resp is decoded into by the stream's reader; it belongs to the call,
	// not to raft, whose heartbeat loop reuses its response across calls
	// and would race a reply that arrives after a timeout.
	resp any
	err  error
	// done is closed when the call completes, unless onDone is set, in
	// which case onDone runs instead (pipelines), on the reader goroutine.
	done   chan struct{}
	onDone func()
	id     uint64 // set when queued
}

func (c *muxCall) complete(err error) {
	c.err = err
	if c.onDone != nil {
		c.onDone()
		return
	}
	close(c.done)
}

// muxConn is this node's outbound mux stream of one class to one peer.
type muxConn struct {
	t     *Transport
	peer  int32
	class string

	// mu guards everything below and the frames queued for the writer.
	mu      sync.Mutex
	frames  frameBuf
	closed  bool
	err     error
	calls   map[uint64]*muxCall
	nextID  uint64
	gids    map[string]uint64
	nextGid uint64

	// Pongs answer pings in order, so pong n proves the peer answered
	// ping n. pongWait is closed and replaced at each pong.
	pings, pongs uint64
	pongWait     chan struct{}

	writer *frameWriter
	done   chan struct{} // closed by fail
}

// mux returns the outbound mux stream of class to peer, starting one if
// there is none. Calls may be queued on it at once; they are sent when it
// has connected, and fail if it cannot.
func (t *Transport) mux(peer int32, class string) (*muxConn, error) {
	key := muxKey{peer, class}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if c := t.muxes[key]; c != nil {
		return c, nil
	}
	c := &muxConn{t: t, peer: peer, class: class, calls: make(map[uint64]*muxCall),
		gids: make(map[string]uint64), done: make(chan struct{}), pongWait: make(chan struct{})}
	c.writer = newFrameWriter(&c.mu, &c.frames, t.cfg.Linger, t.metrics)
	t.muxes[key] = c
	t.goLocked(c.run)
	return c, nil
}

type muxKey struct {
	peer  int32
	class string
}

// run connects, then writes and reads until the stream fails.
func (c *muxConn) run() {
	s, err := c.t.dialMux(c.peer, c.class)
	if err != nil {
		c.fail(err)
		return
	}
	defer c.t.removeRaw(s)
	defer s.Close()
	if c.class == muxControl {
		c.t.controlUp(c.peer)
	}
	c.t.wg.Add(1)
	go func() {
		defer c.t.wg.Done()
		c.fail(c.writer.run(delayWriter{s, c.t, c.peer}, c.done))
	}()
	// A stream that fails in either direction is closed, which ends the
	// other; the transport's Close closes the session under it.
	go func() {
		<-c.done
		s.Close()
	}()
	c.writer.kick() // calls queued while connecting
	c.fail(c.read(bufio.NewReaderSize(s, 64<<10)))
}

func (c *muxConn) read(r *bufio.Reader) error {
	for {
		typ, p, err := readFrame(r)
		if err != nil {
			return err
		}
		c.t.heard(c.peer)
		switch typ {
		case framePong:
			c.mu.Lock()
			c.pongs++
			close(c.pongWait)
			c.pongWait = make(chan struct{})
			c.mu.Unlock()
		case frameReply:
			d := &decoder{b: p}
			id := d.uint()
			if d.err != nil || len(d.b) == 0 {
				return fmt.Errorf("%w: short reply", errBadFrame)
			}
			status, body := d.b[0], d.b[1:]
			c.mu.Lock()
			call := c.calls[id]
			delete(c.calls, id)
			c.mu.Unlock()
			if call == nil {
				continue // it timed out
			}
			switch status {
			case replyOK:
				call.complete(decodeRaftResponse(body, call.resp))
			case replyNoGroup:
				call.complete(fmt.Errorf("node %d: %w", c.peer, ErrNoGroup))
			default:
				call.complete(errors.New(string(body)))
			}
		default:
			return fmt.Errorf("%w: frame type %d from the acceptor", errBadFrame, typ)
		}
	}
}

// fail closes the stream for good and fails every call on it. The next
// call to mux starts a new one.
func (c *muxConn) fail(err error) {
	if err == nil {
		err = errMuxClosed
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = fmt.Errorf("node %d: %w", c.peer, err)
	calls := c.calls
	c.calls = nil
	c.frames.buf = nil
	c.mu.Unlock()
	close(c.done)

	c.t.mu.Lock()
	if c.t.muxes[muxKey{c.peer, c.class}] == c {
		delete(c.t.muxes, muxKey{c.peer, c.class})
	}
	if c.class == muxControl {
		c.t.controlLost[c.peer] = true
		c.t.controlLostAt[c.peer] = time.Now()
	}
	c.t.mu.Unlock()
	// Pipelines need their futures failed in the order they were sent,
	// which their own queues keep; the map's order does not matter.
	for _, call := range calls {
		call.complete(c.err)
	}
}

// Raft mux streams are TCP connections of their own, not yamux streams:
// one write per batch of frames, no second copy, no flow-control window
// updates, and a stream's writes never wait behind another's.

// dialMux connects a raft mux connection of class to peer.
func (t *Transport) dialMux(peer int32, class string) (*faultConn, error) {
	hello := append(helloBytes(muxMagic, t.id, peer), class...)
	conn, err := t.dialConn(peer, hello)
	if err != nil {
		return nil, err
	}
	if !t.addRaw(conn, peer) {
		conn.Close()
		return nil, ErrClosed
	}
	return conn, nil
}

// serveMuxConn answers an accepted raft mux connection.
func (t *Transport) serveMuxConn(class string, from int32, conn *faultConn) {
	if !t.addRaw(conn, from) {
		conn.Close()
		return
	}
	defer t.removeRaw(conn)
	t.serveMux(class, from, conn)
}

// addRaw registers a raft mux connection, so that Close and fault changes
// close it; it reports false once the transport is closed.
func (t *Transport) addRaw(c *faultConn, peer int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.raw[c] = peer
	t.peerUpLocked(peer)
	return true
}

// removeRaw unregisters a closed raft mux connection; losing it may mean
// the peer's process is gone, which a probe finds out.
func (t *Transport) removeRaw(c *faultConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	peer, ok := t.raw[c]
	if !ok {
		return
	}
	delete(t.raw, c)
	t.linkLostLocked(peer)
}

// delayWriter pays any fault-injected delay toward peer before a write.
type delayWriter struct {
	w    io.Writer
	t    *Transport
	peer int32
}

func (d delayWriter) Write(p []byte) (int, error) {
	if delay := d.t.faults.WriteDelay(d.t.id, d.peer); delay > 0 && !d.t.sleep(delay) {
		return 0, ErrClosed
	}
	return d.w.Write(p)
}

// ControlLost reports whether this node's control stream to peer failed
// within downFor and has not connected again: the first sign of a dead
// process, before the probe of its listener confirms it (PeerDown). It
// lapses rather than waiting for a redial, which only pings of a watched
// peer make.
func (t *Transport) ControlLost(peer int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.controlLostAt[peer]
	return ok && t.controlLost[peer] && time.Since(at) < downFor
}

// controlUp runs when a control stream to peer has connected: if an
// earlier one had failed, the peer may have restarted (or a fault cut the
// connection), and Config.OnReconnect is told.
func (t *Transport) controlUp(peer int32) {
	t.mu.Lock()
	lost := t.controlLost[peer]
	delete(t.controlLost, peer)
	delete(t.controlLostAt, peer)
	t.mu.Unlock()
	if lost && t.cfg.OnReconnect != nil {
		t.goFunc(func() { t.cfg.OnReconnect(peer) })
	}
}

// call queues a call of kind to group; body appends the request. The
// reply completes call.
func (c *muxConn) call(group string, kind byte, lazy bool, call *muxCall, body func(*encoder)) error {
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	gid, ok := c.gids[group]
	if !ok {
		c.nextGid++
		gid = c.nextGid
		c.gids[group] = gid
		at := c.frames.begin(frameDefine, lazy)
		e := encoder{b: c.frames.buf}
		e.uint(gid)
		e.b = append(e.b, group...)
		c.frames.buf = e.b
		c.frames.end(at)
	}
	c.nextID++
	id := c.nextID
	at := c.frames.begin(frameCall, lazy)
	e := encoder{b: c.frames.buf}
	e.uint(id)
	e.uint(gid)
	e.b = append(e.b, kind)
	body(&e)
	c.frames.buf = e.b
	if err := c.frames.end(at); err != nil {
		c.mu.Unlock()
		return err
	}
	call.id = id
	c.calls[id] = call
	kick := c.frames.needKick()
	c.mu.Unlock()
	if kick {
		c.writer.kick()
	}
	return nil
}

// ping asks the peer for a pong, which proves the round trip. An urgent
// ping is written at once and asks for its pong at once. It returns the
// ping's number and the channel the next pong closes.
func (c *muxConn) ping(urgent bool) (uint64, <-chan struct{}) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, nil
	}
	at := c.frames.begin(framePing, !urgent)
	if urgent {
		c.frames.buf = append(c.frames.buf, 1)
	}
	c.frames.end(at)
	c.pings++
	n, wait := c.pings, c.pongWait
	kick := c.frames.needKick()
	c.mu.Unlock()
	if kick {
		c.writer.kick()
	}
	return n, wait
}

// ponged reports whether ping n has been answered, and else the channel
// the next pong closes.
func (c *muxConn) ponged(n uint64) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pongs >= n, c.pongWait
}

// forget drops a call that gave up waiting, so a late reply is ignored.
func (c *muxConn) forget(call *muxCall) {
	c.mu.Lock()
	if c.calls[call.id] == call {
		delete(c.calls, call.id)
	}
	c.mu.Unlock()
}

// raftCall sends a call of kind to group on peer and waits for its reply,
// at most timeout. While the peer is unreachable the call waits for it
// rather than failing at once: raft backs off for seconds after failures,
// and a peer that comes back should be caught up at once.
//
// A call gives up early when abort closes (its group was closed).
func (t *Transport) raftCall(peer int32, class, group string, kind byte, lazy bool, timeout time.Duration,
	abort <-chan struct{}, call *muxCall, body func(*encoder)) error {
	deadline := time.Now().Add(timeout)
	if !t.awaitReachable(peer, deadline, abort) {
		return fmt.Errorf("node %d: %w", peer, errUnreachable)
	}
	c, err := t.mux(peer, class)
	if err != nil {
		return err
	}
	call.done = make(chan struct{})
	if err := c.call(group, kind, lazy, call, body); err != nil {
		return err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-call.done:
		return call.err
	case <-timer.C:
		c.forget(call)
		return fmt.Errorf("node %d: raft call: %w", peer, context.DeadlineExceeded)
	case <-t.ctx.Done():
		c.forget(call)
		return ErrClosed
	case <-abort:
		c.forget(call)
		return errGroupClosed
	}
}
