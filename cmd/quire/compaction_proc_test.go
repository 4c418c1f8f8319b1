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

// TestCompaction: 1,000,000 updates of 1,000 keys (50,000 under the race
// detector) to a compacted RF=3 topic leave, for a consumer reading from
// the start, exactly the latest value of each key, at the offset it was
// acknowledged at; keys whose last update was a tombstone are gone once
// delete.retention.ms has passed; every replica holds the same bytes. A
// record without a key is refused.
func TestCompaction(t *testing.T) {
	updates, keys := 1_000_000, 1000
	if raceProcs {
		updates = 50_000
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

// TestConsumerOffsetsCompacted: __consumer_offsets is a compacted topic.
// Thousands of offset commits of one group shrink to little more than the
// latest, on every replica, and a coordinator elected after the old one
// is killed rebuilds the group's offsets from the compacted log.
func TestConsumerOffsetsCompacted(t *testing.T) {
	bs := startCluster(t, 3, "--internal-topic-segment-bytes", "16384", "--compaction-check-interval", "500ms",
		"--offsets-topic-partitions", "1")
	cl := mustClient(t, bs)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 5*time.Minute)
	createTopicWith(t, adm, 30*time.Second, "src", 4, 3)
	const commits = 3000
	for i := 1; i <= commits; i++ {
		var o kadm.Offsets
		for p := int32(0); p < 4; p++ {
			o.Add(kadm.Offset{Topic: "src", Partition: p, At: int64(i)*10 + int64(p), LeaderEpoch: -1})
		}
		r, err := adm.CommitOffsets(ctx, "compacted-group", o)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	var written int64
	views := waitStartsEqual(t, bs, "__consumer_offsets", func(v partitionDigest) bool {
		written = max(written, v.HW)
		return v.Bytes < 4*16384
	})
	t.Logf("%d commits (offsets up to %d) held in %d bytes, %d segments", commits, written, views[0].Bytes, views[0].Segments)
	checkReplicasIdentical(t, bs, "__consumer_offsets")

	leader := waitLeader(t, adm, "__consumer_offsets")
	for _, b := range bs {
		if int32(b.id) == leader {
			b.kill9()
		}
	}
	// A client that never talked to the dead coordinator: franz-go keeps
	// a coordinator it cannot dial until its own retries give up.
	adm = kadm.NewClient(mustClient(t, bs))
	deadline := time.Now().Add(time.Minute)
	for {
		fetched, err := adm.FetchOffsets(ctx, "compacted-group")
		if err == nil {
			err = fetched.Error()
		}
		if err == nil {
			for p := int32(0); p < 4; p++ {
				o, ok := fetched.Lookup("src", p)
				if !ok || o.At != int64(commits)*10+int64(p) {
					t.Fatalf("partition %d: committed offset %+v after fail-over, want %d", p, o, int64(commits)*10+int64(p))
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets after the coordinator's fail-over: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
