package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCreatePartitionsUnderLoad grows a topic from 3 to 6 partitions with
// kadm while a franz-go producer (default partitioner) writes to it with
// acks=all. The producer finds the new partitions through Metadata and
// writes to them; a consumer then reads every acknowledged record. Shrinking and growing an internal topic are refused.
func TestCreatePartitionsUnderLoad(t *testing.T) {
	bs := startCluster(t, 3)
	// A short metadata age so the producer looks for new partitions
	// within seconds (franz-go's default is 5 minutes).
	cl := mustClient(t, bs, kgo.MetadataMinAge(time.Second), kgo.MetadataMaxAge(2*time.Second), kgo.DefaultProduceTopic("grow"))
	adm := kadm.NewClient(cl)
	createTopicWith(t, adm, 30*time.Second, "grow", 3, 3)

	var acks ackCollector
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("grow-%07d", i))}, acks.add)
			if i%64 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	for acks.n.Load() < 1000 {
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := adm.UpdatePartitions(testCtx(t, time.Minute), 6, "grow")
	if err == nil {
		err = resp["grow"].Err
	}
	if err != nil {
		t.Fatalf("grow to 6: %v (%s)", err, resp["grow"].ErrMessage)
	}
	onNew := func() int {
		n := 0
		for _, r := range acks.records() {
			if r.partition >= 3 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(90 * time.Second)
	for onNew() < 500 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	cl.Flush(fctx)
	fcancel()
	if n := onNew(); n < 500 {
		t.Fatalf("only %d records acknowledged on the new partitions", n)
	}
	md, err := adm.Metadata(testCtx(t, 30*time.Second), "grow")
	if err != nil {
		t.Fatal(err)
	}
	if ps := md.Topics["grow"].Partitions; len(ps) != 6 {
		t.Fatalf("metadata shows %d partitions, want 6", len(ps))
	}
	got := consumeAllAvailable(t, bs[1].kafkaAddr, "grow")
	checkConsumed(t, acks.records(), got)

	for _, c := range []struct {
		topic string
		count int
		want  error
	}{{"grow", 4, kerr.InvalidPartitions}, {"grow", 6, kerr.InvalidPartitions}, {"__consumer_offsets", 100, kerr.InvalidRequest}} {
		resp, err := adm.UpdatePartitions(testCtx(t, time.Minute), c.count, c.topic)
		if err == nil {
			err = resp[c.topic].Err
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s to %d partitions: %v, want %v", c.topic, c.count, err, c.want)
		}
	}
}
