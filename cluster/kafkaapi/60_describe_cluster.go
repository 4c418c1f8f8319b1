package kafkaapi

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster v0-2: the cluster id, the controller and the brokers, as
// Metadata gives them, for admin tools that ask this instead (kadm,
// Kafka's own tools). Every broker serves the broker endpoint type only:
// Quire's controllers are brokers too, reached on the same listener, and a
// request for the controller endpoint type gets UNSUPPORTED_ENDPOINT_TYPE,
// as a Kafka broker answers it. No broker is ever fenced. Without ACLs
// there are no authorized operations to report (the field says "not
// given").
func init() { register(kmsg.DescribeCluster, 0, 2, plain(serveDescribeCluster)) }

// describeClusterBrokers is DescribeCluster's endpoint type of brokers.
const describeClusterBrokers = 1

func serveDescribeCluster(ctx context.Context, b Broker, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = describeClusterBrokers
	resp.ClusterAuthorizedOperations = math.MinInt32
	if req.Version >= 1 && req.EndpointType != describeClusterBrokers {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "this endpoint serves brokers only (endpoint type 1)"
		resp.ErrorMessage = &msg
		return resp
	}
	b.AwaitController(ctx, metadataControllerHold)
	resp.ClusterID = b.Settings().ClusterID
	resp.ControllerID = b.ControllerID()
	for _, mb := range metadataBrokers(b, b.MetaState()) {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port, db.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
		resp.Brokers = append(resp.Brokers, db)
	}
	return resp
}
