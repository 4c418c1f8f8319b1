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
// config asks to hear of dead peers, it probes the peer's listener once per
// loss (several sessions to one peer end together when it dies).
func (t *Transport) linkLostLocked(peer int32) {
	if t.cfg.OnPeerDown == nil || t.closed || t.probing[peer] || peer == t.id {
		return
	}
	t.probing[peer] = true
	t.goLocked(func() {
		down := t.peerRefuses(peer)
		t.mu.Lock()
		delete(t.probing, peer)
		t.mu.Unlock()
		if down {
			t.logger.Info("peer process is gone: its listener refuses connections", "peer", peer)
			t.cfg.OnPeerDown(peer)
		}
	})
}

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
