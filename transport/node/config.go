package node

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDialTimeout is used when Config.DialTimeout is zero.
const DefaultDialTimeout = 2 * time.Second

// Config configures a Transport.
type Config struct {
	// ID is this node's id. Peers send it in their hello and use it, in
	// decimal, as this node's raft ServerAddress.
	ID int32

	// Addr is the TCP host:port to listen on. Port 0 picks a free port;
	// Transport.Addr reports the one chosen.
	Addr string

	// Resolve maps a node id to that node's transport address. It is asked
	// on every dial, so membership changes take effect at the next
	// (re)connect. It is never asked for ID: calls to self go to the
	// listener's own address.
	Resolve func(id int32) (addr string, ok bool)

	// Faults, if non-nil, injects drops and delays (tests, chaos). It may be
	// shared with other Transports.
	Faults *Faults

	// Logger receives the transport's and yamux's logs; nil discards them.
	Logger hclog.Logger

	// DialTimeout bounds a TCP connect plus hello, and is how long a dial to
	// a blocked peer hangs before failing. Zero means DefaultDialTimeout.
	DialTimeout time.Duration

	// OnPeerDown, if non-nil, is called when a session with a peer ends
	// and the peer's listener then refuses connections: its process is
	// gone (killed, crashed, stopped). It runs on its own goroutine. A
	// peer that only went silent is not reported.
	OnPeerDown func(peer int32)

	// Registerer, if non-nil, receives the quire_node_transport_* metrics.
	Registerer prometheus.Registerer

	// RaftTimeout bounds a raft call that gets no answer. Zero means
	// DefaultRaftTimeout.
	RaftTimeout time.Duration

	// PingInterval is how often each watched peer is pinged, and
	// LivenessTimeout how long it may go without answering before it
	// counts as unreachable (see WatchPeers). Zero means the defaults.
	PingInterval    time.Duration
	LivenessTimeout time.Duration

	// OnReachability, if non-nil, is called on its own goroutine when a
	// watched peer becomes unreachable (up false) or answers again.
	OnReachability func(peer int32, up bool)

	// Linger is how long a lazy raft frame may wait for others to share
	// its write. It must be well under LivenessTimeout/2 (a ping and its
	// pong both linger) and under the heartbeat interval of any group not
	// marked urgent. Zero means DefaultLinger; negative means none.
	Linger time.Duration

	// OnReconnect, if non-nil, is called on its own goroutine when this
	// node's raft control stream to peer connects again after it failed:
	// the peer may have restarted, and raft leaders should catch it up
	// now rather than at their next retry.
	OnReconnect func(peer int32)

	// OnStall, if non-nil, is called on its own goroutine when this
	// process finds it was stopped or starved for longer than the
	// liveness timeout allows (SIGSTOP, a VM pause, a long GC): its peers
	// may have elected new leaders meanwhile. Called at most once a
	// second.
	OnStall func(gap time.Duration)
}

// DefaultConfig returns a Config with every optional field at its default;
// the caller fills in ID, Addr and Resolve.
func DefaultConfig() Config {
	return Config{DialTimeout: DefaultDialTimeout}
}

// Validate rejects a Config that Listen could not run with.
func (c *Config) Validate() error {
	if c.ID < 0 {
		return fmt.Errorf("node transport: ID %d is negative", c.ID)
	}
	if c.Addr == "" {
		return fmt.Errorf("node transport: Addr is empty")
	}
	if c.Resolve == nil {
		return fmt.Errorf("node transport: Resolve is nil")
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("node transport: DialTimeout %v is negative", c.DialTimeout)
	}
	if c.RaftTimeout < 0 || c.PingInterval < 0 || c.LivenessTimeout < 0 {
		return fmt.Errorf("node transport: negative raft timeout, ping interval or liveness timeout")
	}
	if c.PingInterval > 0 && c.LivenessTimeout > 0 && c.LivenessTimeout < 2*c.PingInterval {
		return fmt.Errorf("node transport: liveness timeout %v must be at least two ping intervals (%v)", c.LivenessTimeout, c.PingInterval)
	}
	return nil
}
