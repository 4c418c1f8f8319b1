package cluster

import (
	"testing"
	"time"
)

// TestISRTrackerResetForgetsEarlierTerms: a heartbeat failure observed
// under an earlier leadership is never resumed (its heartbeat goroutine
// is gone), so a new leadership starts with a clean tracker.
func TestISRTrackerResetForgetsEarlierTerms(t *testing.T) {
	var tr isrTracker
	now := time.Now()
	tr.fail(3, now.Add(-time.Minute))
	if !tr.lagging(3, now, 10*time.Second) {
		t.Fatal("a follower failing for a minute should lag")
	}
	tr.reset()
	if tr.lagging(3, now, 10*time.Second) {
		t.Fatal("reset kept a failure from an earlier leadership")
	}
}
