package node

import (
	"testing"
	"time"
)

// TestOwnLag: a pinger's own lateness is not counted against the peer. A
// long lag is a stall (fresh timeout); a short one is credited, so a node
// starved for 700 ms of a 1 s timeout does not declare a peer that
// answered all along unreachable; an on-time tick changes nothing.
func TestOwnLag(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, time.Second
	stallGap := max(timeout-interval, interval+timeout/2)
	now := time.Unix(100, 0)
	heard := now.Add(-1100 * time.Millisecond).UnixNano() // silent past the timeout, as read

	got, stalled := ownLag(heard, now, 800*time.Millisecond, interval, stallGap)
	if stalled || now.Sub(time.Unix(0, got)) != 400*time.Millisecond {
		t.Fatalf("800 ms lag: heard %v before now, stall %v; want 400 ms, no stall", now.Sub(time.Unix(0, got)), stalled)
	}
	if got, stalled := ownLag(heard, now, 2*time.Second, interval, stallGap); !stalled || got != now.UnixNano() {
		t.Fatalf("2 s lag: heard %v, stall %v; want now and a stall", got, stalled)
	}
	if got, stalled := ownLag(heard, now, interval, interval, stallGap); stalled || got != heard {
		t.Fatalf("on-time tick changed heard (%v) or stalled (%v)", got, stalled)
	}
	recent := now.Add(-50 * time.Millisecond).UnixNano()
	if got, _ := ownLag(recent, now, 500*time.Millisecond, interval, stallGap); got != recent {
		t.Fatal("a credit moved heard past a pong that came during the lag")
	}
}
