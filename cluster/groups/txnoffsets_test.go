package groups

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/statelog/statelogtest"
	"github.com/quirelog/quire/partition"
)

func txnCommit(c *Coordinator, pid int64, part int32, off int64) int16 {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version, r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch = 3, "tx", "g", pid, 0
	r.Generation = -1
	r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: -1}}}}
	return c.TxnOffsetCommit(context.Background(), r).Topics[0].Partitions[0].ErrorCode
}

// stableCode is a require_stable OffsetFetch's answer for partition part.
func stableCode(t *testing.T, c *Coordinator, part int32) int16 {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.RequireStable = 8, true
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{part}}}}}
	return c.OffsetFetch(context.Background(), r).Groups[0].Topics[0].Partitions[0].ErrorCode
}

// marker appends a transaction marker to the log and tells the
// coordinator, as WriteTxnMarkers does on the partition's leader.
func marker(t *testing.T, c *Coordinator, log *statelogtest.MemLog, pid int64, commit bool) {
	t.Helper()
	if _, err := log.Append(context.Background(), partition.EncodeControlBatch(0, pid, 0, commit, 1, 1)); err != nil {
		t.Fatal(err)
	}
	c.TxnEnded(context.Background(), 0, pid, commit)
}

// Offsets committed in a transaction stay invisible until its commit
// marker, vanish with an abort marker, and a new leader replaying the
// partition comes to the same offsets.
func TestTransactionalOffsets(t *testing.T) {
	log := statelogtest.New(1)
	c, _ := testCoordinator(t, log)
	if code := commitAs(c, 8, "g", "", -1, 0, 5); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := txnCommit(c, 77, 0, 50); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if got := fetched(t, c, 0); got != 5 {
		t.Fatalf("offset %d while the transaction is open, want the committed 5", got)
	}
	if code := stableCode(t, c, 0); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable fetch with a transaction open: %v", kerr.ErrorForCode(code))
	}
	marker(t, c, log, 77, true)
	if got := fetched(t, c, 0); got != 50 {
		t.Fatalf("offset %d after the commit marker, want 50", got)
	}
	if code := stableCode(t, c, 0); code != 0 {
		t.Fatalf("require_stable fetch after the commit: %v", kerr.ErrorForCode(code))
	}
	if code := txnCommit(c, 88, 1, 9); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	marker(t, c, log, 88, false)
	if got := fetched(t, c, 1); got != -1 {
		t.Fatalf("offset %d after the abort marker, want none", got)
	}
	// A transaction left open at fail-over stays pending on the new
	// leader until its marker.
	if code := txnCommit(c, 99, 2, 7); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	c.Close()
	next := log.Successor(2)
	c2, _ := testCoordinator(t, next)
	if got0, got1, got2 := fetched(t, c2, 0), fetched(t, c2, 1), fetched(t, c2, 2); got0 != 50 || got1 != -1 || got2 != -1 {
		t.Fatalf("replayed offsets %d %d %d, want 50 -1 -1", got0, got1, got2)
	}
	if code := stableCode(t, c2, 2); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("replayed open transaction: %v", kerr.ErrorForCode(code))
	}
	marker(t, c2, next, 99, true)
	if got := fetched(t, c2, 2); got != 7 {
		t.Fatalf("offset %d after the replayed transaction's commit, want 7", got)
	}
}
