package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Batches submitted while or after the proposer stops fail at once with
// NOT_LEADER_OR_FOLLOWER; none is left waiting for its request timeout.
func TestProposerStopFailsEveryLateBatch(t *testing.T) {
	for round := 0; round < 50; round++ {
		p := newProposer(nil, 1<<20, 1, nil)
		// Hold the only in-flight slot so nothing reaches raft (nil here).
		p.start()
		p.slots <- struct{}{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var props []*proposal
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pr := p.submit(ctx, []byte{1})
				mu.Lock()
				props = append(props, pr)
				mu.Unlock()
			}()
		}
		p.stop()
		wg.Wait()
		p.wait()
		for _, pr := range props {
			select {
			case <-pr.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: a batch submitted around stop is still waiting", round)
			}
			if !errors.Is(pr.res.Err, kerr.NotLeaderForPartition) {
				t.Fatalf("round %d: late batch got %v, want NOT_LEADER_OR_FOLLOWER", round, pr.res.Err)
			}
		}
		cancel()
	}
}

// TestProposerAbortAnswersTheBatchWaitingForASlot: every in-flight slot
// is held by entries that will not commit (a leader cut off from its
// quorum). abort answers the batch the loop holds, waiting for a slot,
// with NOT_LEADER_OR_FOLLOWER instead of leaving it to the client's
// timeout.
func TestProposerAbortAnswersTheBatchWaitingForASlot(t *testing.T) {
	p := newProposer(nil, 1<<20, 1, nil)
	p.start()
	p.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr := p.submit(ctx, []byte{1})
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.inflightMu.Lock()
		held := p.waiting == pr
		p.inflightMu.Unlock()
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop never took the batch")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.abort()
	select {
	case <-pr.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch waiting for a slot was not answered")
	}
	if !errors.Is(pr.res.Err, kerr.NotLeaderForPartition) {
		t.Fatalf("got %v, want NOT_LEADER_OR_FOLLOWER", pr.res.Err)
	}
	p.stop()
	<-p.slots
	p.wait()
}
