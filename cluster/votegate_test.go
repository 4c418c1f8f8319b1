package cluster

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestVoteGate: a rebuilt replica refuses votes and pre-votes until it has
// applied the commit index a leader first sent it, then votes normally.
func TestVoteGate(t *testing.T) {
	_, candidate := raft.NewInmemTransport("a")
	_, inner := raft.NewInmemTransport("b")
	candidate.Connect("b", inner)
	gate := newVoteGate(inner, hclog.NewNullLogger())
	defer gate.Close()
	var applied atomic.Uint64
	gate.setApplied(applied.Load)

	// Stand in for raft on the gated side: answer whatever gets through.
	passed := make(chan any, 16)
	go func() {
		for rpc := range gate.Consumer() {
			passed <- rpc.Command
			switch rpc.Command.(type) {
			case *raft.RequestVoteRequest:
				rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil)
			case *raft.RequestPreVoteRequest:
				rpc.Respond(&raft.RequestPreVoteResponse{Granted: true}, nil)
			default:
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			}
		}
	}()
	vote := func() error {
		return candidate.RequestVote("b", "b", &raft.RequestVoteRequest{Term: 3}, &raft.RequestVoteResponse{})
	}
	preVote := func() error {
		return candidate.RequestPreVote("b", "b", &raft.RequestPreVoteRequest{Term: 3}, &raft.RequestPreVoteResponse{})
	}
	if err := vote(); err == nil || !errors.Is(err, errRebuilding) && err.Error() != errRebuilding.Error() {
		t.Fatalf("vote before any leader contact: %v, want refused", err)
	}
	if err := preVote(); err == nil {
		t.Fatal("pre-vote before any leader contact was not refused")
	}
	ae := &raft.AppendEntriesRequest{Term: 2, LeaderCommitIndex: 10}
	if err := candidate.AppendEntries("b", "b", ae, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := <-passed; got != any(ae) {
		t.Fatalf("append entries did not reach raft: %T", got)
	}
	applied.Store(9)
	if err := vote(); err == nil {
		t.Fatal("vote one entry short of the leader's commit was not refused")
	}
	applied.Store(10)
	if err := vote(); err != nil {
		t.Fatalf("vote after catching up: %v", err)
	}
	select {
	case got := <-passed:
		if _, ok := got.(*raft.RequestVoteRequest); !ok {
			t.Fatalf("got %T, want the vote request", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("vote request never reached raft")
	}
}

// TestVoteGateKeepsReplicaFromCampaigning: while closed, the gate also
// fails the replica's own vote and pre-vote requests, so it cannot win an
// election with one lagging peer's vote; opening it clears the marker.
func TestVoteGateKeepsReplicaFromCampaigning(t *testing.T) {
	_, self := raft.NewInmemTransport("a")
	_, peer := raft.NewInmemTransport("b")
	self.Connect("b", peer)
	go func() {
		for rpc := range peer.Consumer() {
			switch rpc.Command.(type) {
			case *raft.RequestVoteRequest:
				rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil)
			case *raft.RequestPreVoteRequest:
				rpc.Respond(&raft.RequestPreVoteResponse{Granted: true}, nil)
			}
		}
	}()
	dir := t.TempDir()
	if err := markRebuilding(dir, markDamaged); err != nil {
		t.Fatal(err)
	}
	gate := newVoteGate(self, hclog.NewNullLogger())
	defer gate.Close()
	gate.onOpen = func() { clearRebuilding(dir) }
	var applied atomic.Uint64
	gate.setApplied(applied.Load)
	vote := func() error {
		return gate.RequestVote("b", "b", &raft.RequestVoteRequest{Term: 3}, &raft.RequestVoteResponse{})
	}
	preVote := func() error {
		return gate.RequestPreVote("b", "b", &raft.RequestPreVoteRequest{Term: 3}, &raft.RequestPreVoteResponse{})
	}
	if err := vote(); !errors.Is(err, errRebuilding) {
		t.Fatalf("own vote request while rebuilding: %v, want refused", err)
	}
	if err := preVote(); !errors.Is(err, errRebuilding) {
		t.Fatalf("own pre-vote request while rebuilding: %v, want refused", err)
	}
	if rebuildReason(dir) != markDamaged {
		t.Fatal("marker gone before the gate opened")
	}
	gate.openNow()
	if err := vote(); err != nil {
		t.Fatalf("own vote request after opening: %v", err)
	}
	if err := preVote(); err != nil {
		t.Fatalf("own pre-vote request after opening: %v", err)
	}
	if r := rebuildReason(dir); r != "" {
		t.Fatalf("marker %q still there after the gate opened", r)
	}
}
