package main

import (
	"context"
	"crypto/rand"
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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/quirelog/quire/client"
)

type groupBenchOpts struct {
	nodes       int
	brokers     string
	rounds      int
	partitions  int32
	commitConc  int
	commitParts int
	commitTime  time.Duration
	consumeRecs int
	valueSize   int

	largeMembers int
	largeParts   int32
	largeRounds  int
	only         string
}

func benchGroupsCmd() *cobra.Command {
	o := groupBenchOpts{nodes: 3, rounds: 5, partitions: 12, commitConc: 64, commitParts: 1, commitTime: 10 * time.Second,
		consumeRecs: 200000, valueSize: 1024, largeMembers: 100, largeParts: 200, largeRounds: 3}
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "Measure consumer group rebalances, offset commits and group consumption",
		Long: `Four measurements, on a fresh local cluster of --nodes brokers (or --brokers),
with franz-go clients at their defaults unless said:

  join      a stable group of 3 members consumes a topic of --partitions
            partitions that a producer writes 2,000 records/s to; a 4th member
            joins. Timed from the 4th client's start until the group is stable
            with 4 assigned members and the 4th has consumed a record. The 4th
            then leaves and the group settles at 3 again; --rounds rounds.
            Once with the classic protocol, once with the next-generation one
            (KIP-848: kgo.ServerSideBalancer, the uniform assignor).
  large     a next-generation group of --large-members members on
            --large-partitions partitions; one more member joins, timed the
            same way; --large-rounds rounds.
  commits   --commit-concurrency goroutines, each its own group and client,
            commit --commit-partitions partitions' offsets per OffsetCommit
            request in a loop (acknowledged once committed through Raft) for
            --commit-time: requests/s and partition offsets/s across the
            cluster, and latency percentiles.
  consume   --consume-records records of --value-size random bytes are read
            from the start by one client with direct assignment of every
            partition, then by one member of a new group, twice each,
            alternating: the time to the first record (a new group waits
            out group.initial.rebalance.delay.ms) and the rate after it.

Progress goes to stderr, the results (Markdown) to stdout under the command
that reproduces them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runBenchGroups(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "local brokers to start (without --brokers)")
	f.StringVar(&o.brokers, "brokers", "", "bootstrap brokers host:port,...; empty starts local brokers")
	f.IntVar(&o.rounds, "rounds", o.rounds, "4th-member joins to time")
	f.Int32Var(&o.partitions, "partitions", o.partitions, "partitions of the join and consume topics")
	f.IntVar(&o.commitConc, "commit-concurrency", o.commitConc, "concurrent committers, each committing for its own group")
	f.IntVar(&o.commitParts, "commit-partitions", o.commitParts, "partitions committed per OffsetCommit request")
	f.DurationVar(&o.commitTime, "commit-time", o.commitTime, "how long to commit")
	f.IntVar(&o.consumeRecs, "consume-records", o.consumeRecs, "records to consume per pass")
	f.IntVar(&o.valueSize, "value-size", o.valueSize, "bytes per record value in the consume passes")
	f.IntVar(&o.largeMembers, "large-members", o.largeMembers, "members of the large next-generation group")
	f.Int32Var(&o.largeParts, "large-partitions", o.largeParts, "partitions of the large next-generation group's topic")
	f.IntVar(&o.largeRounds, "large-rounds", o.largeRounds, "joins to time in the large group")
	f.StringVar(&o.only, "only", "", "run only these measurements: comma-separated of join, large, commits, consume")
	return cmd
}

// benchCluster connects to the brokers given or, without any, starts
// nodes local brokers; done stops what it started.
func benchCluster(ctx context.Context, brokersFlag string, nodes int, progress io.Writer) ([]string, *client.Admin, func(), error) {
	brokers := client.SplitBrokers(brokersFlag)
	stop := func() {}
	if len(brokers) == 0 {
		local, err := startLocalCluster(ctx, localClusterOpts{nodes: nodes, extra: []string{"--log-level", "warn"}})
		if err != nil {
			return nil, nil, nil, err
		}
		stop = local.stop
		brokers = local.kafkaAddrs()
		fmt.Fprintf(progress, "bench: %d local brokers on %s\n", nodes, strings.Join(brokers, ","))
	}
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return brokers, adm, func() { adm.Close(); stop() }, nil
}

func runBenchGroups(ctx context.Context, o groupBenchOpts, out, progress io.Writer) error {
	brokers, adm, done, err := benchCluster(ctx, o.brokers, o.nodes, progress)
	if err != nil {
		return err
	}
	defer done()
	rf := int16(min(3, len(brokers)))
	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers: %d, replication factor %d, franz-go clients with default settings (cooperative-sticky, 3 s heartbeats, autocommit).\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, len(brokers), rf)
	steps := []struct {
		name string
		run  func() error
	}{
		{"join", func() error {
			for _, jb := range []joinBench{classicJoin, nextGenJoin} {
				if err := benchGroupJoin(ctx, brokers, adm, rf, o, jb, out, progress); err != nil {
					return fmt.Errorf("%s: %w", jb.name, err)
				}
			}
			return nil
		}},
		{"large", func() error { return benchNextGenScale(ctx, brokers, adm, rf, o, out, progress) }},
		{"commits", func() error { return benchCommits(ctx, brokers, adm, rf, o, out, progress) }},
		{"consume", func() error { return benchGroupConsume(ctx, brokers, adm, rf, o, out, progress) }},
	}
	for _, step := range steps {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), step.name) {
			continue
		}
		if err := step.run(); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
}

// benchMember is a group consumer that counts what it receives.
type benchMember struct {
	cl     *kgo.Client
	got    atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

func startBenchMember(brokers []string, group, topic string, opts ...kgo.Opt) (*benchMember, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic)}, opts...)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &benchMember{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			m.got.Add(int64(fs.NumRecords()))
		}
	}()
	return m, nil
}

func (m *benchMember) close() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

// groupSettled reports whether the group is stable with n members, each
// assigned at least one partition.
func groupSettled(ctx context.Context, adm *kadm.Client, group string, n int) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := adm.DescribeGroups(cctx, group)
	if err != nil {
		return false
	}
	g := d[group]
	if g.Err != nil || g.State != "Stable" || len(g.Members) != n {
		return false
	}
	for _, m := range g.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		parts := 0
		for _, t := range ca.Topics {
			parts += len(t.Partitions)
		}
		if parts == 0 {
			return false
		}
	}
	return true
}

// nextGenSettled reports whether a next-generation (KIP-848) group is
// stable with n members, each assigned at least one partition.
func nextGenSettled(ctx context.Context, adm *kadm.Client, group string, n int) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := adm.DescribeConsumerGroups(cctx, group)
	if err != nil {
		return false
	}
	g := d[group]
	if g.Err != nil || g.State != "Stable" || len(g.Members) != n {
		return false
	}
	for _, m := range g.Members {
		if len(m.Assignment) == 0 {
			return false
		}
	}
	return true
}

// joinBench is one protocol's join measurement: how its members are made
// and how the group is seen to settle.
type joinBench struct {
	name    string
	opts    []kgo.Opt
	settled func(ctx context.Context, adm *kadm.Client, group string, n int) bool
}

var (
	classicJoin = joinBench{name: "Classic protocol", settled: groupSettled}
	nextGenJoin = joinBench{name: "Next-generation protocol (KIP-848, franz-go `ServerSideBalancer`)",
		opts: []kgo.Opt{kgo.ServerSideBalancer()}, settled: nextGenSettled}
)

func benchGroupJoin(ctx context.Context, brokers []string, adm *client.Admin, rf int16, o groupBenchOpts, jb joinBench, out, progress io.Writer) error {
	stable, consuming, err := joinRounds(ctx, brokers, adm, rf, jb, 3, o.partitions, o.rounds, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "### %s: a 4th member joins a stable group of 3 on %d partitions\n\n", jb.name, o.partitions)
	fmt.Fprintf(out, "| rounds | stable with 4, median | max | all 4 consuming, median | max |\n|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| %d | %s | %s | %s | %s |\n\n", len(stable), ms(nearestRank(stable, 0.5)), ms(stable[len(stable)-1]),
		ms(nearestRank(consuming, 0.5)), ms(consuming[len(consuming)-1]))
	return nil
}

// joinRounds forms a group of size members on a new topic of partitions
// partitions that trickle writes to, then, rounds times, starts one more
// member and times it from the client's start until the group is settled
// with every member assigned (stable) and until, besides, the new member
// has consumed a record (consuming); the new member then leaves and the
// group settles again. Both lists come back sorted.
func joinRounds(ctx context.Context, brokers []string, adm *client.Admin, rf int16, jb joinBench, size int, partitions int32, rounds int, progress io.Writer) (stable, consuming []time.Duration, err error) {
	topic := fmt.Sprintf("bench-join-%d", time.Now().UnixNano())
	if err := adm.CreateTopic(ctx, topic, partitions, rf, nil); err != nil {
		return nil, nil, err
	}
	stopProducing, err := trickle(ctx, brokers, topic)
	if err != nil {
		return nil, nil, err
	}
	defer stopProducing()
	dcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, nil, err
	}
	defer dcl.Close()
	kadmin := kadm.NewClient(dcl)
	group := topic + "-group"
	var members []*benchMember
	defer func() {
		for _, m := range members {
			m.close()
		}
	}()
	for i := 0; i < size; i++ {
		m, err := startBenchMember(brokers, group, topic, jb.opts...)
		if err != nil {
			return nil, nil, err
		}
		members = append(members, m)
	}
	wait := func(n int) error {
		deadline := time.Now().Add(5 * time.Minute)
		for !jb.settled(ctx, kadmin, group, n) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("group never settled with %d members", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}
	fmt.Fprintf(progress, "bench: %s: %d members joining on %d partitions\n", jb.name, size, partitions)
	if err := wait(size); err != nil {
		return nil, nil, err
	}
	for round := 0; round < rounds; round++ {
		start := time.Now()
		m, err := startBenchMember(brokers, group, topic, jb.opts...)
		if err != nil {
			return nil, nil, err
		}
		var stableAt, consumedAt time.Duration
		deadline := start.Add(2 * time.Minute)
		for (stableAt == 0 || consumedAt == 0) && time.Now().Before(deadline) && ctx.Err() == nil {
			if consumedAt == 0 && m.got.Load() > 0 {
				consumedAt = time.Since(start)
			}
			if stableAt == 0 && jb.settled(ctx, kadmin, group, size+1) {
				stableAt = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		m.close()
		if stableAt == 0 || consumedAt == 0 {
			return nil, nil, fmt.Errorf("round %d: the new member did not settle and consume within 2 minutes", round+1)
		}
		stable, consuming = append(stable, stableAt), append(consuming, max(stableAt, consumedAt))
		fmt.Fprintf(progress, "bench: %s, member %d joins %d/%d: stable after %s, new member consuming after %s\n", jb.name, size+1, round+1, rounds, ms(stableAt), ms(consumedAt))
		if err := wait(size); err != nil {
			return nil, nil, err
		}
	}
	slices.Sort(stable)
	slices.Sort(consuming)
	return stable, consuming, nil
}

func benchCommits(ctx context.Context, brokers []string, adm *client.Admin, rf int16, o groupBenchOpts, out, progress io.Writer) error {
	topic := fmt.Sprintf("bench-commit-%d", time.Now().UnixNano())
	if err := adm.CreateTopic(ctx, topic, int32(o.commitParts), rf, nil); err != nil {
		return err
	}
	// A client per committer (up to 64), as each consumer has its own.
	clients := make([]*kadm.Client, min(64, o.commitConc))
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return err
		}
		defer cl.Close()
		clients[i] = kadm.NewClient(cl)
	}
	// Warm up: find every group's coordinator (and create the offsets
	// topic) before the clock starts.
	for i := 0; i < o.commitConc; i++ {
		if err := commitOnce(ctx, clients[i%len(clients)], fmt.Sprintf("%s-g%d", topic, i), topic, o.commitParts, 0); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	cctx, cancel := context.WithTimeout(ctx, o.commitTime)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < o.commitConc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := fmt.Sprintf("%s-g%d", topic, i)
			var mine []time.Duration
			for off := int64(1); cctx.Err() == nil; off++ {
				t := time.Now()
				if err := commitOnce(cctx, clients[i%len(clients)], group, topic, o.commitParts, off); err != nil {
					if cctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	go func() {
		for {
			select {
			case <-cctx.Done():
				return
			case <-tick.C:
				fmt.Fprintf(progress, "bench: committing, %s of %s\n", secs(time.Since(start)), o.commitTime)
			}
		}
	}()
	wg.Wait()
	took := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return fmt.Errorf("no commit succeeded (%d failed)", failed.Load())
	}
	fmt.Fprintf(out, "### Offset commits across the cluster\n\n")
	fmt.Fprintf(out, "| committers (groups) | partitions per request | requests | requests/s | partition offsets/s | p50 | p99 | failed |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| %d | %d | %d | %.0f | %.0f | %s | %s | %d |\n\n", o.commitConc, o.commitParts, len(lat), float64(len(lat))/took.Seconds(),
		float64(len(lat)*o.commitParts)/took.Seconds(), ms(nearestRank(lat, 0.5)), ms(nearestRank(lat, 0.99)), failed.Load())
	return nil
}

func commitOnce(ctx context.Context, adm *kadm.Client, group, topic string, parts int, off int64) error {
	var os kadm.Offsets
	for p := 0; p < parts; p++ {
		os.Add(kadm.Offset{Topic: topic, Partition: int32(p), At: off, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err != nil {
		return err
	}
	return resp.Error()
}

func benchGroupConsume(ctx context.Context, brokers []string, adm *client.Admin, rf int16, o groupBenchOpts, out, progress io.Writer) error {
	topic := fmt.Sprintf("bench-consume-%d", time.Now().UnixNano())
	if err := adm.CreateTopic(ctx, topic, o.partitions, rf, nil); err != nil {
		return err
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "bench: producing %d records of %d bytes\n", o.consumeRecs, o.valueSize)
	var perr atomic.Value
	for i := 0; i < o.consumeRecs; i++ {
		v := make([]byte, o.valueSize)
		rand.Read(v)
		prod.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				perr.Store(err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		prod.Close()
		return err
	}
	prod.Close()
	if e, ok := perr.Load().(error); ok {
		return e
	}
	type pass struct {
		how         string
		first, took time.Duration
	}
	var passes []pass
	for i := 0; i < 2; i++ {
		for _, how := range []string{"direct assignment", "consumer group"} {
			first, took, err := consumeAllOnce(ctx, brokers, topic, how == "consumer group", int64(o.consumeRecs), o.partitions)
			if err != nil {
				return fmt.Errorf("%s: %w", how, err)
			}
			fmt.Fprintf(progress, "bench: %s read %d records in %s (first after %s)\n", how, o.consumeRecs, ms(took), ms(first))
			passes = append(passes, pass{how, first, took})
		}
	}
	mb := float64(o.consumeRecs*o.valueSize) / 1e6
	fmt.Fprintf(out, "### One consumer reading %d records of %d B from the start (%d partitions)\n\n", o.consumeRecs, o.valueSize, o.partitions)
	fmt.Fprintf(out, "| pass | how | first record after | all after | MB/s after the first record |\n|---|---|---|---|---|\n")
	best := map[string]float64{}
	for i, p := range passes {
		rate := mb / (p.took - p.first).Seconds()
		fmt.Fprintf(out, "| %d | %s | %s | %s | %.1f |\n", i/2+1, p.how, ms(p.first), ms(p.took), rate)
		best[p.how] = max(best[p.how], rate)
	}
	fmt.Fprintf(out, "\nBest of each, after the first record: the group reads %.1f%% slower than direct assignment (negative: faster).\n\n",
		100*(1-best["consumer group"]/best["direct assignment"]))
	return nil
}

// consumeAllOnce reads want records of topic from the start, with a new
// group or with every partition assigned directly, and times the first
// record and the last from the client's start.
func consumeAllOnce(ctx context.Context, brokers []string, topic string, group bool, want int64, partitions int32) (first, all time.Duration, err error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if group {
		opts = append(opts, kgo.ConsumerGroup(fmt.Sprintf("%s-%d", topic, time.Now().UnixNano())), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	} else {
		parts := map[int32]kgo.Offset{}
		for p := int32(0); p < partitions; p++ {
			parts[p] = kgo.NewOffset().AtStart()
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	}
	start := time.Now()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got int64
	for got < want {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			return 0, 0, fmt.Errorf("read %d of %d records", got, want)
		}
		if n := int64(fs.NumRecords()); n > 0 && got == 0 {
			first = time.Since(start)
		}
		got += int64(fs.NumRecords())
	}
	return first, time.Since(start), nil
}

// trickle produces about 2,000 small records/s to every partition of
// topic in turn, so that a member newly given a partition soon has a
// record to read, until the returned func is called.
func trickle(ctx context.Context, brokers []string, topic string) (func(), error) {
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; pctx.Err() == nil; i++ {
			prod.Produce(pctx, kgo.StringRecord(fmt.Sprintf("record-%d", i)), nil)
			time.Sleep(500 * time.Microsecond)
		}
	}()
	return func() {
		cancel()
		<-done
		prod.Close()
	}, nil
}

// benchNextGenScale times a large next-generation group converging after
// one more member joins: --large-members members on --large-partitions
// partitions.
func benchNextGenScale(ctx context.Context, brokers []string, adm *client.Admin, rf int16, o groupBenchOpts, out, progress io.Writer) error {
	_, took, err := joinRounds(ctx, brokers, adm, rf, nextGenJoin, o.largeMembers, o.largeParts, o.largeRounds, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "### Next-generation protocol: one member joins a stable group of %d on %d partitions\n\n", o.largeMembers, o.largeParts)
	fmt.Fprintf(out, "Timed until the group is Stable (every member at the target epoch, holding its whole target) and the new member has consumed a record.\n\n")
	fmt.Fprintf(out, "| rounds | converged, median | max |\n|---|---|---|\n| %d | %s | %s |\n\n", len(took), ms(nearestRank(took, 0.5)), ms(took[len(took)-1]))
	return nil
}
