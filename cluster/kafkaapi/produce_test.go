package kafkaapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// concurrentCoordinator answers CONCURRENT_TRANSACTIONS to the first busy
// verifications, as a coordinator writing the previous transaction's
// markers does, then accepts.
type concurrentCoordinator struct {
	Broker
	busy, calls int
}

func (c *concurrentCoordinator) VerifyTxn(context.Context, string, int64, int16, string, int32, bool) error {
	c.calls++
	if c.calls <= c.busy {
		return kerr.ConcurrentTransactions
	}
	return nil
}

// TestVerifyWaitsOutMarkers: a produce that opens the next transaction
// while the coordinator still completes the last one waits for it instead
// of answering CONCURRENT_TRANSACTIONS, for up to verifyPatience.
func TestVerifyWaitsOutMarkers(t *testing.T) {
	ctx := context.Background()
	c := &concurrentCoordinator{busy: 3}
	if err := verifyWaiting(ctx, c, "tx", 1, 2, "t", 0, true, time.Now().Add(verifyPatience)); err != nil || c.calls != 4 {
		t.Fatalf("verify: %v after %d calls; want success on the 4th", err, c.calls)
	}
	c = &concurrentCoordinator{busy: 1 << 30}
	start := time.Now()
	err := verifyWaiting(ctx, c, "tx", 1, 2, "t", 0, true, start.Add(verifyPatience))
	if !errors.Is(err, kerr.ConcurrentTransactions) || time.Since(start) > 5*verifyPatience {
		t.Fatalf("a coordinator that stays busy: %v after %v", err, time.Since(start))
	}
}
