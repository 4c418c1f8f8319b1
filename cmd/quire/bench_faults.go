package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/quirelog/quire/client"
	"github.com/quirelog/quire/transport/node"
)

type faultBenchOpts struct {
	clients    []string
	faults     []string
	rounds     int
	pause      time.Duration
	python     string
	netns      bool
	settle     time.Duration
	brokerArgs []string
	keepData   bool
}

func benchFailoverCmd() *cobra.Command {
	o := faultBenchOpts{clients: []string{"franz-go", "sarama", "librdkafka"}, faults: []string{"kill", "cut", "pause"},
		rounds: 20, pause: 6 * time.Second, python: "/usr/bin/python3", netns: true, settle: 12 * time.Second}
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Time leader fail-over as Kafka clients on their default settings see it",
		Long: `Start a local 3-node cluster, create a topic of one partition at RF=3, and
run one producer per client (franz-go, sarama, librdkafka through
confluent-kafka-python) on its default settings, each writing about 1,000
records/s of 100 B with acks=all. Then, for each fault, --rounds times:
find the partition's leader, inject the fault on its node, and measure for
each client the time from the fault to the first acknowledgement of a
record it sent after the fault. Also measured: the time until the other
brokers' Metadata names a new leader.

Faults:
  kill   SIGKILL of the leader's process; it is restarted after the round
  cut    the leader's node loses its peers (packet filters between network
         namespaces; needs root) while clients can still reach it
  pause  SIGSTOP of the leader's process for --pause, then SIGCONT

After the last round the partition is read from the start and every
acknowledged record must be in it. The table (Markdown) goes to stdout,
progress to stderr. QUIRE_FRANZ_DEBUG=1, QUIRE_RDKAFKA_DEBUG=<librdkafka debug
contexts> and QUIRE_FAILOVER_DEBUG=1 print the clients' logs and each round's
backlog to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runFaultBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.clients, "client", o.clients, "clients to run: franz-go, sarama, librdkafka")
	f.StringSliceVar(&o.faults, "fault", o.faults, "faults to inject: kill, cut, pause")
	f.IntVar(&o.rounds, "rounds", o.rounds, "rounds per fault")
	f.DurationVar(&o.pause, "pause", o.pause, "how long a paused leader stays stopped")
	f.StringVar(&o.python, "python", o.python, "python with confluent_kafka for the librdkafka client (apt-get install python3-confluent-kafka)")
	f.BoolVar(&o.netns, "netns", o.netns, "run each broker in its own network namespace (needed by cut; needs root)")
	f.DurationVar(&o.settle, "settle", o.settle, "steady production before each fault, after the ISR is full again (franz-go refreshes metadata up to 5 s after a fail-over, and waits 5 s after a refresh before the next)")
	f.StringArrayVar(&o.brokerArgs, "broker-arg", nil, "extra argument for every broker, repeatable; later ones win")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the cluster's temporary data directory (broker logs)")
	return cmd
}

// faultRound is what one round measured for every client.
type faultRound struct {
	at      time.Time
	elected time.Duration // until a surviving broker's Metadata names a new leader
	first   map[string]time.Duration
}

func runFaultBench(ctx context.Context, o faultBenchOpts, out, progress io.Writer) error {
	var clients []defaultClient
	for _, name := range o.clients {
		mk, ok := failoverClients[name]
		if !ok {
			return fmt.Errorf("unknown client %q", name)
		}
		clients = append(clients, mk(o.python))
	}
	var lab *netnsLab
	if o.netns {
		var err error
		if lab, err = setupNetns(3); err != nil {
			return fmt.Errorf("network namespaces: %w (--netns=false runs kill and pause on loopback)", err)
		}
		defer lab.teardown()
	} else if slices.Contains(o.faults, "cut") {
		return fmt.Errorf("the cut fault needs --netns")
	}
	bc, err := startLocalCluster(ctx, localClusterOpts{nodes: 3, netns: lab, keep: o.keepData,
		extra: append([]string{"--log-level", "warn"}, o.brokerArgs...)})
	if err != nil {
		return err
	}
	defer bc.stop()
	brokers := bc.kafkaAddrs()
	fmt.Fprintf(progress, "failover: 3 local brokers on %s, data in %s\n", strings.Join(brokers, ","), bc.dir)
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	topic := fmt.Sprintf("failover-%d", time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = adm.CreateTopic(cctx, topic, 1, 3, nil)
	cancel()
	if err != nil {
		return err
	}

	acks := map[string]*clientAcks{}
	pctx, stopProducers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, c := range clients {
		a := newClientAcks()
		acks[c.name()] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(pctx, brokers, topic, a); err != nil {
				errs <- fmt.Errorf("%s: %w", c.name(), err)
			}
		}()
	}
	defer func() { stopProducers(); wg.Wait() }()
	for _, c := range clients {
		if _, ok := waitAckAfter(ctx, &acks[c.name()].ackLog, time.Now(), 60*time.Second); !ok {
			return fmt.Errorf("%s: no acknowledged write within 60s", c.name())
		}
	}

	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	fmt.Fprintln(out, "Time from the fault to the first acknowledged write sent after it; one partition, RF=3, acks=all, ~1,000 records/s per client.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| fault | client | rounds | p50 | p99 | max | new leader named (p50 / max) |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	for _, fault := range o.faults {
		var rounds []faultRound
		for r := 0; r < o.rounds; r++ {
			select {
			case err := <-errs:
				return err
			default:
			}
			fr, err := faultRoundRun(ctx, bc, lab, adm, topic, fault, o, acks)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", fault, r+1, err)
			}
			var parts []string
			for _, c := range clients {
				parts = append(parts, fmt.Sprintf("%s %s", c.name(), ms(fr.first[c.name()])))
			}
			fmt.Fprintf(progress, "failover: %s fault at %s\n", fault, fr.at.Format("15:04:05.000"))
			fmt.Fprintf(progress, "failover: %s %d/%d: new leader named after %s; first ack: %s\n", fault, r+1, o.rounds,
				ms(fr.elected), strings.Join(parts, ", "))
			rounds = append(rounds, fr)
		}
		var elected []time.Duration
		for _, fr := range rounds {
			elected = append(elected, fr.elected)
		}
		slices.Sort(elected)
		for _, c := range clients {
			var ds []time.Duration
			for _, fr := range rounds {
				ds = append(ds, fr.first[c.name()])
			}
			slices.Sort(ds)
			fmt.Fprintf(out, "| %s | %s | %d | %s | %s | %s | %s / %s |\n", fault, c.name(), len(ds),
				secs2(nearestRank(ds, 0.5)), secs2(nearestRank(ds, 0.99)), secs2(ds[len(ds)-1]),
				secs2(nearestRank(elected, 0.5)), secs2(elected[len(elected)-1]))
		}
	}
	stopProducers()
	wg.Wait()
	return checkAcked(ctx, brokers, topic, acks, out)
}

func secs2(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// faultRoundRun waits for a full ISR, injects fault on the leader's node,
// times the new leader and each client's first acknowledgement, and
// heals the fault.
func faultRoundRun(ctx context.Context, bc *localCluster, lab *netnsLab, adm *client.Admin, topic, fault string,
	o faultBenchOpts, acks map[string]*clientAcks) (faultRound, error) {
	// Every client has been producing to this leader, without a metadata
	// refresh, for longer than franz-go's 5 s metadata minimum age (which
	// also delays the refresh it makes after a fail-over): the state a
	// client is in when a fault comes out of the blue. A leadership that
	// moved meanwhile (the preferred leader returning after the last
	// round) starts the wait again.
	st, err := settledLeader(ctx, adm, topic, o.settle)
	if err != nil {
		return faultRound{}, err
	}
	victim := int(st.Leader) - 1
	b := bc.brokers[victim]
	var at time.Time
	switch fault {
	case "kill":
		b.Kill()
		at = time.Now()
	case "pause":
		err = b.cmd.Process.Signal(syscall.SIGSTOP)
		at = time.Now()
	case "cut":
		var rules []node.Rule
		for id := 1; id <= 3; id++ {
			if id != victim+1 {
				rules = append(rules, node.Rule{From: int32(victim + 1), To: int32(id), Drop: true},
					node.Rule{From: int32(id), To: int32(victim + 1), Drop: true})
			}
		}
		err = lab.setRules(rules)
		at = time.Now()
	default:
		return faultRound{}, fmt.Errorf("unknown fault %q", fault)
	}
	if err != nil {
		return faultRound{}, err
	}
	var survivors []int32
	for id := int32(1); id <= 3; id++ {
		if id != st.Leader {
			survivors = append(survivors, id)
		}
	}
	fr := faultRound{at: at, first: map[string]time.Duration{}}
	elected := make(chan time.Duration, 1)
	go func() { elected <- waitNewLeader(ctx, adm, survivors, topic, st.Leader, at) }()
	resumed := false
	var mu sync.Mutex
	var wg sync.WaitGroup
	var slow sync.Once
	for name, a := range acks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, ok := waitAckAfter(ctx, &a.ackLog, at, slowRound)
			if !ok {
				slow.Do(func() { saveRoundDebug(bc, victim, fault, at) })
				d, ok = waitAckAfter(ctx, &a.ackLog, at, 30*time.Second-slowRound)
			}
			if !ok {
				d = 30 * time.Second
			}
			mu.Lock()
			fr.first[name] = d
			mu.Unlock()
		}()
	}
	if fault == "pause" {
		select {
		case <-time.After(time.Until(at.Add(o.pause))):
		case <-ctx.Done():
		}
		_ = b.cmd.Process.Signal(syscall.SIGCONT)
		resumed = true
	}
	wg.Wait()
	fr.elected = <-elected
	if os.Getenv("QUIRE_FAILOVER_DEBUG") != "" {
		for name, a := range acks {
			backlog, slowest := a.around(at)
			fmt.Fprintf(os.Stderr, "failover debug: %s: %d records outstanding at the fault; slowest ack in the 2 s before: %s\n", name, backlog, ms(slowest))
		}
	}
	switch fault {
	case "kill":
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		nb, err := bc.restartBroker(sctx, victim)
		cancel()
		if err != nil {
			return fr, fmt.Errorf("restart broker %d: %w", victim+1, err)
		}
		bc.brokers[victim] = nb
	case "pause":
		if !resumed {
			_ = b.cmd.Process.Signal(syscall.SIGCONT)
		}
	case "cut":
		if err := lab.setRules(nil); err != nil {
			return fr, err
		}
	}
	return fr, nil
}

// slowRound is how long a client may go without an acknowledgement
// after a fault before the brokers' state is saved: a pause round takes
// its pause plus an election, anything longer is stuck somewhere.
const slowRound = 10 * time.Second

// saveRoundDebug saves every reachable broker's state next to its log,
// named after the round, so a stall that --keep-data preserves can be
// explained after the run.
func saveRoundDebug(bc *localCluster, victim int, fault string, at time.Time) {
	for i, s := range bc.specs {
		if i == victim && fault != "cut" {
			continue
		}
		name := fmt.Sprintf("slow-%s-%s-debug.txt", fault, at.Format("150405"))
		saveDebug(s.AdminAddr, filepath.Join(s.DataDir, name))
	}
	fmt.Fprintf(os.Stderr, "failover: a client has no ack %s after the %s; brokers' state saved in their data directories\n", slowRound, fault)
}

// settledLeader waits for a full ISR and then settle, and returns the
// partition's state once its leader has held through a whole settle.
func settledLeader(ctx context.Context, adm *client.Admin, topic string, settle time.Duration) (client.PartitionState, error) {
	for {
		st, err := waitFullISR(ctx, adm, topic, 3)
		if err != nil {
			return st, err
		}
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return st, ctx.Err()
		}
		now, err := waitFullISR(ctx, adm, topic, 3)
		if err != nil || now.Leader == st.Leader {
			return now, err
		}
	}
}

// waitNewLeader asks each surviving broker's Metadata, directly (a client
// left to choose could ask the faulty broker and wait on it), until one
// names a leader other than old, and returns the time since at (30 s if
// never).
func waitNewLeader(ctx context.Context, adm *client.Admin, survivors []int32, topic string, old int32, at time.Time) time.Duration {
	for time.Since(at) < 30*time.Second && ctx.Err() == nil {
		found := make(chan bool, len(survivors))
		for _, id := range survivors {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				ls, err := adm.Leaders(cctx, topic, id)
				found <- err == nil && ls[0] > 0 && ls[0] != old
			}()
		}
		for range survivors {
			if <-found {
				return time.Since(at)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 30 * time.Second
}

// checkAcked reads the partition from the start and reports, per client,
// acknowledged records that are not in it.
func checkAcked(ctx context.Context, brokers []string, topic string, acks map[string]*clientAcks, out io.Writer) error {
	want := map[string]bool{}
	for _, a := range acks {
		for id := range a.acked() {
			want[id] = true
		}
	}
	adm, err := client.NewAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := adm.EndOffsets(cctx, topic)
	cancel()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var read int64
	for read < ends[0] && rctx.Err() == nil {
		fs := cl.PollFetches(rctx)
		fs.EachRecord(func(r *kgo.Record) {
			delete(want, valueID(r.Value))
			read = r.Offset + 1
		})
	}
	lost := map[string]int{}
	for id := range want {
		lost[strings.SplitN(id, "-", 2)[0]]++
	}
	var parts []string
	for name, a := range acks {
		n := len(a.acked())
		prefix := map[string]string{"franz-go": "franz", "sarama": "sarama", "librdkafka": "rdkafka"}[name]
		parts = append(parts, fmt.Sprintf("%s %d acknowledged, %d lost, %d failed", name, n, lost[prefix], a.failed.Load()))
	}
	slices.Sort(parts)
	fmt.Fprintf(out, "\nRead back %d records: %s.\n", read, strings.Join(parts, "; "))
	if len(want) > 0 {
		return fmt.Errorf("%d acknowledged records are missing from the partition", len(want))
	}
	return nil
}
