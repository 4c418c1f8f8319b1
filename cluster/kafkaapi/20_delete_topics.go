package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// DeleteTopics v0-6, by name or (v6) by topic id. The topic leaves the
// metadata at once; each node then stops its replicas and deletes their
// files.
func init() { register(kmsg.DeleteTopics, 0, 6, plain(serveDeleteTopics)) }

func serveDeleteTopics(ctx context.Context, b Broker, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	cctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, name := range req.TopicNames {
		targets = append(targets, target{name: kmsg.StringPtr(name)})
	}
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = t.name, t.id
		state := b.MetaState()
		var topic *fsm.Topic
		if t.name != nil {
			topic = state.Topics[*t.name]
		} else {
			topic = state.TopicByID(t.id)
		}
		var err error
		if topic == nil {
			err = kerr.UnknownTopicOrPartition
			if t.name == nil {
				err = kerr.UnknownTopicID
			}
		} else if rt.Topic, rt.TopicID = kmsg.StringPtr(topic.Name), topic.ID; IsInternal(topic.Name) {
			err = kafkaerr.Errorf(kerr.InvalidRequest, "internal topic %s cannot be deleted", topic.Name)
		} else {
			err = b.DeleteTopic(cctx, topic.Name)
		}
		rt.ErrorCode = kafkaerr.Code(err)
		if req.Version >= 5 && err != nil {
			rt.ErrorMessage = kafkaerr.Message(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
