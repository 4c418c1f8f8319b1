package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/cluster/raftlog"
	"github.com/quirelog/quire/fsm"
)

// tp names a topic partition.
type tp struct {
	topic     string
	partition int32
}

func (t tp) String() string { return t.topic + "-" + strconv.Itoa(int(t.partition)) }

// replica is this node's member of one partition's Raft group.
type replica struct {
	tp       tp
	topicID  [16]byte
	dir      string
	fsm      *fsm.PartitionFSM
	group    *raftGroup
	proposer *proposer
	// settings are the topic's configs in force, replaced when they
	// change (applySettings).
	settings atomic.Pointer[topicSettings]
	// replicas is the partition's replica set, preferred leader first.
	replicas []int32
	// holdSince is when snapshots began waiting for a follower to catch
	// up (see followerCatchingUp), unix nanoseconds; 0 when not waiting.
	holdSince atomic.Int64
	isrTrack  isrTracker
	// quorum reports whether a majority of the replicas answers this node.
	quorum func() bool
	// snapBase is the Raft index at the last snapshot the node asked for,
	// snapping set while one is being taken (see snapshotDue).
	snapBase atomic.Uint64
	snapping atomic.Bool
	// guesses counts the leaders named for the partition while this node
	// was cut off from its majority (likelyLeader).
	guesses atomic.Uint32
	// forget removes the replica from the node's indexes.
	forget func()
}

// partitionDir is where a partition's files live. The topic id is part of
// the name so a re-created topic never sees the old one's files.
func (n *Node) partitionDir(t tp, id [16]byte) string {
	return filepath.Join(n.cfg.DataDir, "partitions", fmt.Sprintf("%s-%d-%x", t.topic, t.partition, id[:4]))
}

// startReplica opens (or creates) the partition's log and Raft group.
func (n *Node) startReplica(t tp, topic *fsm.Topic) (*replica, error) {
	dir := n.partitionDir(t, topic.ID)
	ts := n.topicSettings(n.meta.state(), topic)
	logCfg := ts.log
	logger := n.logger.Named("partition").With("topic", t.topic, "partition", t.partition)
	shared, err := n.sharedStore(dir)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		if err := removeMigratedStore(dir, shared); err != nil {
			return nil, err
		}
	}
	snapshot, err := partitionSnapshotIndex(dir)
	if err == nil {
		err = verifyRaftStore(filepath.Join(dir, "raft.db"), snapshot)
	}
	if err == nil && shared != nil {
		if err = migrateToShared(dir, snapshot, shared); err == nil {
			err = n.verifyShared(dir, snapshot, shared)
		}
	}
	if err == nil && rebuildReason(dir) == markDamaged {
		err = fmt.Errorf("%w: a rebuild did not finish", errRaftDamaged)
	}
	var pf *fsm.PartitionFSM
	if err == nil {
		pf, err = fsm.OpenPartition(dir, logCfg, logger, n.replicas.cleanStart)
	}
	rebuilding := errors.Is(err, fsm.ErrDamaged) || errors.Is(err, errRaftDamaged)
	if rebuilding {
		logger.Error("replica data damaged; rebuilding it from its peers, not voting until caught up", "error", err)
		if err := markRebuilding(dir, markDamaged); err != nil {
			return nil, err
		}
		if err := rebuildFromScratch(dir, shared); err != nil {
			return nil, fmt.Errorf("wipe damaged replica %s: %w", dir, err)
		}
		pf, err = fsm.OpenPartition(dir, logCfg, logger, n.replicas.cleanStart)
	}
	if err != nil {
		return nil, err
	}
	snaps, err := fsm.NewSnapshotStore(filepath.Join(dir, "snapshots"), 2)
	if err != nil {
		pf.Close()
		return nil, err
	}
	voters := append([]int32(nil), topic.Partitions[t.partition].Replicas...)
	g, err := n.startGroup(groupOptions{
		name:              partitionGroupName(t, topic.ID),
		dir:               dir,
		fsm:               pf,
		snaps:             snaps,
		logger:            logger,
		snapshotThreshold: n.cfg.SnapshotThreshold,
		trailingLogs:      n.cfg.TrailingLogs,
		snapshotInterval:  backstopSnapshotInterval,
		voters:            voters,
		onLeader:          func(g *raftGroup) { n.reportReplica(n.replicaOf(g)) },
		rebuilding:        rebuilding,
		joinExisting:      n.groupFormed(t, topic, dir),
		onRebuild:         n.metrics.replicaRebuilds.Inc,
		shared:            shared,
	})
	if err != nil {
		pf.Close()
		return nil, err
	}
	r := &replica{
		tp:       t,
		topicID:  topic.ID,
		dir:      dir,
		fsm:      pf,
		group:    g,
		proposer: newProposer(g.raft, n.cfg.GroupCommitBytes, n.cfg.GroupCommitInFlight, n.metrics),
		replicas: voters,
	}
	r.settings.Store(ts)
	r.quorum = func() bool { return n.elections.quorumReachable(r.replicas) }
	r.proposer.onPropose = func() { g.active(n.quietTimeout(), n.cfg.GroupTimeout) }
	// The log found at start counts as snapshotted: a restart must not
	// set thousands of replicas snapshotting at once.
	r.snapBase.Store(g.raft.LastIndex())
	n.replicas.running.bindRaft(g.raft, r)
	r.forget = func() {
		n.replicas.running.unbindRaft(g.raft)
		n.removeGroup(g)
	}
	// A new group elects at once, and a restarted one finds out whether
	// its group still has a leader (see elections.go). A leadership won
	// before the replica was indexed is reported now.
	n.elections.suspect(g)
	n.reportReplica(r)
	return r, nil
}

// groupFormed reports whether a partition's group has elected a leader
// before, so that a replica finding no state here lost it rather than
// never had it. That can only be so on a node that started without its
// own state (hadState): on any other, the replica's state would be in the
// shared Raft log, so a replica without any is new here, however long its
// group has run. The metadata records a leader epoch a moment after the
// first election; inside that moment, the replica's peers are asked.
func (n *Node) groupFormed(t tp, topic *fsm.Topic, dir string) bool {
	if n.replicas.hadState && n.wal != nil {
		return false
	}
	// A topic created after this node first caught up with the metadata
	// was created while it ran: it cannot have had, and lost, a replica.
	if join := n.meta.sync.joinIndex(); join > 0 && topic.CreatedIndex > join {
		return false
	}
	a := topic.Partitions[t.partition]
	if a.LeaderEpoch > 0 {
		return true
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		return false // state of its own: raft decides from that
	}
	if n.wal != nil && n.wal.Has(groupKey(dir)) {
		return false
	}
	name := partitionGroupName(t, topic.ID)
	formed := make(chan bool, len(a.Replicas))
	asked := 0
	for _, id := range a.Replicas {
		if id == n.cfg.NodeID || !n.alive(id) {
			continue
		}
		asked++
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			defer cancel()
			out, err := n.nt.Call(ctx, id, rpcGroupFormed, []byte(name))
			formed <- err == nil && len(out) == 1 && out[0] == 1
		}()
	}
	yes := false
	for ; asked > 0; asked-- {
		yes = <-formed || yes
	}
	return yes
}

// rpcGroupFormed asks a peer whether its replica of a partition group has
// entries past the bootstrap configuration, which only a leader adds.
const rpcGroupFormed = "group.formed"

func (n *Node) handleGroupFormed(_ context.Context, _ int32, name []byte) ([]byte, error) {
	if g := n.groupByName(string(name)); g != nil && g.raft.LastIndex() > 1 {
		return []byte{1}, nil
	}
	return []byte{0}, nil
}

// rebuildFromScratch wipes a damaged replica's data and Raft log, keeping
// its term and vote where they are intact. Raft then fetches a snapshot
// from the leader. Data and log go together: a log reset under data that
// stayed would have raft apply its entries a second time.
func rebuildFromScratch(dir string, shared *raftlog.Store) error {
	if err := fsm.WipePartition(dir); err != nil {
		return err
	}
	if shared != nil {
		return resetShared(dir, shared)
	}
	return resetRaftStore(filepath.Join(dir, "raft.db"))
}

// partitionGroupName names a partition's Raft group on the node transport;
// the topic id keeps a re-created topic's group apart from the old one's.
func partitionGroupName(t tp, id [16]byte) string {
	return fmt.Sprintf("p/%s/%d/%x", t.topic, t.partition, id[:8])
}

// stop shuts the replica down; its files stay.
func (r *replica) stop() error {
	r.forget()
	r.proposer.stop()
	err := r.group.stop()
	r.proposer.wait()
	if cerr := r.fsm.Close(); err == nil {
		err = cerr
	}
	return err
}

// destroy stops the replica and deletes its files and its share of the
// node's Raft log.
func (r *replica) destroy(n *Node) error {
	err := r.stop()
	if derr := n.dropShared(r.dir); err == nil {
		err = derr
	}
	if rerr := os.RemoveAll(r.dir); err == nil {
		err = rerr
	}
	return err
}

// leader reports whether this replica leads its group and serves, and the
// leader epoch (Raft term). A leader that no longer reaches a majority of
// the replicas does not serve: it could not commit, and the majority is
// electing another leader.
func (r *replica) leader() (bool, int32) {
	ok, epoch := r.group.leaderTerm()
	if !ok || (r.quorum != nil && !r.quorum()) || r.group.doubted.Load() {
		return false, -1
	}
	return true, epoch
}

// writable reports whether raft leads here in a term it was not deposed
// in, with a quorum reachable and no doubt after a stall (see
// writableReplica).
func (r *replica) writable() bool {
	g := r.group
	if g.raft.State() != raft.Leader || g.doubted.Load() || g.deposedTerm.Load() == g.raft.CurrentTerm() {
		return false
	}
	return r.quorum == nil || r.quorum()
}

// leaderKnown reports whether the group has a leader that can serve: this
// node once it has caught up in its term, or another node.
func (r *replica) leaderKnown() bool {
	addr, id := r.group.raft.LeaderWithID()
	if addr == "" {
		return false
	}
	if ok, _ := r.leader(); ok {
		return true
	}
	return r.group.raft.State() != raft.Leader && id != ""
}
