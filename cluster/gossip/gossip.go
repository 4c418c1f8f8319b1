// Package gossip tells each Quire node which other nodes exist, where they
// listen and whether they are alive, using hashicorp/memberlist. It carries
// liveness and addresses only: placement is decided elsewhere.
package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Gossip is one node's membership in the cluster.
//
// Lock order: memberlist's internal locks, then metaMu or mu. memberlist
// calls delegates holding its node lock and they take mu, so nothing may
// call into memberlist while holding mu or metaMu.
type Gossip struct {
	cfg  Config
	t    timings
	log  hclog.Logger
	ml   *memberlist.Memberlist
	self int32
	addr string // advertised gossip address, fixed at Start

	// metaMu guards meta, leaving and wire: what NodeMeta hands memberlist.
	metaMu  sync.Mutex
	meta    NodeMeta
	leaving bool
	wire    []byte

	// mu guards records, members, byAddr, byHost and subs.
	mu      sync.Mutex
	records map[int32]*record
	members []Member // published snapshot, sorted by id
	byAddr  map[string]int32
	byHost  map[string]int32 // -1 when several members share the host
	subs    []func()

	// remembered are the peers an earlier run wrote to cfg.PeersFile;
	// written is what this run last wrote there (notifyLoop only).
	remembered []string
	written    string

	kick    chan struct{} // cap 1: early refresh requested
	changed chan struct{} // cap 1: subscribers owe a call
	stop    chan struct{} // closed by Shutdown
	wg      sync.WaitGroup

	// lifeMu serializes UpdateMeta, Leave and Shutdown, since memberlist
	// panics on Leave after Shutdown. It guards left and down.
	lifeMu sync.Mutex
	left   bool
	down   bool
}

// Start binds gossip, announces this node, and joins cfg.Join in the
// background.
func Start(cfg Config) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wire, err := encodeMeta(cfg.Meta, false)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	g := &Gossip{
		cfg:        cfg,
		log:        logger.Named("gossip"),
		self:       cfg.Meta.ID,
		meta:       cfg.Meta,
		wire:       wire,
		records:    make(map[int32]*record),
		remembered: readPeers(cfg.PeersFile),
		kick:       make(chan struct{}, 1),
		changed:    make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	if err := g.create(); err != nil {
		return nil, err
	}
	g.refresh()
	g.goFunc(g.refreshLoop)
	g.goFunc(g.notifyLoop)
	g.goFunc(g.joinLoop)
	g.log.Info("gossip started", "id", g.self, "addr", g.addr, "join", cfg.Join, "remembered", g.remembered)
	return g, nil
}

// create builds the transport and the memberlist.
func (g *Gossip) create() error {
	mc, t := g.cfg.memberlistConfig()
	g.t = t
	stdlog := log.New(mlWriter{g.log}, "", 0)
	tr, err := g.transport(stdlog)
	if err != nil {
		return err
	}
	d := delegate{g}
	mc.Name = nodeName(g.self)
	mc.Transport = tr
	mc.Logger = stdlog
	mc.Delegate, mc.Events, mc.Alive, mc.Merge, mc.Conflict, mc.Ping = d, d, d, d, d, d
	if g.cfg.AdvertiseAddr != "" {
		host, port, _ := splitIPPort(g.cfg.AdvertiseAddr, false) // validated
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
		if port == 0 {
			mc.AdvertisePort = tr.GetAutoBindPort()
		}
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return fmt.Errorf("gossip: node %d: %w", g.self, err)
	}
	g.ml = ml
	g.addr = ml.LocalNode().Address()
	return nil
}

// boundTransport is a memberlist transport that knows its bound port.
type boundTransport interface {
	memberlist.NodeAwareTransport
	GetAutoBindPort() int
}

// transport binds the gossip listeners, behind the fault hook if one is
// configured.
func (g *Gossip) transport(stdlog *log.Logger) (boundTransport, error) {
	host, port, _ := splitIPPort(g.cfg.BindAddr, true) // validated
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    stdlog,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: bind %s: %w", g.cfg.BindAddr, err)
	}
	if g.cfg.Blocked == nil {
		return nt, nil
	}
	return newFaultTransport(nt, g.self, g.cfg.Blocked, g), nil
}

// goFunc runs f on a goroutine that Shutdown waits for.
func (g *Gossip) goFunc(f func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

// Addr is the gossip address peers reach this node at: the advertised
// address, which with port 0 carries the port actually bound.
func (g *Gossip) Addr() string { return g.addr }

// Members returns every node this node has seen, itself included, sorted
// by id. Dead and left nodes stay listed, and after Shutdown the last
// view remains.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.members)
}

// Member returns node id as this node sees it.
func (g *Gossip) Member(id int32) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i, ok := slices.BinarySearchFunc(g.members, id, func(m Member, id int32) int {
		return cmp.Compare(m.Meta.ID, id)
	})
	if !ok {
		return Member{}, false
	}
	return g.members[i], true
}

// Alive reports whether node id is known and alive.
func (g *Gossip) Alive(id int32) bool {
	m, ok := g.Member(id)
	return ok && m.State == StateAlive
}

// Subscribe registers fn to run whenever the member list, a member's state
// or a member's meta changes. Calls come from one goroutine, never
// concurrently, and changes that happen while fn runs coalesce into one
// later call; fn should read Members rather than assume what changed.
func (g *Gossip) Subscribe(fn func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subs = append(g.subs, fn)
}

// UpdateMeta replaces this node's meta and gossips it. ID and ClusterID
// cannot change. An error after the meta was set locally only means the
// broadcast was not confirmed in time; it still spreads.
func (g *Gossip) UpdateMeta(m NodeMeta) error {
	if m.ID != g.self || m.ClusterID != g.cfg.Meta.ClusterID {
		return fmt.Errorf("gossip: node %d: UpdateMeta cannot change ID or ClusterID", g.self)
	}
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.down {
		return ErrClosed
	}
	if err := g.setMeta(m, g.left); err != nil {
		return err
	}
	return g.broadcastMeta(g.t.broadcast)
}

// setMeta encodes m for NodeMeta to hand out.
func (g *Gossip) setMeta(m NodeMeta, leaving bool) error {
	wire, err := encodeMeta(m, leaving)
	if err != nil {
		return err
	}
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	g.meta, g.leaving, g.wire = m, leaving, wire
	return nil
}

// broadcastMeta re-announces this node with its current meta.
func (g *Gossip) broadcastMeta(timeout time.Duration) error {
	if err := g.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("gossip: node %d: update meta: %w", g.self, err)
	}
	return nil
}

// Leave announces a graceful departure and waits up to timeout for it to
// go out; peers then report this node Left rather than Dead. Gossip keeps
// running until Shutdown. Leaving twice is a no-op.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.down {
		return ErrClosed
	}
	if g.left {
		return nil
	}
	g.left = true
	deadline := time.Now().Add(timeout)
	g.metaMu.Lock()
	m := g.meta
	g.metaMu.Unlock()
	if err := g.setMeta(m, true); err != nil {
		return err
	}
	// Peers that miss the flag report Dead instead of Left; the leave
	// itself is still worth sending.
	if err := g.broadcastMeta(timeout); err != nil {
		g.log.Debug("leave flag not confirmed", "error", err)
	}
	if err := g.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("gossip: node %d: leave: %w", g.self, err)
	}
	g.log.Info("left cluster", "id", g.self)
	return nil
}

// Shutdown stops gossip without announcing a leave, so peers detect this
// node as failed, as after a crash. It waits for this package's
// goroutines, which may take up to memberlist's TCP timeout if a join is
// dialing an unreachable host. Later calls return nil.
func (g *Gossip) Shutdown() error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.down {
		return nil
	}
	g.down = true
	close(g.stop)
	err := g.ml.Shutdown()
	g.wg.Wait()
	if err != nil {
		return fmt.Errorf("gossip: node %d: shutdown: %w", g.self, err)
	}
	return nil
}

// Close leaves the cluster gracefully, then shuts down. It is idempotent.
func (g *Gossip) Close() error {
	err := g.Leave(g.t.broadcast)
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return errors.Join(err, g.Shutdown())
}
