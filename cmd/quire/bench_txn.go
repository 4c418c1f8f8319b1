package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/client/bench"
)

type txnBenchOpts struct {
	nodes      int
	brokers    string
	partitions int32
	size       int
	duration   time.Duration
	intervals  string
	rate       int
}

func benchTxnCmd() *cobra.Command {
	o := txnBenchOpts{nodes: 3, partitions: 8, size: 1024, duration: 20 * time.Second, intervals: "100ms,1s", rate: 5000}
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Measure what transactions cost a producer, and read_committed end-to-end latency",
		Long: `One franz-go producer with default settings writes --size byte records,
a different random value each, to a topic of --partitions partitions for
--duration, as fast as it is acknowledged: first as a plain acks=all
idempotent producer, then as a transactional one for each of --intervals
(each case on a new topic). The transactional loop is the usual one:
begin, produce for the interval, flush, commit; a transaction so lasts the
interval plus the flush of what the client still buffers.

Records/s counts acknowledged records (plain) or committed ones
(transactional); the cost is against the plain case. The commit latency is
EndTransaction's (after the flush).

The same cases then run at --rate records/s, below saturation, while one
read_committed consumer reads the topic and takes, for each record, the
time from the producer's Produce call (the record's timestamp) to the
record reaching it: the end-to-end latency, which for a transaction
includes waiting for its commit.

Progress goes to stderr, the results (Markdown) to stdout under the command
that reproduces them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runBenchTxn(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "local brokers to start (without --brokers)")
	f.StringVar(&o.brokers, "brokers", "", "bootstrap brokers host:port,...; empty starts local brokers")
	f.Int32Var(&o.partitions, "partitions", o.partitions, "partitions of each case's topic")
	f.IntVar(&o.size, "size", o.size, "record value bytes")
	f.DurationVar(&o.duration, "duration", o.duration, "produce time per case")
	f.StringVar(&o.intervals, "intervals", o.intervals, "commit intervals of the transactional cases, comma-separated")
	f.IntVar(&o.rate, "rate", o.rate, "records/s of the end-to-end latency cases (0 skips them)")
	return cmd
}

// txnCaseResult is one case's numbers.
type txnCaseResult struct {
	name      string
	records   int64
	elapsed   time.Duration
	commits   int
	aborted   int
	commitLat []time.Duration // sorted
	e2e       []time.Duration // sorted
}

func runBenchTxn(ctx context.Context, o txnBenchOpts, out, progress io.Writer) error {
	var intervals []time.Duration
	for _, s := range strings.Split(o.intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return fmt.Errorf("--intervals: bad interval %q", s)
		}
		intervals = append(intervals, d)
	}
	brokers, adm, done, err := benchCluster(ctx, o.brokers, o.nodes, progress)
	if err != nil {
		return err
	}
	defer done()
	rf := int16(min(3, len(brokers)))
	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers: %d, replication factor %d, %d partitions, %d B records (a different random value each), one franz-go producer with default settings (acks=all, idempotent, snappy, linger 10ms), %v per case; a read_committed consumer reads each topic back (after the produce phase when measuring throughput, meanwhile when measuring latency).\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, len(brokers), rf, o.partitions, o.size, o.duration)
	cases := append([]time.Duration{0}, intervals...)
	fmt.Fprintf(out, "As fast as acknowledged:\n\n")
	fmt.Fprintln(out, "| case | records/s | MB/s | cost vs acks=all | commits/s | commit p50 | commit p99 | aborted |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	var base float64
	for _, interval := range cases {
		r, err := benchTxnTopic(ctx, adm, brokers, rf, o, interval, 0, progress)
		if err != nil {
			return err
		}
		rate := float64(r.records) / r.elapsed.Seconds()
		cost := "—"
		if interval == 0 {
			base = rate
		} else if base > 0 {
			cost = fmt.Sprintf("%.1f%%", 100*(1-rate/base))
		}
		commits, c50, c99 := r.commitStats()
		fmt.Fprintf(out, "| %s | %.0f | %.1f | %s | %s | %s | %s | %d |\n", r.name, rate,
			rate*float64(o.size)/1e6, cost, commits, c50, c99, r.aborted)
	}
	if o.rate <= 0 {
		return nil
	}
	fmt.Fprintf(out, "\nAt %d records/s, end to end (Produce call to a read_committed consumer's poll):\n\n", o.rate)
	fmt.Fprintln(out, "| case | records/s | commits/s | end-to-end p50 | end-to-end p99 | max |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, interval := range cases {
		r, err := benchTxnTopic(ctx, adm, brokers, rf, o, interval, o.rate, progress)
		if err != nil {
			return err
		}
		commits, _, _ := r.commitStats()
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %s | %s |\n", r.name, float64(r.records)/r.elapsed.Seconds(), commits,
			ms(nearestRank(r.e2e, 0.5)), ms(nearestRank(r.e2e, 0.99)), ms(r.e2e[len(r.e2e)-1]))
	}
	return nil
}

// commitStats formats commits/s and the commit latency percentiles.
func (r txnCaseResult) commitStats() (perSec, p50, p99 string) {
	if len(r.commitLat) == 0 {
		return "—", "—", "—"
	}
	return fmt.Sprintf("%.1f", float64(r.commits)/r.elapsed.Seconds()),
		ms(nearestRank(r.commitLat, 0.5)), ms(nearestRank(r.commitLat, 0.99))
}

// benchTxnTopic runs one case on a topic of its own.
func benchTxnTopic(ctx context.Context, adm *client.Admin, brokers []string, rf int16, o txnBenchOpts, interval time.Duration, rate int, progress io.Writer) (txnCaseResult, error) {
	topic := fmt.Sprintf("bench-txn-%v-%d", interval, time.Now().UnixNano())
	if err := adm.CreateTopic(ctx, topic, o.partitions, rf, nil); err != nil {
		return txnCaseResult{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		adm.DeleteTopic(dctx, topic)
		cancel()
	}()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := adm.WaitPreferredLeaders(wctx, topic)
	cancel()
	if err != nil {
		return txnCaseResult{}, err
	}
	r, err := benchTxnCase(ctx, brokers, topic, o, interval, rate, progress)
	if err != nil {
		return r, fmt.Errorf("%s: %w", r.name, err)
	}
	if len(r.e2e) == 0 {
		return r, fmt.Errorf("%s: the consumer read nothing", r.name)
	}
	return r, nil
}

// benchTxnCase runs one producer (transactional when interval > 0) and the
// read_committed consumer of topic.
func benchTxnCase(ctx context.Context, brokers []string, topic string, o txnBenchOpts, interval time.Duration, rate int, progress io.Writer) (txnCaseResult, error) {
	r := txnCaseResult{name: "acks=all, idempotent"}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic)}
	if interval > 0 {
		r.name = fmt.Sprintf("transactional, commit every %v", interval)
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("%s-producer", topic)))
	}
	values, err := bench.NewValues(o.size, 0)
	if err != nil {
		return r, err
	}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		return r, err
	}
	defer prod.Close()
	// Measuring latency, the consumer reads as the producer writes;
	// measuring throughput, it reads afterwards, checking every record is
	// there without taking CPU from the producer and brokers.
	var cons *e2eConsumer
	if rate > 0 {
		if cons, err = startE2EConsumer(brokers, topic); err != nil {
			return r, err
		}
		defer cons.stop()
	}
	var acked atomic.Int64
	var failed atomic.Int64
	var firstErr sync.Once
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			if failed.Add(1) == 1 {
				firstErr.Do(func() { fmt.Fprintf(progress, "bench: %s: a record failed: %v\n", r.name, err) })
			}
			return
		}
		acked.Add(1)
	}
	stopProgress := benchTicker(progress, r.name, func() (int64, int64) {
		if cons == nil {
			return acked.Load(), 0
		}
		return acked.Load(), cons.got.Load()
	})
	start := time.Now()
	end := start.Add(o.duration)
	pace := newPacer(rate)
	produce := func() {
		pace.wait()
		prod.Produce(ctx, &kgo.Record{Value: values.Next()}, cb)
	}
	if interval == 0 {
		for time.Now().Before(end) && ctx.Err() == nil {
			produce()
		}
		if err := prod.Flush(ctx); err != nil {
			stopProgress()
			return r, err
		}
		r.records = acked.Load()
	} else {
		for time.Now().Before(end) && ctx.Err() == nil {
			if err := prod.BeginTransaction(); err != nil {
				stopProgress()
				return r, err
			}
			before := acked.Load()
			for stop := time.Now().Add(interval); time.Now().Before(stop) && ctx.Err() == nil; {
				produce()
			}
			ferr := prod.Flush(ctx)
			t0 := time.Now()
			how := kgo.TryCommit
			if ferr != nil || failed.Load() > 0 {
				how = kgo.TryAbort
			}
			err := prod.EndTransaction(ctx, how)
			if d := time.Since(t0); d > 2*time.Second || err != nil {
				fmt.Fprintf(progress, "bench: %s: flush %v, end (%v) took %v: %v\n", r.name, ferr, how == kgo.TryCommit, d, err)
			}
			if err == nil && how == kgo.TryCommit {
				r.commitLat = append(r.commitLat, time.Since(t0))
				r.commits++
				r.records += acked.Load() - before
			} else {
				r.aborted++
				failed.Store(0)
			}
		}
	}
	r.elapsed = time.Since(start)
	stopProgress()
	if cons == nil {
		if cons, err = startE2EConsumer(brokers, topic); err != nil {
			return r, err
		}
		defer cons.stop()
	}
	// The consumer catches up on what was committed, then stops.
	deadline := time.Now().Add(60 * time.Second)
	for cons.got.Load() < r.records && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	r.e2e = cons.stop()
	slices.Sort(r.commitLat)
	if got := cons.got.Load(); got < r.records {
		return r, fmt.Errorf("the read_committed consumer read %d of %d records", got, r.records)
	}
	return r, ctx.Err()
}

// e2eConsumer reads a topic with read_committed and keeps, per record,
// the time from its Produce call (its timestamp) to its arrival.
type e2eConsumer struct {
	cl     *kgo.Client
	got    atomic.Int64
	mu     sync.Mutex
	lat    []time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startE2EConsumer(brokers []string, topic string) (*e2eConsumer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &e2eConsumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { c.lat = append(c.lat, now.Sub(r.Timestamp)) })
			c.mu.Unlock()
			c.got.Add(int64(fs.NumRecords()))
		}
	}()
	return c, nil
}

// stop ends the consumer (once; later calls wait for the first) and
// returns its latencies, sorted.
func (c *e2eConsumer) stop() []time.Duration {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		c.cl.Close()
		slices.Sort(c.lat)
	})
	return c.lat
}

// benchTicker prints a progress line every 5 s until the returned func is
// called.
func benchTicker(progress io.Writer, name string, counts func() (produced, consumed int64)) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p, c := counts()
				fmt.Fprintf(progress, "bench: %-38s %5.0fs %10d acknowledged %10d consumed\n", name, time.Since(start).Seconds(), p, c)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// pacer spaces calls to wait so they run at most rate times a second on
// average; rate 0 never waits.
type pacer struct {
	rate  int
	start time.Time
	sent  int64
}

func newPacer(rate int) *pacer { return &pacer{rate: rate, start: time.Now()} }

func (p *pacer) wait() {
	if p.rate <= 0 {
		return
	}
	p.sent++
	due := p.start.Add(time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}
