package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/client/bench"
)

type benchOpts struct {
	brokers    string
	duration   time.Duration
	sizes      string
	producers  string
	partitions int32
	linger     time.Duration
	buffered   int
	dataDir    string
	keepData   bool
}

func benchCmd() *cobra.Command {
	o := benchOpts{duration: 10 * time.Second, sizes: "1024,100", producers: "1,8", partitions: 8, buffered: 10000}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput and latency",
		Long: `Measure produce throughput (acks=all, idempotent franz-go producers) and
produce latency for every combination of record size and producer count, then
consume each topic back from the start. Without --brokers it starts a local
broker from this binary in a temporary directory and also reports its peak
RSS and CPU. Progress goes to stderr, the results table (Markdown) to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokers, "brokers", "", "bootstrap brokers host:port,...; empty starts a local broker")
	f.DurationVar(&o.duration, "duration", o.duration, "produce time per case")
	f.StringVar(&o.sizes, "sizes", o.sizes, "record value sizes in bytes, comma-separated")
	f.StringVar(&o.producers, "producers", o.producers, "concurrent producer clients, comma-separated")
	f.Int32Var(&o.partitions, "partitions", o.partitions, "partitions per benchmark topic")
	f.DurationVar(&o.linger, "linger", 0, "producer linger (0 = franz-go default 10ms, negative = none)")
	f.IntVar(&o.buffered, "max-buffered", o.buffered, "unacknowledged records per producer (the offered load)")
	f.StringVar(&o.dataDir, "data", "", "data directory of the local broker (default: a temporary directory)")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the local broker's data directory")
	return cmd
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(ctx context.Context, o benchOpts, out, progress io.Writer) error {
	sizes, err := parseInts(o.sizes)
	if err != nil {
		return err
	}
	producers, err := parseInts(o.producers)
	if err != nil {
		return err
	}
	brokers := client.SplitBrokers(o.brokers)
	var local *localBroker
	if len(brokers) == 0 {
		if local, err = startBenchBroker(ctx, o); err != nil {
			return err
		}
		defer local.Stop()
		brokers = []string{local.KafkaAddr}
		fmt.Fprintf(progress, "bench: local broker on %s, data in %s\n", local.KafkaAddr, local.DataDir)
	}
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()

	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers: %s. Partitions per topic: %d, %s per case, acks=all, idempotent, linger %v, %d records buffered per producer.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.Join(brokers, ","), o.partitions, o.duration, o.linger, o.buffered)
	fmt.Fprintln(out, "| case | records/s | MB/s | p50 | p99 | max | errors | consume MB/s | consume records/s |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|")
	var cpuBefore time.Duration
	if local != nil {
		cpuBefore, _ = local.CPUTime()
	}
	start := time.Now()
	for _, size := range sizes {
		for _, np := range producers {
			if err := benchCase(ctx, adm, brokers, o, size, np, out, progress); err != nil {
				return err
			}
		}
	}
	if local != nil {
		rss, err := local.PeakRSS()
		if err != nil {
			return err
		}
		cpu, _ := local.CPUTime()
		fmt.Fprintf(out, "\nLocal broker: peak RSS %.0f MiB; CPU %.1f s over %.1f s wall (%.2f cores).\n",
			float64(rss)/(1<<20), (cpu - cpuBefore).Seconds(), time.Since(start).Seconds(),
			(cpu-cpuBefore).Seconds()/time.Since(start).Seconds())
	}
	return nil
}

func startBenchBroker(ctx context.Context, o benchOpts) (*localBroker, error) {
	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "quire-bench-")
		if err != nil {
			return nil, err
		}
		dir = tmp
	}
	addrs, err := freeLoopbackAddrs(4)
	if err != nil {
		return nil, err
	}
	b, err := startLocalBroker(ctx, localSpec{ID: 1, DataDir: filepath.Join(dir, "node1"), KafkaAddr: addrs[0],
		AdminAddr: addrs[1], NodeAddr: addrs[2], GossipAddr: addrs[3], Extra: []string{"--log-level", "warn"}})
	if err != nil {
		return nil, err
	}
	if !o.keepData && o.dataDir == "" {
		b.cleanup = func() { os.RemoveAll(dir) }
	}
	return b, nil
}

func benchCase(ctx context.Context, adm *client.Admin, brokers []string, o benchOpts, size, np int, out, progress io.Writer) error {
	name := fmt.Sprintf("%d B x %d producer", size, np)
	if np > 1 {
		name += "s"
	}
	topic := fmt.Sprintf("bench-%d-%d-%d", size, np, time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := adm.CreateTopic(cctx, topic, o.partitions, 1, nil)
	cancel()
	if err != nil {
		return err
	}
	show := func(stage string) func(bench.Progress) {
		return func(p bench.Progress) {
			fmt.Fprintf(progress, "bench: %-24s %-7s %5.0fs %10d records %8.1f MB/s errors %d\n", name, stage,
				p.Elapsed.Seconds(), p.Records, float64(p.Bytes)/1e6/p.Elapsed.Seconds(), p.Errors)
		}
	}
	pr, err := bench.Produce(ctx, brokers, bench.ProduceCase{
		Topic: topic, Partitions: o.partitions, RecordSize: size, Producers: np, Duration: o.duration,
		Acks: client.AcksAll, Idempotent: true, Linger: o.linger, MaxBuffered: o.buffered,
	}, show("produce"))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	cctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	cr, err := bench.Consume(cctx, brokers, topic, pr.Records, show("consume"))
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(out, "| %s | %.0f | %.1f | %s | %s | %s | %d | %.1f | %.0f |\n", name,
		pr.RecordsPerSec(), pr.MBPerSec(), ms(pr.P50), ms(pr.P99), ms(pr.Max), pr.Errors,
		cr.MBPerSec(), cr.RecordsPerSec())
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return adm.DeleteTopic(dctx, topic)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
