package cluster

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/transport/kafka"
)

// apiVersions is the served version range per API key. The floors are the
// oldest versions librdkafka 2.0 (kcat) and sarama's defaults send; the
// ceilings are the newest whose semantics we implement in full.
var apiVersions = map[int16][2]int16{
	0:  {3, 11}, // Produce: v3 is the first with record batch v2
	1:  {4, 16}, // Fetch: v13+ address topics by id
	2:  {1, 6},  // ListOffsets: v7 adds max-timestamp lookups
	3:  {0, 12}, // Metadata
	18: {0, 4},  // ApiVersions
	19: {0, 7},  // CreateTopics
	20: {0, 6},  // DeleteTopics
	22: {0, 4},  // InitProducerID (idempotent producers)
	23: {0, 4},  // OffsetForLeaderEpoch
}

// Versions implements kafka.Handler.
func (n *Node) Versions(key int16) (int16, int16, bool) {
	v, ok := apiVersions[key]
	return v[0], v[1], ok
}

// Serve implements kafka.Handler. Produce does its ordered part (queueing
// batches to partitions) here; everything else runs in the returned func.
func (n *Node) Serve(ctx context.Context, c *kafka.ConnInfo, req kmsg.Request) func() kmsg.Response {
	// The listener accepts before the node has started; a request that
	// arrives then waits (a restarted node is dialled at once).
	select {
	case <-n.started:
	case <-ctx.Done():
		return func() kmsg.Response { return nil }
	case <-n.ctx.Done():
		return func() kmsg.Response { return nil }
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return n.handleProduce(ctx, r)
	case *kmsg.FetchRequest:
		return func() kmsg.Response { return n.handleFetch(ctx, r) }
	case *kmsg.ListOffsetsRequest:
		return func() kmsg.Response { return n.handleListOffsets(r) }
	case *kmsg.MetadataRequest:
		return func() kmsg.Response { return n.handleMetadata(ctx, r) }
	case *kmsg.ApiVersionsRequest:
		return func() kmsg.Response { return n.handleApiVersions(r) }
	case *kmsg.CreateTopicsRequest:
		return func() kmsg.Response { return n.handleCreateTopics(ctx, r) }
	case *kmsg.DeleteTopicsRequest:
		return func() kmsg.Response { return n.handleDeleteTopics(ctx, r) }
	case *kmsg.InitProducerIDRequest:
		return func() kmsg.Response { return n.handleInitProducerID(ctx, r) }
	case *kmsg.OffsetForLeaderEpochRequest:
		return func() kmsg.Response { return n.handleOffsetForLeaderEpoch(r) }
	}
	// Versions only admits the keys above; the transport closes the
	// connection before Serve for anything else.
	return func() kmsg.Response { return nil }
}

// requestTimeout turns a client's timeout in milliseconds into a context,
// bounded so a silly value cannot pin a goroutine forever.
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 || d > 5*time.Minute {
		d = 30 * time.Second
	}
	return context.WithTimeout(ctx, d)
}
