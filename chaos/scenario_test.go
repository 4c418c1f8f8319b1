package chaos_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quirelog/quire/chaos"
	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/cluster/clustertest"
)

// TestIsolateLeaderScenario is a first end-to-end chaos pass on an
// in-process cluster: idempotent acks=all producers write unique values
// while the leader of a partition is cut off from its peers and healed;
// then everything is read back and every checker must find nothing.
func TestIsolateLeaderScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos scenario")
	}
	c := clustertest.Start(t, 3)
	const topic, partitions = "chaos", 3
	adm, err := client.NewAdmin(c.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := adm.CreateTopic(ctx, topic, partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	rec := chaos.NewRecorder(nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := 1; p <= 2; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runProducer(ctx, t, c.Brokers(), rec, p, topic, partitions, stop)
		}()
	}
	time.Sleep(2 * time.Second)
	victim := int32(c.Leader(topic, 0) + 1)
	var others []int32
	for id := int32(1); id <= 3; id++ {
		if id != victim {
			others = append(others, id)
		}
	}
	rec.Record(chaos.Op{Process: chaos.NemesisProcess, Type: chaos.OK, Kind: chaos.Nemesis, Node: victim, Fault: "isolate-leader:start"})
	c.Faults.Isolate(victim, others...)
	time.Sleep(4 * time.Second)
	c.Faults.Heal()
	rec.Record(chaos.Op{Process: chaos.NemesisProcess, Type: chaos.OK, Kind: chaos.Nemesis, Node: victim, Fault: "isolate-leader:stop"})
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	c.WaitReady()

	finalRead(ctx, t, c.Brokers(), adm, rec, topic)
	h := rec.Ops()
	for _, r := range chaos.CheckAll(h) {
		// No live consumer runs here, so only that checker may be idle.
		idle := r.Checked == 0 && r.Name != "consumer-skip-rewind"
		if idle || r.Violations > 0 {
			t.Errorf("%s", r)
		}
	}
	a := chaos.CheckAvailability(h)
	t.Logf("availability: %d of %d produces ok; heal to first ok write: %v", a.OK, a.Invoked, a.Heals)
	if a.OK == 0 || len(a.Heals) != 1 {
		t.Errorf("availability %+v: want acknowledged writes and a recovery after the heal", a)
	}
}

// runProducer writes unique values round-robin over the partitions until
// stop closes, recording each invocation and its outcome.
func runProducer(ctx context.Context, t *testing.T, brokers []string, rec *chaos.Recorder, id int, topic string, partitions int32, stop <-chan struct{}) {
	p, err := client.NewProducer(client.ProducerConfig{Brokers: brokers, Acks: client.AcksAll, Idempotent: true,
		MetadataMinAge: 250 * time.Millisecond, RetryBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Error(err)
		return
	}
	defer p.Close()
	name := fmt.Sprintf("p%d", id)
	for seq := int64(0); ; seq++ {
		select {
		case <-stop:
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			p.Flush(fctx)
			cancel()
			return
		case <-time.After(2 * time.Millisecond):
		}
		part := int32(seq) % partitions
		value := fmt.Sprintf("%s-%d", name, seq)
		rec.Record(chaos.Op{Process: id, Type: chaos.Invoke, Kind: chaos.Produce, Topic: topic, Partition: part,
			Offset: -1, Value: value, Producer: name, Seq: seq})
		p.Produce(ctx, topic, part, nil, []byte(value), func(offset int64, err error) {
			op := chaos.Op{Process: id, Type: chaos.OK, Kind: chaos.Produce, Topic: topic, Partition: part,
				Offset: offset, Value: value, Producer: name, Seq: seq}
			if err != nil {
				op.Type, op.Offset, op.Error = chaos.Info, -1, err.Error()
			}
			rec.Record(op)
		})
	}
}

// finalRead records every stored record of the topic, up to each
// partition's high watermark.
func finalRead(ctx context.Context, t *testing.T, brokers []string, adm *client.Admin, rec *chaos.Recorder, topic string) {
	ends, err := adm.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for _, e := range ends {
		want += e
	}
	cons, err := client.NewConsumer(client.ConsumerConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for n := int64(0); n < want; {
		err := cons.Poll(ctx, func(r client.Record) {
			rec.Record(chaos.Op{Process: 100, Type: chaos.OK, Kind: chaos.FinalRead, Topic: topic,
				Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			n++
		})
		if ctx.Err() != nil {
			t.Fatalf("final read: %d of %d records: %v", n, want, err)
		}
	}
}
