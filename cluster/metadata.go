package cluster

import (
	"context"
	"encoding/binary"

	"github.com/quirelog/quire/fsm"
)

// metadata is this node's replica of the metadata group: the Raft group
// the controller leads, the state it replicates, whether the local copy
// is current enough to act on, and the wake-up of the controller's
// duties.
type metadata struct {
	// group is nil until start has opened it.
	group *raftGroup
	fsm   *fsm.MetaFSM
	// sync says whether the local metadata is current (Node.metaCaughtUp)
	// and when it first was (see Node.groupFormed).
	sync metaSync
	// duties wakes the controller's duties (see Node.controllerDuties).
	duties chan struct{}
}

// state is the metadata as this node has applied it.
func (m *metadata) state() *fsm.MetaState { return m.fsm.State() }

// controllerID is the metadata group's leader as this node knows it, or
// -1.
func (m *metadata) controllerID() int32 { return leaderID(m.group.raft) }

// isController reports whether this node leads the metadata group and has
// caught up in its term.
func (m *metadata) isController() bool {
	ok, _ := m.group.leaderTerm()
	return ok
}

// rpcMetaReadIndex asks the metadata leader for its commit index.
const rpcMetaReadIndex = "meta.readindex"

func (m *metadata) handleReadIndex(context.Context, int32, []byte) ([]byte, error) {
	if !m.isController() {
		return nil, errNotController
	}
	return binary.BigEndian.AppendUint64(nil, m.group.raft.CommitIndex()), nil
}
