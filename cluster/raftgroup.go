package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/cluster/raftlog"
)

// raftGroup is one Raft group hosted by this node: the metadata group or a
// partition group.
type raftGroup struct {
	raft  *raft.Raft
	store groupStore
	trans raft.Transport
	// gate, when set, keeps a replica that lost its state from voting
	// until it has caught up.
	gate *voteGate
	// servingTerm is the term in which this node, as leader, has applied
	// every entry of earlier terms (its barrier committed). Until then it
	// must not answer as leader: its high watermark could still be behind
	// offsets a previous leader acknowledged.
	servingTerm atomic.Uint64
	done        chan struct{}
	observer    *raft.Observer
	// hurryMu orders hurryElection's changes to raft's timeouts; hurryGen
	// names the latest, so only its own timer restores the defaults.
	hurryMu  sync.Mutex
	hurryGen uint64
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
	// voters bootstraps a brand-new group with this configuration; nil
	// leaves bootstrapping to the caller.
	voters []raft.Server
	// observe feeds heartbeat and leader observations to the node.
	observe bool
	// onLeader runs after this node, newly leader, has caught up.
	onLeader func()
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
	c.HeartbeatTimeout = n.cfg.ElectionTimeout
	c.ElectionTimeout = n.cfg.ElectionTimeout
	c.LeaderLeaseTimeout = leaseTimeout(n.cfg.ElectionTimeout)
	c.CommitTimeout = 5 * time.Millisecond
	c.MaxAppendEntries = 256
	c.SnapshotThreshold = o.snapshotThreshold
	c.SnapshotInterval = o.snapshotInterval
	c.TrailingLogs = o.trailingLogs
	c.NoSnapshotRestoreOnStart = !o.restoreOnStart
	c.Logger = o.logger.Named("raft")
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
	sl, err := n.nt.StreamLayer(o.name)
	if err != nil {
		store.Close()
		return nil, err
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  sl,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  o.logger.Named("transport"),
	})
	var trans raft.Transport = nt
	var gate *voteGate
	fail := func(err error) (*raftGroup, error) {
		trans.(interface{ Close() error }).Close()
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
		gate = newVoteGate(nt, o.logger)
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
		if err := raft.BootstrapCluster(cfg, store, store, o.snaps, trans, raft.Configuration{Servers: o.voters}); err != nil {
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
	g := &raftGroup{raft: r, store: store, trans: trans, gate: gate, done: make(chan struct{})}
	if o.observe {
		g.observer = raft.NewObserver(n.observations, false, heartbeatFilter)
		r.RegisterObserver(g.observer)
	}
	go g.watchLeadership(o.logger, o.onLeader)
	return g, nil
}

// watchLeadership commits a barrier whenever this node leads in a term it
// has not yet caught up in, then marks the term as serving. It also polls,
// because raft's leader channel keeps only the latest edge and a barrier
// can time out while the node stays leader.
func (g *raftGroup) watchLeadership(logger hclog.Logger, onLeader func()) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-g.raft.LeaderCh():
		case <-tick.C:
		}
		if g.raft.State() != raft.Leader {
			continue
		}
		term := g.raft.CurrentTerm()
		if g.servingTerm.Load() == term {
			continue
		}
		if err := g.raft.Barrier(5 * time.Second).Error(); err != nil {
			logger.Warn("leader barrier failed", "term", term, "error", err)
			continue
		}
		if g.raft.State() == raft.Leader && g.raft.CurrentTerm() == term {
			g.servingTerm.Store(term)
			if onLeader != nil {
				onLeader()
			}
		}
	}
}

// stop shuts raft down and closes the stores. Safe to call once.
func (g *raftGroup) stop() error {
	close(g.done)
	if g.observer != nil {
		g.raft.DeregisterObserver(g.observer)
	}
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
	if c, ok := g.trans.(interface{ Close() error }); ok {
		c.Close()
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
	if g.servingTerm.Load() != term {
		return false, -1
	}
	return true, int32(term)
}

// hurryElection runs when the node transport finds that the process of
// dead, this follower's leader, is gone. Waiting out the heartbeat timeout
// would only lengthen the fail-over, so the group's heartbeat and election
// timeouts drop to fast until a leader other than dead is known, or for
// window at most. Pre-vote keeps this from unseating a leader that is in
// fact alive: the other voters, still hearing from it, refuse to vote.
func (g *raftGroup) hurryElection(dead raft.ServerID, fast, normal, window time.Duration) error {
	g.hurryMu.Lock()
	g.hurryGen++
	gen := g.hurryGen
	err := g.setTimeouts(fast)
	g.hurryMu.Unlock()
	if err != nil {
		return err
	}
	go func() {
		if !g.awaitLeaderOtherThan(dead, window) {
			return // the group stopped
		}
		g.hurryMu.Lock()
		defer g.hurryMu.Unlock()
		if g.hurryGen == gen {
			g.setTimeouts(normal)
		}
	}()
	return nil
}

// awaitLeaderOtherThan waits until the group knows a leader other than
// dead, or window passes. It reports false if the group stops first.
func (g *raftGroup) awaitLeaderOtherThan(dead raft.ServerID, window time.Duration) bool {
	deadline := time.NewTimer(window)
	defer deadline.Stop()
	// Coarse: a node may hurry every group a dead peer led at once.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.done:
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
			if _, id := g.raft.LeaderWithID(); id != "" && id != dead {
				return true
			}
		}
	}
}

func (g *raftGroup) setTimeouts(d time.Duration) error {
	rc := g.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = d, d
	return g.raft.ReloadConfig(rc)
}

// leaseTimeout is the partition and metadata groups' leader lease: a
// leader that has not heard from a quorum for this long steps down.
func leaseTimeout(election time.Duration) time.Duration { return election / 2 }

// hurriedTimeout is the heartbeat and election timeout of a group whose
// leader's process is gone: one heartbeat interval (a tenth of the
// timeout, in hashicorp/raft) past the lease, so that even a leader that
// was wrongly reported gone has stepped down before a follower can
// replace it.
func hurriedTimeout(election time.Duration) time.Duration {
	return leaseTimeout(election) + election/10
}
