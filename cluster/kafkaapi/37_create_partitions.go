package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// CreatePartitions v0-3: grows topics to the partition counts asked,
// placing the new partitions as CreateTopics places a topic's, with the
// topic's replication factor; validate_only checks without growing.
// Waits, within the request timeout, until the new partitions have
// leaders. Partitions are never removed (INVALID_PARTITIONS), internal
// topics keep theirs (their coordinators hash onto the count), and a
// topic named twice in one request fails both times (INVALID_REQUEST), as
// in Kafka.
//
// Not yet: manual assignments of the new partitions (INVALID_REQUEST).
func init() { register(kmsg.CreatePartitions, 0, 3, plain(serveCreatePartitions)) }

func serveCreatePartitions(ctx context.Context, b Broker, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	cctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	b.AwaitCluster(cctx)
	named := map[string]int{}
	for _, t := range req.Topics {
		named[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		var err error
		switch {
		case named[t.Topic] > 1:
			err = kafkaerr.Errorf(kerr.InvalidRequest, "topic %s is named more than once", t.Topic)
		case len(t.Assignment) > 0:
			err = kafkaerr.Errorf(kerr.InvalidRequest, "manual replica assignment is not supported")
		default:
			topic, aerr := b.AddPartitions(cctx, t.Topic, t.Count, req.ValidateOnly)
			err = aerr
			if err == nil && !req.ValidateOnly {
				b.WaitTopicReady(cctx, topic)
			}
		}
		rt.ErrorCode = kafkaerr.Code(err)
		rt.ErrorMessage = kafkaerr.Message(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
