package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/fsm"
)

// topicSpec is a topic creation request after defaults are applied.
type topicSpec struct {
	name         string
	partitions   int32
	rf           int16
	configs      map[string]string
	validateOnly bool
}

// kafkaError pairs a Kafka error code with a message for the client.
type kafkaError struct {
	err *kerr.Error
	msg string
}

func (e *kafkaError) Error() string { return e.err.Message + ": " + e.msg }
func (e *kafkaError) Unwrap() error { return e.err }

func kafkaErrf(err *kerr.Error, format string, args ...interface{}) error {
	return &kafkaError{err: err, msg: fmt.Sprintf(format, args...)}
}

// validTopicName applies Kafka's topic naming rules.
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return kafkaErrf(kerr.InvalidTopicException, "topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return kafkaErrf(kerr.InvalidTopicException, "topic name is %d characters, the limit is 249", len(name))
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return kafkaErrf(kerr.InvalidTopicException, "topic name %q has character %q; legal are [a-zA-Z0-9._-]", name, c)
		}
	}
	return nil
}

// liveBrokers lists the brokers topics can be placed on, sorted by id.
func (n *Node) liveBrokers() []int32 {
	return []int32{n.cfg.NodeID}
}

// createTopic validates, places and commits a new topic.
func (n *Node) createTopic(ctx context.Context, spec topicSpec) (*fsm.Topic, error) {
	if err := validTopicName(spec.name); err != nil {
		return nil, err
	}
	if spec.partitions < 1 || spec.partitions > 100000 {
		return nil, kafkaErrf(kerr.InvalidPartitions, "%d partitions; must be in [1, 100000]", spec.partitions)
	}
	brokers := n.liveBrokers()
	if spec.rf < 1 || int(spec.rf) > len(brokers) {
		return nil, kafkaErrf(kerr.InvalidReplicationFactor, "replication factor %d; %d live brokers", spec.rf, len(brokers))
	}
	if err := validateTopicConfigs(spec.configs); err != nil {
		return nil, kafkaErrf(kerr.InvalidConfig, "%v", err)
	}
	state := n.metaFSM.State()
	if _, ok := state.Topics[spec.name]; ok {
		return nil, kafkaErrf(kerr.TopicAlreadyExists, "topic %q already exists", spec.name)
	}
	t := fsm.Topic{Name: spec.name, Configs: spec.configs, Partitions: place(brokers, spec.partitions, spec.rf)}
	if err := n.checkPartitionLimit(state, t.Partitions); err != nil {
		return nil, err
	}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return nil, err
	}
	if spec.validateOnly {
		return &t, nil
	}
	res, err := n.proposeMeta(ctx, &fsm.CreateTopicCmd{Topic: t})
	if err != nil {
		return nil, metaErr(err)
	}
	if res.Err != nil {
		return nil, res.Err
	}
	n.triggerReconcile()
	return &t, nil
}

// checkPartitionLimit refuses a placement that would put more than
// MaxPartitionsPerNode replicas on any broker.
func (n *Node) checkPartitionLimit(state *fsm.MetaState, add []fsm.Assignment) error {
	count := make(map[int32]int)
	for _, t := range state.Topics {
		for _, a := range t.Partitions {
			for _, b := range a.Replicas {
				count[b]++
			}
		}
	}
	for _, a := range add {
		for _, b := range a.Replicas {
			count[b]++
			if count[b] > n.cfg.MaxPartitionsPerNode {
				return kafkaErrf(kerr.InvalidPartitions, "broker %d would host more than %d partition replicas (max partitions per node)", b, n.cfg.MaxPartitionsPerNode)
			}
		}
	}
	return nil
}

// place spreads replicas round-robin so replica and leader counts are
// balanced; the first replica is the preferred leader.
func place(brokers []int32, partitions int32, rf int16) []fsm.Assignment {
	sorted := append([]int32(nil), brokers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	out := make([]fsm.Assignment, partitions)
	for p := range out {
		for r := 0; r < int(rf); r++ {
			out[p].Replicas = append(out[p].Replicas, sorted[(p+r)%len(sorted)])
		}
	}
	return out
}

// metaErr maps a failed metadata proposal to a Kafka error.
func metaErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return kerr.NotController
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut
	}
	return err
}

// waitTopicReady waits until every local replica of the topic has a leader
// (or ctx ends), so a client's first Metadata after CreateTopics sees
// leaders instead of LEADER_NOT_AVAILABLE.
func (n *Node) waitTopicReady(ctx context.Context, t *fsm.Topic) {
	for {
		ready := true
		for i := range t.Partitions {
			r := n.replica(tp{t.Name, int32(i)})
			if r == nil {
				ready = false
				break
			}
			if !r.leaderKnown() {
				ready = false
				break
			}
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
