package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// Quiescence: a partition group that has taken no writes for quiesceAfter
// stretches its leader's heartbeat timeout to quietTimeout, so its
// heartbeats go out a quarter as often. Its leadership is held by node
// liveness meanwhile (elections.go): followers need no heartbeats to know
// their leader's node is up. The first write brings the normal timeout
// back.
//
// Only the leader changes: hashicorp/raft's leader lease (the group
// timeout, fixed when raft starts) must still see a follower's answer
// within it, and followers keep the group timeout as their own, so a
// quiet leader's heartbeats, at most a fifth of quietTimeout apart, must
// come well within both: quietTimeout is four group timeouts.
const quiesceAfter = 30 * time.Second

func (n *Node) quietTimeout() time.Duration { return 4 * n.cfg.GroupTimeout }

// quiesceLoop quiets idle leaders, and restores replicas that were quiet
// leaders and lost the leadership.
func (n *Node) quiesceLoop() {
	n.loop(10*time.Second, nil, func() {
		now := time.Now().UnixNano()
		quieted := 0
		for _, r := range n.allReplicas() {
			g := r.group
			leader := g.raft.State() == raft.Leader
			switch {
			case leader && !g.quiet.Load() && time.Duration(now-g.lastActive.Load()) > quiesceAfter:
				if g.setQuiet(true, n.quietTimeout(), n.cfg.GroupTimeout) {
					quieted++
				}
			case !leader && g.quiet.Load():
				g.setQuiet(false, n.quietTimeout(), n.cfg.GroupTimeout)
			}
		}
		n.metrics.quietGroups.Add(float64(quieted))
	})
}

// setQuiet switches the group's heartbeat and election timeouts between
// quiet and normal, and reports whether it changed them.
func (g *raftGroup) setQuiet(quiet bool, quietTimeout, normal time.Duration) bool {
	g.quietMu.Lock()
	defer g.quietMu.Unlock()
	if g.quiet.Load() == quiet {
		return false
	}
	d := normal
	if quiet {
		d = quietTimeout
	}
	rc := g.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = d, d
	if err := g.raft.ReloadConfig(rc); err != nil {
		g.logger.Warn("cannot change the group's timeouts", "quiet", quiet, "error", err)
		return false
	}
	g.quiet.Store(quiet)
	return true
}

// active records a write; a quiet group goes back to its normal timeouts,
// which also sends its followers a heartbeat at once.
func (g *raftGroup) active(quietTimeout, normal time.Duration) {
	g.lastActive.Store(time.Now().UnixNano())
	if g.quiet.Load() {
		g.setQuiet(false, quietTimeout, normal)
	}
}
