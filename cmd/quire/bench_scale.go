package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/client"
)

type scaleOpts struct {
	nodes       int
	rf          int
	partitions  string
	settle      time.Duration
	idleWindow  time.Duration
	timeout     time.Duration
	stopTimeout time.Duration
	brokerArgs  []string
	keepData    bool
}

func benchScaleCmd() *cobra.Command {
	o := scaleOpts{nodes: 3, partitions: "100,1000,10000", settle: 10 * time.Second, idleWindow: 30 * time.Second,
		timeout: 5 * time.Minute, stopTimeout: 30 * time.Second}
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Measure how a cluster copes with many partitions",
		Long: `For each partition count N, start a fresh local cluster of --nodes brokers
(from this binary, in a new temporary directory) and measure:

  create    wall time of one CreateTopics of N partitions at the replication factor
  leaders   from the start of CreateTopics until Metadata shows a leader for every partition
  idle CPU  CPU of all brokers (cores = CPU seconds per second) over --idle-window,
            after --settle, with no traffic; also per broker
  RSS       VmRSS and VmHWM of each broker after the idle window (the table shows the largest)
  stop      SIGTERM to every broker until all exited (SIGKILL after --stop-timeout)
  restart   from starting the brokers again on the same data until every partition has a leader
  kill -9   after --settle, of the broker leading the most partitions: how many leaderships
            it held and the time until each has a leader on a live broker (Metadata
            from the survivors)

Every wait polls Metadata every 250ms, prints progress to stderr about once a
second and gives up after --timeout, reporting how far it got. The table
(Markdown) goes to stdout, each row as soon as its cluster is done, then one
line of per-broker figures per row. Brokers run with --log-level warn and
--max-partitions-per-node raised to twice a node's share of N*RF; --broker-arg
adds or overrides broker flags.

Example (a quick check):

  quire bench scale --nodes 3 --partitions 10,30 --settle 2s --idle-window 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runBenchScale(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "local brokers per cluster")
	f.IntVar(&o.rf, "replication-factor", 0, "replication factor (default min(3, nodes))")
	f.StringVar(&o.partitions, "partitions", o.partitions, "partition counts to measure, comma-separated; each gets a fresh cluster")
	f.DurationVar(&o.settle, "settle", o.settle, "wait after all leaders are up before measuring idle CPU, and after the restart before the kill -9")
	f.DurationVar(&o.idleWindow, "idle-window", o.idleWindow, "window over which idle CPU is measured")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "limit of each wait (CreateTopics, leaders, restart, kill); CreateTopics' own timeout is capped at 5m by the broker")
	f.DurationVar(&o.stopTimeout, "stop-timeout", o.stopTimeout, "how long stopped brokers get to exit after SIGTERM before SIGKILL")
	f.StringArrayVar(&o.brokerArgs, "broker-arg", nil, "extra argument for every broker, repeatable (e.g. --broker-arg=--election-timeout=1s); later ones win")
	f.BoolVar(&o.keepData, "keep-data", false, "keep each cluster's temporary data directory")
	return cmd
}

// phase is the outcome of one timed wait.
type phase struct {
	took      time.Duration
	have      int // how far it got, e.g. partitions with a leader
	want      int
	timedOut  bool
	err       error
	attempted bool
}

func (p phase) String() string {
	switch {
	case !p.attempted:
		return "-"
	case p.err != nil:
		return "error: " + oneLine(p.err.Error(), 160)
	case p.timedOut:
		return fmt.Sprintf("timed out with %d/%d after %s", p.have, p.want, secs(p.took))
	}
	return secs(p.took)
}

func (p phase) ok() bool { return p.attempted && p.err == nil && !p.timedOut }

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "/") // keep Markdown cells intact
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// scaleResult is what one partition count measured.
type scaleResult struct {
	n        int
	create   phase
	leaders  phase
	idle     bool          // idle CPU was measured
	idleCPU  []float64     // cores per broker
	rss, hwm []int64       // bytes per broker
	stop     phase         // SIGTERM until all exited
	killed   int           // brokers that needed SIGKILL at stop
	restart  phase         // start until all partitions led
	ready    time.Duration // start until every broker is ready
	kill     phase         // kill -9 until every moved partition is led again
	victim   int           // killed broker, 0 when none
	skipKill string        // why kill -9 was not measured
}

func runBenchScale(ctx context.Context, o scaleOpts, out, progress io.Writer) error {
	sizes, err := parseInts(o.partitions, false)
	if err != nil {
		return err
	}
	if o.nodes < 1 {
		return fmt.Errorf("--nodes %d: need at least 1", o.nodes)
	}
	if o.rf == 0 {
		o.rf = min(3, o.nodes)
	}
	if o.idleWindow <= 0 || o.timeout <= 0 {
		return errors.New("--idle-window and --timeout must be positive")
	}
	if o.rf > o.nodes {
		return fmt.Errorf("--replication-factor %d is more than --nodes %d", o.rf, o.nodes)
	}
	fmt.Fprintf(out, "command: `%s` (build %s)\n\n", commandLine(), buildRevision())
	fmt.Fprintf(out, "Machine: %d CPUs, %s/%s. Brokers per cluster: %d (local processes, a fresh cluster per row). Replication factor %d. Settle %s, idle window %s, timeout %s per wait.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, o.nodes, o.rf, o.settle, o.idleWindow, o.timeout)
	fmt.Fprintln(out, "| partitions | create | leaders | idle CPU (cores, all brokers) | max RSS | max HWM | stop | restart | kill -9: leaderships moved | kill -9: all led again |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|")
	var results []scaleResult
	for _, n := range sizes {
		r, err := scaleRun(ctx, o, n, progress)
		if err != nil {
			return fmt.Errorf("%d partitions: %w", n, err)
		}
		fmt.Fprintln(out, r.row())
		results = append(results, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintln(out)
	for _, r := range results {
		fmt.Fprintln(out, r.details())
	}
	return nil
}

func (r scaleResult) row() string {
	idle, rss, hwm := "-", "-", "-"
	if r.idle {
		idle = fmt.Sprintf("%.3f", sum(r.idleCPU))
		rss, hwm = mib(slices.Max(r.rss)), mib(slices.Max(r.hwm))
	}
	moved, kill := "-", r.kill.String()
	if r.skipKill != "" {
		kill = r.skipKill
	} else if r.kill.attempted {
		moved = fmt.Sprintf("%d (broker %d)", r.kill.want, r.victim)
	}
	return fmt.Sprintf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
		r.n, r.create, r.leaders, idle, rss, hwm, r.stop, r.restart, moved, kill)
}

// details are the per-broker figures the table sums up.
func (r scaleResult) details() string {
	if !r.idle {
		return fmt.Sprintf("- %d partitions: not measured beyond creation.", r.n)
	}
	var cpu, mem []string
	for i := range r.idleCPU {
		cpu = append(cpu, fmt.Sprintf("%d: %.3f", i+1, r.idleCPU[i]))
		mem = append(mem, fmt.Sprintf("%d: %s / %s", i+1, mib(r.rss[i]), mib(r.hwm[i])))
	}
	s := fmt.Sprintf("- %d partitions: idle CPU per broker (cores) %s; RSS / HWM per broker %s", r.n,
		strings.Join(cpu, ", "), strings.Join(mem, ", "))
	if r.stop.attempted {
		s += fmt.Sprintf("; %d of %d brokers needed SIGKILL at stop", r.killed, len(r.idleCPU))
	}
	if r.ready > 0 {
		s += fmt.Sprintf("; after restart all brokers ready in %s", secs(r.ready))
	}
	return s + "."
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// scaleRun measures one partition count on a cluster of its own, which it
// stops and removes at the end. An error means the harness failed (the
// cluster did not start); what the cluster failed to do is in the result.
func scaleRun(ctx context.Context, o scaleOpts, n int, progress io.Writer) (scaleResult, error) {
	r := scaleResult{n: n}
	logf := func(format string, args ...any) {
		fmt.Fprintf(progress, "scale %d: "+format+"\n", append([]any{n}, args...)...)
	}
	bc, err := startLocalCluster(ctx, localClusterOpts{nodes: o.nodes, keep: o.keepData, extra: scaleBrokerArgs(o, n)})
	if err != nil {
		return r, err
	}
	defer scaleTeardown(bc, o.stopTimeout, logf)
	logf("%d brokers on %s, data in %s", o.nodes, strings.Join(bc.kafkaAddrs(), ","), bc.dir)
	adm, err := client.NewAdmin(bc.kafkaAddrs())
	if err != nil {
		return r, err
	}
	defer adm.Close()
	topic := fmt.Sprintf("scale-%d", n)

	r.create, r.leaders = scaleCreate(ctx, adm, topic, n, o, logf)
	if !r.leaders.attempted || (!r.leaders.ok() && r.leaders.have == 0) {
		return r, nil // nothing exists to measure
	}
	r.idleCPU, r.rss, r.hwm = scaleIdle(ctx, bc, o, logf)
	r.idle = r.idleCPU != nil
	if ctx.Err() != nil {
		return r, nil
	}
	r.stop, r.killed = stopAll(ctx, bc, o.stopTimeout, "stopped", logf)
	r.restart, r.ready = scaleRestart(ctx, bc, adm, topic, n, o, logf)
	if ctx.Err() != nil {
		return r, nil
	}
	r.kill, r.victim, r.skipKill = scaleKill(ctx, bc, adm, topic, n, o, logf)
	return r, nil
}

// scaleBrokerArgs raises the per-node partition cap above the node's share
// of the replicas (placement need not be even), then adds the user's args,
// which win because pflag keeps the last value.
func scaleBrokerArgs(o scaleOpts, n int) []string {
	share := (n*o.rf + o.nodes - 1) / o.nodes
	limit := max(2000, 2*share+100)
	return append([]string{"--log-level", "warn", "--max-partitions-per-node", strconv.Itoa(limit)}, o.brokerArgs...)
}

// pollState is one look at a wait's progress.
type pollState struct {
	have, want int
	done       bool
	err        error  // ends the wait as failed
	note       string // added to the progress line
}

// pollInterval is the pause between two looks at the cluster.
const pollInterval = 250 * time.Millisecond

// maxPollTime bounds one look, so a hung connection cannot eat the whole
// wait; a Metadata answer for 10,000 partitions still fits easily.
const maxPollTime = 10 * time.Second

// pollUntil calls check every pollInterval until it is done or fails,
// timeout passes or ctx ends. It prints the latest state once a second
// from a goroutine of its own, so a slow check does not silence it. The
// returned phase's took is measured from start, which may lie before the
// call.
func pollUntil(ctx context.Context, start time.Time, timeout time.Duration, what string, logf func(string, ...any),
	check func(context.Context) pollState) phase {
	var mu sync.Mutex
	var last pollState
	line := func(st pollState) string {
		return fmt.Sprintf("%s %d/%d after %s%s", what, st.have, st.want, secs(time.Since(start)), st.note)
	}
	quiet := make(chan struct{})
	defer close(quiet)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quiet:
				return
			case <-t.C:
				mu.Lock()
				st := last
				mu.Unlock()
				logf("%s", line(st))
			}
		}
	}()
	deadline := start.Add(timeout)
	for {
		pollDeadline := time.Now().Add(maxPollTime)
		if deadline.Before(pollDeadline) {
			pollDeadline = deadline
		}
		cctx, cancel := context.WithDeadline(ctx, pollDeadline)
		st := check(cctx)
		cancel()
		mu.Lock()
		last = st
		mu.Unlock()
		p := phase{attempted: true, took: time.Since(start), have: st.have, want: st.want, err: st.err}
		switch {
		case st.done || st.err != nil:
			logf("%s", line(st))
			return p
		case ctx.Err() != nil:
			p.err = ctx.Err()
			return p
		case time.Now().After(deadline):
			p.timedOut = true
			logf("%s: timed out", line(st))
			return p
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollInterval):
		}
	}
}

// metaSource asks one broker at a time for the topic's leaders and moves
// on to the next after an error. Pinned requests are not retried inside
// the client, whose backoff (up to 2.5s) would otherwise add to the times
// measured while brokers restart. Without ids it asks any broker.
type metaSource struct {
	adm   *client.Admin
	topic string
	ids   []int32
	next  int
}

func (m *metaSource) leaders(ctx context.Context) (map[int32]int32, error) {
	id := int32(-1)
	if len(m.ids) > 0 {
		id = m.ids[m.next%len(m.ids)]
	}
	led, err := m.adm.Leaders(ctx, m.topic, id)
	if err != nil {
		m.next++
	}
	return led, err
}

// errNote puts a poll's error on the progress line.
func errNote(err error) string {
	if err == nil {
		return ""
	}
	return " (last poll: " + oneLine(err.Error(), 60) + ")"
}

// countLed counts partitions whose leader is a broker ok accepts.
func countLed(leaders map[int32]int32, ok func(int32) bool) int {
	c := 0
	for _, l := range leaders {
		if l >= 0 && ok(l) {
			c++
		}
	}
	return c
}

func anyBroker(int32) bool { return true }

// scaleCreate issues one CreateTopics for n partitions and, while it is
// outstanding, polls Metadata until every partition has a leader. Both
// clocks start when the request is sent.
func scaleCreate(ctx context.Context, adm *client.Admin, topic string, n int, o scaleOpts, logf func(string, ...any)) (create, leaders phase) {
	adm.SetTimeout(min(o.timeout, 5*time.Minute))
	type answer struct {
		err  error
		took time.Duration
	}
	answered := make(chan answer, 1)
	start := time.Now()
	go func() {
		// The client waits for the broker's own timeout plus its overhead.
		cctx, cancel := context.WithTimeout(ctx, o.timeout+30*time.Second)
		defer cancel()
		err := adm.CreateTopicNoWait(cctx, topic, int32(n), int16(o.rf), nil)
		answered <- answer{err, time.Since(start)}
	}()
	var ans *answer
	var allLedAt time.Duration
	have := 0 // from the last answer: a failed poll knows nothing new
	leaders = pollUntil(ctx, start, o.timeout, "leaders", logf, func(cctx context.Context) pollState {
		if ans == nil {
			select {
			case a := <-answered:
				ans = &a
			default:
			}
		}
		st := pollState{want: n, note: " (CreateTopics pending)"}
		if ans != nil {
			st.note = fmt.Sprintf(" (CreateTopics answered after %s)", secs(ans.took))
		}
		led, err := adm.Leaders(cctx, topic, -1)
		if err == nil {
			have = countLed(led, anyBroker)
		}
		st.have = have
		st.note += errNote(err)
		if st.have == n && allLedAt == 0 {
			allLedAt = time.Since(start)
		}
		switch {
		case ans != nil && ans.err != nil && len(led) == 0 && err == nil:
			st.err = ans.err // refused: no partition exists to wait for
		case ans != nil && allLedAt > 0:
			st.done = true
		}
		return st
	})
	if allLedAt > 0 {
		leaders.took, leaders.timedOut, leaders.have = allLedAt, false, n
	}
	if ans != nil && ans.err != nil && leaders.err == ans.err {
		leaders = phase{} // refused: there was nothing to wait for
	}
	create = phase{attempted: true, took: leaders.took}
	if ans == nil {
		create.err = fmt.Errorf("no answer within %s", o.timeout)
	} else {
		create.took, create.err = ans.took, ans.err
	}
	return create, leaders
}

// scaleIdle waits o.settle, then measures each broker's CPU over
// o.idleWindow and reads its memory at the end. It returns nils if ctx
// ends first.
func scaleIdle(ctx context.Context, bc *localCluster, o scaleOpts, logf func(string, ...any)) (perBroker []float64, rss, hwm []int64) {
	if !sleepWithProgress(ctx, o.settle, "settling", logf) {
		return nil, nil, nil
	}
	before := brokerCPU(bc)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < o.idleWindow {
		select {
		case <-ctx.Done():
			return nil, nil, nil
		case <-time.After(time.Until(start.Add(o.idleWindow))):
		case <-tick.C:
			logf("idle CPU %.3f cores over %s of %s", coresUsed(before, brokerCPU(bc), time.Since(start)), secs(time.Since(start)), o.idleWindow)
		}
	}
	after, wall := brokerCPU(bc), time.Since(start)
	for i := range bc.brokers {
		perBroker = append(perBroker, (after[i]-before[i]).Seconds()/wall.Seconds())
		rss = append(rss, brokerMem(bc.brokers[i], "VmRSS:"))
		hwm = append(hwm, brokerMem(bc.brokers[i], "VmHWM:"))
	}
	logf("idle CPU %.3f cores (per broker %s), max RSS %s", sum(perBroker), strings.Join(roundAll(perBroker), ", "), mib(slices.Max(rss)))
	return perBroker, rss, hwm
}

func coresUsed(before, after []time.Duration, wall time.Duration) float64 {
	var t time.Duration
	for i := range after {
		t += after[i] - before[i]
	}
	return t.Seconds() / wall.Seconds()
}

func roundAll(xs []float64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.3f", x))
	}
	return out
}

// brokerCPU is each broker's user+system CPU so far (0 for one not running).
func brokerCPU(bc *localCluster) []time.Duration {
	out := make([]time.Duration, len(bc.brokers))
	for i, b := range bc.brokers {
		if b != nil {
			out[i], _ = b.CPUTime()
		}
	}
	return out
}

func brokerMem(b *localBroker, field string) int64 {
	if b == nil {
		return 0
	}
	v, _ := procStatusBytes(b.cmd.Process.Pid, field)
	return v
}

// sleepWithProgress waits d, saying so once a second; false if ctx ended.
func sleepWithProgress(ctx context.Context, d time.Duration, what string, logf func(string, ...any)) bool {
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		left := d - time.Since(start)
		if left <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(left):
		case <-tick.C:
			logf("%s %s of %s", what, secs(time.Since(start)), d)
		}
	}
}

// stopAll sends SIGTERM to every running broker at once, waits up to
// timeout for them to exit and kills the rest. It returns how long they
// took and how many needed SIGKILL.
func stopAll(ctx context.Context, bc *localCluster, timeout time.Duration, what string, logf func(string, ...any)) (phase, int) {
	var running []*localBroker
	for _, b := range bc.brokers {
		if b != nil && !exited(b) {
			running = append(running, b)
			_ = b.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	p := pollUntil(ctx, time.Now(), timeout, what, logf, func(context.Context) pollState {
		n := 0
		for _, b := range running {
			if exited(b) {
				n++
			}
		}
		return pollState{have: n, want: len(running), done: n == len(running)}
	})
	killed := 0
	for _, b := range running {
		if !exited(b) {
			b.Kill()
			killed++
		}
	}
	return p, killed
}

func exited(b *localBroker) bool {
	select {
	case <-b.Exited():
		return true
	default:
		return false
	}
}

// restarts tracks brokers being started again, in parallel: the cluster
// only forms once a quorum of them is up.
type restarts struct {
	bc      *localCluster
	start   time.Time
	results chan restarted
	pending int
	ready   int
	readyAt time.Duration // when the last broker was ready
	err     error
}

type restarted struct {
	i   int
	b   *localBroker
	err error
}

func startAgain(ctx context.Context, bc *localCluster, timeout time.Duration) *restarts {
	rs := &restarts{bc: bc, start: time.Now(), results: make(chan restarted, len(bc.specs)), pending: len(bc.specs)}
	for i := range bc.specs {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			b, err := startLocalBroker(sctx, bc.specs[i])
			rs.results <- restarted{i, b, err}
		}()
	}
	return rs
}

// collect takes in the brokers that finished starting, waiting for all of
// them if block.
func (rs *restarts) collect(block bool) {
	for rs.pending > 0 {
		var s restarted
		if block {
			s = <-rs.results
		} else {
			select {
			case s = <-rs.results:
			default:
				return
			}
		}
		rs.pending--
		rs.bc.brokers[s.i] = s.b
		if s.err != nil {
			rs.err = errors.Join(rs.err, s.err)
			continue
		}
		if rs.ready++; rs.ready == len(rs.bc.specs) {
			rs.readyAt = time.Since(rs.start)
		}
	}
}

// scaleRestart starts every broker again on its data and polls Metadata
// until every partition has a leader. It also returns when the last
// broker was ready.
func scaleRestart(ctx context.Context, bc *localCluster, adm *client.Admin, topic string, n int, o scaleOpts,
	logf func(string, ...any)) (phase, time.Duration) {
	rs := startAgain(ctx, bc, o.timeout)
	src := &metaSource{adm: adm, topic: topic, ids: brokerIDs(bc, -1)}
	have := 0
	p := pollUntil(ctx, rs.start, o.timeout, "leaders after restart", logf, func(cctx context.Context) pollState {
		rs.collect(false)
		led, err := src.leaders(cctx)
		if err == nil {
			have = countLed(led, anyBroker)
		}
		st := pollState{have: have, want: n, done: have == n,
			note: fmt.Sprintf(" (%d/%d brokers ready)", rs.ready, len(bc.specs)) + errNote(err)}
		if rs.err != nil && rs.pending == 0 {
			st.err = rs.err
		}
		return st
	})
	// What follows needs every broker's handle; starts are bounded by the
	// same timeout, so this wait ends.
	rs.collect(true)
	if rs.err != nil && p.err == nil {
		p.err = rs.err
	}
	return p, rs.readyAt
}

// scaleKill lets the cluster settle, kill -9s the broker that leads the
// most partitions and polls the survivors' Metadata until each of those
// partitions is led by a live broker. It returns the victim, or why there
// was none.
func scaleKill(ctx context.Context, bc *localCluster, adm *client.Admin, topic string, n int, o scaleOpts,
	logf func(string, ...any)) (phase, int, string) {
	switch {
	case o.rf < 2:
		return phase{}, 0, "n/a (RF 1)"
	case slices.Contains(bc.brokers, nil):
		return phase{}, 0, "n/a (a broker did not restart)"
	}
	// Time a steady cluster's fail-over, not one still busy restarting.
	if !sleepWithProgress(ctx, o.settle, "settling before kill -9", logf) {
		return phase{}, 0, "n/a (interrupted)"
	}
	leaders := currentLeaders(ctx, adm, topic, n, brokerIDs(bc, -1), o.timeout, logf)
	victim := mostLeader(leaders)
	vb := brokerByID(bc, victim)
	if vb == nil {
		return phase{}, 0, "n/a (no partition has a leader)"
	}
	var moved []int32
	for p, l := range leaders {
		if l == victim {
			moved = append(moved, p)
		}
	}
	src := &metaSource{adm: adm, topic: topic, ids: brokerIDs(bc, victim)}
	logf("kill -9 broker %d, leader of %d partitions; asking brokers %v", victim, len(moved), src.ids)
	vb.Kill()
	start := time.Now() // the process is gone from here on
	live := func(id int32) bool {
		b := brokerByID(bc, id)
		return id != victim && b != nil && !exited(b)
	}
	have := 0
	p := pollUntil(ctx, start, o.timeout, "re-elected", logf, func(cctx context.Context) pollState {
		led, err := src.leaders(cctx)
		if err == nil {
			have = 0
			for _, part := range moved {
				if l, ok := led[part]; ok && l >= 0 && live(l) {
					have++
				}
			}
		}
		return pollState{have: have, want: len(moved), done: have == len(moved), note: errNote(err)}
	})
	return p, int(victim), ""
}

// currentLeaders polls Metadata until every partition has a leader (or
// timeout) and returns the last answer.
func currentLeaders(ctx context.Context, adm *client.Admin, topic string, n int, ids []int32, timeout time.Duration,
	logf func(string, ...any)) map[int32]int32 {
	src := &metaSource{adm: adm, topic: topic, ids: ids}
	var leaders map[int32]int32
	pollUntil(ctx, time.Now(), timeout, "leaders before kill -9", logf, func(cctx context.Context) pollState {
		led, err := src.leaders(cctx)
		if err == nil {
			leaders = led
		}
		have := countLed(leaders, anyBroker)
		return pollState{have: have, want: n, done: have == n, note: errNote(err)}
	})
	return leaders
}

// brokerIDs lists the ids of the cluster's brokers but skip.
func brokerIDs(bc *localCluster, skip int32) []int32 {
	var ids []int32
	for _, sp := range bc.specs {
		if int32(sp.ID) != skip {
			ids = append(ids, int32(sp.ID))
		}
	}
	return ids
}

func brokerByID(bc *localCluster, id int32) *localBroker {
	for _, b := range bc.brokers {
		if b != nil && int32(b.ID) == id {
			return b
		}
	}
	return nil
}

// mostLeader is the broker leading the most partitions, the lowest id on
// ties.
func mostLeader(leaders map[int32]int32) int32 {
	count := make(map[int32]int)
	for _, l := range leaders {
		if l >= 0 {
			count[l]++
		}
	}
	best := int32(-1)
	for id, c := range count {
		if best < 0 || c > count[best] || (c == count[best] && id < best) {
			best = id
		}
	}
	return best
}

// scaleTeardown stops the cluster, whatever state it is in, and removes
// its data unless asked to keep it.
func scaleTeardown(bc *localCluster, stopTimeout time.Duration, logf func(string, ...any)) {
	stopAll(context.Background(), bc, stopTimeout, "teardown: stopped", logf)
	if bc.keep {
		logf("data kept in %s", bc.dir)
		return
	}
	os.RemoveAll(bc.dir)
}
