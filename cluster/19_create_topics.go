package cluster

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/gossip"
)

// CreateTopics v0-7: partition count and replication factor (-1 takes the
// broker default), validate_only, and the topic configs Quire honours (see
// topicconfig.go; others fail with INVALID_CONFIG). Waits, within the
// request timeout, until the new partitions have leaders.
//
// Not yet: manual replica assignments (INVALID_REQUEST).
func (n *Node) handleCreateTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	cctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	n.awaitCluster(cctx)
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		spec := topicSpec{name: t.Topic, partitions: t.NumPartitions, rf: t.ReplicationFactor, validateOnly: req.ValidateOnly}
		if spec.partitions == -1 {
			spec.partitions = n.cfg.DefaultPartitions
		}
		if spec.rf == -1 {
			spec.rf = n.cfg.DefaultReplicationFactor
		}
		var err error
		if len(t.ReplicaAssignment) > 0 {
			err = kafkaErrf(kerr.InvalidRequest, "manual replica assignment is not supported")
		} else {
			spec.configs, err = createConfigs(t.Configs)
		}
		if err == nil {
			topic, cerr := n.createTopic(cctx, spec)
			err = cerr
			if err == nil {
				rt.TopicID = topic.ID
				rt.NumPartitions, rt.ReplicationFactor = spec.partitions, spec.rf
				if !req.ValidateOnly {
					n.waitTopicReady(cctx, topic)
				}
			}
		}
		rt.ErrorCode = errCode(err)
		rt.ErrorMessage = errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// awaitCluster waits, until ctx ends, for what a topic's creation needs
// from a cluster that is still forming: a controller this node has caught
// up with, and every broker that gossip knows registered with it. A client
// started together with the cluster then succeeds on its first try, where
// it would get NOT_CONTROLLER or INVALID_REPLICATION_FACTOR.
func (n *Node) awaitCluster(ctx context.Context) {
	n.awaitController(ctx, time.Hour)
	for {
		members := 0
		if g := n.gossip.Load(); g != nil {
			for _, m := range g.Members() {
				if m.State == gossip.StateAlive && m.Meta.ClusterID == n.cfg.ClusterID {
					members++
				}
			}
		}
		if len(n.liveBrokers()) >= members {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func createConfigs(in []kmsg.CreateTopicsRequestTopicConfig) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for _, c := range in {
		if c.Value == nil {
			return nil, kafkaErrf(kerr.InvalidConfig, "config %q has a null value", c.Name)
		}
		out[c.Name] = *c.Value
	}
	return out, nil
}
