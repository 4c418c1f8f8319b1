package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	nodes      int
	rf         int
	duration   time.Duration
	sizes      string
	producers  string
	inflight   string
	partitions int32
	linger     time.Duration
	buffered   int
	failovers  int
	rate       int
	dataDir    string
	keepData   bool
	// compression is the --compression flag as given; codec is it parsed.
	compression string
	codec       client.Compression
	sameValue   bool
}

func benchCmd() *cobra.Command {
	o := benchOpts{nodes: 1, duration: 10 * time.Second, sizes: "1024,100", producers: "1,8", inflight: "0",
		partitions: 8, buffered: 10000}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput, latency and fail-over time",
		Long: `Measure produce throughput (acks=all franz-go producers) and produce
latency for every combination of record size, producer count and in-flight
setting, then consume each topic back from the start. Without --brokers it
starts --nodes local brokers from this binary in a temporary directory and
also reports their peak RSS and CPU; with --failovers it then kill -9s the
leader of a replicated partition that many times and reports the time to
the first acknowledged write on the new leader. Progress goes to stderr, the
results (Markdown) to stdout, each table under the command line that
reproduces it.

Every record gets a different random value, so batches do not compress:
MB/s counts record values, wire MB/s the record batches as sent (after
compression, with batch headers), and the compression ratio is what the
codec saved. --same-value brings back the old bench's single reused value.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			codec, err := client.ParseCompression(o.compression)
			if err != nil {
				return fmt.Errorf("--compression: %w", err)
			}
			o.codec = codec
			return runBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokers, "brokers", "", "bootstrap brokers host:port,...; empty starts local brokers")
	f.IntVar(&o.nodes, "nodes", o.nodes, "local brokers to start (without --brokers)")
	f.IntVar(&o.rf, "replication-factor", 0, "replication factor of benchmark topics (default min(3, nodes))")
	f.DurationVar(&o.duration, "duration", o.duration, "produce time per case")
	f.StringVar(&o.sizes, "sizes", o.sizes, "record value sizes in bytes, comma-separated")
	f.StringVar(&o.producers, "producers", o.producers, "concurrent producer clients, comma-separated")
	f.StringVar(&o.inflight, "inflight", o.inflight, "produce requests in flight per producer and broker, comma-separated; 0 = idempotent producer (5 in flight)")
	f.Int32Var(&o.partitions, "partitions", o.partitions, "partitions per benchmark topic")
	f.DurationVar(&o.linger, "linger", 0, "producer linger (0 = franz-go default 10ms, negative = none)")
	f.IntVar(&o.buffered, "max-buffered", o.buffered, "unacknowledged records per producer (the offered load)")
	f.IntVar(&o.rate, "rate", 0, "cap on records/s over all producers (0 = as fast as acknowledged); measures latency at a set load")
	f.IntVar(&o.failovers, "failovers", 0, "leader kill -9 rounds to time (local clusters of 3+ nodes)")
	f.StringVar(&o.dataDir, "data", "", "data directory of the local brokers (default: a temporary directory)")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the local brokers' data directory")
	f.StringVar(&o.compression, "compression", "", "producer batch codec: none, snappy, lz4, zstd or gzip (default: the client's, franz-go's snappy)")
	f.BoolVar(&o.sameValue, "same-value", false, "reuse one random value for every record, as older benches did (snappy then shrinks 1 KiB batches ~20x)")
	cmd.AddCommand(benchScaleCmd())
	cmd.AddCommand(benchFailoverCmd())
	cmd.AddCommand(benchGroupsCmd())
	cmd.AddCommand(benchTxnCmd())
	cmd.AddCommand(benchStorageCmd())
	return cmd
}

func parseInts(s string, allowZero bool) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || (n == 0 && !allowZero) {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(ctx context.Context, o benchOpts, out, progress io.Writer) error {
	sizes, err := parseInts(o.sizes, false)
	if err != nil {
		return err
	}
	producers, err := parseInts(o.producers, false)
	if err != nil {
		return err
	}
	inflight, err := parseInts(o.inflight, true)
	if err != nil {
		return err
	}
	if o.rf == 0 {
		o.rf = min(3, o.nodes)
	}
	brokers := client.SplitBrokers(o.brokers)
	var local *localCluster
	if len(brokers) == 0 {
		if local, err = startLocalCluster(ctx, localClusterOpts{nodes: o.nodes, dataDir: o.dataDir, keep: o.keepData,
			extra: []string{"--log-level", "warn"}}); err != nil {
			return err
		}
		defer local.stop()
		brokers = local.kafkaAddrs()
		fmt.Fprintf(progress, "bench: %d local brokers on %s, data in %s\n", o.nodes, strings.Join(brokers, ","), local.dir)
	}
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()

	rate := "as fast as acknowledged"
	if o.rate > 0 {
		rate = fmt.Sprintf("offered load capped at %d records/s", o.rate)
	}
	values := "a different random value per record"
	if o.sameValue {
		values = "one random value reused for every record"
	}
	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers: %d. Replication factor %d, %d partitions per topic, %s per case, acks=all, linger %v, %d records buffered per producer, %s, compression %s, %s.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, len(brokers), o.rf, o.partitions, o.duration, o.linger, o.buffered, rate,
		codecName(o.codec), values)
	fmt.Fprintln(out, "| case | records/s | MB/s | wire MB/s | compression ratio | p50 | p99 | max | errors | consume MB/s | consume records/s |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|")
	start := time.Now()
	var cpuBefore time.Duration
	if local != nil {
		_, cpuBefore = local.usage()
	}
	for _, size := range sizes {
		for _, np := range producers {
			for _, inf := range inflight {
				c := benchCaseSpec{size: size, producers: np, inflight: inf}
				if err := benchCase(ctx, adm, brokers, o, c, out, progress); err != nil {
					return err
				}
			}
		}
	}
	if local != nil {
		peak, cpu := local.usage()
		var parts []string
		for i, p := range peak {
			parts = append(parts, fmt.Sprintf("node %d %.0f MiB", i+1, float64(p)/(1<<20)))
		}
		wall := time.Since(start).Seconds()
		fmt.Fprintf(out, "\nLocal brokers: peak RSS %s; CPU %.1f s over %.1f s wall (%.2f cores).\n",
			strings.Join(parts, ", "), (cpu - cpuBefore).Seconds(), wall, (cpu-cpuBefore).Seconds()/wall)
		if o.failovers > 0 {
			return benchFailovers(ctx, local, adm, o, out, progress)
		}
	}
	return nil
}

type benchCaseSpec struct {
	size, producers, inflight int
}

func (c benchCaseSpec) name() string {
	s := fmt.Sprintf("%d B x %d producer", c.size, c.producers)
	if c.producers > 1 {
		s += "s"
	}
	if c.inflight > 0 {
		s += fmt.Sprintf(", %d in flight", c.inflight)
	} else {
		s += ", idempotent"
	}
	return s
}

func benchCase(ctx context.Context, adm *client.Admin, brokers []string, o benchOpts, c benchCaseSpec, out, progress io.Writer) error {
	name := c.name()
	topic := fmt.Sprintf("bench-%d-%d-%d-%d", c.size, c.producers, c.inflight, time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := adm.CreateTopic(cctx, topic, o.partitions, int16(o.rf), nil)
	cancel()
	if err != nil {
		return err
	}
	show := func(stage string) func(bench.Progress) {
		return func(p bench.Progress) {
			secs := p.Elapsed.Seconds()
			fmt.Fprintf(progress, "bench: %-40s %-7s %5.0fs %10d records %8.1f MB/s", name, stage,
				secs, p.Records, float64(p.Bytes)/1e6/secs)
			if p.WireBytes > 0 {
				fmt.Fprintf(progress, " %8.1f wire MB/s", float64(p.WireBytes)/1e6/secs)
			}
			fmt.Fprintf(progress, " errors %d\n", p.Errors)
		}
	}
	pr, err := bench.Produce(ctx, brokers, bench.ProduceCase{
		Topic: topic, Partitions: o.partitions, RecordSize: c.size, Producers: c.producers, Duration: o.duration,
		Acks: client.AcksAll, Idempotent: true, InFlight: c.inflight, Linger: o.linger, MaxBuffered: o.buffered, Rate: o.rate,
		Compression: o.codec, SameValue: o.sameValue,
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
	fmt.Fprintf(out, "| %s | %.0f | %.1f | %.1f | %.2f | %s | %s | %s | %d | %.1f | %.0f |\n", name,
		pr.RecordsPerSec(), pr.MBPerSec(), pr.WireMBPerSec(), pr.CompressionRatio(), ms(pr.P50), ms(pr.P99), ms(pr.Max), pr.Errors,
		cr.MBPerSec(), cr.RecordsPerSec())
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return adm.DeleteTopic(dctx, topic)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
