package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups v0-5: state, protocol, members with their metadata and
// assignments.
func init() { register(kmsg.DescribeGroups, 0, 5, plain(describeGroups)) }

func describeGroups(ctx context.Context, b Broker, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	return b.Groups().DescribeGroups(ctx, req)
}
