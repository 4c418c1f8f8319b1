package gossip

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"
)

// joinLoop joins the configured seeds, retrying with backoff until one
// answers, then keeps reconnecting dead members. memberlist never contacts
// a dead node again once it stops gossiping to it (GossipToTheDeadTime),
// so without reconnecting a healed partition would stay split.
func (g *Gossip) joinLoop() {
	seeds := g.seeds()
	delay := g.t.joinMin
	for len(seeds) > 0 && !g.hasLeft() {
		n, err := g.ml.Join(seeds)
		if n > 0 {
			g.log.Info("joined cluster", "answered", n, "seeds", seeds)
			break
		}
		g.log.Info("no seed answered, retrying", "seeds", seeds, "retry-in", delay, "error", err)
		if !g.sleep(delay) {
			return
		}
		delay = min(2*delay, g.t.joinMax)
	}
	for g.sleep(g.t.reconnect) {
		if !g.hasLeft() {
			g.reconnect(seeds)
		}
	}
}

// reconnect tries to join one dead member, or a seed if no peer is alive.
// One attempt per call bounds the time spent on unreachable hosts.
func (g *Gossip) reconnect(seeds []string) {
	targets := g.reconnectTargets(seeds)
	if len(targets) == 0 {
		return
	}
	target := targets[rand.IntN(len(targets))]
	if _, err := g.ml.Join([]string{target}); err != nil {
		g.log.Debug("reconnect failed", "addr", target, "error", err)
		return
	}
	g.log.Debug("reconnected", "addr", target)
}

// reconnectTargets lists the addresses of dead members, plus the seeds
// when this node sees no live peer at all.
func (g *Gossip) reconnectTargets(seeds []string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var targets []string
	livePeers := 0
	for _, m := range g.members {
		switch {
		case m.Meta.ID == g.self:
		case m.State == StateDead:
			targets = append(targets, m.Addr)
		case m.State != StateLeft:
			livePeers++
		}
	}
	if livePeers == 0 {
		targets = append(targets, seeds...)
	}
	return targets
}

// seeds is cfg.Join and the remembered peers, without this node's own
// address: answering ourselves would end the join loop before any peer
// was found.
func (g *Gossip) seeds() []string {
	all := append(slices.Clone(g.cfg.Join), g.remembered...)
	slices.Sort(all)
	return slices.DeleteFunc(slices.Compact(all), func(a string) bool {
		return a == g.addr || a == g.cfg.BindAddr
	})
}

// readPeers loads the peers remembered by an earlier run, if any.
func readPeers(path string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// rememberPeers writes the gossip addresses of the members this node
// knows, other than itself and those that left, for the next run. Only a
// change is written, through a temporary file so a crash leaves the old
// list or the new one.
func (g *Gossip) rememberPeers() {
	if g.cfg.PeersFile == "" {
		return
	}
	var addrs []string
	for _, m := range g.Members() {
		if m.Meta.ID != g.self && m.State != StateLeft && m.Addr != "" {
			addrs = append(addrs, m.Addr)
		}
	}
	slices.Sort(addrs)
	text := strings.Join(addrs, "\n")
	if text == g.written {
		return
	}
	tmp := g.cfg.PeersFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(text+"\n"), 0o644); err != nil {
		g.log.Warn("could not remember peers", "error", err)
		return
	}
	if err := os.Rename(tmp, g.cfg.PeersFile); err != nil {
		g.log.Warn("could not remember peers", "error", err)
		return
	}
	g.written = text
}

// hasLeft reports whether Leave was called.
func (g *Gossip) hasLeft() bool {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	return g.leaving
}

// sleep waits d, or returns false at once on Shutdown.
func (g *Gossip) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.stop:
		return false
	}
}
