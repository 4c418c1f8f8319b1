package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/quirelog/quire/cluster/gossip"
	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/raftlog"
	"github.com/quirelog/quire/cluster/txn"
	"github.com/quirelog/quire/fsm"
	"github.com/quirelog/quire/partition"
	"github.com/quirelog/quire/transport/kafka"
	"github.com/quirelog/quire/transport/node"
)

// Node is one running Quire broker. It wires parts that each own one
// concern and the state that goes with it:
//
//   - meta (metadata.go): the metadata group's replica, its FSM and
//     whether it is current;
//   - replicas (reconcile.go, replica.go): the replica lifecycle, which
//     starts and stops partition replicas to match the metadata, and the
//     registry of what runs;
//   - elections (elections.go): leader elections for partition groups and
//     the reactions to peers going and coming back;
//   - leadership and obs (leaders.go): raft observations, leader reports
//     to the controller and preferred-leader hand-offs;
//   - pids (controller.go): producer-id blocks;
//   - groupCoord (package groups) and txnCoord (package txn): the
//     consumer group and transaction coordinators;
//   - kafka (package kafkaapi through kafkaBroker), nt and gossip: the
//     Kafka listener, node-to-node transport and membership.
type Node struct {
	cfg     Config
	logger  hclog.Logger
	reg     *prometheus.Registry
	metrics *nodeMetrics

	// meta is this node's replica of the metadata group.
	meta metadata
	// wal is the shared Raft log of the partition groups (nil with
	// RaftLogPerGroup).
	wal   *raftlog.Log
	kafka *kafka.Server
	admin *adminServer
	nt    *node.Transport
	// gossip is set during start, while the node transport may already
	// resolve peers through it.
	gossip   atomic.Pointer[gossip.Gossip]
	advKafka string
	advNode  string

	// replicas is the replica lifecycle's state.
	replicas  lifecycle
	elections *electionDriver
	// leadership is what moves partition leadership news and hand-offs.
	leadership leadership
	// obs is the stream of every group's raft observations.
	obs observations

	// groupCoord is the consumer group coordinator of the
	// __consumer_offsets partitions this node leads.
	groupCoord *groups.Coordinator
	// txnCoord is the transaction coordinator of the
	// __transaction_state partitions this node leads.
	txnCoord *txn.Coordinator

	// pids is the producer-id block InitProducerID hands out from.
	pids pidBlock
	// cleanerWake wakes the cleaner when a compaction was asked for.
	cleanerWake chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// started is closed once start has set up every part: the Kafka and
	// admin listeners bind earlier, and their handlers wait on it.
	started chan struct{}
}

// Start opens the node's data, starts its Raft groups and listeners.
func Start(cfg Config, logger hclog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.FaultInjection && cfg.Faults == nil {
		cfg.Faults = node.NewFaults()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:         cfg,
		logger:      logger.With("node", cfg.NodeID),
		reg:         reg,
		metrics:     newNodeMetrics(reg),
		meta:        metadata{fsm: fsm.NewMetaFSM(), duties: make(chan struct{}, 1)},
		replicas:    lifecycle{running: newRegistry(), wake: make(chan struct{}, 1)},
		obs:         observations{ch: make(chan raft.Observation, 16384), done: make(chan struct{})},
		leadership:  leadership{reports: newReportSet(), rebalance: make(chan struct{}, 1)},
		started:     make(chan struct{}),
		cleanerWake: make(chan struct{}, 1),
		ctx:         ctx,
		cancel:      cancel,
	}
	n.elections = newElectionDriver(n)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "meta", "raft.db")); err == nil {
		n.replicas.hadState = true
	}
	clean, err := takeCleanMarker(cfg.DataDir)
	if err != nil {
		cancel()
		return nil, err
	}
	n.replicas.cleanStart = clean
	n.groupCoord = groups.New(cfg.Groups, &groupsCluster{n: n}, n.logger.Named("groups"))
	n.txnCoord = txn.New(cfg.Txn, txnCluster{n}, n.logger.Named("txn"))
	reg.MustRegister(newGroupLagCollector(n, cfg.GroupLagPartitionMetrics), newTxnCollector(n))
	n.setMemoryLimit(0)
	// Before any group starts: raft blocks on observations nobody reads.
	go n.observe()
	if err := n.start(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	var err error
	// The Kafka listener binds first (requests wait for readiness on
	// their own), so the advertised addresses are known before gossip.
	if n.cfg.FaultInjection && n.cfg.Kafka.Faults == nil {
		n.cfg.Kafka.Faults = kafka.NewFaults()
	}
	n.kafka, err = kafka.Listen(n.cfg.Kafka, kafkaapi.New(kafkaBroker{n}), n.logger, n.reg)
	if err != nil {
		return err
	}
	n.advKafka = n.cfg.advertisedKafka()
	if n.cfg.AdvertiseKafkaAddr == "" {
		n.advKafka = n.kafka.Addr().String()
	}
	n.nt, err = node.Listen(node.Config{
		ID:              n.cfg.NodeID,
		Addr:            n.cfg.NodeAddr,
		Resolve:         n.resolveNode,
		OnPeerDown:      n.elections.peerGone,
		OnReachability:  n.elections.onReachability,
		OnReconnect:     n.elections.peerReachable,
		OnStall:         n.elections.selfStalled,
		LivenessTimeout: n.cfg.LivenessTimeout,
		Faults:          n.cfg.Faults,
		Logger:          n.logger.Named("node-transport"),
		Registerer:      n.reg,
	})
	if err != nil {
		return err
	}
	n.elections.nt = n.nt
	n.advNode = n.cfg.advertisedNode(n.nt.Addr().String())
	if n.cfg.AdminAddr != "" {
		if n.admin, err = startAdmin(n); err != nil {
			return err
		}
	}
	if err := n.openSharedLog(); err != nil {
		return err
	}
	metaRebuilding, err := n.startMeta()
	if err != nil {
		return err
	}
	// Registered only now: both handlers use the metadata group.
	n.nt.Handle(rpcMetaPropose, n.handleMetaPropose)
	n.nt.Handle(rpcMetaFormed, n.handleMetaFormed)
	n.nt.Handle(rpcMetaReadIndex, n.meta.handleReadIndex)
	n.nt.Handle(rpcGroupFormed, n.handleGroupFormed)
	n.nt.Handle(rpcAgree, n.elections.handleAgree)
	n.nt.Handle(rpcEndOffsets, n.handleEndOffsets)
	n.nt.Handle(rpcTxnMarkers, n.handleTxnMarkers)
	n.nt.Handle(rpcTxnVerify, n.handleTxnVerify)
	if err := n.startGossip(); err != nil {
		return err
	}
	if d := n.cfg.LeaderRebalanceInterval; d > 0 {
		n.wg.Add(1)
		go n.loop(d, n.leadership.rebalance, n.rebalanceLeaders)
	}
	n.wg.Add(6)
	go func() {
		defer n.wg.Done()
		n.elections.runElections()
	}()
	go n.snapshotLoop()
	go n.quiesceLoop()
	if !metaRebuilding {
		// A rebuilding controller waits to be replicated to; bootstrapping
		// would found a second cluster whenever its peers were slow to
		// answer.
		n.wg.Add(1)
		go n.bootstrapMeta()
	}
	go n.controllerDuties()
	go n.reportLeaders()
	go n.reconcileLoop()
	n.wg.Add(4)
	go n.expireProducersLoop()
	go n.retentionLoop()
	go n.compactionLoop()
	go n.cleanerLoop()
	// Frees the group state of __consumer_offsets partitions this node
	// stopped leading.
	n.wg.Add(2)
	go n.loop(2*time.Second, nil, n.groupCoord.Sweep)
	// Loads the __transaction_state partitions this node newly leads (so
	// a fail-over finishes decided transactions at once) and aborts
	// transactions past their timeout.
	go n.loop(time.Second, nil, n.txnCoord.Sweep)
	n.triggerReconcile()
	close(n.started)
	n.logger.Info("broker started", "kafka", n.kafka.Addr().String(), "advertised", n.advKafka,
		"node", n.advNode, "gossip", n.gossip.Load().Addr(), "admin", n.cfg.AdminAddr, "data", n.cfg.DataDir)
	return nil
}

// startMeta starts the metadata group and reports whether it is being
// rebuilt from the other controllers.
func (n *Node) startMeta() (bool, error) {
	// Leader reports are most metadata entries, and a reconcile pass looks
	// at every partition: after a node kill or a restart thousands of
	// reports would each cost every node a pass while it is busiest.
	// Until the node has caught up, every entry may be the one that
	// completes it (reconcile notes that).
	var placed atomic.Uint64
	n.meta.fsm.OnChange(func(s *fsm.MetaState) {
		if placed.Swap(s.PlacementIndex) != s.PlacementIndex || n.meta.sync.joinIndex() == 0 {
			n.triggerReconcile()
		}
	})
	dir := filepath.Join(n.cfg.DataDir, "meta")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	rebuilding, err := n.checkMetaStore(dir)
	if err != nil {
		return false, err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, hclogWriter(n.logger))
	if err != nil {
		return false, fmt.Errorf("metadata snapshots: %w", err)
	}
	n.meta.group, err = n.startGroup(groupOptions{
		name:              "meta",
		dir:               dir,
		fsm:               n.meta.fsm,
		snaps:             snaps,
		logger:            n.logger.Named("meta"),
		restoreOnStart:    true,
		snapshotThreshold: 8192,
		trailingLogs:      10240,
		snapshotInterval:  10 * time.Second,
		onLeader:          func(*raftGroup) { n.triggerDuties() },
		gateIfNew:         true,
		rebuilding:        rebuilding,
		onRebuild:         n.metrics.replicaRebuilds.Inc,
	})
	return rebuilding, err
}

// checkMetaStore verifies the metadata group's Raft store. A damaged one
// is reset together with its snapshots: a node left with a snapshot's
// configuration but not the entries after it could stand for election and,
// with a voter that also lacks them, erase committed metadata. Emptied, it
// waits for the leader to send it everything, behind the vote gate.
func (n *Node) checkMetaStore(dir string) (rebuilding bool, err error) {
	snaps, err := raft.NewFileSnapshotStore(dir, 2, hclogWriter(n.logger))
	if err != nil {
		return false, fmt.Errorf("metadata snapshots: %w", err)
	}
	snapshot, err := latestSnapshot(snaps.List)
	if err != nil {
		return false, fmt.Errorf("metadata snapshots: %w", err)
	}
	verr := verifyRaftStore(filepath.Join(dir, "raft.db"), snapshot)
	if verr == nil {
		// A rebuild that did not finish resumes behind the gate; its log
		// is a prefix of the leader's, so it need not start over.
		return rebuildReason(dir) == markDamaged, nil
	}
	if !errors.Is(verr, errRaftDamaged) {
		return false, verr
	}
	if n.cfg.BootstrapExpect == 1 && len(n.cfg.Join) == 0 {
		return false, fmt.Errorf("metadata Raft store damaged and no other controller to rebuild it from (restore %s from a backup): %w", dir, verr)
	}
	n.logger.Error("metadata Raft store damaged; rebuilding it from the other controllers, not voting until caught up", "error", verr)
	if err := markRebuilding(dir, markDamaged); err != nil {
		return false, err
	}
	if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
		return false, err
	}
	return true, resetRaftStore(filepath.Join(dir, "raft.db"))
}

// KafkaAddr is the bound Kafka listener address.
func (n *Node) KafkaAddr() net.Addr { return n.kafka.Addr() }

// Metrics gathers the node's Prometheus metrics, as /metrics serves them.
func (n *Node) Metrics() prometheus.Gatherer { return n.reg }

// AdminAddr is the bound admin (metrics/health) address, or nil.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.ln.Addr()
}

// Close stops listeners, every replica, the metadata group, gossip and the
// node transport.
func (n *Node) Close() error {
	// Announce the departure first, so the controller stops placing new
	// replicas here while this node hands off and shuts down.
	if g := n.gossip.Load(); g != nil {
		if err := g.Leave(time.Second); err != nil {
			n.logger.Debug("gossip leave", "error", err)
		}
	}
	n.cancel()
	var errs []error
	if n.admin != nil {
		errs = append(errs, n.admin.close())
	}
	if n.kafka != nil {
		errs = append(errs, n.kafka.Close())
	}
	n.wg.Wait()
	if n.groupCoord != nil {
		n.groupCoord.Close()
	}
	if n.txnCoord != nil {
		n.txnCoord.Close()
	}
	start := time.Now()
	handed := n.handOffLeadership()
	handedAt := time.Now()
	reps := n.replicas.running.takeAll()
	if n.meta.group != nil {
		defer n.removeGroup(n.meta.group)
	}
	errs = append(errs, stopReplicas(reps))
	if n.meta.group != nil {
		errs = append(errs, n.meta.group.stop())
	}
	close(n.obs.done)
	if started := n.hasStarted(); started {
		n.logger.Info("replicas stopped", "leaderships_handed_off", handed, "handoff", handedAt.Sub(start).Round(time.Millisecond),
			"replicas", len(reps), "stop", time.Since(handedAt).Round(time.Millisecond))
	}
	if n.wal != nil {
		errs = append(errs, n.wal.Close())
	}
	if g := n.gossip.Load(); g != nil {
		errs = append(errs, g.Shutdown())
	}
	if n.nt != nil {
		errs = append(errs, n.nt.Close())
	}
	err := errors.Join(errs...)
	if err == nil && n.hasStarted() {
		err = writeCleanMarker(n.cfg.DataDir)
	}
	return err
}

// cleanMarker is the file a node leaves in its data directory when it has
// stopped cleanly: every partition synced its files and checkpointed what
// it applied. The next start takes it away before touching anything; a
// start that finds none (a crash, a power loss) verifies every partition.
const cleanMarker = "CLEAN_SHUTDOWN"

func writeCleanMarker(dir string) error {
	f, err := os.Create(filepath.Join(dir, cleanMarker))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return partition.SyncDir(dir)
}

// takeCleanMarker reports whether the node stopped cleanly, and removes
// the mark durably, so that a crash from here on is known as one.
func takeCleanMarker(dir string) (bool, error) {
	path := filepath.Join(dir, cleanMarker)
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		return false, err
	}
	return true, partition.SyncDir(dir)
}

func (n *Node) replica(t tp) *replica { return n.replicas.running.replica(t) }

// Ready reports whether the node can serve: the metadata group has a
// leader and has applied what it committed, and every partition the
// metadata assigns here runs locally with a leader. After a restart this
// stays false until the reconciler has started every replica again.
func (n *Node) Ready() error {
	select {
	case <-n.started:
	default:
		return errors.New("starting")
	}
	if err := n.metaCaughtUp(); err != nil {
		return err
	}
	state := n.meta.state()
	if state.Brokers[n.cfg.NodeID] == nil {
		return errors.New("not registered with the controller yet")
	}
	want := n.desiredReplicas(state)
	for key, t := range want {
		r := n.replicas.running.replica(key)
		if r == nil || r.topicID != t.ID {
			return fmt.Errorf("partition %s is not running yet", key)
		}
		if !r.leaderKnown() {
			return fmt.Errorf("partition %s has no leader", key)
		}
	}
	return nil
}

// metaCaughtUp reports whether the local metadata is complete (see
// metaSync.check), asking the leader for its commit index when needed.
func (n *Node) metaCaughtUp() error {
	return n.meta.sync.check(n.ctx, n.meta.group, func(ctx context.Context, leader int32) (uint64, error) {
		out, err := n.nt.Call(ctx, leader, rpcMetaReadIndex, nil)
		if err != nil {
			return 0, err
		}
		if len(out) != 8 {
			return 0, fmt.Errorf("%d bytes", len(out))
		}
		return binary.BigEndian.Uint64(out), nil
	})
}

func hclogWriter(l hclog.Logger) *logWriter { return &logWriter{l: l} }

// logWriter adapts raft's io.Writer logging (snapshot store) to hclog.
type logWriter struct{ l hclog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(p))
	return len(p), nil
}

// handOffLeadership transfers the leadership of every group this node
// leads to an up-to-date follower before a clean shutdown, so a rolling
// restart costs clients a leader change instead of an election. Only
// groups with a follower that is up and not leaving itself are handed
// off: when a whole cluster stops at once, there is no one to hand to.
// Transfers run in parallel, bounded by handOffFor; one that fails just
// leaves the group to elect. It reports how many it started.
func (n *Node) handOffLeadership() int {
	type target struct {
		g      *raftGroup
		voters []int32
	}
	var groups []target
	for _, r := range n.allReplicas() {
		if len(r.replicas) > 1 {
			groups = append(groups, target{r.group, r.replicas})
		}
	}
	if n.meta.group != nil {
		var peers []int32
		for _, b := range n.meta.state().SortedBrokers() {
			peers = append(peers, b.ID)
		}
		groups = append(groups, target{n.meta.group, peers})
	}
	deadline := time.After(handOffFor)
	done := make(chan struct{}, len(groups))
	started := 0
	for _, t := range groups {
		if t.g.raft.State() != raft.Leader || !n.anyPeerStaying(t.voters) {
			continue
		}
		started++
		f := t.g.raft.LeadershipTransfer()
		go func() {
			if err := f.Error(); err != nil {
				n.logger.Debug("leadership transfer failed", "error", err)
			}
			done <- struct{}{}
		}()
	}
	for range started {
		select {
		case <-done:
		case <-deadline:
			return started
		}
	}
	return started
}

// handOffFor bounds the leadership hand-off of a clean shutdown.
const handOffFor = 2 * time.Second

// anyPeerStaying reports whether a voter other than this node answers and
// is not leaving the cluster.
func (n *Node) anyPeerStaying(voters []int32) bool {
	for _, v := range voters {
		if v != n.cfg.NodeID && n.alive(v) && n.nt.Reachable(v) {
			return true
		}
	}
	return false
}

func (n *Node) hasStarted() bool {
	select {
	case <-n.started:
		return true
	default:
		return false
	}
}

// ID is this node's broker id.
func (n *Node) ID() int32 { return n.cfg.NodeID }

// ControllerID is the current metadata leader's broker id, or -1.
func (n *Node) ControllerID() int32 { return n.meta.controllerID() }

// PartitionLeader is the partition's leader and epoch as this node sees
// them (-1, -1 when unknown), as a Metadata response would report them.
func (n *Node) PartitionLeader(topic string, partition int32) (leader, epoch int32) {
	t, ok := n.meta.state().Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return -1, -1
	}
	leader, epoch, _ = n.partitionLeader(tp{topic, partition}, t, t.Partitions[partition])
	return leader, epoch
}

// RecordedLeaderEpoch is the leader epoch this node's metadata records for
// a partition: 0 until a leader has reported itself, -1 when unknown. A
// replica that finds itself without state joins its group empty, behind
// the vote gate, only once this is above 0 (see groupOptions.joinExisting).
func (n *Node) RecordedLeaderEpoch(topic string, partition int32) int32 {
	t, ok := n.meta.state().Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return -1
	}
	return t.Partitions[partition].LeaderEpoch
}

// PartitionDigest summarises the local replica of a partition: its high
// watermark and a CRC32C of every stored byte below it. Replicas that
// agree hold byte-identical logs. ok is false when this node has no
// replica of the partition.
func (n *Node) PartitionDigest(topic string, partition int32) (hw int64, sum uint32, ok bool, err error) {
	t, found := n.meta.state().Topics[topic]
	if !found {
		return 0, 0, false, nil
	}
	r := n.replica(tp{topic, partition})
	if r == nil || r.topicID != t.ID {
		return 0, 0, false, nil
	}
	hw, sum, err = r.fsm.Digest()
	return hw, sum, true, err
}

// DescribePartition is a one-line account of the local replica's view of
// a partition (Raft state, term, serving term, leader, liveness of the
// replicas), for diagnostics and test failures.
func (n *Node) DescribePartition(topic string, partition int32) string {
	r := n.replica(tp{topic, partition})
	if r == nil {
		return fmt.Sprintf("node %d: no replica of %s/%d", n.cfg.NodeID, topic, partition)
	}
	addr, id := r.group.raft.LeaderWithID()
	alive := make([]string, 0, len(r.replicas))
	for _, b := range r.replicas {
		alive = append(alive, fmt.Sprintf("%d:%v", b, n.alive(b)))
	}
	leader, epoch := n.PartitionLeader(topic, partition)
	return fmt.Sprintf("node %d: %s term %d serving %d raft-leader %q/%q applied %d hw %d alive %v -> leader %d epoch %d",
		n.cfg.NodeID, r.group.raft.State(), r.group.raft.CurrentTerm(), r.group.servingTerm.Load(), addr, id,
		r.group.raft.AppliedIndex(), r.fsm.HighWatermark(), alive, leader, epoch)
}

// PartitionRaftIndex is the last index of this node's Raft log for the
// partition, for operators' tools and tests; ok is false when the node
// holds no replica of it.
func (n *Node) PartitionRaftIndex(topic string, partition int32) (last uint64, ok bool) {
	r := n.replica(tp{topic, partition})
	if r == nil {
		return 0, false
	}
	return r.group.raft.LastIndex(), true
}

// BrokerAlive reports whether this node considers the broker alive: gossip
// says so and its listener was not just found refusing (placement uses
// only live brokers).
func (n *Node) BrokerAlive(id int32) bool { return n.alive(id) }

// addGroup indexes a started group for observations and election calls.
func (n *Node) addGroup(g *raftGroup) { n.replicas.running.addGroup(g) }

// removeGroup drops a stopped group from the indexes.
func (n *Node) removeGroup(g *raftGroup) {
	n.replicas.running.removeGroup(g)
	n.elections.drop(g)
}

// replicaOf is the replica whose group g is, or nil.
func (n *Node) replicaOf(g *raftGroup) *replica {
	_, r := n.replicas.running.ofRaft(g.raft)
	return r
}

func (n *Node) groupByName(name string) *raftGroup { return n.replicas.running.groupByName(name) }

// allReplicas lists the running partition replicas (see registry.all).
func (n *Node) allReplicas() []*replica { return n.replicas.running.all() }

// stopReplicas stops replicas a few at a time: a node with thousands
// should not take a raft shutdown per replica, in turn, to exit.
func stopReplicas(reps []*replica) error {
	var mu sync.Mutex
	var errs []error
	work := make(chan *replica)
	var wg sync.WaitGroup
	for range min(len(reps), 16) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := r.stop(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, r := range reps {
		work <- r
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}
