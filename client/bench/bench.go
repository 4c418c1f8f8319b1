// Package bench measures produce and consume throughput and produce latency
// against a running cluster through the client facade, the way a Kafka user
// would with kafka-producer-perf-test: real clients, real brokers, wall-clock
// time. It reports; it never asserts.
package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quirelog/quire/client"
)

// ProduceCase is one produce measurement.
type ProduceCase struct {
	Topic      string
	Partitions int32
	RecordSize int
	Producers  int // concurrent producer clients
	Duration   time.Duration
	Acks       client.Acks
	Idempotent bool
	Linger     time.Duration
	// Rate, when > 0, caps the records per second over all producers, to
	// measure latency at a given load instead of at saturation.
	Rate int
	// InFlight, when > 0, turns idempotence off and allows this many
	// produce requests in flight per broker and producer.
	InFlight int
	// MaxBuffered bounds each producer's unacknowledged records; it is the
	// offered load. Latency is measured from Produce to acknowledgement, so
	// it includes time queued in the client, as in kafka-producer-perf-test.
	MaxBuffered int
	// Compression is the producers' batch codec; empty is franz-go's
	// default, snappy.
	Compression client.Compression
	// Keys, when > 0, gives records keys cycling over this many distinct
	// ones (a compacted topic refuses records without a key).
	Keys int
	// SameValue gives every record one random value, as this bench did
	// before: snappy then shrinks 1 KiB batches ~20x, so it measures the
	// codec more than the log. Only for comparing with old figures.
	SameValue bool
}

// values returns the value source of producer i: by default every record
// gets different random bytes (see Values).
func (c ProduceCase) values(i int) (func() []byte, error) {
	v, err := NewValues(c.RecordSize, i)
	if err != nil {
		return nil, err
	}
	if c.SameValue {
		one := v.Next()
		return func() []byte { return one }, nil
	}
	return v.Next, nil
}

// Result is what a run measured.
type Result struct {
	Records int64
	Bytes   int64 // record values only
	Errors  int64
	Elapsed time.Duration
	P50     time.Duration
	P99     time.Duration
	Max     time.Duration
	// Produce only, from franz-go's hook on acknowledged batches:
	// Batches, and their records serialized before (BatchBytes) and after
	// (CompressedBytes) compression, batch headers not included.
	Batches         int64
	BatchBytes      int64
	CompressedBytes int64
}

// WireBytes is the record batches as sent: compressed records plus each
// batch's header. Produce request framing (topic and partition headers)
// is left out.
func (r Result) WireBytes() int64 { return r.CompressedBytes + r.Batches*client.BatchHeaderBytes }

// WireMBPerSec is the throughput in MB/s of record batches as sent.
func (r Result) WireMBPerSec() float64 { return float64(r.WireBytes()) / 1e6 / r.Elapsed.Seconds() }

// CompressionRatio is how much the codec shrank the records: 1 when it
// could not (franz-go then sends them uncompressed), 0 without batches.
func (r Result) CompressionRatio() float64 {
	if r.CompressedBytes == 0 {
		return 0
	}
	return float64(r.BatchBytes) / float64(r.CompressedBytes)
}

// RecordsPerSec is the throughput in records.
func (r Result) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// MBPerSec is the throughput in MB/s of record values (10^6 bytes).
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// Progress is reported about once a second while a run goes.
type Progress struct {
	Elapsed time.Duration
	Records int64
	Bytes   int64
	Errors  int64
	// WireBytes is record batches as sent (produce only).
	WireBytes int64
}

type counters struct {
	records, bytes, errs                         atomic.Int64
	batches, batchRecords, batchBytes, compBytes atomic.Int64
}

func (c *counters) wireBytes() int64 {
	return c.compBytes.Load() + c.batches.Load()*client.BatchHeaderBytes
}

func (c *counters) snapshot(start time.Time) Progress {
	return Progress{Elapsed: time.Since(start), Records: c.records.Load(), Bytes: c.bytes.Load(),
		Errors: c.errs.Load(), WireBytes: c.wireBytes()}
}

// onBatch counts an acknowledged batch; franz-go calls it on its own
// goroutines.
func (c *counters) onBatch(b client.BatchStats) {
	c.batches.Add(1)
	c.batchRecords.Add(int64(b.Records))
	c.batchBytes.Add(int64(b.UncompressedBytes))
	c.compBytes.Add(int64(b.CompressedBytes))
}

// report calls fn every second until stop closes.
func report(start time.Time, c *counters, fn func(Progress), stop <-chan struct{}) {
	if fn == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fn(c.snapshot(start))
		}
	}
}

// Produce runs c.Producers producer clients that write c.RecordSize-byte
// random values, a different one for every record, round-robin over the topic's partitions for c.Duration,
// then waits for every outstanding record.
func Produce(ctx context.Context, brokers []string, c ProduceCase, progress func(Progress)) (Result, error) {
	var cnt counters
	lat := make([][]time.Duration, c.Producers)
	prods := make([]*client.Producer, c.Producers)
	nextValue := make([]func() []byte, c.Producers)
	for i := range prods {
		next, err := c.values(i)
		if err != nil {
			return Result{}, err
		}
		nextValue[i] = next
		p, err := client.NewProducer(client.ProducerConfig{
			Brokers: brokers, Acks: c.Acks, Idempotent: c.Idempotent && c.InFlight == 0, Linger: c.Linger,
			MaxBufferedRecords: c.MaxBuffered, MaxInFlight: c.InFlight, ClientID: fmt.Sprintf("quire-bench-%d", i),
			Compression: c.Compression, OnBatch: cnt.onBatch,
		})
		if err != nil {
			return Result{}, err
		}
		defer p.Close()
		prods[i] = p
	}
	start := time.Now()
	deadline := start.Add(c.Duration)
	stop := make(chan struct{})
	go report(start, &cnt, progress, stop)
	var keys [][]byte
	for k := 0; k < c.Keys; k++ {
		keys = append(keys, []byte(fmt.Sprintf("key-%07d", k)))
	}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, p := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mu sync.Mutex // acks arrive on franz-go's goroutines
			part := int32(i) % c.Partitions
			var perRecord time.Duration
			if c.Rate > 0 {
				perRecord = time.Duration(float64(time.Second) * float64(c.Producers) / float64(c.Rate))
			}
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				if perRecord > 0 {
					if wait := time.Until(start.Add(time.Duration(n) * perRecord)); wait > 0 {
						time.Sleep(wait)
					}
				}
				value := nextValue[i]()
				var key []byte
				if len(keys) > 0 {
					key = keys[(n+i)%len(keys)]
				}
				sent := time.Now()
				p.Produce(ctx, c.Topic, part, key, value, func(_ int64, err error) {
					if err != nil {
						cnt.errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					d := time.Since(sent)
					cnt.records.Add(1)
					cnt.bytes.Add(int64(len(value)))
					mu.Lock()
					lat[i] = append(lat[i], d)
					mu.Unlock()
				})
				part = (part + 1) % c.Partitions
			}
			if err := p.Flush(ctx); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	cnt.awaitBatchHooks(time.Second)
	res := Result{Elapsed: elapsed, Records: cnt.records.Load(), Bytes: cnt.bytes.Load(), Errors: cnt.errs.Load(),
		Batches: cnt.batches.Load(), BatchBytes: cnt.batchBytes.Load(), CompressedBytes: cnt.compBytes.Load()}
	res.P50, res.P99, res.Max = percentiles(slices.Concat(lat...))
	if err, _ := firstErr.Load().(error); err != nil && res.Records == 0 {
		return res, err
	}
	return res, nil
}

// awaitBatchHooks waits, at most limit, until the batch hooks have counted
// every acknowledged record: franz-go runs the hook after it finished a
// response's records, so the last batches' hooks can trail Flush.
func (c *counters) awaitBatchHooks(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for c.batchRecords.Load() < c.records.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

func percentiles(all []time.Duration) (p50, p99, worst time.Duration) {
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	// Nearest rank: with few samples p99 is the maximum, never an
	// interpolation that hides it.
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(all)))) - 1
		return all[max(0, min(i, len(all)-1))]
	}
	return at(0.50), at(0.99), all[len(all)-1]
}

// Consume reads the whole topic from the start with one consumer, with
// franz-go's default fetch sizes (50 MiB per response, 1 MiB per
// partition), until it has seen want records.
func Consume(ctx context.Context, brokers []string, topic string, want int64, progress func(Progress)) (Result, error) {
	cons, err := client.NewConsumer(client.ConsumerConfig{
		Brokers: brokers, Topic: topic, ClientID: "quire-bench-consumer",
	})
	if err != nil {
		return Result{}, err
	}
	defer cons.Close()
	var cnt counters
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go report(start, &cnt, progress, stop)
	for cnt.records.Load() < want {
		err := cons.Poll(ctx, func(r client.Record) {
			cnt.records.Add(1)
			cnt.bytes.Add(int64(len(r.Value)))
		})
		if ctx.Err() != nil {
			return Result{Elapsed: time.Since(start), Records: cnt.records.Load(), Bytes: cnt.bytes.Load()},
				fmt.Errorf("consumed %d of %d records: %w", cnt.records.Load(), want, ctx.Err())
		}
		if err != nil {
			cnt.errs.Add(1)
		}
	}
	return Result{Elapsed: time.Since(start), Records: cnt.records.Load(), Bytes: cnt.bytes.Load(), Errors: cnt.errs.Load()}, nil
}
