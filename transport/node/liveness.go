package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Node liveness: one ping stream per pair of nodes says whether a peer
// answers, for every raft group the two share. Groups then need no fast
// heartbeats of their own to notice a dead or cut-off leader: the node
// tells them (Config.OnReachability).

// Liveness defaults.
const (
	DefaultPingInterval    = 100 * time.Millisecond
	DefaultLivenessTimeout = time.Second
)

var errUnreachable = errors.New("node transport: peer unreachable")

// peerLive is what this node knows of one watched peer's liveness.
type peerLive struct {
	// heard is when a frame from the peer last arrived on a stream this
	// node opened: a pong, or a reply. Only round trips count, so a peer
	// that hears us but cannot answer is unreachable, and one that we
	// hear but cannot reach is too.
	heard     atomic.Int64 // UnixNano
	reachable atomic.Bool
	// answered is set by the first frame heard: until then reachable
	// is only the benefit of the doubt a new peer gets.
	answered atomic.Bool
	stop     chan struct{}
	// mu guards up, closed and replaced whenever the peer becomes
	// reachable, which wakes calls waiting for it.
	mu sync.Mutex
	up chan struct{}
}

// WatchPeers sets the peers whose liveness this node tracks, starting a
// pinger for each new one and stopping those no longer listed. A peer
// starts out reachable: without evidence either way, it is given one
// liveness timeout to answer.
func (t *Transport) WatchPeers(ids []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.liveMu.Lock()
	defer t.liveMu.Unlock()
	for id, p := range t.live {
		if !slices.Contains(ids, id) {
			close(p.stop)
			delete(t.live, id)
		}
	}
	for _, id := range ids {
		if id == t.id || t.live[id] != nil {
			continue
		}
		p := &peerLive{stop: make(chan struct{}), up: make(chan struct{})}
		p.heard.Store(time.Now().UnixNano())
		p.reachable.Store(true)
		t.live[id] = p
		t.goLocked(func() { t.pinger(id, p) })
	}
}

func (t *Transport) peerLive(id int32) *peerLive {
	t.liveMu.RLock()
	defer t.liveMu.RUnlock()
	return t.live[id]
}

// Reachable reports whether peer answered within the liveness timeout
// and its process was not just found gone. Peers not watched count as
// reachable: there is no evidence against them.
func (t *Transport) Reachable(peer int32) bool {
	if peer == t.id {
		return true
	}
	if t.PeerDown(peer) {
		return false
	}
	p := t.peerLive(peer)
	return p == nil || p.reachable.Load()
}

// Answers reports whether peer is watched and has answered within the
// liveness timeout, with its process not found gone since: evidence that
// it is up, where Reachable is only the absence of evidence against it.
func (t *Transport) Answers(peer int32) bool {
	if peer == t.id {
		return true
	}
	p := t.peerLive(peer)
	return p != nil && p.answered.Load() && p.reachable.Load() && !t.PeerDown(peer)
}

// heard records a frame from peer on an outbound stream.
func (t *Transport) heard(peer int32) {
	p := t.peerLive(peer)
	if p == nil {
		return
	}
	p.heard.Store(time.Now().UnixNano())
	p.answered.Store(true)
	if !p.reachable.Load() {
		t.setReachable(peer, p, true)
	}
}

func (t *Transport) setReachable(peer int32, p *peerLive, up bool) {
	if p.reachable.Swap(up) == up {
		return
	}
	if up {
		p.mu.Lock()
		close(p.up)
		p.up = make(chan struct{})
		p.mu.Unlock()
		t.logger.Info("peer answers again", "peer", peer)
	} else {
		t.logger.Warn("peer does not answer", "peer", peer, "timeout", t.cfg.LivenessTimeout)
	}
	t.metrics.reachable.WithLabelValues(peerLabel(peer)).Set(boolGauge(up))
	if fn := t.cfg.OnReachability; fn != nil {
		t.goFunc(func() { fn(peer, up) })
	}
}

// pinger pings peer every interval on the control stream and marks it
// unreachable once nothing has come back for the liveness timeout.
func (t *Transport) pinger(peer int32, p *peerLive) {
	interval, timeout := t.cfg.PingInterval, t.cfg.LivenessTimeout
	stallGap := max(timeout-interval, interval+timeout/2)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		h := p.heard.Load()
		if heard, stalled := ownLag(h, now, now.Sub(last), interval, stallGap); stalled {
			p.heard.Store(heard)
			t.noteOwnStall(now.Sub(last))
		} else if heard != h {
			p.heard.CompareAndSwap(h, heard) // a pong that just came wins
		}
		last = now
		if c, err := t.mux(peer, muxControl); err == nil {
			c.ping(false)
		}
		silent := now.Sub(time.Unix(0, p.heard.Load()))
		if t.PeerDown(peer) || silent > timeout {
			t.setReachable(peer, p, false)
		}
	}
}

// ownLag discounts this process's own lag from a peer's silence: given
// when the peer was last heard and how late the pinger ran (gap), it
// returns the heard time to count from and whether the lag was a stall.
// A stall (the process was stopped, or starved past stallGap, long enough
// that its peers may have timed it out) gives the peer a fresh timeout;
// shorter gaps cannot have cost this node its leaderships, as a peer
// notices only a liveness timeout of silence. A shorter lag past two
// intervals (a burst of elections, GC), during which the peer's pongs may
// sit unread, is credited: only the time this process ran counts against
// the peer, or a busy node fences its leaderships over a peer that
// answered all along.
func ownLag(heard int64, now time.Time, gap, interval, stallGap time.Duration) (int64, bool) {
	switch {
	case gap > stallGap:
		return now.UnixNano(), true
	case gap > 2*interval && now.UnixNano()-heard > int64(gap-interval):
		return heard + int64(gap-interval), false
	}
	return heard, false
}

// Confirm asks peer for an answer now and waits for it: nil means the
// peer's process answered after Confirm was called. It fails as soon as
// the peer is known gone, cut off or its control stream breaks, and when
// ctx ends. Knowledge that was true a moment ago is not enough where a
// peer may have just died: the pinger's last pong can be up to a liveness
// timeout old, and a killed peer's closed connection may not have been
// read yet.
func (t *Transport) Confirm(ctx context.Context, peer int32) error {
	if peer == t.id {
		return nil
	}
	c, err := t.mux(peer, muxControl)
	if err != nil {
		return err
	}
	n, wait := c.ping(true)
	if wait == nil {
		return errMuxClosed
	}
	tick := time.NewTicker(confirmPoll)
	defer tick.Stop()
	for {
		select {
		case <-wait:
			var ok bool
			if ok, wait = c.ponged(n); ok {
				return nil
			}
		case <-c.done:
			return errMuxClosed
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			// A cut-off peer's stream stays open; the pinger decides.
			if !t.Reachable(peer) {
				return errUnreachable
			}
		}
	}
}

// confirmPoll is how often Confirm looks whether the pinger has given up
// on the peer.
const confirmPoll = 50 * time.Millisecond

// awaitReachable waits until peer is reachable, deadline passes or abort
// closes, and reports whether it is.
func (t *Transport) awaitReachable(peer int32, deadline time.Time, abort <-chan struct{}) bool {
	for {
		if t.Reachable(peer) {
			return true
		}
		p := t.peerLive(peer)
		var up chan struct{}
		if p != nil {
			p.mu.Lock()
			up = p.up
			p.mu.Unlock()
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		// A peer marked down by a refused connect becomes reachable without
		// a pong (its mark lapses), so wake up now and then to look again.
		timer := time.NewTimer(min(wait, 250*time.Millisecond))
		select {
		case <-up:
		case <-timer.C:
		case <-t.ctx.Done():
			timer.Stop()
			return false
		case <-abort:
			timer.Stop()
			return false
		}
		timer.Stop()
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// noteOwnStall tells OnStall, once for each stall all pingers notice.
func (t *Transport) noteOwnStall(gap time.Duration) {
	now := time.Now().UnixNano()
	last := t.stalledAt.Load()
	if t.cfg.OnStall == nil || time.Duration(now-last) < time.Second || !t.stalledAt.CompareAndSwap(last, now) {
		return
	}
	t.logger.Warn("this process was stopped or starved; peers may have moved on", "gap", gap)
	t.goFunc(func() { t.cfg.OnStall(gap) })
}
