package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	clientRecords    = 10000
	clientPartitions = 3
)

// ackedRecord is a record the broker acknowledged, with where it said the
// record went.
type ackedRecord struct {
	partition int32
	offset    int64
	value     []byte
}

// ackCollector gathers the records a kgo producer reports acknowledged;
// its add method is the produce callback.
type ackCollector struct {
	mu    sync.Mutex
	acked []ackedRecord
	n     atomic.Int64
}

func (c *ackCollector) add(r *kgo.Record, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	c.acked = append(c.acked, ackedRecord{r.Partition, r.Offset, r.Value})
	c.mu.Unlock()
	c.n.Add(1)
}

func (c *ackCollector) records() []ackedRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ackedRecord(nil), c.acked...)
}

func recordValue(i int) []byte {
	// Varying sizes and bytes, so byte-identity is a real check.
	return []byte(fmt.Sprintf("value-%06d-%s", i, strings.Repeat(string(rune('a'+i%26)), i%200)))
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	createTopicWith(t, kadm.NewClient(cl), 30*time.Second, topic, partitions, 1)
}

// consumeAll reads every partition from offset 0 up to want records with
// franz-go and returns them per partition in the order received.
func consumeAll(t *testing.T, addr, topic string, want int) map[int32][]ackedRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 2*time.Minute)
	got := make(map[int32][]ackedRecord)
	n := 0
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", n, want)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch error %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], ackedRecord{r.Partition, r.Offset, r.Value})
			n++
		})
	}
	return got
}

// checkConsumed asserts that every acked record was read back byte-identical
// at its acknowledged offset, and that each partition was read in offset
// order with no gaps.
func checkConsumed(t *testing.T, acked []ackedRecord, got map[int32][]ackedRecord) {
	t.Helper()
	for p, recs := range got {
		for i, r := range recs {
			if i > 0 && r.offset != recs[i-1].offset+1 {
				t.Fatalf("partition %d: offset %d follows %d", p, r.offset, recs[i-1].offset)
			}
		}
	}
	index := make(map[int32]map[int64][]byte)
	for p, recs := range got {
		index[p] = make(map[int64][]byte)
		for _, r := range recs {
			index[p][r.offset] = r.value
		}
	}
	for _, a := range acked {
		v, ok := index[a.partition][a.offset]
		if !ok {
			t.Fatalf("acknowledged record at %d/%d missing", a.partition, a.offset)
		}
		if !bytes.Equal(v, a.value) {
			t.Fatalf("record at %d/%d: got %q, acknowledged %q", a.partition, a.offset, v, a.value)
		}
	}
}

func TestFranzGoProduceConsume(t *testing.T) {
	b := newBroker(t)
	createTopic(t, b.kafkaAddr, "franz", clientPartitions)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 2*time.Minute)
	var mu sync.Mutex
	var acked []ackedRecord
	var wg sync.WaitGroup
	for i := 0; i < clientRecords; i++ {
		wg.Add(1)
		r := &kgo.Record{Topic: "franz", Partition: int32(i % clientPartitions), Value: recordValue(i)}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			mu.Lock()
			acked = append(acked, ackedRecord{r.Partition, r.Offset, r.Value})
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := consumeAll(t, b.kafkaAddr, "franz", clientRecords)
	checkConsumed(t, acked, got)
	for p := int32(0); p < clientPartitions; p++ {
		if len(got[p]) != clientRecords/clientPartitions+boolInt(int(p) < clientRecords%clientPartitions) {
			t.Errorf("partition %d has %d records", p, len(got[p]))
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSaramaProduceConsume(t *testing.T) {
	b := newBroker(t)
	createTopic(t, b.kafkaAddr, "sarama", clientPartitions)
	cfg := sarama.NewConfig()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	prod, err := sarama.NewAsyncProducer([]string{b.kafkaAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var acked []ackedRecord
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < clientRecords; n++ {
			select {
			case m := <-prod.Successes():
				v, _ := m.Value.Encode()
				acked = append(acked, ackedRecord{m.Partition, m.Offset, v})
			case e := <-prod.Errors():
				t.Errorf("sarama produce: %v", e.Err)
			case <-time.After(2 * time.Minute):
				t.Errorf("sarama: only %d acks", n)
				return
			}
		}
	}()
	for i := 0; i < clientRecords; i++ {
		prod.Input() <- &sarama.ProducerMessage{Topic: "sarama", Partition: int32(i % clientPartitions), Value: sarama.ByteEncoder(recordValue(i))}
	}
	<-done
	prod.Close()
	if t.Failed() {
		return
	}
	got := saramaConsume(t, b.kafkaAddr, "sarama", acked)
	checkConsumed(t, acked, got)
}

// saramaConsume reads each partition from the start with sarama until it
// has as many records as were acknowledged there.
func saramaConsume(t *testing.T, addr, topic string, acked []ackedRecord) map[int32][]ackedRecord {
	t.Helper()
	want := make(map[int32]int)
	for _, a := range acked {
		want[a.partition]++
	}
	cons, err := sarama.NewConsumer([]string{addr}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := make(map[int32][]ackedRecord)
	for p := int32(0); p < clientPartitions; p++ {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(2 * time.Minute)
		for len(got[p]) < want[p] {
			select {
			case m := <-pc.Messages():
				got[p] = append(got[p], ackedRecord{p, m.Offset, m.Value})
			case err := <-pc.Errors():
				t.Fatalf("sarama consume %d: %v", p, err)
			case <-timeout:
				t.Fatalf("sarama consumed %d of %d records of partition %d", len(got[p]), want[p], p)
			}
		}
		pc.Close()
	}
	return got
}

func TestKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not installed (.ci/run installs it): ", err)
	}
	b := newBroker(t)
	// kcat -L lists this broker.
	out, err := exec.Command("kcat", "-b", b.kafkaAddr, "-L").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 brokers") {
		t.Fatalf("kcat -L: %v\n%s", err, out)
	}
	var lines []string
	for i := 0; i < 500; i++ {
		lines = append(lines, fmt.Sprintf("kcat-line-%04d", i))
	}
	// Produce to an auto-created topic, acks=all.
	prod := exec.Command("kcat", "-b", b.kafkaAddr, "-P", "-t", "kcat", "-p", "0", "-X", "acks=all")
	prod.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	cons := exec.Command("kcat", "-b", b.kafkaAddr, "-C", "-t", "kcat", "-p", "0", "-o", "beginning", "-e", "-f", "%o %s\n")
	out, err = cons.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "%") || l == "" {
			continue
		}
		got = append(got, l)
	}
	if len(got) != len(lines) {
		t.Fatalf("kcat consumed %d lines, want %d:\n%s", len(got), len(lines), out)
	}
	for i, l := range got {
		if want := fmt.Sprintf("%d %s", i, lines[i]); l != want {
			t.Fatalf("line %d: %q, want %q", i, l, want)
		}
	}
}
