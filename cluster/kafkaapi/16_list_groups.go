package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups v0-5: the groups this broker coordinates, filtered by state
// (v4+) and type (v5+). Clients ask every broker.
func init() { register(kmsg.ListGroups, 0, 5, plain(listGroups)) }

func listGroups(ctx context.Context, b Broker, req *kmsg.ListGroupsRequest) kmsg.Response {
	return b.Groups().ListGroups(ctx, req)
}
