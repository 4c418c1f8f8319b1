package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/transport/node"
)

// Partition groups do not elect on their own timers, which are long so
// that idle groups cost almost nothing (see raftConfig). The node elects
// for them, from what node liveness tells it once for every group:
//
//   - A group whose leader's node stops answering (node.Transport's pings,
//     or a refused connection when its process is gone), or that has no
//     leader at all (a new topic, a restart), becomes a suspect.
//   - For each suspect the node asks the group's other voters, one call per
//     peer for all groups, whether they see a live leader, and how long
//     their log is. Only when a majority of the voters, this node
//     included, see none does the most up-to-date of them (ties go to the
//     preferred replica) start an election at once: the node hands its raft
//     a TimeoutNow, as a leader handing over leadership would.
//   - A voter later in that order waits a second per place, from when the
//     voters first agreed, before it tries, in case the first could not
//     win.
//   - No voter stands while another answers that it leads the group or
//     was nudged within campaignGrace. Two replicas standing in the same
//     term can split the vote, and a candidate that lost waits out raft's
//     own election timeout (the long group timeout); on a busy node, where
//     an election can take longer than the backup delay, that left
//     thousands of groups leaderless for minutes after a restart. A
//     candidate older than the grace is no obstacle: a voter that stands
//     then asks in a later term, and the candidate steps down and votes.
//
// Why this is safe: a TimeoutNow only makes a replica stand for election;
// Raft's vote decides, so there is still at most one leader per term (the
// leader epoch), and only a leader whose entries a majority holds can win.
// The agreement step keeps a replica with a flaky link to its leader from
// unseating a leader that the majority still hears: a TimeoutNow election
// skips raft's pre-vote, which would otherwise be what protects it.
const (
	driverInterval  = 100 * time.Millisecond
	leaderlessGrace = time.Second
	backupDelay     = time.Second
	renudgeAfter    = 3 * time.Second
	suspectFor      = time.Minute
	sweepInterval   = 5 * time.Second
	agreeTimeout    = time.Second
	// reaskAfter spaces out asking the voters again about a group they did
	// not agree on (it had a live leader, or had not started everywhere):
	// at the next driver pass. The voters' pingers time a silent leader
	// out up to a ping interval apart, so the first to notice is often
	// refused once; a longer wait here is added to every such fail-over
	// when the one refused is the preferred candidate.
	reaskAfter = driverInterval / 2
	// campaignGrace is how long a replica's own nudged candidacy keeps the
	// group's other voters from standing.
	campaignGrace = 5 * time.Second
)

// rpcAgree asks a peer, for a list of groups, whether it sees a live
// leader for each, and its last log index.
const rpcAgree = "raft.agree"

type electionDriver struct {
	self    int32
	running *registry
	reports *reportSet
	metrics *nodeMetrics
	logger  hclog.Logger
	// ctx ends with the node; started is closed once the node has started
	// every part, before which liveness news is ignored.
	ctx     context.Context
	started <-chan struct{}
	// nt is set once the node transport listens, before started closes.
	nt *node.Transport

	mu       sync.Mutex
	suspects map[*raftGroup]time.Time
	wake     chan struct{}
	// kicked holds the groups restartStalled has kicked and that were
	// still stalled at its last pass; only the election goroutine uses it.
	kicked map[*raftGroup]bool
	// agreed holds when each suspect's voters first agreed to an election
	// (under mu): a backup's delay counts from then, not from the
	// suspicion, which for a new or restarted group starts long before
	// its voters have all started it, when the first in order could not
	// yet have stood.
	agreed map[*raftGroup]time.Time
	// goneAt holds, per peer (int32), when its process was last found gone
	// (UnixNano): a leadership it held then ended with it, whatever
	// followers' rafts still remember (see followsLiveLeader).
	goneAt sync.Map
}

// markGone notes that peer's process was found gone now.
func (d *electionDriver) markGone(peer int32) { d.goneAt.Store(peer, time.Now().UnixNano()) }

// goneSince is when peer's process was last found gone.
func (d *electionDriver) goneSince(peer int32) (int64, bool) {
	at, ok := d.goneAt.Load(peer)
	if !ok {
		return 0, false
	}
	return at.(int64), true
}

func newElectionDriver(n *Node) *electionDriver {
	return &electionDriver{self: n.cfg.NodeID, running: n.replicas.running, reports: n.leadership.reports,
		metrics: n.metrics, logger: n.logger, ctx: n.ctx, started: n.started, suspects: make(map[*raftGroup]time.Time), wake: make(chan struct{}, 1),
		kicked: make(map[*raftGroup]bool), agreed: make(map[*raftGroup]time.Time)}
}

// suspect queues groups to get a leader.
func (d *electionDriver) suspect(gs ...*raftGroup) {
	if len(gs) == 0 {
		return
	}
	now := time.Now()
	d.mu.Lock()
	for _, g := range gs {
		if _, ok := d.suspects[g]; !ok {
			d.suspects[g] = now
		}
	}
	d.mu.Unlock()
	kick(d.wake)
}

func (d *electionDriver) drop(g *raftGroup) {
	d.mu.Lock()
	delete(d.suspects, g)
	delete(d.agreed, g)
	d.mu.Unlock()
}

// agreedSince records that g's voters agree to an election now, unless
// they already did, and reports since when.
func (d *electionDriver) agreedSince(g *raftGroup, now time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.agreed[g]
	if !ok {
		d.agreed[g] = now
		at = now
	}
	return at
}

func (d *electionDriver) snapshot() map[*raftGroup]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[*raftGroup]time.Time, len(d.suspects))
	for g, t := range d.suspects {
		out[g] = t
	}
	return out
}

// runElections is the node's one election goroutine.
func (d *electionDriver) runElections() {
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	stalled := time.NewTicker(time.Second)
	defer stalled.Stop()
	tick := time.NewTicker(driverInterval)
	defer tick.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.wake:
		case <-tick.C:
		case <-sweep.C:
			d.sweepLeaderless()
		case <-stalled.C:
			d.restartStalled()
		}
		d.driveElections()
	}
}

// sweepLeaderless finds groups that have gone without a live leader for
// leaderlessGrace (events can be missed: a leader that failed while this
// node was busy, an election that fizzled), and leaders that do not serve
// yet.
func (d *electionDriver) sweepLeaderless() {
	now := time.Now().UnixNano()
	var found []*raftGroup
	for _, r := range d.running.all() {
		g := r.group
		if g.gate != nil {
			// A rebuilt replica's gate opens when an append finds it caught
			// up; in an idle partition the append that would has no
			// successor for a heartbeat interval.
			g.gate.voting()
		}
		switch g.raft.State() {
		case raft.Leader:
			g.leaderlessSince.Store(0)
			g.serve()
			continue
		case raft.Follower:
		default:
			continue
		}
		if d.hasLiveLeader(g) {
			g.leaderlessSince.Store(0)
			continue
		}
		since := g.leaderlessSince.Load()
		if since == 0 {
			g.leaderlessSince.Store(now)
		} else if time.Duration(now-since) >= leaderlessGrace {
			found = append(found, g)
		}
	}
	d.suspect(found...)
}

// hasLiveLeader reports whether the group's leader, as this node knows it,
// is another node that answers (or this node).
func (d *electionDriver) hasLiveLeader(g *raftGroup) bool {
	return g.raft.State() == raft.Leader || d.followsLiveLeader(g, -1)
}

// followsLiveLeader reports whether the group's raft here names another
// node (not except) as leader that answers, and whose process was not
// found gone since it was last heard from: a restarted process leads
// nothing, though it answers again and this node's raft names it until
// its group timeout (a minute) passes.
func (d *electionDriver) followsLiveLeader(g *raftGroup, except int32) bool {
	leader := leaderID(g.raft)
	if leader < 0 || leader == d.self || leader == except || !d.nt.Reachable(leader) {
		return false
	}
	if at, ok := d.goneSince(leader); ok && g.raft.LastContact().UnixNano() < at {
		return false
	}
	return true
}

// peerGone runs when peer's process is found gone (its listener refuses
// connections): as peerUnreachable, and its leaderships are over even
// once it is back.
func (d *electionDriver) peerGone(peer int32) {
	d.markGone(peer)
	d.peerUnreachable(peer)
}

func leaderID(r *raft.Raft) int32 {
	_, id := r.LeaderWithID()
	if id == "" {
		return -1
	}
	v, err := strconv.Atoi(string(id))
	if err != nil {
		return -1
	}
	return int32(v)
}

// driveElections looks at every suspect once: drops those that have a
// live leader again, and starts elections where the group's voters agree.
func (d *electionDriver) driveElections() {
	suspects := d.snapshot()
	if len(suspects) == 0 {
		return
	}
	now := time.Now()
	var ask []*raftGroup
	for g, since := range suspects {
		if g.isStopped() || now.Sub(since) > suspectFor || d.hasLiveLeader(g) {
			d.drop(g)
			continue
		}
		if g.raft.State() != raft.Follower {
			continue // a candidate: an election is under way
		}
		if g.gate != nil && !g.gate.voting() {
			d.drop(g)
			continue
		}
		if now.Sub(time.Unix(0, g.nudgedAt.Load())) < renudgeAfter ||
			now.Sub(time.Unix(0, g.askedAt.Load())) < reaskAfter {
			continue
		}
		g.askedAt.Store(now.UnixNano())
		ask = append(ask, g)
	}
	if len(ask) == 0 {
		return
	}
	views := d.askVoters(ask)
	for _, g := range ask {
		rank, agreed := d.electionRank(g, views)
		if !agreed || anotherStands(g, views) {
			continue
		}
		since := d.agreedSince(g, now)
		if rank > 0 && now.Sub(since) < time.Duration(rank)*backupDelay {
			continue
		}
		d.nudge(g)
	}
}

// restartStalled restarts replication to followers whose last append
// failed and that answer again. hashicorp/raft itself retries only when
// new entries arrive or its commit timeout passes, minutes for an idle
// partition group: a barrier is a new entry. Retries back off to once a
// minute for a follower that keeps failing while it answers pings, and
// the back-off ends once the group is no longer stalled.
func (d *electionDriver) restartStalled() {
	now := time.Now()
	stalled := d.nt.StalledGroups()
	still := make(map[*raftGroup]bool, len(stalled))
	for _, mg := range stalled {
		if g := d.running.groupByName(mg.Name()); g != nil {
			still[g] = true
		}
	}
	for g := range d.kicked {
		if !still[g] {
			g.kickGap.Store(0)
			delete(d.kicked, g)
		}
	}
	for _, mg := range stalled {
		g := d.running.groupByName(mg.Name())
		if g == nil || g.raft.State() != raft.Leader {
			continue
		}
		due := false
		for _, p := range mg.Stalled() {
			due = due || d.nt.Reachable(p)
		}
		gap := time.Duration(g.kickGap.Load())
		if !due || now.Sub(time.Unix(0, g.kickedAt.Load())) < gap {
			continue
		}
		g.kickedAt.Store(now.UnixNano())
		g.kickGap.Store(int64(min(max(2*gap, time.Second), time.Minute)))
		d.kicked[g] = true
		go g.raft.Barrier(10 * time.Second)
	}
}

// voterView is what one voter answered for one group.
type voterView struct {
	agree bool
	// campaigning: the voter stands for election from a nudge of the last
	// campaignGrace; leading: it leads the group and was not deposed.
	campaigning bool
	leading     bool
	lastIndex   uint64
}

// Answers of handleAgree, one byte per group before its last log index.
const (
	agreeNo          = 0
	agreeYes         = 1
	agreeCampaigning = 2
	agreeLeading     = 3
)

// anotherStands reports whether another voter of g said it leads the
// group or stands for election now: a voter that answers is reachable,
// so standing against it would only split the vote or depose a leader
// whose followers have not heard from it yet.
func anotherStands(g *raftGroup, views map[int32]map[*raftGroup]voterView) bool {
	for _, vs := range views {
		if v := vs[g]; v.campaigning || v.leading {
			return true
		}
	}
	return false
}

// askVoters asks every peer that is a voter of some of the groups, in one
// call per peer, for its view of each.
func (d *electionDriver) askVoters(gs []*raftGroup) map[int32]map[*raftGroup]voterView {
	byPeer := make(map[int32][]*raftGroup)
	for _, g := range gs {
		for _, v := range g.voters {
			if v != d.self && d.nt.Reachable(v) {
				byPeer[v] = append(byPeer[v], g)
			}
		}
	}
	out := make(map[int32]map[*raftGroup]voterView, len(byPeer))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for peer, groups := range byPeer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			views := d.askVoter(peer, groups)
			mu.Lock()
			out[peer] = views
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (d *electionDriver) askVoter(peer int32, gs []*raftGroup) map[*raftGroup]voterView {
	var req []byte
	for _, g := range gs {
		req = binary.AppendUvarint(req, uint64(len(g.name)))
		req = append(req, g.name...)
	}
	ctx, cancel := context.WithTimeout(d.ctx, agreeTimeout)
	defer cancel()
	resp, err := d.nt.Call(ctx, peer, rpcAgree, req)
	if err != nil {
		d.logger.Debug("asking a voter about leaders failed", "peer", peer, "error", err)
		return nil
	}
	return parseAgree(resp, gs)
}

// parseAgree reads handleAgree's answer about gs; a short answer yields
// views for the groups it covers.
func parseAgree(resp []byte, gs []*raftGroup) map[*raftGroup]voterView {
	views := make(map[*raftGroup]voterView, len(gs))
	for _, g := range gs {
		if len(resp) == 0 {
			return views
		}
		answer := resp[0]
		idx, k := binary.Uvarint(resp[1:])
		if k <= 0 {
			return views
		}
		resp = resp[1+k:]
		views[g] = voterView{
			agree:       answer == agreeYes || answer == agreeCampaigning,
			campaigning: answer == agreeCampaigning,
			leading:     answer == agreeLeading,
			lastIndex:   idx,
		}
	}
	return views
}

// handleAgree answers askVoter: per group, agreeYes if this node runs it
// and sees no live leader for it (so it agrees to an election),
// agreeCampaigning if besides it stands from a recent nudge, agreeLeading
// if it leads the group, and its last log index.
func (d *electionDriver) handleAgree(_ context.Context, from int32, req []byte) ([]byte, error) {
	var out []byte
	for len(req) > 0 {
		l, k := binary.Uvarint(req)
		if k <= 0 || uint64(len(req)-k) < l {
			return nil, errBadAgree
		}
		name := string(req[k : k+int(l)])
		req = req[k+int(l):]
		g := d.running.groupByName(name)
		if g == nil {
			// Not started here yet (a new topic): a vote asked of it now
			// would wait for it, and fail if it took long.
			out = append(out, agreeNo)
			out = binary.AppendUvarint(out, 0)
			continue
		}
		live, leading := false, false
		if g.raft.State() == raft.Leader {
			// A leader elected from a recent nudge counts before it serves:
			// on a busy node it can take seconds to commit its barrier, and
			// a voter that stood meanwhile would depose it. One that has
			// not served for longer may have no followers to commit with.
			term := g.raft.CurrentTerm()
			leading = g.deposedTerm.Load() != term && (g.servingTerm.Load() == term || g.nudgedRecently())
			live = leading
		} else if g.raft.State() == raft.Follower {
			// The asker named leader here only means this node has not
			// heard that it lost the leadership.
			live = d.followsLiveLeader(g, from)
		}
		switch {
		case leading:
			out = append(out, agreeLeading)
		case live:
			out = append(out, agreeNo)
		case g.nudgedRecently():
			// Still a follower counts too: the nudge may not have reached
			// raft yet, and a candidate that lost steps down.
			out = append(out, agreeCampaigning)
		default:
			out = append(out, agreeYes)
		}
		out = binary.AppendUvarint(out, g.raft.LastIndex())
	}
	return out, nil
}

// electionRank decides from the voters' views whether the group may elect
// (a majority of its voters, this node included, sees no live leader) and
// this node's place among the agreeing voters that could stand: the
// longest log first, then preference order.
func (d *electionDriver) electionRank(g *raftGroup, views map[int32]map[*raftGroup]voterView) (int, bool) {
	type cand struct {
		id   int32
		last uint64
		pref int
	}
	var cands []cand
	for pref, v := range g.voters {
		if v == d.self {
			cands = append(cands, cand{v, g.raft.LastIndex(), pref})
			continue
		}
		if view, ok := views[v][g]; ok && view.agree {
			cands = append(cands, cand{v, view.lastIndex, pref})
		}
	}
	if len(cands) < len(g.voters)/2+1 {
		return 0, false
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.last != b.last {
			if a.last > b.last {
				return -1
			}
			return 1
		}
		return a.pref - b.pref
	})
	for i, c := range cands {
		if c.id == d.self {
			return i, true
		}
	}
	return 0, false
}

// nudgedRecently reports whether this node nudged the group within
// campaignGrace.
func (g *raftGroup) nudgedRecently() bool {
	return time.Since(time.Unix(0, g.nudgedAt.Load())) < campaignGrace
}

// nudge makes the group's replica here stand for election now.
func (d *electionDriver) nudge(g *raftGroup) {
	g.nudgedAt.Store(time.Now().UnixNano())
	self := []byte(raftID(d.self))
	g.mux.Inject(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: self, Addr: self}})
	d.metrics.nudgedElections.Inc()
}

// peerUnreachable runs when peer stops answering, or its process is found
// gone: groups it led get a leader elected, and groups this node leads
// that no longer reach a quorum stop serving at once.
func (d *electionDriver) peerUnreachable(peer int32) {
	select {
	case <-d.started:
	default:
		return
	}
	if d.ctx.Err() != nil {
		return
	}
	var orphaned []*raftGroup
	fenced := 0
	for _, r := range d.running.all() {
		g := r.group
		switch g.raft.State() {
		case raft.Follower:
			if leaderID(g.raft) == peer {
				orphaned = append(orphaned, g)
			}
		case raft.Leader:
			if slices.Contains(r.replicas, peer) && !d.quorumReachable(r.replicas) {
				r.proposer.abort()
				fenced++
			}
		}
	}
	d.suspect(orphaned...)
	if len(orphaned) > 0 || fenced > 0 {
		d.logger.Info("peer unreachable: electing new leaders for the partitions it led, and fencing those that lost their quorum here",
			"peer", peer, "orphaned", len(orphaned), "fenced", fenced)
	}
	d.reports.addAll()
}

// peerReachable runs when peer answers again. Each group this node leads
// with it commits a barrier: its replication to the peer may be waiting
// out raft's commit timeout after failed calls, and the barrier's append
// starts it now, so the peer learns its leader and catches up at once.
func (d *electionDriver) peerReachable(peer int32) {
	select {
	case <-d.started:
	default:
		return
	}
	for _, r := range d.running.all() {
		if !slices.Contains(r.replicas, peer) || r.group.raft.State() != raft.Leader {
			continue
		}
		r.group.mux.ForgetProgress(peer)
		go r.group.raft.Barrier(10 * time.Second)
	}
	d.reports.addAll()
}

// selfStalled runs when this process was stopped or starved past the
// liveness timeout (SIGSTOP, a paused VM). Its peers may have elected new
// leaders meanwhile, and this node would not know until it next talks to
// them. Each leadership here stops serving at once, answers the batches
// it holds with NOT_LEADER_OR_FOLLOWER, and commits a barrier: a quorum
// accepts it only if this node still leads; otherwise the followers'
// answers carry the newer term and raft steps down.
func (d *electionDriver) selfStalled(gap time.Duration) {
	select {
	case <-d.started:
	default:
		return
	}
	doubted := 0
	for _, r := range d.running.all() {
		g := r.group
		if g.raft.State() != raft.Leader {
			continue
		}
		g.doubted.Store(true)
		r.proposer.abort()
		doubted++
		go d.confirmLeadership(g)
	}
	d.logger.Warn("process stalled: confirming leaderships before serving them again", "gap", gap, "leaderships", doubted)
	d.reports.addAll()
}

// confirmLeadership commits barriers until one succeeds (this node still
// leads) or raft has stepped down, then lifts the doubt.
func (d *electionDriver) confirmLeadership(g *raftGroup) {
	defer g.doubted.Store(false)
	wait := 100 * time.Millisecond
	for d.ctx.Err() == nil && !g.isStopped() && g.raft.State() == raft.Leader {
		if g.raft.Barrier(5*time.Second).Error() == nil {
			return
		}
		select {
		case <-time.After(wait):
		case <-d.ctx.Done():
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// onReachability is the node transport's liveness callback.
func (d *electionDriver) onReachability(peer int32, up bool) {
	if up {
		d.peerReachable(peer)
	} else {
		d.peerUnreachable(peer)
	}
}

// quorumReachable reports whether a majority of voters, this node
// included, answer this node.
func (d *electionDriver) quorumReachable(voters []int32) bool {
	up := 0
	for _, v := range voters {
		if v == d.self || d.nt.Reachable(v) {
			up++
		}
	}
	return up >= len(voters)/2+1
}

var errBadAgree = errors.New("malformed raft.agree request")
