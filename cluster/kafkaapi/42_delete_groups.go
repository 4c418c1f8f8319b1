package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups v0-2: empty groups only (NON_EMPTY_GROUP otherwise).
func init() { register(kmsg.DeleteGroups, 0, 2, plain(deleteGroups)) }

func deleteGroups(ctx context.Context, b Broker, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	return b.Groups().DeleteGroups(ctx, req)
}
