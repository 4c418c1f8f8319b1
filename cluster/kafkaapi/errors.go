package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// checkLeaderEpoch applies KIP-320 fencing: a client that names a leader
// epoch older than ours is fenced, one newer than ours knows something we
// do not yet. -1 means the client did not say.
func checkLeaderEpoch(clientEpoch, ourEpoch int32) error {
	switch {
	case clientEpoch < 0 || clientEpoch == ourEpoch:
		return nil
	case clientEpoch < ourEpoch:
		return kerr.FencedLeaderEpoch
	default:
		return kerr.UnknownLeaderEpoch
	}
}
