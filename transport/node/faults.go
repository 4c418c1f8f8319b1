package node

import (
	"math/rand/v2"
	"net"
	"sort"
	"strings"
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
	// mu guards blocked, delay, loss and subs.
	mu      sync.RWMutex
	blocked map[route]bool
	delay   map[route]time.Duration
	loss    map[route]float64
	rpc     map[route]rpcFault
	subs    map[int]func(from, to int32)
	nextSub int
}

// route is one direction of traffic between two nodes.
type route struct{ from, to int32 }

// rpcFault hits the RPC calls on a route whose method starts with prefix:
// each waits delay before it is sent, and with duplicate a second copy of
// the request follows the first, another delay later, as a retransmission
// that arrives late would. It tests how handlers take requests that come
// late or twice, which no stream-level fault can single out.
type rpcFault struct {
	prefix    string
	delay     time.Duration
	duplicate bool
}

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

// Loss makes a fraction p of the packets from -> to go missing. Node
// traffic runs over TCP, where a lost segment is retransmitted, so for
// streams loss shows as a stall of LossStall on that fraction of writes;
// gossip packets (UDP) are dropped outright. p <= 0 removes the loss.
func (f *Faults) Loss(from, to int32, p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p <= 0 {
		delete(f.loss, route{from, to})
		return
	}
	if f.loss == nil {
		f.loss = make(map[route]float64)
	}
	f.loss[route{from, to}] = min(p, 1)
}

// LossStall is how long a stream write hit by packet loss waits: about
// Linux's minimum TCP retransmission timeout.
const LossStall = 200 * time.Millisecond

// Heal removes every drop, delay and loss.
func (f *Faults) Heal() { f.SetRules(nil) }

// Rule is one direction's faults in a form that travels as JSON, so a
// chaos runner can set the faults of a node in another process.
//
// A rule with Method hits only RPC calls whose method starts with it:
// DelayMS delays each such call and Duplicate sends it twice (see
// rpcFault); Drop and Loss do not apply to it.
type Rule struct {
	From      int32   `json:"from"`
	To        int32   `json:"to"`
	Drop      bool    `json:"drop,omitempty"`
	DelayMS   int64   `json:"delay_ms,omitempty"`
	Loss      float64 `json:"loss,omitempty"`
	Method    string  `json:"method,omitempty"`
	Duplicate bool    `json:"duplicate,omitempty"`
}

// Rules returns every active rule, ordered by route.
func (f *Faults) Rules() []Rule {
	f.mu.RLock()
	defer f.mu.RUnlock()
	byRoute := map[route]*Rule{}
	get := func(r route) *Rule {
		if byRoute[r] == nil {
			byRoute[r] = &Rule{From: r.from, To: r.to}
		}
		return byRoute[r]
	}
	for r := range f.blocked {
		get(r).Drop = true
	}
	for r, d := range f.delay {
		get(r).DelayMS = d.Milliseconds()
	}
	for r, p := range f.loss {
		get(r).Loss = p
	}
	out := make([]Rule, 0, len(byRoute)+len(f.rpc))
	for _, r := range byRoute {
		out = append(out, *r)
	}
	for r, rf := range f.rpc {
		out = append(out, Rule{From: r.from, To: r.to, Method: rf.prefix, DelayMS: rf.delay.Milliseconds(), Duplicate: rf.duplicate})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		if out[i].To != out[j].To {
			return out[i].To < out[j].To
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// SetRules replaces every fault with rules in one step, so a runner moving
// from one partition to another never passes through a healed network.
func (f *Faults) SetRules(rules []Rule) {
	f.mu.Lock()
	old := f.blocked
	f.blocked, f.delay, f.loss, f.rpc = nil, nil, nil, nil
	for _, r := range rules {
		rt := route{r.From, r.To}
		if r.Method != "" {
			if f.rpc == nil {
				f.rpc = make(map[route]rpcFault)
			}
			f.rpc[rt] = rpcFault{prefix: r.Method, delay: time.Duration(r.DelayMS) * time.Millisecond, duplicate: r.Duplicate}
			continue
		}
		if r.Drop {
			if f.blocked == nil {
				f.blocked = make(map[route]bool)
			}
			f.blocked[rt] = true
		}
		if r.DelayMS > 0 {
			if f.delay == nil {
				f.delay = make(map[route]time.Duration)
			}
			f.delay[rt] = time.Duration(r.DelayMS) * time.Millisecond
		}
		if r.Loss > 0 {
			if f.loss == nil {
				f.loss = make(map[route]float64)
			}
			f.loss[rt] = min(r.Loss, 1)
		}
	}
	var changed []route
	for r := range old {
		if !f.blocked[r] {
			changed = append(changed, r)
		}
	}
	for r := range f.blocked {
		if !old[r] {
			changed = append(changed, r)
		}
	}
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

// WriteDelay is how long one stream write from -> to waits: the route's
// delay, plus LossStall when the write draws a lost packet.
func (f *Faults) WriteDelay(from, to int32) time.Duration {
	if f == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.delay[route{from, to}]
	if p := f.loss[route{from, to}]; p > 0 && rand.Float64() < p {
		d += LossStall
	}
	return d
}

// RPCFault returns how long an RPC call of method from -> to waits before
// it is sent, and whether a late copy of it follows.
func (f *Faults) RPCFault(from, to int32, method string) (time.Duration, bool) {
	if f == nil {
		return 0, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	rf, ok := f.rpc[route{from, to}]
	if !ok || !strings.HasPrefix(method, rf.prefix) {
		return 0, false
	}
	return rf.delay, rf.duplicate
}

// Drops reports whether one datagram from -> to is lost: always while the
// route is blocked, and with the route's loss probability otherwise.
func (f *Faults) Drops(from, to int32) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.blocked[route{from, to}] {
		return true
	}
	p := f.loss[route{from, to}]
	return p > 0 && rand.Float64() < p
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
