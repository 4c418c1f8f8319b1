package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/yamux"
)

const (
	// helloMagic opens every connection, so a stray client (or a Kafka
	// client pointed at the wrong port) is rejected on its first bytes.
	// It says what follows: yamux (helloMagic) or one raft mux stream
	// (muxMagic, whose hello ends with the stream's class).
	helloMagic = "QNT1"
	muxMagic   = "QNM1"
	helloLen   = len(helloMagic) + 4 + 4

	// helloTimeout bounds how long an accepted connection may take to send
	// its hello; a dialer whose hello was dropped by a fault never will.
	helloTimeout = 10 * time.Second
)

// link is one TCP connection to a peer, past the hello, carrying a yamux
// session. This node opens streams only on links it dialed and accepts them
// only on links it accepted, so each side of a yamux session has one role.
type link struct {
	peer int32
	conn *faultConn
	ys   *yamux.Session
}

// close tears the session down; the goroutine watching it then unregisters
// the link.
func (l *link) close() { l.ys.Close() }

// pendingDial is a dial in progress, shared by every caller that wants a
// session to the same peer meanwhile.
type pendingDial struct {
	done chan struct{}
	link *link // set before done is closed, if err is nil
	err  error
}

func yamuxConfig(logger hclog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	// A session to a peer that went silent (a drop fault, a dead host) dies
	// after one interval plus ConnectionWriteTimeout, and raft redials.
	c.KeepAliveInterval = 10 * time.Second
	c.ConnectionWriteTimeout = 10 * time.Second
	// Raft entries reach ~1 MiB; the default 256 KiB window would cap each
	// stream at a window per round trip.
	c.MaxStreamWindowSize = 4 << 20
	c.StreamOpenTimeout = 20 * time.Second
	c.LogOutput = nil
	// yamux reports every dropped connection as an error; what matters is
	// already reported by raft and by callers, so keep its chatter at debug.
	c.Logger = logger.Named("yamux").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})
	return c
}

// session returns the outbound session to peer, dialing one if there is
// none or it broke. Concurrent callers share a single dial; ctx bounds only
// this caller's wait, not the dial, which others may still want.
func (t *Transport) session(ctx context.Context, peer int32) (*link, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if l := t.out[peer]; l != nil && !l.ys.IsClosed() {
		t.mu.Unlock()
		return l, nil
	}
	d := t.dials[peer]
	if d == nil {
		d = &pendingDial{done: make(chan struct{})}
		t.dials[peer] = d
		t.goLocked(func() { t.dialAndWatch(peer, d) })
	}
	t.mu.Unlock()

	select {
	case <-d.done:
		return d.link, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("node %d: waiting for session: %w", peer, ctx.Err())
	}
}

// dialAndWatch completes d, then, if it succeeded, stays until the session
// dies so the link is unregistered and the next caller redials.
func (t *Transport) dialAndWatch(peer int32, d *pendingDial) {
	l, err := t.dial(peer)
	t.mu.Lock()
	delete(t.dials, peer)
	if err == nil && t.closed {
		err = ErrClosed
	}
	if err == nil {
		t.links[l] = struct{}{}
		t.out[peer] = l
		t.metrics.sessions.Inc()
		t.peerUpLocked(peer)
	}
	t.mu.Unlock()

	if err != nil {
		if l != nil {
			l.close()
		}
		t.metrics.dialFailures.Inc()
		t.logger.Debug("dial failed", "peer", peer, "error", err)
		d.err = err
		close(d.done)
		return
	}
	d.link = l
	close(d.done)
	<-l.ys.CloseChan()
	t.removeLink(l)
}

func (t *Transport) dial(peer int32) (*link, error) {
	conn, err := t.dialConn(peer, helloBytes(helloMagic, t.id, peer))
	if err != nil {
		return nil, err
	}
	ys, err := yamux.Client(conn, t.ymux)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("node %d: yamux client: %w", peer, err)
	}
	return &link{peer: peer, conn: conn, ys: ys}, nil
}

// dialConn connects to peer and sends hello.
func (t *Transport) dialConn(peer int32, hello []byte) (*faultConn, error) {
	addr, err := t.resolve(peer)
	if err != nil {
		return nil, err
	}
	if t.faults.Blocked(t.id, peer) {
		// Like a SYN into a DROP rule: nothing answers, so wait out the
		// timeout rather than fail fast.
		if !t.sleep(t.cfg.DialTimeout) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("node %d: dial %s: %w", peer, addr, os.ErrDeadlineExceeded)
	}
	raw, err := t.dialTCP(addr)
	if err != nil {
		return nil, fmt.Errorf("node %d: dial %s: %w", peer, addr, err)
	}
	conn := newFaultConn(raw, t.faults, t.id, peer)
	conn.SetWriteDeadline(time.Now().Add(t.cfg.DialTimeout))
	if _, err := conn.Write(hello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("node %d: hello to %s: %w", peer, addr, err)
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// redialInterval is how often a refused dial is retried.
const redialInterval = 100 * time.Millisecond

// dialTCP retries a refused connection until DialTimeout. A peer whose
// process is down refuses at once, and hashicorp/raft counts every failed
// RPC toward a replication backoff that grows to 10 s; a peer restarted
// after a few quick failures would then wait that long to be caught up.
// Failing only after DialTimeout keeps the failure count, and so the
// backoff, small, and notices the restart within redialInterval.
func (t *Transport) dialTCP(addr string) (net.Conn, error) {
	deadline := time.Now().Add(t.cfg.DialTimeout)
	for {
		dialer := net.Dialer{Deadline: deadline}
		raw, err := dialer.DialContext(t.ctx, "tcp", addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Until(deadline) < redialInterval {
			return raw, err
		}
		if !t.sleep(redialInterval) {
			return nil, ErrClosed
		}
	}
}

func (t *Transport) resolve(peer int32) (string, error) {
	if peer == t.id {
		return t.ln.Addr().String(), nil
	}
	addr, ok := t.cfg.Resolve(peer)
	if !ok {
		return "", fmt.Errorf("node %d: %w", peer, ErrUnknownNode)
	}
	return addr, nil
}

// serveInbound runs an accepted connection: hello, then one goroutine per
// stream the peer opens, until the session ends; or, for a raft mux
// connection, its calls.
func (t *Transport) serveInbound(raw net.Conn) {
	from, class, err := readHello(raw, t.id, helloTimeout)
	if errors.Is(err, io.EOF) {
		// Closed before a byte: a peer probing whether this node is up.
		raw.Close()
		return
	}
	if err != nil {
		t.logger.Warn("rejecting inbound connection", "remote", raw.RemoteAddr().String(), "error", err)
		raw.Close()
		return
	}
	conn := newFaultConn(raw, t.faults, t.id, from)
	if class != "" {
		t.serveMuxConn(class, from, conn)
		return
	}
	ys, err := yamux.Server(conn, t.ymux)
	if err != nil {
		conn.Close()
		t.logger.Error("yamux server", "error", err)
		return
	}
	l := &link{peer: from, conn: conn, ys: ys}
	if !t.addLink(l) {
		l.close()
		return
	}
	defer t.removeLink(l)
	for {
		s, err := ys.AcceptStream()
		if err != nil {
			return
		}
		if !t.goFunc(func() { t.serveStream(s, from) }) {
			s.Close()
			return
		}
	}
}

func (t *Transport) addLink(l *link) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.links[l] = struct{}{}
	t.metrics.sessions.Inc()
	t.peerUpLocked(l.peer)
	return true
}

func (t *Transport) removeLink(l *link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.links[l]; !ok {
		return
	}
	delete(t.links, l)
	if t.out[l.peer] == l {
		delete(t.out, l.peer)
	}
	t.metrics.sessions.Dec()
	t.linkLostLocked(l.peer)
}

// helloBytes announces this node and the node it means to reach. Nothing
// comes back: a rejected dialer learns of it when the connection closes,
// and a one-way fault that drops the acceptor's bytes still lets the
// dialer's requests through, as it would on a real network once connected.
// A raft mux hello (muxMagic) is followed by one byte, the stream's class.
func helloBytes(magic string, from, to int32) []byte {
	b := make([]byte, 0, helloLen+1)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(from))
	return binary.BigEndian.AppendUint32(b, uint32(to))
}

// readHello returns the dialing node's id and, for a raft mux connection,
// its class; it refuses a hello meant for another node: the dialer
// resolved a stale address.
func readHello(c net.Conn, self int32, timeout time.Duration) (int32, string, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, helloLen)
	if _, err := io.ReadFull(c, b); err != nil {
		return 0, "", fmt.Errorf("read hello: %w", err)
	}
	from, to, err := parseHello(b)
	if err != nil {
		return 0, "", err
	}
	if to != self {
		return 0, "", fmt.Errorf("%w: node %d dialed node %d but reached node %d (stale address?)", errBadHello, from, to, self)
	}
	class := ""
	if string(b[:4]) == muxMagic {
		var cb [1]byte
		if _, err := io.ReadFull(c, cb[:]); err != nil {
			return 0, "", fmt.Errorf("read hello: %w", err)
		}
		if class = string(cb[:]); class != muxControl && class != muxData {
			return 0, "", fmt.Errorf("%w: raft stream class %q", errBadHello, class)
		}
	}
	return from, class, c.SetReadDeadline(time.Time{})
}

func parseHello(b []byte) (from, to int32, err error) {
	if len(b) != helloLen || !(bytes.HasPrefix(b, []byte(helloMagic)) || bytes.HasPrefix(b, []byte(muxMagic))) {
		return 0, 0, fmt.Errorf("%w: magic %q", errBadHello, b[:min(len(b), len(helloMagic))])
	}
	from = int32(binary.BigEndian.Uint32(b[4:8]))
	to = int32(binary.BigEndian.Uint32(b[8:12]))
	if from < 0 || to < 0 {
		return 0, 0, fmt.Errorf("%w: negative node id", errBadHello)
	}
	return from, to, nil
}

// nodeAddr is a node named by id: raft's ServerAddress convention, and the
// address streams report, so raft's logs name nodes rather than ports.
type nodeAddr int32

func (a nodeAddr) Network() string { return "quire-node" }
func (a nodeAddr) String() string  { return strconv.FormatInt(int64(a), 10) }
