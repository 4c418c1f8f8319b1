package cluster

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// errRebuilding answers vote requests sent to a replica that is being
// rebuilt.
var errRebuilding = errors.New("replica is being rebuilt from its peers and does not vote yet")

// voteGate wraps the Raft transport of a replica rebuilt from scratch after
// its data was found damaged. Such a replica has forgotten entries it may
// have acknowledged, so its vote could help elect a leader that lacks a
// committed record, which would then be erased. Until it has applied
// everything committed when a leader first reached it, it refuses every
// vote and pre-vote; it cannot win an election itself, as its log is
// behind every peer's. After that it is an ordinary voter again.
type voteGate struct {
	gatedTransport
	out     chan raft.RPC
	stop    chan struct{}
	logger  hclog.Logger
	applied atomic.Pointer[func() uint64] // set once raft runs
	target  atomic.Uint64                 // leader commit index first seen; 0 = none yet
	open    atomic.Bool
	once    sync.Once
}

// gatedTransport is what a voteGate wraps: raft enables pre-vote only for
// transports that offer it, so the gate must keep offering it.
type gatedTransport interface {
	raft.Transport
	raft.WithClose
	raft.WithPreVote
}

func newVoteGate(inner gatedTransport, logger hclog.Logger) *voteGate {
	g := &voteGate{gatedTransport: inner, out: make(chan raft.RPC), stop: make(chan struct{}), logger: logger}
	go g.run(inner.Consumer())
	return g
}

// Consumer implements raft.Transport.
func (g *voteGate) Consumer() <-chan raft.RPC { return g.out }

// setApplied tells the gate how to read the replica's applied index.
func (g *voteGate) setApplied(fn func() uint64) { g.applied.Store(&fn) }

func (g *voteGate) run(in <-chan raft.RPC) {
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-g.stop:
			return
		}
		switch cmd := rpc.Command.(type) {
		case *raft.RequestVoteRequest, *raft.RequestPreVoteRequest:
			if !g.voting() {
				rpc.Respond(nil, errRebuilding)
				continue
			}
		case *raft.AppendEntriesRequest:
			if cmd.LeaderCommitIndex > 0 {
				g.target.CompareAndSwap(0, cmd.LeaderCommitIndex)
			}
			g.voting() // opens the gate, and says so, as soon as it can
		}
		select {
		case g.out <- rpc:
		case <-g.stop:
			return
		}
	}
}

// openNow lets the replica vote at once: it founds a new group, so it has
// no earlier votes or acknowledgements to have forgotten.
func (g *voteGate) openNow() { g.open.Store(true) }

// voting reports whether the replica has caught up far enough to vote.
func (g *voteGate) voting() bool {
	if g.open.Load() {
		return true
	}
	fn, target := g.applied.Load(), g.target.Load()
	if fn == nil || target == 0 || (*fn)() < target {
		return false
	}
	g.open.Store(true)
	g.logger.Info("rebuilt replica caught up; voting again", "applied", (*fn)(), "leader_commit", target)
	return true
}

// Close stops the gate and the transport under it.
func (g *voteGate) Close() error {
	g.once.Do(func() { close(g.stop) })
	return g.gatedTransport.Close()
}
