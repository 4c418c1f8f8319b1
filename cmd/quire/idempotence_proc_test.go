package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestIdempotentProducerThroughDroppedConnections: every broker serves a
// fifth of the Produce requests and then, instead of answering, closes
// the connection (the Kafka listener's fault hooks). franz-go's
// idempotent producer, with its defaults, retries each such batch on a
// new connection; the partitions know the batch by its sequence and
// answer with its first offsets, so every record is stored exactly once,
// at the offset the producer was told.
func TestIdempotentProducerThroughDroppedConnections(t *testing.T) {
	bs := startCluster(t, 3, "--enable-fault-injection")
	cl := mustClient(t, bs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	const topic, parts, n = "dropped-conns", 3, 3000
	createTopicWith(t, adm, 30*time.Second, topic, parts, 3)
	for _, b := range bs {
		putAdmin(t, b, "/debug/faults/kafka", []byte(`[{"api":"Produce","fraction":0.2}]`))
	}
	var acks ackCollector
	ctx := testCtx(t, 3*time.Minute)
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: int32(i % parts), Value: []byte(fmt.Sprintf("idem-%05d", i))}
		cl.Produce(ctx, r, acks.add)
		if i%100 == 99 {
			// Some batches in flight at once, many batches in all.
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		putAdmin(t, b, "/debug/faults/kafka", []byte(`[]`))
	}
	if got := acks.n.Load(); got != n {
		t.Fatalf("%d of %d records acknowledged", got, n)
	}
	var dropped float64
	for _, b := range bs {
		v, _ := metricValue("http://"+b.adminAddr+"/metrics", `quire_kafka_fault_dropped_responses_total{api="Produce"}`)
		dropped += v
	}
	if dropped == 0 {
		t.Fatal("no Produce response was dropped: the test proved nothing")
	}
	got := consumeAllAvailable(t, bs[0].kafkaAddr, topic)
	seen := map[string]int{}
	total := 0
	for _, recs := range got {
		for _, r := range recs {
			seen[string(r.value)]++
			total++
		}
	}
	for v, c := range seen {
		if c > 1 {
			t.Errorf("%s stored %d times", v, c)
		}
	}
	if total != n || len(seen) != n {
		t.Errorf("%d records stored, %d distinct; want %d", total, len(seen), n)
	}
	checkConsumed(t, acks.records(), got)
	t.Logf("%.0f Produce responses dropped; %d records stored once each", dropped, n)
}
