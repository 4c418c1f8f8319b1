package gossip

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Config configures one node's gossip.
type Config struct {
	// Meta is what this node advertises. Meta.ID (>= 0) also names the
	// node in memberlist, and Meta.ClusterID is what peers must share.
	Meta NodeMeta
	// BindAddr is the IP:port gossip listens on, TCP and UDP. An empty
	// host binds every interface; port 0 picks a free port (see Addr).
	BindAddr string
	// AdvertiseAddr is the IP:port peers should gossip to when it differs
	// from BindAddr (NAT, or a wildcard bind). Optional.
	AdvertiseAddr string
	// Join lists gossip host:port addresses of other nodes. Start retries
	// them in the background until one answers, so nodes may start in any
	// order.
	Join []string
	// PeersFile, when set, is where this node remembers the gossip
	// addresses of its peers between runs. A restarted node joins them as
	// well as Join: a node whose Join names only itself (the first seed)
	// would otherwise hear of no one until a peer happened to reconnect,
	// and count every other node dead meanwhile.
	PeersFile string
	// Fast selects test timings: a failed node is declared dead in about
	// two seconds instead of about six, at the price of more traffic and
	// more false suspicion under load.
	Fast bool
	// Logger receives gossip and memberlist logs; nil discards them.
	Logger hclog.Logger
	// Blocked, when set, is asked about every gossip packet and dial:
	// traffic from fromID to toID is dropped while it returns true. For
	// in-process tests that partition nodes; see faultTransport.
	Blocked func(fromID, toID int32) bool
}

// Validate rejects a Config that Start could not run with, naming the
// setting at fault.
func (c *Config) Validate() error {
	if c.Meta.ID < 0 {
		return fmt.Errorf("gossip: Meta.ID %d: must be >= 0", c.Meta.ID)
	}
	if _, _, err := splitIPPort(c.BindAddr, true); err != nil {
		return fmt.Errorf("gossip: BindAddr: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort(c.AdvertiseAddr, false); err != nil {
			return fmt.Errorf("gossip: AdvertiseAddr: %w", err)
		}
	}
	if err := checkMeta(c.Meta); err != nil {
		return fmt.Errorf("gossip: Meta: %w", err)
	}
	return nil
}

// splitIPPort splits an IP:port. Host names are refused because
// memberlist's transport binds and advertises IPs only.
func splitIPPort(addr string, emptyHostOK bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", portStr, err)
	}
	switch {
	case host == "" && emptyHostOK:
		host = "0.0.0.0"
	case net.ParseIP(host) == nil:
		return "", 0, fmt.Errorf("host %q: not an IP address", host)
	}
	return host, int(port), nil
}

// timings are this package's own periods, next to memberlist's.
type timings struct {
	// refresh is how often member states are re-derived; one probe
	// interval, as a state cannot change faster than probes observe it.
	refresh time.Duration
	// suspectBase and suspectPerPeer give how long a peer may go without
	// acknowledging a probe before it is shown Suspect (see suspectAfter).
	suspectBase, suspectPerPeer time.Duration
	// joinMin and joinMax bound the backoff between join attempts.
	joinMin, joinMax time.Duration
	// reconnect is how often one dead member is re-joined.
	reconnect time.Duration
	// broadcast bounds how long UpdateMeta and Leave wait for their
	// message to go out.
	broadcast time.Duration
}

// memberlistConfig returns memberlist's config and ours for c.Fast.
func (c *Config) memberlistConfig() (*memberlist.Config, timings) {
	mc := memberlist.DefaultLANConfig()
	// A node restarted at a new address takes its name back this long
	// after its old incarnation died, instead of being refused as a
	// conflict until memberlist forgets the dead one.
	mc.DeadNodeReclaimTime = 10 * time.Second
	t := timings{joinMin: time.Second, joinMax: 5 * time.Second, reconnect: 10 * time.Second, broadcast: 5 * time.Second}
	if c.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		// Eight probe intervals of suspicion keep memberlist's verdict
		// (Dead) later than our ack-based Suspect, so both are seen.
		mc.SuspicionMult = 8
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.GossipToTheDeadTime = 5 * time.Second
		mc.DeadNodeReclaimTime = time.Second
		t.reconnect = time.Second
		t.broadcast = 2 * time.Second
	}
	t.refresh = mc.ProbeInterval
	t.suspectBase = mc.ProbeInterval + mc.ProbeTimeout
	t.suspectPerPeer = 2 * mc.ProbeInterval
	return mc, t
}

// suspectAfter is how long a peer may go unacknowledged before it is shown
// Suspect. memberlist probes one peer per interval in a shuffled round, so
// a healthy peer is probed at least every 2*peers-1 intervals; one more
// interval and a probe timeout are slack.
func (t timings) suspectAfter(peers int) time.Duration {
	return t.suspectBase + time.Duration(max(peers, 1))*t.suspectPerPeer
}
