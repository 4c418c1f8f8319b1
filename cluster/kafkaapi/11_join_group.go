package kafkaapi

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/transport/kafka"
)

// JoinGroup v0-9: the classic protocol's join phase, served by the group
// coordinator (see package groups for the rules).
func init() { register(kmsg.JoinGroup, 0, 9, withConn(joinGroup)) }

func joinGroup(ctx context.Context, b Broker, c *kafka.ConnInfo, req *kmsg.JoinGroupRequest) kmsg.Response {
	return b.Groups().JoinGroup(ctx, groupClient(c), req)
}

// groupClient is who a member is, as DescribeGroups shows it.
func groupClient(c *kafka.ConnInfo) groups.Client {
	out := groups.Client{ID: c.ClientID}
	if c.Remote != nil {
		host, _, err := net.SplitHostPort(c.Remote.String())
		if err != nil {
			host = c.Remote.String()
		}
		out.Host = "/" + host
	}
	return out
}
