package gossip

import "errors"

var (
	// ErrMetaTooLarge means a NodeMeta does not fit in memberlist's node
	// meta (memberlist.MetaMaxSize bytes once encoded).
	ErrMetaTooLarge = errors.New("gossip: node meta too large")
	// ErrForeignCluster is why a node from another cluster is not admitted.
	ErrForeignCluster = errors.New("gossip: node belongs to another cluster")
	// ErrClosed is returned by calls made after Shutdown or Close.
	ErrClosed = errors.New("gossip: closed")

	// errBlocked is what a dial cut by Config.Blocked fails with.
	errBlocked = errors.New("gossip: blocked by fault hook")
)
