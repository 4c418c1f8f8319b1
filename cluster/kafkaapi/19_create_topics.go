package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// CreateTopics v0-7: partition count and replication factor (-1 takes the
// broker default), validate_only, and the topic configs Quire honours (see
// cluster/topicconfig.go; others fail with INVALID_CONFIG). Waits, within
// the request timeout, until the new partitions have leaders.
//
// Not yet: manual replica assignments (INVALID_REQUEST).
func init() { register(kmsg.CreateTopics, 0, 7, plain(serveCreateTopics)) }

func serveCreateTopics(ctx context.Context, b Broker, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	cctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	b.AwaitCluster(cctx)
	s := b.Settings()
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		spec := TopicSpec{Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor, ValidateOnly: req.ValidateOnly}
		if spec.Partitions == -1 {
			spec.Partitions = s.DefaultPartitions
		}
		if spec.ReplicationFactor == -1 {
			spec.ReplicationFactor = s.DefaultReplicationFactor
		}
		var err error
		if IsInternal(t.Topic) {
			err = kafkaerr.Errorf(kerr.InvalidRequest, "creation of internal topic %s is prohibited; Quire creates it when it is first needed", t.Topic)
		} else if len(t.ReplicaAssignment) > 0 {
			err = kafkaerr.Errorf(kerr.InvalidRequest, "manual replica assignment is not supported")
		} else {
			spec.Configs, err = createConfigs(t.Configs)
		}
		if err == nil {
			topic, cerr := b.CreateTopic(cctx, spec)
			err = cerr
			if err == nil {
				rt.TopicID = topic.ID
				rt.NumPartitions, rt.ReplicationFactor = spec.Partitions, spec.ReplicationFactor
				if !req.ValidateOnly {
					b.WaitTopicReady(cctx, topic)
				}
			}
		}
		rt.ErrorCode = kafkaerr.Code(err)
		rt.ErrorMessage = kafkaerr.Message(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func createConfigs(in []kmsg.CreateTopicsRequestTopicConfig) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for _, c := range in {
		if c.Value == nil {
			return nil, kafkaerr.Errorf(kerr.InvalidConfig, "config %q has a null value", c.Name)
		}
		out[c.Name] = *c.Value
	}
	return out, nil
}
