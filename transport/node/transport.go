package node

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
)

// Transport is a node's single TCP endpoint for internal traffic: raft
// streams for any number of groups, and RPCs. It is safe for concurrent use.
type Transport struct {
	// stalledAt is when OnStall was last called (unix nanoseconds).
	stalledAt atomic.Int64

	id      int32
	cfg     Config
	logger  hclog.Logger
	faults  *Faults
	metrics *metrics
	ymux    *yamux.Config
	ln      net.Listener

	// unsubscribe stops fault notifications; called once by Close.
	unsubscribe func()

	// ctx is cancelled by Close. It aborts dials, waits and RPC handlers.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts every goroutine the transport starts; Close waits for it.
	// Add happens only under mu with closed false, so no Add races Wait.
	wg sync.WaitGroup

	// mu guards the fields below. It is never held across I/O, and never
	// taken while holding handlersMu or Faults' lock.
	mu     sync.Mutex
	closed bool
	links  map[*link]struct{}     // every live session, both directions
	out    map[int32]*link        // the session this node dialed, per peer
	dials  map[int32]*pendingDial // the dial in progress, per peer
	// probing holds the peers whose listener is being probed after a lost
	// session, and whether another session was lost meanwhile (see
	// linkLostLocked).
	probing map[int32]bool

	// downMu guards down, which holds when each peer marked down last
	// refused a connection (see PeerDown). Its own lock: Metadata asks
	// for every replica, and mu is taken by every stream open.
	downMu sync.Mutex
	down   map[int32]time.Time

	// handlersMu guards handlers. It is separate from mu because every
	// inbound RPC reads it.
	handlersMu sync.RWMutex
	handlers   map[string]Handler

	// Raft mux (under mu): the outbound mux streams, the registered
	// groups, and calls held for groups not started yet.
	muxes     map[muxKey]*muxConn
	rgroups   map[string]*RaftGroup
	held      map[string]*heldCalls
	heldCount int
	// stalledMu guards stalled, the groups with a follower whose last
	// append failed (RaftGroup.Stalled).
	stalledMu sync.Mutex
	stalled   map[*RaftGroup]bool
	// raw holds the raft mux connections and their peers.
	raw map[*faultConn]int32
	// controlLost holds the peers whose control stream failed and has not
	// connected again (see controlUp).
	controlLost map[int32]bool
	// controlLostAt is when each of them failed.
	controlLostAt map[int32]time.Time
	// raftTimeout bounds a raft call (Config.RaftTimeout).
	raftTimeout time.Duration

	// liveMu guards live, the peers whose liveness is watched. It is
	// taken under mu, never the other way round.
	liveMu sync.RWMutex
	live   map[int32]*peerLive
}

// Listen starts a Transport listening on cfg.Addr.
func Listen(cfg Config) (*Transport, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RaftTimeout == 0 {
		cfg.RaftTimeout = DefaultRaftTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.LivenessTimeout == 0 {
		cfg.LivenessTimeout = DefaultLivenessTimeout
	}
	if cfg.Linger == 0 {
		cfg.Linger = min(DefaultLinger, cfg.LivenessTimeout/8)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("node-transport")
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		id:       cfg.ID,
		cfg:      cfg,
		logger:   logger,
		faults:   cfg.Faults,
		metrics:  newMetrics(cfg.Registerer),
		ymux:     yamuxConfig(logger),
		ln:       ln,
		ctx:      ctx,
		cancel:   cancel,
		links:    make(map[*link]struct{}),
		out:      make(map[int32]*link),
		dials:    make(map[int32]*pendingDial),
		probing:  make(map[int32]bool),
		down:     make(map[int32]time.Time),
		handlers: make(map[string]Handler),

		muxes:         make(map[muxKey]*muxConn),
		rgroups:       make(map[string]*RaftGroup),
		held:          make(map[string]*heldCalls),
		controlLost:   make(map[int32]bool),
		controlLostAt: make(map[int32]time.Time),
		raw:           make(map[*faultConn]int32),
		stalled:       make(map[*RaftGroup]bool),
		raftTimeout:   cfg.RaftTimeout,
		live:          make(map[int32]*peerLive),
	}
	t.unsubscribe = cfg.Faults.Subscribe(t.faultsChanged)
	t.goFunc(t.acceptLoop)
	return t, nil
}

// ID returns this node's id.
func (t *Transport) ID() int32 { return t.id }

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Close stops the listener, closes every session and stream layer, and waits
// for the transport's goroutines, including running RPC handlers (their ctx
// is cancelled). Later calls return nil at once.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	links := make([]*link, 0, len(t.links))
	for l := range t.links {
		links = append(links, l)
	}
	raws := make([]*faultConn, 0, len(t.raw))
	for c := range t.raw {
		raws = append(raws, c)
	}
	rgroups := make([]*RaftGroup, 0, len(t.rgroups))
	for _, g := range t.rgroups {
		rgroups = append(rgroups, g)
	}
	var held []*inbound
	for name := range t.held {
		held = append(held, t.takeHeldLocked(name)...)
	}
	t.mu.Unlock()
	for _, in := range held {
		in.answer(raft.RPCResponse{Error: errNoGroupHere})
	}
	for _, g := range rgroups {
		g.Close()
	}

	t.unsubscribe()
	t.cancel()
	err := t.ln.Close()
	for _, l := range links {
		l.close()
	}
	for _, c := range raws {
		c.Close()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// goFunc runs f on a goroutine that Close waits for. It reports false, and
// does not run f, once the transport is closed.
func (t *Transport) goFunc(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.goLocked(f)
	return true
}

// goLocked is goFunc for callers that hold mu and have checked closed.
func (t *Transport) goLocked(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

func (t *Transport) acceptLoop() {
	var backoff time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.logger.Error("accept failed", "error", err, "retry-in", backoff)
			if !t.sleep(backoff) {
				return
			}
			continue
		}
		backoff = 0
		if !t.goFunc(func() { t.serveInbound(conn) }) {
			conn.Close()
			return
		}
	}
}

// sleep waits d, or less if the transport closes; it reports whether the
// transport is still open.
func (t *Transport) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// faultsChanged resets every session on a route whose drop rule changed, in
// either direction, so no frame is half-delivered across the change. Raft
// and RPC callers redial on their next use.
func (t *Transport) faultsChanged(from, to int32) {
	var peer int32
	switch t.id {
	case from:
		peer = to
	case to:
		peer = from
	default:
		return
	}
	t.mu.Lock()
	var doomed []*link
	for l := range t.links {
		if l.peer == peer {
			doomed = append(doomed, l)
		}
	}
	var raws []*faultConn
	for c, p := range t.raw {
		if p == peer {
			raws = append(raws, c)
		}
	}
	t.mu.Unlock()
	for _, l := range doomed {
		l.close()
	}
	for _, c := range raws {
		c.Close()
	}
	if len(doomed) > 0 {
		t.logger.Debug("reset sessions after fault change", "peer", peer, "sessions", len(doomed))
	}
}
