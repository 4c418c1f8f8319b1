package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. memberlist calls most of them
// with its node lock held, so each one only copies what it needs under
// g.mu and wakes refreshLoop; none calls back into memberlist.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.AliveDelegate    = delegate{}
	_ memberlist.MergeDelegate    = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
	_ memberlist.PingDelegate     = delegate{}
)

// NodeMeta hands memberlist the encoded local meta; its size was checked
// when it was set.
func (d delegate) NodeMeta(limit int) []byte {
	d.g.metaMu.Lock()
	defer d.g.metaMu.Unlock()
	return d.g.wire
}

// Gossip carries node meta only: Quire sends no user messages and keeps
// no state of its own in push/pull exchanges, so these four are empty.
func (delegate) NotifyMsg([]byte)                       {}
func (delegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (delegate) LocalState(bool) []byte                 { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool) {}

func (d delegate) NotifyJoin(n *memberlist.Node) {
	d.g.noteNode(n, true)
	d.g.wake()
}

func (d delegate) NotifyUpdate(n *memberlist.Node) {
	d.g.noteNode(n, true)
	d.g.wake()
}

func (d delegate) NotifyLeave(n *memberlist.Node) {
	d.g.noteNode(n, false)
	d.g.wake()
}

// NotifyAlive admits a node only if its name and meta agree and it belongs
// to this cluster; memberlist ignores the node while this returns an error.
func (d delegate) NotifyAlive(n *memberlist.Node) error {
	return d.g.admit(n)
}

// NotifyMerge refuses a push/pull, and so a join, that would bring in any
// node admit refuses.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.g.admit(n); err != nil {
			return err
		}
	}
	return nil
}

// NotifyConflict reports two addresses claiming one node id. memberlist
// keeps the one it knew; the operator has to stop the other.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.g.log.Warn("node id conflict: two nodes claim one id", "name", existing.Name,
		"known-addr", existing.Address(), "other-addr", other.Address())
}

func (delegate) AckPayload() []byte { return nil }

func (d delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.g.noteAck(other.Name)
}

// admit checks a node announced by gossip.
func (g *Gossip) admit(n *memberlist.Node) error {
	id, ok := idFromName(n.Name)
	if !ok {
		return fmt.Errorf("node %q: name is not %s<id>", n.Name, namePrefix)
	}
	w, err := decodeMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if w.ID != id {
		return fmt.Errorf("node %s: meta says id %d", n.Name, w.ID)
	}
	if w.ClusterID != g.cfg.Meta.ClusterID {
		return fmt.Errorf("node %s: cluster %q, want %q: %w", n.Name, w.ClusterID, g.cfg.Meta.ClusterID, ErrForeignCluster)
	}
	return nil
}
