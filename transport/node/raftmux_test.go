package node

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// muxGroup is one raft group on every node of a testCluster, over the mux.
type muxGroup struct {
	raftGroup
	trans map[int32]*RaftGroup
}

type muxOpts struct {
	conf   func(*raft.Config)
	nodes  []int32 // default: every node
	snaps  map[int32]raft.SnapshotStore
	noBoot bool
}

func startMuxGroup(t *testing.T, c *testCluster, name string, o muxOpts) *muxGroup {
	t.Helper()
	g := &muxGroup{raftGroup: raftGroup{rafts: make(map[int32]*raft.Raft), fsms: make(map[int32]*testFSM)},
		trans: make(map[int32]*RaftGroup)}
	var servers []raft.Server
	for _, id := range c.ids {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(ServerAddress(id)), Address: ServerAddress(id)})
	}
	nodes := o.nodes
	if nodes == nil {
		nodes = c.ids
	}
	for _, id := range nodes {
		g.start(t, c, name, id, servers, o)
	}
	return g
}

func (g *muxGroup) start(t *testing.T, c *testCluster, name string, id int32, servers []raft.Server, o muxOpts) {
	t.Helper()
	trans, err := c.nodes[id].RaftGroup(name)
	if err != nil {
		t.Fatalf("node %d: raft group %q: %v", id, name, err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(ServerAddress(id))
	conf.HeartbeatTimeout = 300 * time.Millisecond
	conf.ElectionTimeout = 300 * time.Millisecond
	conf.LeaderLeaseTimeout = 200 * time.Millisecond
	conf.CommitTimeout = 20 * time.Millisecond
	conf.Logger = testLogger()
	if o.conf != nil {
		o.conf(conf)
	}
	logs := raft.NewInmemStore()
	var snaps raft.SnapshotStore = raft.NewInmemSnapshotStore()
	if s := o.snaps[id]; s != nil {
		snaps = s
	}
	if !o.noBoot {
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatalf("node %d: bootstrap: %v", id, err)
		}
	}
	fsm := &testFSM{}
	r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
	if err != nil {
		t.Fatalf("node %d: new raft: %v", id, err)
	}
	trans.SetCommitIndex(r.CommitIndex)
	t.Cleanup(func() {
		r.Shutdown().Error()
		trans.Close()
	})
	g.rafts[id] = r
	g.fsms[id] = fsm
	g.trans[id] = trans
}

func TestMuxGroupsReplicate(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	var groups []*muxGroup
	for i := range 20 {
		groups = append(groups, startMuxGroup(t, c, fmt.Sprintf("p/%d", i), muxOpts{}))
	}
	for i, g := range groups {
		cmds := commands(fmt.Sprintf("g%d-", i), 50)
		// Concurrent applies go out on the pipeline.
		var wg sync.WaitGroup
		for _, cmd := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.apply(t, -1, cmd)
			}()
		}
		wg.Wait()
		g.waitApplied(t, c.ids, cmds)
		for _, id := range c.ids {
			for _, e := range g.fsms[id].Entries() {
				if !slices.Contains(cmds, e) {
					t.Fatalf("group %d node %d applied %q from another group", i, id, e)
				}
			}
		}
	}
}

// With raft's commit timeout an hour long, followers still learn the
// commit index: heartbeats carry it, and a flush after each burst.
func TestMuxHeartbeatsCarryCommitIndex(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	g := startMuxGroup(t, c, "g", muxOpts{conf: func(conf *raft.Config) { conf.CommitTimeout = time.Hour }})
	cmds := commands("x", 10)
	g.apply(t, -1, cmds...)
	// Every command reaches every FSM, followers included: without the
	// piggyback, the last ones would wait an hour.
	g.waitApplied(t, c.ids, cmds)

	// No heartbeats either (an hour apart): the flush alone tells them.
	quiet := startMuxGroup(t, c, "quiet", muxOpts{conf: func(conf *raft.Config) {
		conf.CommitTimeout = time.Hour
		conf.HeartbeatTimeout = time.Hour
		conf.ElectionTimeout = time.Hour
		conf.LeaderLeaseTimeout = time.Hour
	}})
	<-quiet.trans[1].Inject(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}})
	quiet.apply(t, -1, cmds...)
	quiet.waitApplied(t, c.ids, cmds)

	// Mutation check: with the piggyback off, a follower stays behind.
	c2 := newTestCluster(t, 3, nil)
	g2 := startMuxGroup(t, c2, "g", muxOpts{conf: func(conf *raft.Config) { conf.CommitTimeout = time.Hour }})
	for _, tr := range g2.trans {
		tr.commit.Store(nil)
	}
	g2.apply(t, -1, "only")
	leader := g2.leader(t, -1)
	time.Sleep(time.Second) // many heartbeats
	behind := 0
	for id, f := range g2.fsms {
		if id != leader && !slices.Contains(f.Entries(), "only") {
			behind++
		}
	}
	if behind == 0 {
		t.Fatal("followers learned the commit index without the piggyback; the test shows nothing")
	}
}

func TestMuxInjectedTimeoutNowElects(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	g := startMuxGroup(t, c, "g", muxOpts{conf: func(conf *raft.Config) {
		conf.HeartbeatTimeout = time.Hour
		conf.ElectionTimeout = time.Hour
		conf.LeaderLeaseTimeout = 10 * time.Second
	}})
	// Nobody times out in an hour: the only way to a leader is a nudge.
	resp := <-g.trans[2].Inject(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}})
	if resp.Error != nil {
		t.Fatalf("inject: %v", resp.Error)
	}
	if l := g.leader(t, -1); l != 2 {
		t.Fatalf("leader %d, want the nudged node 2", l)
	}
	g.apply(t, -1, "a")
	// The nudged node must hold the whole log, or the voters refuse it and,
	// with hour-long timeouts, nobody leads again.
	g.waitApplied(t, c.ids, []string{"a"})
	// A nudge moves leadership even from a live leader (the voters' known
	// leader does not stop it): the node must only nudge when it knows
	// the leader is gone.
	<-g.trans[3].Inject(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}})
	eventually(t, "node 3 to lead", func() bool { return g.rafts[3].State() == raft.Leader })
	g.apply(t, -1, "b")
	g.waitApplied(t, c.ids, []string{"a", "b"})
}

// Calls for a group that has not started are held, not refused, so the
// first election does not wait out an election timeout.
func TestMuxHoldsCallsUntilGroupStarts(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	long := func(conf *raft.Config) {
		conf.HeartbeatTimeout = time.Hour
		conf.ElectionTimeout = time.Hour
		conf.LeaderLeaseTimeout = 10 * time.Second
	}
	g := startMuxGroup(t, c, "late", muxOpts{conf: long, nodes: []int32{1}})
	<-g.trans[1].Inject(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}})
	time.Sleep(300 * time.Millisecond) // the vote requests are out, and held
	var servers []raft.Server
	for _, id := range c.ids {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(ServerAddress(id)), Address: ServerAddress(id)})
	}
	g.start(t, c, "late", 2, servers, muxOpts{conf: long})
	g.start(t, c, "late", 3, servers, muxOpts{conf: long})
	eventually(t, "node 1 to win its first election", func() bool { return g.rafts[1].State() == raft.Leader })
	g.apply(t, -1, "a")
	g.waitApplied(t, c.ids, []string{"a"})
}

func TestMuxSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	snaps := map[int32]raft.SnapshotStore{}
	for _, id := range c.ids {
		fs, err := raft.NewFileSnapshotStore(t.TempDir(), 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		snaps[id] = fs
	}
	conf := func(conf *raft.Config) {
		conf.TrailingLogs = 5
		conf.SnapshotThreshold = 10
		conf.SnapshotInterval = 50 * time.Millisecond
	}
	var servers []raft.Server
	for _, id := range c.ids {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(ServerAddress(id)), Address: ServerAddress(id)})
	}
	g := startMuxGroup(t, c, "snap", muxOpts{conf: conf, nodes: []int32{1, 2}, snaps: snaps})
	cmds := commands(strings.Repeat("v", 1000), 200)
	g.apply(t, -1, cmds...)
	eventually(t, "a snapshot", func() bool {
		list, _ := snaps[g.leader(t, -1)].List()
		return len(list) > 0
	})
	// Node 3 starts empty and far behind the trimmed log: only a snapshot
	// can bring it up to date.
	g.start(t, c, "snap", 3, servers, muxOpts{conf: conf, snaps: snaps, noBoot: true})
	g.waitApplied(t, []int32{3}, cmds[len(cmds)-5:])
	if list, _ := snaps[3].List(); len(list) == 0 {
		t.Fatal("node 3 caught up without installing a snapshot")
	}
}

func TestMuxLivenessFollowsFaults(t *testing.T) {
	faults := NewFaults()
	var mu sync.Mutex
	events := map[int32][]bool{}
	c := newTestCluster(t, 3, faults, func(cfg *Config) {
		cfg.PingInterval = 20 * time.Millisecond
		cfg.LivenessTimeout = 200 * time.Millisecond
		self := cfg.ID
		cfg.OnReachability = func(peer int32, up bool) {
			if self != 1 {
				return
			}
			mu.Lock()
			events[peer] = append(events[peer], up)
			mu.Unlock()
		}
	})
	if c.nodes[1].Answers(2) {
		t.Fatal("an unwatched peer answers")
	}
	for _, id := range c.ids {
		c.nodes[id].WatchPeers(c.others(id))
	}
	time.Sleep(400 * time.Millisecond)
	if !c.nodes[1].Reachable(2) || !c.nodes[1].Reachable(3) {
		t.Fatal("healthy peers unreachable")
	}
	if !c.nodes[1].Answers(2) || !c.nodes[1].Answers(3) {
		t.Fatal("healthy peers do not answer")
	}
	// One way is enough: node 1's pings to 2 arrive, 2's pongs do not.
	faults.CutOneWay(2, 1)
	eventually(t, "node 2 unreachable from 1", func() bool { return !c.nodes[1].Reachable(2) })
	if c.nodes[1].Answers(2) {
		t.Fatal("an unreachable peer answers")
	}
	eventually(t, "node 1 unreachable from 2", func() bool { return !c.nodes[2].Reachable(1) })
	if !c.nodes[1].Reachable(3) {
		t.Fatal("node 3 became unreachable with only 2 cut")
	}
	faults.Heal()
	eventually(t, "node 2 reachable again", func() bool { return c.nodes[1].Reachable(2) && c.nodes[1].Answers(2) })
	eventually(t, "down and up events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(events[2], []bool{false, true})
	})
	mu.Lock()
	defer mu.Unlock()
	if len(events[3]) != 0 {
		t.Fatalf("events for healthy node 3: %v", events[3])
	}
}

// A call to an unreachable peer waits for it instead of failing: raft
// backs off for seconds after failures, which would delay catching up a
// follower that comes back.
func TestMuxCallWaitsForUnreachablePeer(t *testing.T) {
	faults := NewFaults()
	c := newTestCluster(t, 3, faults, func(cfg *Config) {
		cfg.PingInterval = 20 * time.Millisecond
		cfg.LivenessTimeout = 200 * time.Millisecond
	})
	for _, id := range c.ids {
		c.nodes[id].WatchPeers(c.others(id))
	}
	g := startMuxGroup(t, c, "g", muxOpts{})
	g.apply(t, -1, "a")
	leader := g.leader(t, -1)
	follower := c.others(leader)[0]
	faults.Isolate(follower, c.others(follower)...)
	eventually(t, "follower unreachable", func() bool { return !c.nodes[leader].Reachable(follower) })
	var failed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		var resp raft.AppendEntriesResponse
		err := g.trans[leader].AppendEntries("", ServerAddress(follower), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(ServerAddress(leader)), Addr: []byte(ServerAddress(leader))},
			Term:      g.rafts[leader].CurrentTerm(),
		}, &resp)
		failed.Store(err != nil)
	}()
	select {
	case <-done:
		t.Fatalf("call to an unreachable peer returned at once (failed: %v)", failed.Load())
	case <-time.After(500 * time.Millisecond):
	}
	faults.Heal()
	<-done
	if failed.Load() {
		t.Fatal("call failed after the peer came back")
	}
}

func TestMuxHeartbeatsShareWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	var groups []*muxGroup
	for i := range 50 {
		// Raft's commit timeout sends appends on the data stream, which do
		// not linger; only heartbeats are left with it an hour long.
		groups = append(groups, startMuxGroup(t, c, fmt.Sprintf("hb/%d", i), muxOpts{
			conf: func(conf *raft.Config) { conf.CommitTimeout = time.Hour }}))
	}
	for _, g := range groups {
		g.leader(t, -1)
	}
	w0, f0 := c.nodes[1].metrics.muxWrites.Load(), c.nodes[1].metrics.muxFrames.Load()
	time.Sleep(2 * time.Second)
	w, f := c.nodes[1].metrics.muxWrites.Load()-w0, c.nodes[1].metrics.muxFrames.Load()-f0
	t.Logf("node 1: %d frames in %d writes", f, w)
	if w == 0 || float64(f)/float64(w) < 2 {
		t.Fatalf("node 1 wrote %d frames in %d writes; heartbeats of 50 groups should share writes", f, w)
	}
}

func TestRaftCodecRoundTrip(t *testing.T) {
	h := raft.RPCHeader{ProtocolVersion: 3, ID: []byte("1"), Addr: []byte("1")}
	ae := &raft.AppendEntriesRequest{RPCHeader: h, Term: 7, Leader: []byte("1"), PrevLogEntry: 10, PrevLogTerm: 6,
		LeaderCommitIndex: 9, Entries: []*raft.Log{
			{Index: 11, Term: 7, Type: raft.LogCommand, Data: []byte("hello"), AppendedAt: time.Unix(5, 6)},
			{Index: 12, Term: 7, Type: raft.LogNoop},
		}}
	var e encoder
	encodeAppendEntries(&e, ae)
	got, err := decodeRaftRequest(rpcAppendEntries, e.b)
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*raft.AppendEntriesRequest)
	if g.Term != 7 || g.PrevLogEntry != 10 || g.PrevLogTerm != 6 || g.LeaderCommitIndex != 9 || len(g.Entries) != 2 ||
		!bytes.Equal(g.Entries[0].Data, []byte("hello")) || !g.Entries[0].AppendedAt.Equal(time.Unix(5, 6)) ||
		g.Entries[1].Type != raft.LogNoop || !g.Entries[1].AppendedAt.IsZero() || string(g.ID) != "1" {
		t.Fatalf("round trip: %+v", g)
	}
	for n := range e.b {
		if _, err := decodeRaftRequest(rpcAppendEntries, e.b[:n]); err == nil {
			t.Fatalf("truncated to %d bytes decoded without error", n)
		}
	}
	e = encoder{}
	encodeRequestVote(&e, &raft.RequestVoteRequest{RPCHeader: h, Term: 3, Candidate: []byte("2"), LastLogIndex: 4, LastLogTerm: 2, LeadershipTransfer: true})
	got, err = decodeRaftRequest(rpcRequestVote, e.b)
	if v := got.(*raft.RequestVoteRequest); err != nil || !v.LeadershipTransfer || v.LastLogIndex != 4 || string(v.Candidate) != "2" {
		t.Fatalf("vote round trip: %+v %v", got, err)
	}
	e = encoder{}
	encodeRaftResponse(&e, rpcAppendEntries, &raft.AppendEntriesResponse{RPCHeader: h, Term: 9, LastLog: 100, Success: true})
	var r raft.AppendEntriesResponse
	if err := decodeRaftResponse(e.b, &r); err != nil || r.Term != 9 || r.LastLog != 100 || !r.Success {
		t.Fatalf("response round trip: %+v %v", r, err)
	}
}

func FuzzRaftRequest(f *testing.F) {
	var e encoder
	encodeAppendEntries(&e, &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1, Data: []byte("x")}}})
	f.Add(rpcAppendEntries, e.b)
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		decodeRaftRequest(kind, b) // must not panic or allocate wildly
	})
}

// A follower that starts while its leader's log is many batches ahead
// gets them all with no later write, though raft's commit timeout is an
// hour: raft sends a pipelined follower one append of at most
// MaxAppendEntries entries per new entry, so a follower that was behind
// when its pipeline started (a restarted one) would wait for the next
// write. The group's OnIdle report is what lets the node prompt raft for
// the rest.
func TestMuxIdlePipelineReportsFollowerBehind(t *testing.T) {
	conf := func(conf *raft.Config) {
		conf.CommitTimeout = time.Hour
		conf.MaxAppendEntries = 4
	}
	cmds := commands("c", 40)
	run := func(prompt bool) (*muxGroup, []raft.ApplyFuture) {
		c := newTestCluster(t, 3, nil)
		// Node 3's group is not running yet: the leader's first append
		// to it, built from the log as it was at the election, waits
		// there (calls are held for a group that has not started) while
		// the commands arrive.
		g := startMuxGroup(t, c, "g", muxOpts{conf: conf, nodes: []int32{1, 2}})
		leader := g.leader(t, -1)
		if prompt {
			r := g.rafts[leader]
			g.trans[leader].OnIdle(func(_ int32, matched uint64) {
				if matched < r.LastIndex() {
					go r.Barrier(5 * time.Second)
				}
			})
		}
		var fs []raft.ApplyFuture
		for _, cmd := range cmds {
			fs = append(fs, g.rafts[leader].Apply([]byte(cmd), 5*time.Second))
		}
		var servers []raft.Server
		for _, id := range c.ids {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(ServerAddress(id)), Address: ServerAddress(id)})
		}
		g.start(t, c, "g", 3, servers, muxOpts{conf: conf, noBoot: false})
		return g, fs
	}
	g, fs := run(true)
	for _, f := range fs {
		if err := f.Error(); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	g.waitApplied(t, []int32{1, 2, 3}, cmds)

	// Mutation check: without the prompt, node 3 stays behind.
	g, _ = run(false)
	time.Sleep(2 * time.Second)
	if have := g.fsms[3].Entries(); len(have) >= len(cmds) {
		t.Fatalf("node 3 has all %d entries without the prompt; the test shows nothing", len(have))
	}
}

// A follower's newer term is reported with the term of the request it
// answered, so the node deposes that leadership and not a later one this
// node won while the answer was on its way.
func TestStaleAnswerNamesTheRequestTerm(t *testing.T) {
	g := &RaftGroup{}
	var got uint64
	g.OnStaleTerm(func(term uint64) { got = term })
	g.learn(2, &raft.AppendEntriesRequest{Term: 4}, &raft.AppendEntriesResponse{Term: 5})
	if got != 4 {
		t.Fatalf("stale answer reported for term %d, want the request's term 4", got)
	}
}
