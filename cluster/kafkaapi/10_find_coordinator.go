package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/cluster/txn"
	"github.com/quirelog/quire/fsm"
)

// FindCoordinator v0-6; v4+ asks for several keys at once. A group's
// coordinator is the leader of its __consumer_offsets partition, a
// transactional id's the leader of its __transaction_state partition
// (Java's hash of the key, modulo the partition count, as in Kafka). Each
// topic is created, internal, when the first key of its kind is asked
// for.
func init() { register(kmsg.FindCoordinator, 0, 6, plain(findCoordinator)) }

func findCoordinator(ctx context.Context, b Broker, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.NodeID, c.Port = -1, -1
		err := locateCoordinator(ctx, b, req.CoordinatorType, key, &c)
		if err != nil {
			c.NodeID, c.Host, c.Port = -1, "", -1
			c.ErrorCode = kafkaerr.Code(err)
			c.ErrorMessage = kafkaerr.Message(err)
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.Coordinators = nil
		resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
	}
	return resp
}

func locateCoordinator(ctx context.Context, b Broker, keyType int8, key string, c *kmsg.FindCoordinatorResponseCoordinator) error {
	var t *fsm.Topic
	var err error
	switch keyType {
	case 0:
		if key == "" || len(key) > groups.MaxGroupIDBytes {
			return kafkaerr.Errorf(kerr.InvalidRequest, "group id of %d bytes; want 1 to %d", len(key), groups.MaxGroupIDBytes)
		}
		t, err = b.GroupsTopic(ctx)
	case 1:
		if key == "" || len(key) > txn.MaxIDBytes {
			return kafkaerr.Errorf(kerr.InvalidRequest, "transactional id of %d bytes; want 1 to %d", len(key), txn.MaxIDBytes)
		}
		t, err = b.TxnTopic(ctx)
	default:
		return kafkaerr.Errorf(kerr.InvalidRequest, "coordinator type %d", keyType)
	}
	if err != nil {
		return err
	}
	p := statelog.PartitionFor(key, int32(len(t.Partitions)))
	md := b.PartitionMetadata(t, p)
	if md.Leader < 0 {
		return kerr.CoordinatorNotAvailable
	}
	for _, br := range metadataBrokers(b, b.MetaState()) {
		if br.NodeID == md.Leader {
			c.NodeID, c.Host, c.Port = br.NodeID, br.Host, br.Port
			return nil
		}
	}
	return kerr.CoordinatorNotAvailable
}
