package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/partition"
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
	// onOpen runs once when the gate opens (see rebuildMarker).
	onOpen    func()
	onOpenRan sync.Once
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
func (g *voteGate) openNow() {
	g.open.Store(true)
	g.opened()
}

func (g *voteGate) opened() {
	if g.onOpen != nil {
		g.onOpenRan.Do(g.onOpen)
	}
}

// RequestVote implements raft.Transport. A replica that has forgotten
// entries must not stand for election either: with one lagging peer's
// vote it could win and erase what the others committed.
func (g *voteGate) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if !g.voting() {
		return errRebuilding
	}
	return g.gatedTransport.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote, gated as RequestVote.
func (g *voteGate) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if !g.voting() {
		return errRebuilding
	}
	return g.gatedTransport.RequestPreVote(id, target, args, resp)
}

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
	g.opened()
	return true
}

// rebuildMarker is a file in a group's directory that says its replica
// started behind a closed vote gate and has not caught up yet. Without it
// a replica killed while catching up would restart with a term and part
// of a log, look like any other, and vote with what it has forgotten.
// It holds why: markDamaged or markEmpty.
const (
	rebuildMarker = "REBUILDING"
	markDamaged   = "damaged" // data was wiped: wipe again, a wipe may not have finished
	markEmpty     = "empty"   // started with no state in a group that existed
)

func markRebuilding(dir, reason string) error {
	path := filepath.Join(dir, rebuildMarker)
	if rebuildReason(dir) == reason {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.WriteString(reason)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return partition.SyncDir(dir)
}

// rebuildReason is the marker's reason, or "" when there is none.
func rebuildReason(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, rebuildMarker))
	if err != nil {
		return ""
	}
	if r := string(b); r == markEmpty {
		return r
	}
	return markDamaged // unreadable or torn: assume the worse
}

func clearRebuilding(dir string) error {
	if err := os.Remove(filepath.Join(dir, rebuildMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return partition.SyncDir(dir)
}

// Close stops the gate and the transport under it.
func (g *voteGate) Close() error {
	g.once.Do(func() { close(g.stop) })
	return g.gatedTransport.Close()
}
