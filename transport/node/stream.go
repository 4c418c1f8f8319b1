package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

const (
	kindRPC      byte = 2
	kindRaftSnap byte = 4 // name: the raft group

	// maxNameLen is what the header's uint16 length can say.
	maxNameLen = math.MaxUint16

	// headerTimeout bounds how long an accepted stream may take to name
	// its purpose; the opener writes the header at once.
	headerTimeout = 10 * time.Second
)

func kindName(kind byte) string {
	switch kind {
	case kindRPC:
		return "rpc"
	case kindRaftSnap:
		return "raftsnap"
	}
	return "unknown"
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: %d bytes", ErrBadName, len(name))
	}
	return nil
}

// appendHeader appends a stream header: kind, uint16 name length, name.
func appendHeader(b []byte, kind byte, name string) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	return append(b, name...)
}

// readHeader reads exactly one header, leaving whatever follows (raft's
// bytes, an RPC request) unread.
func readHeader(r io.Reader) (kind byte, name string, err error) {
	var fixed [3]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return 0, "", err
	}
	kind = fixed[0]
	if kind != kindRPC && kind != kindRaftSnap {
		return 0, "", fmt.Errorf("%w: kind %d", errBadHeader, kind)
	}
	n := binary.BigEndian.Uint16(fixed[1:])
	if n == 0 {
		return 0, "", fmt.Errorf("%w: empty name", errBadHeader)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, "", err
	}
	return kind, string(buf), nil
}

// streamConn is a yamux stream as raft and RPC code see it: its addresses
// are node ids, and its writes pay any fault-injected delay toward the peer.
// The delay lives here, per stream, rather than on the shared TCP
// connection, so it models latency without serialising every stream (and
// yamux's pings) behind each other's sleeps.
type streamConn struct {
	*yamux.Stream
	t    *Transport
	peer int32
}

func (c *streamConn) Write(p []byte) (int, error) {
	if d := c.t.faults.WriteDelay(c.t.id, c.peer); d > 0 && !c.t.sleep(d) {
		return 0, ErrClosed
	}
	return c.Stream.Write(p)
}

func (c *streamConn) LocalAddr() net.Addr  { return nodeAddr(c.t.id) }
func (c *streamConn) RemoteAddr() net.Addr { return nodeAddr(c.peer) }

// openStream opens a stream to peer and writes its header followed by
// first, all bounded by ctx.
func (t *Transport) openStream(ctx context.Context, peer int32, kind byte, name string, first []byte) (*streamConn, error) {
	l, err := t.session(ctx, peer)
	if err != nil {
		return nil, err
	}
	s, err := l.ys.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("node %d: open stream: %w", peer, err)
	}
	c := &streamConn{Stream: s, t: t, peer: peer}
	msg := append(appendHeader(make([]byte, 0, 3+len(name)+len(first)), kind, name), first...)
	if err := writeWithin(ctx, c, msg); err != nil {
		c.Close()
		return nil, fmt.Errorf("node %d: write %s header: %w", peer, kindName(kind), err)
	}
	t.metrics.streamOpened(kind, "out")
	return c, nil
}

// writeWithin writes b, giving up at ctx's deadline or cancellation.
func writeWithin(ctx context.Context, c *streamConn, b []byte) error {
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now()) })
	_, err := c.Write(b)
	if !stop() && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	return c.SetWriteDeadline(time.Time{})
}

// serveStream reads an inbound stream's header and hands it to raft or to
// an RPC handler.
func (t *Transport) serveStream(s *yamux.Stream, from int32) {
	s.SetReadDeadline(time.Now().Add(headerTimeout))
	kind, name, err := readHeader(s)
	if err != nil {
		t.logger.Debug("dropping stream with bad header", "peer", from, "error", err)
		s.Close()
		return
	}
	s.SetReadDeadline(time.Time{})
	t.metrics.streamOpened(kind, "in")
	c := &streamConn{Stream: s, t: t, peer: from}
	switch kind {
	case kindRPC:
		t.serveRPC(name, c)
	case kindRaftSnap:
		t.serveSnapshot(name, c)
	}
}
