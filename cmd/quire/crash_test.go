package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKill9DuringProduce kills the broker with SIGKILL while acks=all
// producers are writing, restarts it, and checks that every acknowledged
// record is at its acknowledged offset.
func TestKill9DuringProduce(t *testing.T) {
	b := newBroker(t)
	createTopic(t, b.kafkaAddr, "crash", clientPartitions)

	for round := 0; round < 2; round++ {
		acked := produceUntilKilled(t, b, round)
		if len(acked) == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill", round)
		}
		b.start()
		t.Logf("round %d: %d records acknowledged before kill -9", round, len(acked))
		all := append([]ackedRecord(nil), acked...)
		got := consumeAllAvailable(t, b.kafkaAddr, "crash")
		checkConsumed(t, all, got)
	}
}

// produceUntilKilled produces from several goroutines and kills the broker
// once enough records are acknowledged; it returns the acknowledged ones.
func produceUntilKilled(t *testing.T, b *broker, round int) []ackedRecord {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(2),
		kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acks ackCollector
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r := &kgo.Record{Topic: "crash", Partition: int32(i % clientPartitions),
					Value: []byte(fmt.Sprintf("r%d-w%d-%d-%s", round, w, i, recordValue(i)))}
				cl.Produce(ctx, r, acks.add)
				if i%64 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}(w)
	}
	deadline := time.Now().Add(60 * time.Second)
	for acks.n.Load() < 3000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.kill9()
	cancel()
	wg.Wait()
	// An idempotent producer does not fail records whose fate is unknown
	// while the broker is down, so bound the flush; Close fails the rest.
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	cl.Flush(fctx)
	fcancel()
	cl.Close()
	return acks.records()
}

// consumeAllAvailable reads every partition up to its high watermark.
func consumeAllAvailable(t *testing.T, addr, topic string) map[int32][]ackedRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := listEnds(t, cl, topic)
	total := 0
	for _, e := range ends {
		total += int(e)
	}
	return consumeAll(t, addr, topic, total)
}
