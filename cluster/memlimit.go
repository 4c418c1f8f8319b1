package cluster

import (
	"os"
	"runtime/debug"
)

// memoryPerReplica is what each hosted partition replica adds to the Go
// heap soft limit: its raft instance, goroutines and buffers come to
// about this much when idle. A limit fixed for a few partitions would,
// with ten thousand, sit below the live heap, and the garbage collector
// would then run without pause (and take half the CPU doing so).
const memoryPerReplica = 40 << 10

// setMemoryLimit sets the heap soft limit for a node hosting replicas
// partition replicas: Config.MemoryLimit plus memoryPerReplica each.
// GOMEMLIMIT in the environment, or a zero MemoryLimit, leaves it alone.
func (n *Node) setMemoryLimit(replicas int) {
	if n.cfg.MemoryLimit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := n.cfg.MemoryLimit + int64(replicas)*memoryPerReplica
	if n.replicas.memLimit.Swap(limit) == limit {
		return
	}
	debug.SetMemoryLimit(limit)
	n.logger.Debug("heap soft limit set", "bytes", limit, "replicas", replicas)
}
