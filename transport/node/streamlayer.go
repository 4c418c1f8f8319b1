package node

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer is one raft group's view of a Transport: a raft.StreamLayer
// whose addresses are decimal node ids (see ServerAddress). It costs a map
// entry and two channels; all groups share the Transport's sessions.
type StreamLayer struct {
	t     *Transport
	group string

	// acceptCh hands inbound streams to Accept. It is unbuffered: a stream
	// waits in its own goroutine until raft's accept loop takes it.
	acceptCh  chan net.Conn
	closeCh   chan struct{}
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

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

// StreamLayer registers raft group and returns its stream layer. A group
// may be registered again once its previous layer is closed.
func (t *Transport) StreamLayer(group string) (*StreamLayer, error) {
	if err := checkName(group); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if _, ok := t.groups[group]; ok {
		return nil, fmt.Errorf("group %q: %w", group, ErrGroupExists)
	}
	sl := &StreamLayer{
		t:        t,
		group:    group,
		acceptCh: make(chan net.Conn),
		closeCh:  make(chan struct{}),
	}
	t.groups[group] = sl
	return sl, nil
}

// Accept returns the next stream a peer opened to this group.
func (sl *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-sl.acceptCh:
		return c, nil
	case <-sl.closeCh:
		return nil, ErrClosed
	}
}

// Close unregisters the group and fails pending and future Accepts.
// Streams already accepted stay open; raft closes them.
func (sl *StreamLayer) Close() error {
	sl.closeOnce.Do(func() {
		close(sl.closeCh)
		sl.t.mu.Lock()
		if sl.t.groups[sl.group] == sl {
			delete(sl.t.groups, sl.group)
		}
		sl.t.mu.Unlock()
	})
	return nil
}

// Addr returns this node's raft address: its id in decimal.
func (sl *StreamLayer) Addr() net.Addr { return nodeAddr(sl.t.id) }

// Dial opens a stream to the same group on the node named by address.
func (sl *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-sl.closeCh:
		return nil, ErrClosed
	default:
	}
	peer, err := ParseServerAddress(address)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = sl.t.cfg.DialTimeout
	}
	ctx, cancel := context.WithTimeout(sl.t.ctx, timeout)
	defer cancel()
	c, err := sl.t.openStream(ctx, peer, kindRaft, sl.group, nil)
	if err != nil {
		return nil, fmt.Errorf("raft group %q: %w", sl.group, err)
	}
	return c, nil
}

// deliverRaft hands an inbound stream to its group's Accept. A stream for a
// group not registered here is closed: the group may not have started yet,
// and raft will dial again.
func (t *Transport) deliverRaft(group string, c net.Conn) {
	t.mu.Lock()
	sl := t.groups[group]
	t.mu.Unlock()
	if sl == nil {
		c.Close()
		return
	}
	select {
	case sl.acceptCh <- c:
	case <-sl.closeCh:
		c.Close()
	case <-t.ctx.Done():
		c.Close()
	}
}
