package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/chaos"
	"github.com/quirelog/quire/client"
)

type chaosRunOpts struct {
	scenario string
	nodes    int
	brokers  string
	admin    string
	out      string
	dataDir  string
	keepData bool
	network  string
	cfg      chaos.Config
}

func chaosRunCmd() *cobra.Command {
	o := chaosRunOpts{scenario: "all", nodes: 3, network: "auto"}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Inject faults into a cluster under load, then check the history",
		Long: `Run a chaos scenario: producers (idempotent and plain, acks=all) and
consumers record every operation while a nemesis injects faults; then all
faults heal, everything is read back, replicas are compared, and every
checker runs over the history.

Without --brokers it starts a local cluster of --nodes processes with
fault injection enabled. With --brokers it attacks an existing cluster;
--admin lists its nodes' admin addresses (id=host:port,...), which must
run with --enable-fault-injection for network scenarios; process and disk
scenarios need a local cluster.

Scenarios: ` + strings.Join(chaos.Scenarios(), ", ") + `, or all; single
partition faults (isolate-leader, split, bridge, one-way, flapping) and
delay, loss also work alone. With --workload txn, all adds txn-rpc:
transaction RPCs between brokers delayed and delivered twice.

The txn workload's checkers: no aborted read, no torn transaction, no
committed transaction lost, no read of a transaction before its commit,
and the copier's output equal to its input below its committed offsets,
each record once.

Results go to --out: history.jsonl, timeline.svg, index.html and
summary.md per scenario. Exits 1 when any checker finds a violation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runChaos(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", o.scenario, "scenario name, comma-separated names, or all")
	f.DurationVar(&o.cfg.Duration, "duration", 5*time.Minute, "fault phase of each scenario")
	f.Int64Var(&o.cfg.Seed, "seed", 0, "random seed (0 picks one from the clock; it is printed)")
	f.IntVar(&o.nodes, "nodes", o.nodes, "nodes of the local cluster")
	f.StringVar(&o.brokers, "brokers", "", "attack this existing cluster (Kafka bootstrap addresses) instead of a local one")
	f.StringVar(&o.admin, "admin", "", "existing cluster's admin addresses: id=host:port,...")
	f.StringVar(&o.out, "out", "", "results directory (default chaos-results/<time>)")
	f.StringVar(&o.dataDir, "data", "", "local cluster data directory (default: a temporary one)")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the local cluster's data and logs after the run")
	f.StringVar(&o.network, "network", o.network, "how a local cluster's network faults are made: netns (each node in its own network namespace, faults are packet filters; needs root), hooks (the brokers' own transport fault hooks), or auto (netns where possible)")
	f.Int32Var(&o.cfg.Partitions, "partitions", 3, "partitions of the run's topic")
	f.IntVar(&o.cfg.Rate, "rate", 100, "produces per second per producer")
	f.IntVar(&o.cfg.Idempotent, "idempotent-producers", 2, "idempotent producers")
	f.IntVar(&o.cfg.Plain, "plain-producers", 1, "non-idempotent producers")
	f.IntVar(&o.cfg.Consumers, "consumers", 1, "consumers reading by assignment")
	f.IntVar(&o.cfg.GroupMembers, "group-members", 2, "members of one consumer group reading the topic and committing every second (0: no group workload)")
	f.StringVar(&o.cfg.GroupProtocol, "group-protocol", "classic", "protocol of the group workload's members: classic, or consumer (next-generation, KIP-848)")
	f.StringVar(&o.cfg.Workload, "workload", chaos.WorkloadLog, "log (idempotent and plain producers, consumers, a consumer group) txn (transactional producers that commit and abort, read_committed consumers, and an exactly-once copier to a second topic) or compact (idempotent producers updating --keys keys of a compacted topic with 16 KiB segments, compacted every few seconds)")
	f.IntVar(&o.cfg.Keys, "keys", 20, "distinct keys of the compact workload")
	f.IntVar(&o.cfg.TxnProducers, "txn-producers", 2, "transactional producers of the txn workload, each running up to rate/10 transactions a second")
	f.DurationVar(&o.cfg.FaultMin, "fault-min", 4*time.Second, "shortest fault")
	f.DurationVar(&o.cfg.FaultMax, "fault-max", 12*time.Second, "longest fault")
	f.DurationVar(&o.cfg.GapMin, "gap-min", 3*time.Second, "shortest healthy gap between faults")
	f.DurationVar(&o.cfg.GapMax, "gap-max", 8*time.Second, "longest healthy gap between faults")
	f.DurationVar(&o.cfg.Recovery, "recovery", 8*time.Second, "writes after the last heal")
	return cmd
}

// scenarioSummary is one line of the final table.
type scenarioSummary struct {
	name    string
	seed    int64
	outcome *chaos.Outcome
	err     error
	dir     string
}

func runChaos(ctx context.Context, o chaosRunOpts, out, progress io.Writer) error {
	if p := o.cfg.GroupProtocol; p != "classic" && p != "consumer" {
		return fmt.Errorf("--group-protocol %q: want classic or consumer", p)
	}
	if w := o.cfg.Workload; w != chaos.WorkloadLog && w != chaos.WorkloadTxn && w != chaos.WorkloadCompact {
		return fmt.Errorf("--workload %q: want %s, %s or %s", w, chaos.WorkloadLog, chaos.WorkloadTxn, chaos.WorkloadCompact)
	}
	names := chaos.ScenariosFor(o.cfg.Workload)
	if o.scenario != "all" {
		names = strings.Split(o.scenario, ",")
	} else if o.brokers != "" {
		names = remoteScenarios(o, names, progress)
	}
	if o.cfg.Seed == 0 {
		o.cfg.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	if o.out == "" {
		o.out = filepath.Join("chaos-results", time.Now().Format("20060102-150405"))
	}
	network, err := chooseNetwork(o)
	if err != nil {
		return err
	}
	o.network = network
	fmt.Fprintf(out, "quire chaos: seed %d, scenarios %s, network faults by %s, results in %s\n", o.cfg.Seed, strings.Join(names, ","), o.network, o.out)
	var sums []scenarioSummary
	for i, name := range names {
		cfg := o.cfg
		cfg.Scenario = name
		cfg.Seed = o.cfg.Seed + int64(i)
		cfg.Progress = progress
		s := scenarioSummary{name: name, seed: cfg.Seed, dir: filepath.Join(o.out, name)}
		s.outcome, s.err = runScenario(ctx, o, cfg, s.dir)
		if s.err != nil {
			fmt.Fprintf(progress, "chaos: %s: %v\n", name, s.err)
		}
		sums = append(sums, s)
		if ctx.Err() != nil {
			break
		}
	}
	return writeSummary(out, o.out, sums)
}

// runScenario runs one scenario against its own fresh local cluster (or
// the given one) and writes its results to dir.
func runScenario(ctx context.Context, o chaosRunOpts, cfg chaos.Config, dir string) (*chaos.Outcome, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hf, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	defer hf.Close()
	cfg.History = hf
	target, cleanup, err := chaosTarget(ctx, o, cfg.Scenario)
	if err != nil {
		return nil, err
	}
	cfg.Target = target
	res, err := chaos.Run(ctx, cfg)
	// A failed run's broker logs are what explains it; the data directory
	// they live in is temporary unless --keep-data.
	cleanup(err != nil || res.Violations() > 0, filepath.Join(dir, "logs"))
	if err != nil {
		return nil, err
	}
	return res, writeReport(dir, res)
}

// chaosTarget starts a local cluster for one scenario, or wraps --brokers.
// Its cleanup stops the cluster, first copying the brokers' logs to
// logsDir if the scenario failed.
func chaosTarget(ctx context.Context, o chaosRunOpts, scenario string) (chaos.Target, func(failed bool, logsDir string), error) {
	if o.brokers != "" {
		t, err := newRemoteTarget(o.brokers, o.admin)
		return t, func(bool, string) {}, err
	}
	dataDir := o.dataDir
	if dataDir != "" {
		dataDir = filepath.Join(dataDir, scenario)
	}
	var lab *netnsLab
	if o.network == "netns" {
		var err error
		if lab, err = setupNetns(o.nodes); err != nil {
			return nil, nil, err
		}
	}
	lc, err := startLocalCluster(ctx, localClusterOpts{nodes: o.nodes, dataDir: dataDir, keep: o.keepData, netns: lab,
		extra: []string{"--log-level", "info", "--enable-fault-injection", "--power-loss-journal", "--compaction-check-interval", "2s"}})
	if err != nil {
		if lab != nil {
			lab.teardown()
		}
		return nil, nil, err
	}
	t := newProcessTarget(lc)
	t.lab = lab
	return t, func(failed bool, logsDir string) {
		lc.stopBrokers()
		if failed {
			lc.saveLogs(logsDir)
		}
		lc.stop()
		if lab != nil {
			lab.teardown()
		}
	}, nil
}

// chooseNetwork resolves --network for a local cluster; an existing
// cluster always uses its brokers' hooks.
func chooseNetwork(o chaosRunOpts) (string, error) {
	switch {
	case o.brokers != "":
		return "hooks", nil
	case o.network == "hooks":
		return o.network, nil
	case o.network == "netns":
		return o.network, netnsAvailable()
	case o.network == "auto":
		if netnsAvailable() == nil {
			return "netns", nil
		}
		return "hooks", nil
	}
	return "", fmt.Errorf("--network %q: want netns, hooks or auto", o.network)
}

// remoteScenarios keeps, of all scenarios, those an existing cluster can
// serve: process and disk faults need a local cluster.
func remoteScenarios(o chaosRunOpts, names []string, progress io.Writer) []string {
	t, err := newRemoteTarget(o.brokers, o.admin)
	if err != nil {
		return names // runScenario reports the error
	}
	var out []string
	for _, n := range names {
		if err := chaos.Supported(t, n); err != nil {
			fmt.Fprintf(progress, "chaos: skipping %s: %v\n", n, err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// remoteTarget is an operator's cluster: Kafka addresses, and admin
// addresses when network faults and replica digests are wanted.
type remoteTarget struct {
	chaos.AdminEndpoints
	brokers []string
}

func (r remoteTarget) Brokers() []string { return r.brokers }
func (r remoteTarget) Nodes() []int32    { return r.AdminEndpoints.IDs() }

func newRemoteTarget(brokers, admin string) (chaos.Target, error) {
	t := remoteTarget{AdminEndpoints: chaos.AdminEndpoints{}, brokers: client.SplitBrokers(brokers)}
	for _, kv := range client.SplitBrokers(admin) {
		id, addr, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || addr == "" {
			return nil, fmt.Errorf("--admin %q: want id=host:port", kv)
		}
		t.AdminEndpoints[int32(n)] = addr
	}
	if len(t.AdminEndpoints) == 0 {
		return nil, errors.New("--brokers needs --admin id=host:port,... for every node: nemeses and replica checks go through it")
	}
	return t, nil
}

// writeReport saves a scenario's timeline, HTML page and summary next to
// its history.
func writeReport(dir string, res *chaos.Outcome) error {
	svg, err := os.Create(filepath.Join(dir, "timeline.svg"))
	if err != nil {
		return err
	}
	defer svg.Close()
	if err := chaos.WriteTimelineSVG(svg, res.History); err != nil {
		return err
	}
	page, err := os.Create(filepath.Join(dir, "index.html"))
	if err != nil {
		return err
	}
	defer page.Close()
	return chaos.WriteHTMLReport(page, chaos.Report{
		Title: "Quire chaos: " + res.Config.Scenario, Seed: res.Config.Seed, Options: res.Config.Options(),
		Started: res.Started, Duration: res.Elapsed, Results: res.Results, Availability: res.Availability,
		Timeline: "timeline.svg", History: "history.jsonl", Notes: res.Notes,
	})
}

// writeSummary prints, and saves as summary.md, one row per scenario with
// every checker's violations and the availability figures.
func writeSummary(out io.Writer, dir string, sums []scenarioSummary) error {
	var b strings.Builder
	checkers := []string{}
	for _, s := range sums {
		if s.outcome != nil {
			for _, r := range s.outcome.Results {
				checkers = append(checkers, r.Name)
			}
			break
		}
	}
	fmt.Fprintf(&b, "| scenario | seed | writes ok | %s | heal → first ok write (max) | report |\n", strings.Join(checkers, " | "))
	fmt.Fprintf(&b, "|---|---|---|%s---|---|\n", strings.Repeat("---|", len(checkers)))
	failed := false
	for _, s := range sums {
		if s.outcome == nil {
			failed = true
			fmt.Fprintf(&b, "| %s | %d | run failed: %v |%s | | |\n", s.name, s.seed, s.err, strings.Repeat(" |", len(checkers)))
			continue
		}
		a := s.outcome.Availability
		cells := make([]string, 0, len(s.outcome.Results))
		for _, r := range s.outcome.Results {
			cells = append(cells, fmt.Sprintf("%d / %d", r.Violations, r.Checked))
		}
		failed = failed || s.outcome.Violations() > 0
		fmt.Fprintf(&b, "| %s | %d | %d of %d (%.1f%%) | %s | %s | %s |\n", s.name, s.seed, a.OK, a.Invoked,
			100*a.OKFraction, strings.Join(cells, " | "), maxHeal(a), filepath.Join(s.dir, "index.html"))
	}
	b.WriteString("\nCells are violations / checked. Replay a row with --scenario NAME --seed SEED.\n")
	fmt.Fprintf(out, "\n%s", b.String())
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	for _, s := range sums {
		if s.outcome != nil {
			for _, r := range s.outcome.Results {
				if r.Violations > 0 {
					fmt.Fprintf(out, "\n%s: %s\n", s.name, r)
				}
			}
		}
	}
	if failed {
		return errViolations
	}
	return nil
}

func maxHeal(a chaos.Availability) string {
	var m time.Duration
	for _, d := range a.Heals {
		m = max(m, d)
	}
	s := m.Round(time.Millisecond).String()
	if a.Unrecovered > 0 {
		s += fmt.Sprintf(", %d heals never followed by an ok write", a.Unrecovered)
	}
	return s
}
