package cluster

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/fsm"
)

// lifecycle is what the replica lifecycle keeps: which replicas run, the
// reconciler's wake-up and memory between passes, and what the node knew
// of its data at start. The reconcile goroutine is the only one that
// starts or stops replicas.
type lifecycle struct {
	// running indexes the replicas and Raft groups the node runs.
	running *registry
	// wake makes the reconciler run a pass now.
	wake chan struct{}
	// lastGC is when the reconciler last swept orphaned partition
	// directories; only the reconcile goroutine touches it.
	lastGC time.Time
	// cleanStart is whether the node stopped cleanly last time (see
	// cleanMarker): its partitions' files need not be verified.
	cleanStart bool
	// hadState is whether the node found its own metadata store at start.
	// A node that did knows which replicas it ever ran: one with no state
	// here is new (it was created while this node was down or slow), not
	// lost. A node that did not may have lost its disk.
	hadState bool
	// memLimit is the heap soft limit last set (see setMemoryLimit).
	memLimit atomic.Int64
}

func (n *Node) triggerReconcile() { kick(n.replicas.wake) }

// kick wakes a loop waiting on ch without blocking; wakes coalesce.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// loop runs fn every interval and whenever wake fires, until the node
// closes. It is how every background duty of a node is driven.
func (n *Node) loop(interval time.Duration, wake <-chan struct{}, fn func()) {
	defer n.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
		fn()
	}
}

// reconcileLoop makes the set of local replicas match the metadata. It is
// the only goroutine that starts or stops replicas. Metadata and gossip
// changes wake it; the tick only retries what failed.
func (n *Node) reconcileLoop() {
	n.loop(15*time.Second, n.replicas.wake, func() { n.reconcile(n.meta.state()) })
}

// desiredReplicas lists the partitions this node should host, in a stable
// order.
func (n *Node) desiredReplicas(s *fsm.MetaState) map[tp]*fsm.Topic {
	want := make(map[tp]*fsm.Topic)
	for _, t := range s.Topics {
		for i, a := range t.Partitions {
			for _, id := range a.Replicas {
				if id == n.cfg.NodeID {
					want[tp{t.Name, int32(i)}] = t
				}
			}
		}
	}
	return want
}

func (n *Node) reconcile(s *fsm.MetaState) {
	peers := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		peers = append(peers, id)
	}
	n.nt.WatchPeers(peers)
	if n.meta.sync.joinIndex() == 0 {
		n.metaCaughtUp() // notes when this node first caught up (groupFormed)
	}
	want := n.desiredReplicas(s)
	n.setMemoryLimit(len(want))
	var stale []*replica
	for _, r := range n.replicas.running.all() {
		if t, ok := want[r.tp]; !ok || t.ID != r.topicID {
			stale = append(stale, r)
		}
	}
	var missing []tp
	for key := range want {
		if r := n.replicas.running.replica(key); r == nil || r.topicID != want[key].ID {
			missing = append(missing, key)
		}
	}

	for _, r := range stale {
		n.replicas.running.drop(r.tp)
		if err := r.destroy(n); err != nil {
			n.logger.Warn("removing replica failed", "partition", r.tp.String(), "error", err)
		} else {
			n.logger.Info("removed replica", "partition", r.tp.String())
		}
	}
	sort.Slice(missing, func(i, j int) bool {
		if missing[i].topic != missing[j].topic {
			return missing[i].topic < missing[j].topic
		}
		return missing[i].partition < missing[j].partition
	})
	n.refreshSettings(s, want)
	n.startReplicas(missing, want)
	if len(missing) > 0 {
		n.settleLeaders()
	}
	n.metrics.replicas.Set(float64(len(want)))
	if time.Since(n.replicas.lastGC) > time.Minute && n.metaCaughtUp() == nil {
		n.replicas.lastGC = time.Now()
		n.removeOrphanDirs()
	}
}

// refreshSettings puts changed topic and broker configs in force on the
// running replicas.
func (n *Node) refreshSettings(s *fsm.MetaState, want map[tp]*fsm.Topic) {
	byTopic := map[string]*topicSettings{}
	for _, r := range n.replicas.running.all() {
		t := want[r.tp]
		if t == nil || t.ID != r.topicID {
			continue
		}
		ts := byTopic[t.Name]
		if ts == nil {
			ts = n.topicSettings(s, t)
			byTopic[t.Name] = ts
		}
		if *r.settings.Load() == *ts {
			continue
		}
		if err := r.fsm.Log().SetConfig(ts.log); err != nil {
			n.logger.Warn("topic configs not applied to the log", "partition", r.tp.String(), "error", err)
			continue
		}
		r.settings.Store(ts)
	}
}

// startWorkers bounds the replicas started at once. Each start waits for
// its bootstrap to be made durable in the shared Raft log; starting several
// at once lets one fsync serve them all.
const startWorkers = 8

// startReplicas starts the missing replicas, a few at a time, in order.
func (n *Node) startReplicas(missing []tp, want map[tp]*fsm.Topic) {
	work := make(chan tp)
	var wg sync.WaitGroup
	for range min(startWorkers, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				r, err := n.startReplica(key, want[key])
				if err != nil {
					n.logger.Error("starting replica failed", "partition", key.String(), "error", err)
					continue
				}
				n.replicas.running.put(key, r)
				n.logger.Debug("started replica", "partition", key.String())
			}
		}()
	}
	for _, key := range missing {
		if n.ctx.Err() != nil {
			break
		}
		work <- key
	}
	close(work)
	wg.Wait()
}

// removeOrphanDirs deletes partition directories that no current replica
// owns: the topic was deleted (or re-created with a new id) while this
// node was down, so the reconciler never stopped a replica for it. It runs
// only once the local metadata has caught up, so a partial view after a
// restart can never delete live data.
func (n *Node) removeOrphanDirs() {
	root := filepath.Join(n.cfg.DataDir, "partitions")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	// The state is read only now, after metaCaughtUp: the state this
	// reconcile pass started from may predate the catch-up (a restarted
	// node replaying its metadata), and sweeping by it once deleted the
	// live data of every partition it did not list yet.
	want := n.desiredReplicas(n.meta.state())
	keep := make(map[string]bool, len(want))
	for key, t := range want {
		keep[filepath.Base(n.partitionDir(key, t.ID))] = true
	}
	for _, r := range n.replicas.running.all() {
		keep[filepath.Base(r.dir)] = true
	}
	n.dropOrphanShares(keep)
	for _, e := range entries {
		if !e.IsDir() || keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			n.logger.Warn("removing orphaned partition directory failed", "dir", e.Name(), "error", err)
			continue
		}
		n.logger.Info("removed orphaned partition directory", "dir", e.Name())
	}
}
