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
	return nil
}
