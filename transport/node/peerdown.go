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

const probeTimeout = time.Second

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
	t.goLocked(func() {
		for {
			down := t.peerRefuses(peer)
			t.mu.Lock()
			if down {
				t.down[peer] = time.Now()
				t.metrics.peersGone.Inc()
			}
			again := t.probing[peer] && !down && !t.closed
			if again {
				t.probing[peer] = false
			} else {
				delete(t.probing, peer)
			}
			t.mu.Unlock()
			if down {
				t.logger.Info("peer process is gone: its listener refuses connections", "peer", peer)
				t.cfg.OnPeerDown(peer)
			}
			if !again {
				return
			}
		}
	})
}

// downFor is how long after a refused probe the peer counts as down (RPC
// calls to it fail fast, PeerDown reports it), unless a session with it
// comes up first. Long enough to cover a fail-over and gossip's own
// verdict on a crashed node, short enough that a mark nobody clears does
// little harm.
const downFor = 10 * time.Second

// PeerDown reports whether peer's listener was found refusing recently
// and no session with it has come up since: its process is gone, which
// gossip may not know for some seconds yet.
func (t *Transport) PeerDown(peer int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.down[peer]
	return ok && time.Since(at) < downFor
}

// peerUpLocked forgets a refusal once a session with peer comes up.
func (t *Transport) peerUpLocked(peer int32) { delete(t.down, peer) }

// peerRefuses reports whether peer's listener refuses a connection: its
// process has exited. A peer that cannot be reached at all (a partition,
// a dead host) is not reported; timeouts decide for those.
func (t *Transport) peerRefuses(peer int32) bool {
	addr, err := t.resolve(peer)
	if err != nil {
		return false
	}
	for _, d := range probeDelays {
		if !t.sleep(d) || t.faults.Blocked(t.id, peer) {
			return false
		}
		dialer := net.Dialer{Timeout: probeTimeout}
		conn, err := dialer.DialContext(t.ctx, "tcp", addr)
		if err == nil {
			// Closing before the hello: the peer drops it quietly.
			conn.Close()
			continue
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	return false
}
