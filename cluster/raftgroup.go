package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/cluster/raftlog"
	"github.com/quirelog/quire/transport/node"
)

// raftGroup is one Raft group hosted by this node: the metadata group or a
// partition group.
type raftGroup struct {
	// name is the group's name on the node transport.
	name  string
	raft  *raft.Raft
	store groupStore
	// trans is what raft was given: mux, or a vote gate around it.
	trans raft.Transport
	mux   *node.RaftGroup
	// gate, when set, keeps a replica that lost its state from voting
	// until it has caught up.
	gate *voteGate
	// servingTerm is the term in which this node, as leader, has applied
	// every entry of earlier terms (its barrier committed). Until then it
	// must not answer as leader: its high watermark could still be behind
	// offsets a previous leader acknowledged.
	servingTerm atomic.Uint64
	// deposedTerm is a term this node led in and learned, from a
	// follower's answer, that a newer one exists: it no longer serves in
	// it, though raft has not stepped down yet.
	deposedTerm atomic.Uint64
	// serving is set while a serve goroutine runs.
	serving  atomic.Bool
	stepping atomic.Bool
	onLeader func(*raftGroup)
	logger   hclog.Logger
	done     chan struct{}
	observer *raft.Observer
	// voters lists the group's voters in preference order: a partition's
	// replicas, preferred leader first. Nil for the metadata group, which
	// elects on its own timers.
	voters []int32
	// doubted is set while a leadership held across a stall of this
	// process is being confirmed (see selfStalled).
	doubted atomic.Bool
	// leaderlessSince (UnixNano, 0 while a leader is known) and nudgedAt
	// belong to the election driver.
	leaderlessSince atomic.Int64
	nudgedAt        atomic.Int64
	askedAt         atomic.Int64
	// quiet is set while the group runs on quiet timeouts (quiesce.go);
	// lastActive is when it last took a write (UnixNano).
	quiet      atomic.Bool
	quietMu    sync.Mutex
	lastActive atomic.Int64
	// kickedAt and kickGap pace restartStalled's barriers (UnixNano, ns).
	kickedAt atomic.Int64
	kickGap  atomic.Int64
	// prompting is set while promptReplication's goroutine runs;
	// promptPeers, under promptMu, are the followers it is to look at.
	prompting   atomic.Bool
	promptMu    sync.Mutex
	promptPeers []int32
}

// groupOptions are what differs between metadata and partition groups.
type groupOptions struct {
	// name identifies the group on the node transport; unique per node.
	name   string
	dir    string
	fsm    raft.FSM
	snaps  raft.SnapshotStore
	logger hclog.Logger
	// restoreOnStart is false for partitions, whose segment files already
	// are their state (see fsm.OpenPartition).
	restoreOnStart    bool
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
	// voters bootstraps a brand-new group with these voters, preferred
	// leader first; nil leaves bootstrapping to the caller (the metadata
	// group). Groups with voters are driven by node liveness.
	voters []int32
	// onLeader runs after this node, newly leader, has caught up.
	onLeader func(*raftGroup)
	// rebuilding marks a replica whose damaged data was wiped: it must not
	// vote until it has caught up (see voteGate).
	rebuilding bool
	// joinExisting says the group has elected leaders before. Finding no
	// state then means this replica's data was lost (a wiped disk), not
	// that the group is new: it joins as a rebuilt replica instead of
	// bootstrapping and voting with a memory it no longer has.
	joinExisting bool
	// onRebuild runs when the group starts as a rebuilt replica.
	onRebuild func()
	// gateIfNew starts a group that has no state behind a closed vote
	// gate: the metadata group cannot tell at start whether its node is
	// founding a new cluster (see bootstrapWith, which opens the gate) or
	// lost its disk and is rejoining one.
	gateIfNew bool
	// shared, when set, is the group's share of the node's Raft log;
	// otherwise the group has its own raft.db in dir.
	shared *raftlog.Store
}

// groupStore is what a group keeps its log and term in: its own bbolt
// file (checkedStore) or its share of the node's Raft log.
type groupStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

func raftID(node int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(node))) }

func (n *Node) raftConfig(o groupOptions) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raftID(n.cfg.NodeID)
	if o.voters != nil {
		// Partition groups: node liveness drives their elections (see
		// elections.go), so their own timers are only a fallback and can be
		// long, which is what makes an idle group cheap: a heartbeat to each
		// follower every tenth of the timeout, a commit round as often as
		// the commit timeout (heartbeats carry the commit index instead).
		c.HeartbeatTimeout = n.cfg.GroupTimeout
		c.ElectionTimeout = n.cfg.GroupTimeout
		c.LeaderLeaseTimeout = n.cfg.GroupTimeout
		// Raft's commit rounds only repeat what the transport's commit flush
		// already told the followers, and retry failed replication, which
		// the node also restarts when a peer comes back (peerReachable).
		c.CommitTimeout = n.quietTimeout()
		c.Logger = quietRaftLogger{o.logger.Named("raft")}
	} else {
		c.HeartbeatTimeout = n.cfg.ElectionTimeout
		c.ElectionTimeout = n.cfg.ElectionTimeout
		c.LeaderLeaseTimeout = n.cfg.ElectionTimeout / 2
		// Followers learn the commit index from the transport's flush (see
		// node.RaftGroup.SetCommitIndex) a moment after each change; raft's
		// own commit rounds need not be frequent.
		c.CommitTimeout = n.cfg.ElectionTimeout / 2
		c.Logger = o.logger.Named("raft")
	}
	// 64 entries of up to a group-commit round each stay well inside the
	// node transport's frame limit.
	c.MaxAppendEntries = 64
	c.SnapshotThreshold = o.snapshotThreshold
	c.SnapshotInterval = o.snapshotInterval
	c.TrailingLogs = o.trailingLogs
	c.NoSnapshotRestoreOnStart = !o.restoreOnStart
	return c
}

// startGroup opens the group's stores and starts raft, bootstrapping it
// when it has no state yet.
func (n *Node) startGroup(o groupOptions) (*raftGroup, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	var store groupStore = o.shared
	if o.shared == nil {
		bolt, err := openRaftStore(filepath.Join(o.dir, "raft.db"))
		if err != nil {
			return nil, fmt.Errorf("raft store %s: %w", o.dir, err)
		}
		store = bolt
	}
	cfg := n.raftConfig(o)
	has, err := raft.HasExistingState(store, store, o.snaps)
	if err != nil {
		store.Close()
		return nil, err
	}
	mux, err := n.nt.RaftGroup(o.name)
	if err != nil {
		store.Close()
		return nil, err
	}
	var trans raft.Transport = mux
	var gate *voteGate
	fail := func(err error) (*raftGroup, error) {
		trans.(raft.WithClose).Close()
		store.Close()
		return nil, err
	}
	resumed := rebuildReason(o.dir) != ""
	if !has && o.joinExisting && !o.rebuilding && !resumed {
		// Either this node's data was lost, or it was stopped before it ever
		// started this replica: it cannot tell which, so it assumes the worse.
		o.logger.Warn("replica has no Raft state but its group has elected leaders before: joining it empty, not voting until caught up")
		o.rebuilding = true
	}
	if resumed && !o.rebuilding {
		o.logger.Warn("replica had not caught up when it last stopped: not voting until it has")
	}
	if o.rebuilding || resumed || (!has && o.gateIfNew) {
		if !resumed {
			if err := markRebuilding(o.dir, markEmpty); err != nil {
				return fail(err)
			}
		}
		gate = newVoteGate(mux, o.logger)
		gate.onOpen = func() {
			if err := clearRebuilding(o.dir); err != nil {
				o.logger.Error("could not clear the rebuild marker; the replica will wait to catch up again after a restart", "error", err)
			}
		}
		trans = gate
		if o.rebuilding && o.onRebuild != nil {
			o.onRebuild()
		}
	}
	if !has && o.voters != nil && !o.rebuilding {
		var servers []raft.Server
		for _, id := range o.voters {
			servers = append(servers, raft.Server{ID: raftID(id), Address: raft.ServerAddress(raftID(id))})
		}
		if err := raft.BootstrapCluster(cfg, store, store, o.snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("bootstrap %s: %w", o.dir, err))
		}
	}
	r, err := raft.NewRaft(cfg, o.fsm, store, store, o.snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("start raft %s: %w", o.dir, err))
	}
	if gate != nil {
		gate.setApplied(r.AppliedIndex)
	}
	mux.SetCommitIndex(r.CommitIndex)
	// The metadata group runs on raft's own short timeouts: its heartbeats
	// must not linger.
	mux.SetUrgent(o.voters == nil)
	g := &raftGroup{name: o.name, raft: r, store: store, trans: trans, mux: mux, gate: gate, done: make(chan struct{}),
		onLeader: o.onLeader, logger: o.logger, voters: o.voters}
	g.lastActive.Store(time.Now().UnixNano())
	mux.OnStaleTerm(g.stepDown)
	mux.OnIdle(func(peer int32, _ uint64) { g.promptReplication(peer) })
	n.addGroup(g)
	g.observer = raft.NewObserver(n.obs.ch, true, observationFilter)
	r.RegisterObserver(g.observer)
	g.serve() // in case it won an election before the observer was there
	return g, nil
}

// promptReplication makes raft send more entries to peer, whose pipeline
// went idle (or closed) while it may lack some (see
// node.RaftGroup.OnIdle): raft sends a pipelined follower more only when a
// new entry arrives, so the node appends one, a barrier. One barrier at a
// time per group, waited for; reports that come meanwhile are looked at
// when it is done, so a follower far behind is led on batch by batch, and
// a follower that has everything, or is down, costs nothing.
func (g *raftGroup) promptReplication(peer int32) {
	g.promptMu.Lock()
	if !slices.Contains(g.promptPeers, peer) {
		g.promptPeers = append(g.promptPeers, peer)
	}
	g.promptMu.Unlock()
	if !g.prompting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for {
				g.promptMu.Lock()
				peers := g.promptPeers
				g.promptPeers = nil
				g.promptMu.Unlock()
				if len(peers) == 0 {
					break
				}
				if g.lacksEntries(peers) {
					_ = g.raft.Barrier(promptTimeout).Error()
				}
			}
			g.prompting.Store(false)
			// A report that came between the last look and the flag's
			// release would be lost without this.
			g.promptMu.Lock()
			more := len(g.promptPeers) > 0
			g.promptMu.Unlock()
			if !more || !g.prompting.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// promptTimeout bounds how long a replication prompt's barrier may wait
// to be queued.
const promptTimeout = 10 * time.Second

// lacksEntries reports whether this node leads the group and one of peers
// is known, in this term, to lack entries of its log.
func (g *raftGroup) lacksEntries(peers []int32) bool {
	if g.raft.State() != raft.Leader {
		return false
	}
	term, last := g.raft.CurrentTerm(), g.raft.LastIndex()
	for _, p := range peers {
		if idx, ok := g.mux.Matched(p, term); ok && idx < last {
			return true
		}
	}
	return false
}

// serve makes a newly elected leader serve: it commits a barrier, so that
// every entry of earlier terms is applied, then marks the term serving.
// It runs on leadership observations; one goroutine per group at a time,
// and only while the group leads without serving.
func (g *raftGroup) serve() {
	if g.raft.State() != raft.Leader || g.servingTerm.Load() == g.raft.CurrentTerm() {
		return
	}
	if !g.serving.CompareAndSwap(false, true) {
		return
	}
	go func() {
		g.serveTerm()
		g.serving.Store(false)
		// A leadership that began while this goroutine was finishing was
		// turned away by the flag above: look once more.
		if g.raft.State() == raft.Leader && g.servingTerm.Load() != g.raft.CurrentTerm() {
			g.serve()
		}
	}()
}

func (g *raftGroup) serveTerm() {
	backoff := 50 * time.Millisecond
	for {
		if g.raft.State() != raft.Leader {
			return
		}
		term := g.raft.CurrentTerm()
		if g.servingTerm.Load() == term {
			return
		}
		if err := g.raft.Barrier(10 * time.Second).Error(); err != nil {
			g.logger.Debug("leader barrier failed", "term", term, "error", err)
			select {
			case <-g.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if g.raft.State() == raft.Leader && g.raft.CurrentTerm() == term {
			g.servingTerm.Store(term)
			if g.onLeader != nil {
				g.onLeader(g)
			}
			return
		}
	}
}

// stepDown runs when a follower answered this node's heartbeat of term
// with a newer term: if the node still leads in term, it stops serving in
// it at once, and commits a barrier, whose replication makes raft see the
// newer term and step down (hashicorp/raft ignores terms in heartbeat
// answers). An answer to a heartbeat of an earlier leadership, arriving
// after this node was elected again, deposes nothing: marking the new
// term deposed would leave the group leaderless for clients for good,
// since nothing clears the mark while raft keeps leading.
func (g *raftGroup) stepDown(term uint64) {
	if g.raft.State() != raft.Leader || g.raft.CurrentTerm() != term {
		return
	}
	g.deposedTerm.Store(term)
	if !g.stepping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer g.stepping.Store(false)
		g.raft.Barrier(5 * time.Second).Error()
	}()
}

func (g *raftGroup) isStopped() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// stop shuts raft down and closes the stores. Safe to call once.
func (g *raftGroup) stop() error {
	close(g.done)
	// The transport goes first: raft's calls to peers that are gone would
	// otherwise hold its shutdown for the raft call timeout.
	g.trans.(raft.WithClose).Close()
	f := g.raft.Shutdown()
	// hashicorp/raft's pipeline replication can stay blocked handing a
	// response to a replication goroutine that already quit, and Shutdown
	// then waits forever. Bound the wait: a stuck goroutine is leaked
	// rather than hanging the node's shutdown.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		err = errors.New("raft shutdown did not finish within 15s; continuing")
	}
	if g.observer != nil {
		g.raft.DeregisterObserver(g.observer)
	}
	if cerr := g.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// leaderTerm reports whether this node leads the group and has caught up
// in its term, and the term.
func (g *raftGroup) leaderTerm() (bool, int32) {
	if g.raft.State() != raft.Leader {
		return false, -1
	}
	term := g.raft.CurrentTerm()
	if g.servingTerm.Load() != term || g.deposedTerm.Load() == term {
		return false, -1
	}
	return true, int32(term)
}
