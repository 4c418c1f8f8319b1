package gossip

import (
	"cmp"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's liveness as this node sees it.
type State int

const (
	// StateAlive: memberlist lists the node and it answers probes.
	StateAlive State = iota
	// StateSuspect: memberlist still lists the node, but it has not
	// acknowledged a direct probe from this node for a while. memberlist
	// does not expose its own suspicion, so this is this node's estimate
	// from probe acks (see timings.suspectAfter); it usually precedes Dead.
	StateSuspect
	// StateDead: memberlist declared the node failed.
	StateDead
	// StateLeft: the node announced a graceful leave and is gone.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node as this node sees it.
type Member struct {
	Meta NodeMeta
	// Addr is the member's gossip address (host:port).
	Addr  string
	State State
}

// record is what this node knows about one member. A member stays recorded
// after it dies or leaves, so it can be reported as such and reconnected.
type record struct {
	member Member
	// live is memberlist's view: the node is alive or suspect.
	live bool
	// leaving is set when the node's last meta announced a graceful leave.
	leaving bool
	// lastAck is when the node last acknowledged a direct probe, or when
	// it (re)joined: a newcomer gets a full window before suspicion.
	lastAck time.Time
}

// state derives a record's State at now.
func (r *record) state(self bool, now time.Time, suspectAfter time.Duration) State {
	switch {
	case !r.live && r.leaving:
		return StateLeft
	case !r.live:
		return StateDead
	case self || now.Sub(r.lastAck) <= suspectAfter:
		return StateAlive
	}
	return StateSuspect
}

// noteNode records what memberlist says about n. memberlist calls its
// event delegate with its node lock held, and n is only safe to read
// during the call, so everything needed is copied here.
func (g *Gossip) noteNode(n *memberlist.Node, live bool) {
	id, ok := idFromName(n.Name)
	if !ok {
		return // admit refused it, so it never reaches here
	}
	w, err := decodeMeta(n.Meta)
	if err != nil {
		return // admit refused it, so it never reaches here
	}
	addr := n.Address()
	now := time.Now()

	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.records[id]
	if r == nil {
		r = &record{}
		g.records[id] = r
	}
	if live && !r.live {
		r.lastAck = now
	}
	r.live = live
	r.leaving = w.Leaving
	r.member.Meta = w.NodeMeta
	r.member.Addr = addr
}

// noteAck records a probe acknowledged by the node named name.
func (g *Gossip) noteAck(name string) {
	id, ok := idFromName(name)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.records[id]; r != nil {
		r.lastAck = time.Now()
	}
}

// refresh re-derives every member's state and publishes the result if it
// changed, waking subscribers.
func (g *Gossip) refresh() {
	g.mu.Lock()
	changed := g.publishLocked(time.Now())
	g.mu.Unlock()
	if changed {
		select {
		case g.changed <- struct{}{}:
		default: // a notification is already pending; it will see this too
		}
	}
}

// publishLocked rebuilds the member snapshot and the address indexes the
// fault hook reads, and reports whether the snapshot changed.
func (g *Gossip) publishLocked(now time.Time) bool {
	peers := -1 // the local node is live too
	for _, r := range g.records {
		if r.live {
			peers++
		}
	}
	after := g.t.suspectAfter(peers)
	next := make([]Member, 0, len(g.records))
	for id, r := range g.records {
		r.member.State = r.state(id == g.self, now, after)
		next = append(next, r.member)
	}
	slices.SortFunc(next, func(a, b Member) int { return cmp.Compare(a.Meta.ID, b.Meta.ID) })
	if slices.Equal(next, g.members) {
		return false
	}
	g.logChangesLocked(next)
	g.members = next
	g.indexLocked()
	return true
}

// logChangesLocked logs each member whose state differs in next from the
// published snapshot.
func (g *Gossip) logChangesLocked(next []Member) {
	prev := make(map[int32]State, len(g.members))
	for _, m := range g.members {
		prev[m.Meta.ID] = m.State
	}
	for _, m := range next {
		if was, ok := prev[m.Meta.ID]; !ok || was != m.State {
			g.log.Info("member state changed", "id", m.Meta.ID, "addr", m.Addr, "state", m.State)
		}
	}
}

// indexLocked maps gossip addresses, and hosts used by a single member, to
// member ids.
func (g *Gossip) indexLocked() {
	g.byAddr = make(map[string]int32, len(g.members))
	g.byHost = make(map[string]int32, len(g.members))
	for _, m := range g.members {
		g.byAddr[m.Addr] = m.Meta.ID
		host, _, err := net.SplitHostPort(m.Addr)
		if err != nil {
			continue
		}
		if _, seen := g.byHost[host]; seen {
			g.byHost[host] = -1 // shared: cannot tell members apart
		} else {
			g.byHost[host] = m.Meta.ID
		}
	}
}

// peerByAddr returns the member whose gossip address is addr.
func (g *Gossip) peerByAddr(addr string) (int32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.byAddr[addr]
	return id, ok
}

// peerByHost returns the only member whose gossip address is on host.
func (g *Gossip) peerByHost(host string) (int32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.byHost[host]
	return id, ok && id >= 0
}

// refreshLoop re-derives states every probe interval, and at once when
// memberlist reports an event.
func (g *Gossip) refreshLoop() {
	tick := time.NewTicker(g.t.refresh)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		case <-g.kick:
		}
		g.refresh()
	}
}

// notifyLoop runs subscribers, off memberlist's goroutines: a slow
// subscriber delays only later notifications, which coalesce meanwhile.
func (g *Gossip) notifyLoop() {
	for {
		select {
		case <-g.stop:
			return
		case <-g.changed:
		}
		g.mu.Lock()
		subs := slices.Clone(g.subs)
		g.mu.Unlock()
		for _, fn := range subs {
			fn()
		}
		g.rememberPeers()
	}
}

// wake asks refreshLoop for an early pass. It never blocks, so memberlist
// may call it with its locks held.
func (g *Gossip) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}
