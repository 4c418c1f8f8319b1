package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCompaction: 1,000,000 updates of 1,000 keys (100,000 under the race
// detector) to a compacted RF=3 topic leave, for a consumer reading from
// the start, exactly the latest value of each key, at the offset it was
// acknowledged at; keys whose last update was a tombstone are gone once
// delete.retention.ms has passed; every replica holds the same bytes. A
// record without a key is refused.
func TestCompaction(t *testing.T) {
	updates, keys := 1_000_000, 1000
	if raceEnabled {
		updates = 100_000
	}
	bs := startCluster(t, 3, "--compaction-check-interval", "500ms")
	cl := mustClient(t, bs, kgo.DefaultProduceTopic("compacted"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 10*time.Minute)
	resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{
		"cleanup.policy":            kmsg.StringPtr("compact"),
		"segment.bytes":             kmsg.StringPtr("1048576"),
		"segment.ms":                kmsg.StringPtr("3000"),
		"min.cleanable.dirty.ratio": kmsg.StringPtr("0.1"),
		"delete.retention.ms":       kmsg.StringPtr("2000"),
	}, "compacted")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, adm, "compacted")

	// The last update of keys below 50 is a tombstone.
	type last struct {
		offset int64
		value  string
	}
	var mu sync.Mutex
	latest := map[string]last{}
	var failed error
	for i := 0; i < updates; i++ {
		key := fmt.Sprintf("key-%04d", i%keys)
		rec := &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%s-update-%07d", key, i))}
		if i >= updates-keys && i%keys < 50 {
			rec.Value = nil
		}
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			if l, ok := latest[string(r.Key)]; !ok || r.Offset > l.offset {
				latest[string(r.Key)] = last{r.Offset, string(r.Value)}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil || failed != nil {
		t.Fatalf("produce: %v %v", err, failed)
	}
	// A record at least segment.ms later rolls the segment holding the
	// last updates, so compaction reaches them too.
	time.Sleep(3500 * time.Millisecond)
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("roll"), Value: []byte("roll")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); err == nil || !strings.Contains(err.Error(), kerr.InvalidRecord.Message) {
		t.Fatalf("record without a key: %v, want INVALID_RECORD", err)
	}

	want := map[string]last{}
	for k, l := range latest {
		if l.value != "" { // not a tombstone
			want[k] = l
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, dups := readCompacted(t, bs, ctx)
		missing, wrong := 0, 0
		for k, l := range want {
			g, ok := got[k]
			switch {
			case !ok:
				missing++
			case g != l:
				wrong++
			}
		}
		extra := len(got) - len(want) - 1 // the roll record
		if missing == 0 && wrong == 0 && extra == 0 && dups == 0 {
			t.Logf("%d updates of %d keys: %d records left", updates, keys, len(got))
			break
		}
		if missing > 0 || wrong > 0 {
			t.Fatalf("lost updates: %d keys missing, %d with a value other than their latest", missing, wrong)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted: %d superseded records, %d tombstoned keys still there", dups, extra)
		}
		time.Sleep(2 * time.Second)
	}
	checkReplicasIdentical(t, bs, "compacted")
}

// readCompacted reads the compacted topic from the start: the latest
// record per key, and how many records an earlier one of its key
// superseded.
func readCompacted(t *testing.T, bs []*broker, ctx context.Context) (map[string]struct {
	offset int64
	value  string
}, int) {
	t.Helper()
	type last = struct {
		offset int64
		value  string
	}
	c := mustClient(t, bs, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"compacted": {0: kgo.NewOffset().AtStart()}}))
	defer c.Close()
	end, err := kadm.NewClient(c).ListEndOffsets(ctx, "compacted")
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := end.Lookup("compacted", 0)
	got, dups := map[string]last{}, 0
	for pos := int64(0); pos < hw.Offset; {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := got[string(r.Key)]; ok {
				dups++
			}
			got[string(r.Key)] = last{r.Offset, string(r.Value)}
			pos = r.Offset + 1
		})
	}
	return got, dups
}
