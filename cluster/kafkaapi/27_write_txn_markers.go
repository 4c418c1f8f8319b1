package kafkaapi

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// WriteTxnMarkers v0-2: the transaction coordinator's request to end a
// producer's transaction on partitions this broker leads. Each marker is
// committed through the partition's Raft group as an entry of its own; a
// marker from an epoch older than the producer's is refused with
// INVALID_PRODUCER_EPOCH, and so is a marker of transaction version 2
// (v2's TransactionVersion) whose epoch is not newer. Partitions are
// written concurrently.
func init() { register(kmsg.WriteTxnMarkers, 0, 2, plain(WriteTxnMarkers)) }

// WriteTxnMarkers writes the markers of req on the partitions this broker
// leads; the node also serves it to peer coordinators over the node port.
func WriteTxnMarkers(ctx context.Context, b Broker, req *kmsg.WriteTxnMarkersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		marker := fsm.Marker{ProducerID: m.ProducerID, Epoch: m.ProducerEpoch, Commit: m.Committed,
			TV2: m.TransactionVersion >= 2, CoordinatorEpoch: m.CoordinatorEpoch, Timestamp: now}
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(t.Partitions))
			for i, part := range t.Partitions {
				rp := &rt.Partitions[i]
				rp.Default()
				rp.Partition = part
				wg.Add(1)
				go func() {
					defer wg.Done()
					rp.ErrorCode = writeMarker(ctx, b, t.Topic, part, marker)
				}()
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	wg.Wait()
	return resp
}

func writeMarker(ctx context.Context, b Broker, topic string, part int32, m fsm.Marker) int16 {
	if m.ProducerID < 0 || m.Epoch < 0 {
		return kerr.InvalidProducerIDMapping.Code
	}
	p, err := b.ProduceTarget(topic, part)
	if err != nil {
		return kafkaerr.Code(err)
	}
	if _, err = p.WriteMarker(ctx, m); err == nil && topic == groups.Topic {
		// The group coordinator of this partition runs here: the
		// transaction's offsets take effect (or are dropped) now.
		b.Groups().TxnEnded(ctx, part, m.ProducerID, m.Commit)
	}
	return kafkaerr.Code(err)
}
