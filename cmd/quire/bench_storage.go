package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

type storageBenchOpts struct {
	nodes        int
	size         int
	keys         int
	compactMB    int
	rate         int
	duration     time.Duration
	diskDuration time.Duration
	diskRate     int
	keepBytes    int64
	segmentBytes int64
	cleanerLimit int64
}

func benchStorageCmd() *cobra.Command {
	o := storageBenchOpts{nodes: 3, size: 1024, keys: 1000, compactMB: 512, rate: 40000, duration: time.Minute,
		diskDuration: 10 * time.Minute, diskRate: 20000, keepBytes: 256 << 20, segmentBytes: 16 << 20}
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Measure compaction throughput, produce latency while compaction and retention run, and disk use under retention",
		Long: `Starts --nodes local brokers (replication factor min(3, nodes), one
partition per topic) and runs three measurements, each on a new topic. Every
record has a --size byte random value and one of --keys keys, written by
franz-go producers with default settings (acks=all, idempotent, snappy):

1. Compaction throughput: --compact-mb MB of updates to a compacted topic
   of --segment-bytes segments, as fast as acknowledged; then, from each
   broker's metrics, the bytes of closed segments its cleaner went through
   per second it spent compacting.
2. Produce latency at --rate records/s for --duration: on a plain topic,
   on one with retention.bytes --keep-bytes and --segment-bytes segments,
   and on one that is also compacted (cleanup.policy=compact,delete), so
   that retention, then compaction too, run throughout.
3. Disk use: --disk-rate records/s for --disk-duration to a topic with
   retention.bytes --keep-bytes; the bytes each replica keeps, every 30 s.

Progress goes to stderr, the results (Markdown) to stdout under the command
that reproduces them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runBenchStorage(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "local brokers to start")
	f.IntVar(&o.size, "size", o.size, "record value bytes")
	f.IntVar(&o.keys, "keys", o.keys, "distinct record keys")
	f.IntVar(&o.compactMB, "compact-mb", o.compactMB, "MB of updates written for the compaction measurement (0 skips it)")
	f.IntVar(&o.rate, "rate", o.rate, "records/s of the latency cases (0 skips them)")
	f.DurationVar(&o.duration, "duration", o.duration, "produce time of each latency case")
	f.DurationVar(&o.diskDuration, "disk-duration", o.diskDuration, "produce time of the disk-use case (0 skips it)")
	f.IntVar(&o.diskRate, "disk-rate", o.diskRate, "records/s of the disk-use case")
	f.Int64Var(&o.keepBytes, "keep-bytes", o.keepBytes, "retention.bytes of the retention cases")
	f.Int64Var(&o.segmentBytes, "segment-bytes", o.segmentBytes, "segment.bytes of the compacted and retained topics")
	f.Int64Var(&o.cleanerLimit, "compaction-max-bytes-per-sec", 0, "the brokers' --compaction-max-bytes-per-sec (0: no cap, the default)")
	return cmd
}

func runBenchStorage(ctx context.Context, o storageBenchOpts, out, progress io.Writer) error {
	local, err := startLocalCluster(ctx, localClusterOpts{nodes: o.nodes,
		extra: []string{"--log-level", "warn", "--compaction-check-interval", "1s", "--retention-check-interval", "5s",
			"--compaction-max-bytes-per-sec", fmt.Sprint(o.cleanerLimit)}})
	if err != nil {
		return err
	}
	defer local.stop()
	brokers := local.kafkaAddrs()
	fmt.Fprintf(progress, "bench: %d local brokers on %s\n", o.nodes, strings.Join(brokers, ","))
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	s := &storageBench{o: o, local: local, brokers: brokers, adm: adm, rf: int16(min(3, o.nodes)), progress: progress}
	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	limit := "no cap on the cleaner (the default)"
	if o.cleanerLimit > 0 {
		limit = fmt.Sprintf("cleaner capped at %d MB/s (--compaction-max-bytes-per-sec)", o.cleanerLimit/1e6)
	}
	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers: %d, replication factor %d, one partition per topic, %d B records (a different random value each) over %d keys, franz-go producers with default settings (acks=all, idempotent, snappy), %d MiB segments on the compacted and retained topics, retention.bytes %d MiB, min.cleanable.dirty.ratio 0.5 (the default), %s.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, o.nodes, s.rf, o.size, o.keys, o.segmentBytes>>20, o.keepBytes>>20, limit)
	if o.compactMB > 0 {
		if err := s.compactionThroughput(ctx, out); err != nil {
			return err
		}
	}
	if o.rate > 0 {
		if err := s.latencyUnderCleaning(ctx, out); err != nil {
			return err
		}
	}
	if o.diskDuration > 0 {
		return s.diskUse(ctx, out)
	}
	return nil
}

type storageBench struct {
	o        storageBenchOpts
	local    *localCluster
	brokers  []string
	adm      *client.Admin
	rf       int16
	progress io.Writer
}

func (s *storageBench) topic(ctx context.Context, name string, cfg map[string]string) (string, error) {
	topic := fmt.Sprintf("bench-%s-%d", name, time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return topic, s.adm.CreateTopic(cctx, topic, 1, s.rf, cfg)
}

func (s *storageBench) produce(ctx context.Context, name, topic string, d time.Duration, rate int) (bench.Result, error) {
	return bench.Produce(ctx, s.brokers, bench.ProduceCase{Topic: topic, Partitions: 1, RecordSize: s.o.size, Producers: 1,
		Duration: d, Acks: client.AcksAll, Idempotent: true, MaxBuffered: 10000, Rate: rate, Keys: s.o.keys},
		func(p bench.Progress) {
			fmt.Fprintf(s.progress, "bench: %-28s %5.0fs %10d records %8.1f MB/s errors %d\n", name,
				p.Elapsed.Seconds(), p.Records, float64(p.Bytes)/1e6/p.Elapsed.Seconds(), p.Errors)
		})
}

// cleanerTotals sums a broker's compaction counters.
func (s *storageBench) cleanerTotals() (bytes, secs []float64) {
	for _, b := range s.local.brokers {
		m := scrapeMetrics("http://" + b.AdminAddr + "/metrics")
		bytes = append(bytes, m["quire_compaction_input_bytes_total"])
		secs = append(secs, m["quire_compaction_seconds_total"])
	}
	return bytes, secs
}

func (s *storageBench) compactionThroughput(ctx context.Context, out io.Writer) error {
	topic, err := s.topic(ctx, "compact", map[string]string{"cleanup.policy": "compact",
		"segment.bytes": fmt.Sprint(s.o.segmentBytes), "min.cleanable.dirty.ratio": "0.5"})
	if err != nil {
		return err
	}
	b0, s0 := s.cleanerTotals()
	// As fast as acknowledged, for as long as --compact-mb takes.
	want := int64(s.o.compactMB) * 1e6
	var written int64
	began := time.Now()
	for written < want && ctx.Err() == nil {
		r, err := s.produce(ctx, "compaction: produce", topic, 2*time.Second, 0)
		if err != nil {
			return err
		}
		written += r.Bytes
	}
	produced := time.Since(began)
	// Then until every cleaner has been idle for 10 s.
	last, idle := 0.0, time.Now()
	for time.Since(idle) < 10*time.Second && ctx.Err() == nil {
		time.Sleep(time.Second)
		b, _ := s.cleanerTotals()
		sum := 0.0
		for _, v := range b {
			sum += v
		}
		if sum != last {
			last, idle = sum, time.Now()
			fmt.Fprintf(s.progress, "bench: compaction: cleaners went through %.0f MB\n", sum/1e6)
		}
	}
	b1, s1 := s.cleanerTotals()
	fmt.Fprintf(out, "Compaction: %.0f MB of updates in %.0f s (%.1f MB/s produced); each broker's cleaner:\n\n", float64(written)/1e6,
		produced.Seconds(), float64(written)/1e6/produced.Seconds())
	fmt.Fprintln(out, "| broker | MB gone through | seconds compacting | MB/s |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for i := range b1 {
		mb, secs := (b1[i]-b0[i])/1e6, s1[i]-s0[i]
		rate := "—"
		if secs > 0 {
			rate = fmt.Sprintf("%.0f", mb/secs)
		}
		fmt.Fprintf(out, "| %d | %.0f | %.1f | %s |\n", i+1, mb, secs, rate)
	}
	fmt.Fprintln(out)
	return nil
}

func (s *storageBench) latencyUnderCleaning(ctx context.Context, out io.Writer) error {
	fmt.Fprintf(out, "Produce latency at %d records/s (%.0f MB/s), %v per case:\n\n", s.o.rate, float64(s.o.rate*s.o.size)/1e6, s.o.duration)
	fmt.Fprintln(out, "| case | records/s | p50 | p99 | max | errors | p99 vs plain |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	var plainP99 time.Duration
	for _, c := range []struct {
		name string
		cfg  map[string]string
	}{
		{"plain", nil},
		{"retention running", map[string]string{"segment.bytes": fmt.Sprint(s.o.segmentBytes),
			"retention.bytes": fmt.Sprint(s.o.keepBytes)}},
		{"compaction and retention running", map[string]string{"cleanup.policy": "compact,delete",
			"segment.bytes": fmt.Sprint(s.o.segmentBytes), "retention.bytes": fmt.Sprint(s.o.keepBytes)}},
	} {
		topic, err := s.topic(ctx, "latency", c.cfg)
		if err != nil {
			return err
		}
		b0, _ := s.cleanerTotals()
		r, err := s.produce(ctx, "latency: "+c.name, topic, s.o.duration, s.o.rate)
		if err != nil {
			return err
		}
		b1, _ := s.cleanerTotals()
		vs := "—"
		if plainP99 == 0 {
			plainP99 = r.P99
		} else {
			vs = fmt.Sprintf("%+.0f%%", 100*(float64(r.P99)/float64(plainP99)-1))
			cleaned := 0.0
			for i := range b1 {
				cleaned += b1[i] - b0[i]
			}
			c.name += fmt.Sprintf(" (cleaners went through %.0f MB)", cleaned/1e6)
		}
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %s | %d | %s |\n", c.name, r.RecordsPerSec(), ms(r.P50), ms(r.P99), ms(r.Max), r.Errors, vs)
	}
	fmt.Fprintln(out)
	return nil
}

func (s *storageBench) diskUse(ctx context.Context, out io.Writer) error {
	topic, err := s.topic(ctx, "retention", map[string]string{"segment.bytes": fmt.Sprint(s.o.segmentBytes),
		"retention.bytes": fmt.Sprint(s.o.keepBytes)})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Disk use under retention.bytes %d MiB at %d records/s (%.0f MB/s) for %v; bytes each replica keeps:\n\n",
		s.o.keepBytes>>20, s.o.diskRate, float64(s.o.diskRate*s.o.size)/1e6, s.o.diskDuration)
	header := "| time | written MB |"
	for i := range s.local.brokers {
		header += fmt.Sprintf(" broker %d MiB |", i+1)
	}
	fmt.Fprintln(out, header)
	fmt.Fprintln(out, "|---|---|"+strings.Repeat("---|", len(s.local.brokers)))
	done := make(chan bench.Result, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := s.produce(ctx, "disk use", topic, s.o.diskDuration, s.o.diskRate)
		errc <- err
		done <- r
	}()
	began := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
			r := <-done
			fmt.Fprintf(out, "\n%d records written, p99 %s, %d errors.\n\n", r.Records, ms(r.P99), r.Errors)
			return nil
		case <-tick.C:
			elapsed := time.Since(began)
			row := fmt.Sprintf("| %s | %.0f |", elapsed.Round(time.Second), elapsed.Seconds()*float64(s.o.diskRate*s.o.size)/1e6)
			for _, b := range s.local.brokers {
				row += fmt.Sprintf(" %.0f |", float64(topicBytes("http://"+b.AdminAddr+"/debug/partitions", topic))/(1<<20))
			}
			fmt.Fprintln(out, row)
			fmt.Fprintln(s.progress, "bench: disk use "+row)
		}
	}
}

// scrapeMetrics reads a Prometheus text page's unlabelled samples.
func scrapeMetrics(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// topicBytes sums the size_bytes /debug/partitions reports for a topic.
func topicBytes(url, topic string) int64 {
	var views []struct {
		Topic string `json:"topic"`
		Bytes int64  `json:"size_bytes"`
	}
	if err := getJSON(url, &views); err != nil {
		return -1
	}
	var n int64
	for _, v := range views {
		if v.Topic == topic {
			n += v.Bytes
		}
	}
	return n
}

// getJSON decodes the JSON an admin endpoint answers.
func getJSON(url string, v interface{}) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
