package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/quirelog/quire/fsm"
	"github.com/quirelog/quire/transport/kafka"
)

// Node is one running Quire broker.
type Node struct {
	cfg     Config
	logger  hclog.Logger
	reg     *prometheus.Registry
	metrics *nodeMetrics

	meta     *raftGroup
	metaFSM  *fsm.MetaFSM
	kafka    *kafka.Server
	admin    *adminServer
	advKafka string

	// mu guards replicas.
	mu       sync.RWMutex
	replicas map[tp]*replica

	// pidMu guards the producer-id block handed out by InitProducerID.
	pidMu   sync.Mutex
	pidNext int64
	pidEnd  int64

	reconcileCh chan struct{}
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// Start opens the node's data, starts its Raft groups and listeners.
func Start(cfg Config, logger hclog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
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
		metaFSM:     fsm.NewMetaFSM(),
		replicas:    make(map[tp]*replica),
		reconcileCh: make(chan struct{}, 1),
		ctx:         ctx,
		cancel:      cancel,
	}
	if err := n.start(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	n.metaFSM.OnChange(func(*fsm.MetaState) { n.triggerReconcile() })
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(n.cfg.DataDir, "meta"), 2, hclogWriter(n.logger))
	if err != nil {
		return fmt.Errorf("metadata snapshots: %w", err)
	}
	n.meta, err = n.startGroup(groupOptions{
		dir:               filepath.Join(n.cfg.DataDir, "meta"),
		fsm:               n.metaFSM,
		snaps:             snaps,
		logger:            n.logger.Named("meta"),
		restoreOnStart:    true,
		snapshotThreshold: 8192,
		trailingLogs:      10240,
		snapshotInterval:  10 * time.Second,
		voters:            []raft.Server{{ID: raftID(n.cfg.NodeID), Address: raft.ServerAddress(raftID(n.cfg.NodeID))}},
	})
	if err != nil {
		return err
	}
	n.wg.Add(1)
	go n.reconcileLoop()
	n.triggerReconcile()

	n.kafka, err = kafka.Listen(n.cfg.Kafka, n, n.logger, n.reg)
	if err != nil {
		return err
	}
	n.advKafka = n.cfg.AdvertiseKafkaAddr
	if n.advKafka == "" {
		n.advKafka = n.kafka.Addr().String()
	}
	if n.cfg.AdminAddr != "" {
		n.admin, err = startAdmin(n)
		if err != nil {
			return err
		}
	}
	n.logger.Info("broker started", "kafka", n.kafka.Addr().String(), "advertised", n.advKafka, "admin", n.cfg.AdminAddr, "data", n.cfg.DataDir)
	return nil
}

// KafkaAddr is the bound Kafka listener address.
func (n *Node) KafkaAddr() net.Addr { return n.kafka.Addr() }

// AdminAddr is the bound admin (metrics/health) address, or nil.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.ln.Addr()
}

// Close stops listeners, every replica and the metadata group.
func (n *Node) Close() error {
	n.cancel()
	var errs []error
	if n.admin != nil {
		errs = append(errs, n.admin.close())
	}
	if n.kafka != nil {
		errs = append(errs, n.kafka.Close())
	}
	n.wg.Wait()
	n.mu.Lock()
	for key, r := range n.replicas {
		errs = append(errs, r.stop())
		delete(n.replicas, key)
	}
	n.mu.Unlock()
	if n.meta != nil {
		errs = append(errs, n.meta.stop())
	}
	return errors.Join(errs...)
}

func (n *Node) replica(t tp) *replica {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.replicas[t]
}

// proposeMeta commits a metadata command through the controller group.
func (n *Node) proposeMeta(ctx context.Context, cmd interface{}) (*fsm.MetaResult, error) {
	b, err := fsm.EncodeMeta(cmd)
	if err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.meta.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	res, _ := f.Response().(*fsm.MetaResult)
	if res == nil {
		return nil, errors.New("metadata command produced no result")
	}
	return res, nil
}

// Ready reports whether the node can serve: the metadata group has a
// leader and has applied what it committed, and every partition the
// metadata assigns here runs locally with a leader. After a restart this
// stays false until the reconciler has started every replica again.
func (n *Node) Ready() error {
	if err := n.metaCaughtUp(); err != nil {
		return err
	}
	want := n.desiredReplicas(n.metaFSM.State())
	n.mu.RLock()
	defer n.mu.RUnlock()
	for key, t := range want {
		r, ok := n.replicas[key]
		if !ok || r.topicID != t.ID {
			return fmt.Errorf("partition %s is not running yet", key)
		}
		if !r.leaderKnown() {
			return fmt.Errorf("partition %s has no leader", key)
		}
	}
	return nil
}

// metaCaughtUp reports whether the local metadata is complete: as leader,
// once the barrier of its term has applied; as follower, once it has
// applied what the leader told it is committed. Raft does not persist the
// commit index, so right after a restart both are zero and say nothing.
func (n *Node) metaCaughtUp() error {
	addr, _ := n.meta.raft.LeaderWithID()
	if addr == "" {
		return errors.New("metadata group has no leader")
	}
	if n.meta.raft.State() == raft.Leader {
		if ok, _ := n.meta.leaderTerm(); !ok {
			return errors.New("metadata leader has not caught up in its term")
		}
		return nil
	}
	applied, commit := n.meta.raft.AppliedIndex(), n.meta.raft.CommitIndex()
	if commit == 0 || applied < commit {
		return fmt.Errorf("metadata applied to %d of %d", applied, commit)
	}
	return nil
}

func hclogWriter(l hclog.Logger) *logWriter { return &logWriter{l: l} }

// logWriter adapts raft's io.Writer logging (snapshot store) to hclog.
type logWriter struct{ l hclog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(p))
	return len(p), nil
}
