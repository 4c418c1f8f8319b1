package node

import (
	"net"
	"sync"
	"time"
)

// Faults is a set of simulated network faults between node ids. One Faults is
// meant to be shared by every Transport of an in-process cluster (tests,
// chaos runs); each Transport applies the rules for writes it makes, so a rule
// A->B takes effect in A's process. The zero value has no faults, and a nil
// *Faults is valid and never faulty, so production code needs no branches.
//
// Blocking behaves like an iptables DROP, not a REJECT: bytes written toward
// a blocked peer vanish (the write succeeds) and new connections toward it
// hang until their timeout, so callers see timeouts rather than errors.
type Faults struct {
	// mu guards blocked, delay and subs.
	mu      sync.RWMutex
	blocked map[route]bool
	delay   map[route]time.Duration
	subs    map[int]func(from, to int32)
	nextSub int
}

// route is one direction of traffic between two nodes.
type route struct{ from, to int32 }

// NewFaults returns an empty Faults; the zero value works equally well.
func NewFaults() *Faults { return &Faults{} }

// Partition drops traffic both ways between a and b.
func (f *Faults) Partition(a, b int32) {
	f.block([]route{{a, b}, {b, a}})
}

// CutOneWay drops traffic from -> to only. to's messages still reach from,
// but from's answers are lost, so to's calls time out too.
func (f *Faults) CutOneWay(from, to int32) {
	f.block([]route{{from, to}})
}

// Isolate partitions id from each of others, both ways.
func (f *Faults) Isolate(id int32, others ...int32) {
	routes := make([]route, 0, 2*len(others))
	for _, o := range others {
		routes = append(routes, route{id, o}, route{o, id})
	}
	f.block(routes)
}

// Delay makes every stream write from -> to sleep d first. d <= 0 removes the
// delay. Delays do not reset connections: unlike drops they cannot leave a
// half-written frame behind.
func (f *Faults) Delay(from, to int32, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.delay, route{from, to})
		return
	}
	if f.delay == nil {
		f.delay = make(map[route]time.Duration)
	}
	f.delay[route{from, to}] = d
}

// Heal removes every drop and delay.
func (f *Faults) Heal() {
	f.mu.Lock()
	changed := make([]route, 0, len(f.blocked))
	for r := range f.blocked {
		changed = append(changed, r)
	}
	f.blocked = nil
	f.delay = nil
	subs := f.subscribersLocked()
	f.mu.Unlock()
	notify(subs, changed)
}

// Blocked reports whether writes from -> to are dropped.
func (f *Faults) Blocked(from, to int32) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.blocked[route{from, to}]
}

// DelayOf returns the delay applied to each write from -> to.
func (f *Faults) DelayOf(from, to int32) time.Duration {
	if f == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.delay[route{from, to}]
}

// Subscribe registers fn to be called, after the change and outside any lock,
// for every route whose Blocked state changed. Transports use it to reset
// their connections on that route. The returned func unsubscribes.
func (f *Faults) Subscribe(fn func(from, to int32)) (cancel func()) {
	if f == nil {
		return func() {}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = make(map[int]func(from, to int32))
	}
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

// block drops traffic on routes; only Heal unblocks, so rules never need a
// per-route undo.
func (f *Faults) block(routes []route) {
	f.mu.Lock()
	var changed []route
	for _, r := range routes {
		if f.blocked[r] {
			continue
		}
		if f.blocked == nil {
			f.blocked = make(map[route]bool)
		}
		f.blocked[r] = true
		changed = append(changed, r)
	}
	subs := f.subscribersLocked()
	f.mu.Unlock()
	notify(subs, changed)
}

func (f *Faults) subscribersLocked() []func(from, to int32) {
	subs := make([]func(from, to int32), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	return subs
}

func notify(subs []func(from, to int32), changed []route) {
	for _, r := range changed {
		for _, fn := range subs {
			fn(r.from, r.to)
		}
	}
}

// faultConn is the TCP connection under a yamux session, seen from this
// node. Dropping here rather than per stream means yamux's own frames
// (window updates, pings, stream opens) vanish too, as they would on a real
// network.
type faultConn struct {
	net.Conn
	faults     *Faults
	self, peer int32

	// wasBlocked is the route's state when the connection was made. A write
	// that finds it changed closes the connection instead: otherwise the
	// peer could get half of a yamux frame, or a stream with a hole in it.
	// Transports also close connections when notified; this catches the
	// writes that race with that.
	wasBlocked bool
}

func newFaultConn(c net.Conn, f *Faults, self, peer int32) *faultConn {
	return &faultConn{Conn: c, faults: f, self: self, peer: peer, wasBlocked: f.Blocked(self, peer)}
}

func (c *faultConn) Write(p []byte) (int, error) {
	blocked := c.faults.Blocked(c.self, c.peer)
	if blocked != c.wasBlocked {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	if blocked {
		return len(p), nil
	}
	return c.Conn.Write(p)
}
