package node

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Probe timing: a killed process's connections and its listener close a
// moment apart, so a connect that races its exit can still complete;
// probing a few times apart tells that from a peer that is up.
var probeDelays = []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}

const (
	probeTimeout = time.Second

	// downFor is how long a mark lasts unless renewed (RPC calls to a
	// marked peer fail fast, PeerDown reports it). While the mark stands
	// the peer is re-probed every reprobeInterval, and each probe it does
	// not accept renews it, so the mark lasts as long as the process is
	// gone, not a fixed time: the first accepted connect, or a session
	// with the peer, clears it.
	downFor         = 2 * time.Second
	reprobeInterval = 250 * time.Millisecond
	// watchDownFor bounds the re-probing of a peer that never comes back
	// (a node removed without leaving); by then gossip has long declared
	// it dead.
	watchDownFor = 5 * time.Minute
)

// linkLostLocked runs, with mu held, when a session with peer ends. If the
// config asks to hear of dead peers, it probes the peer's listener. One
// probe runs per peer at a time (several sessions to one peer end together
// when it dies); a loss during a probe that found the peer up probes again,
// as the peer may have died after that probe's last connect.
func (t *Transport) linkLostLocked(peer int32) {
	if t.cfg.OnPeerDown == nil || t.closed || peer == t.id {
		return
	}
	if _, running := t.probing[peer]; running {
		t.probing[peer] = true
		return
	}
	t.probing[peer] = false
	t.goLocked(func() { t.probe(peer) })
}

func (t *Transport) probe(peer int32) {
	for {
		down := t.peerRefuses(peer)
		t.mu.Lock()
		again := t.probing[peer] && !down && !t.closed
		if again {
			t.probing[peer] = false
		} else {
			delete(t.probing, peer)
		}
		t.mu.Unlock()
		if down && t.markDown(peer) {
			t.logger.Info("peer process is gone: its listener refuses connections", "peer", peer)
			t.metrics.peersGone.Inc()
			t.cfg.OnPeerDown(peer)
			t.watchDown(peer)
			return
		}
		if !again {
			return
		}
	}
}

// markDown marks peer down unless a session with it came up meanwhile
// (the peer restarted between the refused connect and now).
func (t *Transport) markDown(peer int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for l := range t.links {
		if l.peer == peer && !l.ys.IsClosed() {
			return false
		}
	}
	for _, p := range t.raw {
		if p == peer {
			return false
		}
	}
	t.downMu.Lock()
	t.down[peer] = time.Now()
	t.downMu.Unlock()
	return true
}

// watchDown re-probes a peer marked down until the mark is cleared (a
// session with it came up), its listener accepts again, or watchDownFor
// passes. Each connect that is not accepted renews the mark: a peer whose
// process was gone and that cannot be reached now (its host went too, or
// a partition) has not come back either.
func (t *Transport) watchDown(peer int32) {
	deadline := time.Now().Add(watchDownFor)
	for time.Now().Before(deadline) {
		if !t.sleep(reprobeInterval) {
			return
		}
		t.downMu.Lock()
		_, marked := t.down[peer]
		t.downMu.Unlock()
		if !marked {
			return
		}
		accepted := t.connectOnce(peer) == probeAccepted
		t.downMu.Lock()
		if _, ok := t.down[peer]; ok {
			if accepted {
				delete(t.down, peer)
			} else {
				t.down[peer] = time.Now()
			}
		}
		t.downMu.Unlock()
		if accepted {
			t.logger.Info("peer is listening again", "peer", peer)
			return
		}
	}
}

// PeerDown reports whether peer's listener refused a connection within
// downFor and no session with it has come up since: its process is gone,
// which gossip may not know for some seconds yet.
func (t *Transport) PeerDown(peer int32) bool {
	t.downMu.Lock()
	defer t.downMu.Unlock()
	at, ok := t.down[peer]
	return ok && time.Since(at) < downFor
}

// peerUpLocked forgets a refusal once a session with peer comes up.
func (t *Transport) peerUpLocked(peer int32) {
	t.downMu.Lock()
	delete(t.down, peer)
	t.downMu.Unlock()
}

// peerRefuses reports whether peer's listener refuses a connection: its
// process has exited. A peer that cannot be reached at all (a partition,
// a dead host) is not reported; timeouts decide for those.
func (t *Transport) peerRefuses(peer int32) bool {
	for _, d := range probeDelays {
		if !t.sleep(d) {
			return false
		}
		switch t.connectOnce(peer) {
		case probeAccepted:
			continue
		case probeRefused:
			return true
		default:
			return false
		}
	}
	return false
}

type probeResult int

const (
	probeAccepted probeResult = iota
	probeRefused
	probeUnknown // unreachable, blocked by a fault, or unresolvable
)

// connectOnce makes one TCP connect to peer's listener and closes it
// before the hello, which the peer drops quietly.
func (t *Transport) connectOnce(peer int32) probeResult {
	addr, err := t.resolve(peer)
	if err != nil || t.faults.Blocked(t.id, peer) {
		return probeUnknown
	}
	dialer := net.Dialer{Timeout: probeTimeout}
	conn, err := dialer.DialContext(t.ctx, "tcp", addr)
	switch {
	case err == nil:
		conn.Close()
		return probeAccepted
	case errors.Is(err, syscall.ECONNREFUSED):
		return probeRefused
	default:
		return probeUnknown
	}
}
