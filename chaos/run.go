package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quirelog/quire/client"
)

// Config is one chaos run. Zero fields take the defaults of WithDefaults.
type Config struct {
	Target   Target
	Scenario string
	Duration time.Duration // of the fault phase
	Seed     int64

	Topic       string
	Partitions  int32
	Replication int16

	Idempotent int // idempotent acks=all producers
	Plain      int // non-idempotent acks=all producers (retries may duplicate)
	Consumers  int // consumers reading every partition by assignment
	// GroupMembers consume the topic as one consumer group, committing
	// every second; 0 runs no group workload.
	GroupMembers int
	// GroupProtocol is "classic" (the default) or "consumer", the
	// next-generation protocol (KIP-848).
	GroupProtocol string
	Rate          int // produces per second per producer

	// Workload is WorkloadLog (the default), WorkloadTxn or
	// WorkloadCompact.
	Workload string
	// Keys are the distinct record keys of the compacted workload.
	Keys int
	// TxnProducers are the transactional workload's producers; each runs
	// up to Rate/10 transactions a second.
	TxnProducers int

	// Each cycle waits a healthy gap, injects a fault and holds it for a
	// fault duration, both drawn uniformly from [min, max].
	GapMin, GapMax     time.Duration
	FaultMin, FaultMax time.Duration
	// Recovery is how long writes go on after the last heal, so the
	// history shows whether the cluster came back.
	Recovery time.Duration

	Progress io.Writer // live progress lines; nil discards
	History  io.Writer // the history, streamed as JSON lines; may be nil
}

// Workloads.
const (
	// WorkloadLog: idempotent and plain producers, consumers by
	// assignment and a consumer group.
	WorkloadLog = "log"
	// WorkloadTxn: transactional producers committing and aborting,
	// read_committed consumers, and a consume-transform-produce copier
	// committing its offsets in its transactions.
	WorkloadTxn = "txn"
	// WorkloadCompact: idempotent producers updating a few keys of a
	// compacted topic with small segments, so that compaction runs
	// throughout, and consumers by assignment.
	WorkloadCompact = "compact"
)

// knownWorkload reports whether w names a workload.
func knownWorkload(w string) bool {
	return w == WorkloadLog || w == WorkloadTxn || w == WorkloadCompact
}

// compactTopicConfigs make compaction run every few seconds under the
// workload's load.
var compactTopicConfigs = map[string]string{"cleanup.policy": "compact", "segment.bytes": "16384",
	"min.cleanable.dirty.ratio": "0.01"}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Duration, 5*time.Minute)
	def(&c.GapMin, 3*time.Second)
	def(&c.GapMax, 8*time.Second)
	def(&c.FaultMin, 4*time.Second)
	def(&c.FaultMax, 12*time.Second)
	def(&c.Recovery, 8*time.Second)
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.Replication == 0 && c.Target != nil {
		c.Replication = int16(min(3, len(c.Target.Nodes())))
	}
	if c.Idempotent == 0 && c.Plain == 0 {
		c.Idempotent, c.Plain = 2, 1
	}
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.GroupProtocol == "" {
		c.GroupProtocol = "classic"
	}
	if c.Workload == "" {
		c.Workload = WorkloadLog
	}
	if c.Workload == WorkloadTxn {
		c.Idempotent, c.Plain, c.GroupMembers = 0, 0, 0
		if c.TxnProducers == 0 {
			c.TxnProducers = 2
		}
	}
	if c.Workload != WorkloadCompact {
		c.Keys = 0
	}
	if c.Workload == WorkloadCompact {
		// Plain producers may store a value twice, which compaction
		// would then make look like a lost update; groups are tested by
		// the log workload.
		c.Plain, c.GroupMembers = 0, 0
		if c.Keys == 0 {
			c.Keys = 20
		}
	}
	if c.Topic == "" {
		c.Topic = fmt.Sprintf("chaos-%s-%d", c.Scenario, c.Seed)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Options lists every derived setting, so a run can be replayed exactly.
func (c Config) Options() [][2]string {
	return [][2]string{
		{"scenario", c.Scenario}, {"workload", c.Workload}, {"duration", c.Duration.String()}, {"seed", fmt.Sprint(c.Seed)},
		{"nodes", fmt.Sprint(len(c.Target.Nodes()))}, {"topic", c.Topic},
		{"partitions", fmt.Sprint(c.Partitions)}, {"replication", fmt.Sprint(c.Replication)},
		{"idempotent-producers", fmt.Sprint(c.Idempotent)}, {"plain-producers", fmt.Sprint(c.Plain)},
		{"consumers", fmt.Sprint(c.Consumers)}, {"group-members", fmt.Sprint(c.GroupMembers)}, {"group-protocol", c.GroupProtocol},
		{"txn-producers", fmt.Sprint(c.TxnProducers)}, {"keys", fmt.Sprint(c.Keys)}, {"rate", fmt.Sprint(c.Rate)},
		{"gap", c.GapMin.String() + "-" + c.GapMax.String()},
		{"fault", c.FaultMin.String() + "-" + c.FaultMax.String()},
		{"recovery", c.Recovery.String()},
	}
}

// Outcome is what a run found.
type Outcome struct {
	Config       Config
	Started      time.Time
	Elapsed      time.Duration
	History      []Op
	Results      []Result
	Availability Availability
	Notes        []string // faults injected, in order, and anything odd
}

// Violations totals every checker's violations.
func (o *Outcome) Violations() int {
	n := 0
	for _, r := range o.Results {
		n += r.Violations
	}
	return n
}

// run is one Run in progress.
type run struct {
	cfg   Config
	rng   *rand.Rand // only the nemesis goroutine draws from it
	rec   *Recorder
	admin *client.Admin
	stats stats
	txn   txnStats

	// groupValues are the values given to the group's members.
	groupMu     sync.Mutex
	groupValues map[string]bool

	mu     sync.Mutex // guards down, paused, active and notes
	down   map[int32]bool
	paused map[int32]bool
	active []string
	notes  []string
}

// Run creates the topic, runs the workload while the scenario's nemeses
// inject faults for cfg.Duration, heals everything, reads everything back,
// compares replicas and checks the history.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	cfg = cfg.WithDefaults()
	if !knownWorkload(cfg.Workload) {
		return nil, fmt.Errorf("unknown workload %q: want %s, %s or %s", cfg.Workload, WorkloadLog, WorkloadTxn, WorkloadCompact)
	}
	ns, err := scenarioNemeses(cfg.Scenario)
	if err != nil {
		return nil, err
	}
	if err := checkCapabilities(cfg.Target, ns); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x71c3)), rec: NewRecorder(cfg.History),
		down: map[int32]bool{}, paused: map[int32]bool{}, groupValues: map[string]bool{}}
	if r.admin, err = client.NewAdmin(cfg.Target.Brokers()); err != nil {
		return nil, err
	}
	defer r.admin.Close()
	out := &Outcome{Config: cfg, Started: time.Now()}
	r.logf("seed %d; options: %s", cfg.Seed, formatOptions(cfg.Options()))
	if err := r.createTopic(ctx); err != nil {
		return nil, err
	}

	wctx, stopWork := context.WithCancel(ctx)
	work := r.startWorkload(wctx)
	gctx, stopGroup := context.WithCancel(ctx)
	defer stopGroup()
	group := r.startReaders(gctx)
	stopProgress := r.reportProgress(ctx)
	r.faultPhase(ctx, ns)
	r.healAll(ctx)
	r.logf("faults over; writing %v more to see the cluster recover", cfg.Recovery)
	sleepCtx(ctx, cfg.Recovery)
	stopWork()
	work.Wait()
	r.drainReaders(ctx, 90*time.Second)
	stopGroup()
	group.Wait()
	switch {
	case cfg.Workload == WorkloadTxn:
		r.recordStableCommits(ctx, r.copierGroup())
	case cfg.GroupMembers > 0:
		// The members commit as they leave.
		r.recordCommits(ctx, r.groupName(), map[int32]int64{})
	}
	stopProgress()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	if err := r.finalRead(ctx); err != nil {
		r.note("final read incomplete: " + err.Error())
	}
	if rp, ok := cfg.Target.(Replicas); ok {
		r.recordDigests(ctx, rp)
	}
	out.History = r.rec.Ops()
	out.Results = CheckAll(out.History)
	out.Availability = CheckAvailability(out.History)
	out.Elapsed = time.Since(out.Started)
	out.Notes = r.notesCopy()
	return out, r.rec.Err()
}

// Supported reports why target cannot run scenario, or nil.
func Supported(target Target, scenario string) error {
	ns, err := scenarioNemeses(scenario)
	if err != nil {
		return err
	}
	return checkCapabilities(target, ns)
}

func checkCapabilities(t Target, ns []nemesis) error {
	for _, n := range ns {
		for _, c := range n.needs {
			var ok bool
			switch c {
			case needProcesses:
				_, ok = t.(Processes)
			case needNetwork:
				_, ok = t.(Network)
			case needDisks:
				_, ok = t.(Disks)
			}
			if !ok {
				return fmt.Errorf("nemesis %s needs control of %s, which this target does not give", n.name, c)
			}
		}
	}
	return nil
}

// startReaders starts what reads the topic beside the workload's
// consumers: the consumer group, or the transactional copier.
func (r *run) startReaders(ctx context.Context) *sync.WaitGroup {
	if r.cfg.Workload == WorkloadTxn {
		return r.startCopier(ctx)
	}
	return r.startGroup(ctx)
}

// drainReaders waits, at most limit, for the readers to catch up.
func (r *run) drainReaders(ctx context.Context, limit time.Duration) {
	if r.cfg.Workload == WorkloadTxn {
		r.drainCopier(ctx, limit)
		return
	}
	r.drainGroup(ctx, limit)
}

func (r *run) createTopic(ctx context.Context) error {
	topics := []string{r.cfg.Topic}
	if r.cfg.Workload == WorkloadTxn {
		topics = append(topics, r.outputTopic())
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, topic := range topics {
		for {
			var configs map[string]string
			if r.cfg.Workload == WorkloadCompact {
				configs = compactTopicConfigs
			}
			err := r.admin.CreateTopic(cctx, topic, r.cfg.Partitions, r.cfg.Replication, configs)
			if err == nil {
				break
			}
			if cctx.Err() != nil {
				return fmt.Errorf("create topic %s: %w", topic, err)
			}
			r.logf("create topic %s: %v; retrying", topic, err)
			sleepCtx(cctx, time.Second)
		}
	}
	return nil
}

// faultPhase runs nemesis cycles until the duration is up. A cycle that
// cannot inject (a node does not answer) is recorded and the next one
// still runs: a flaky target must not end the run early.
func (r *run) faultPhase(ctx context.Context, ns []nemesis) {
	end := time.Now().Add(r.cfg.Duration)
	for cycle := 1; ctx.Err() == nil && time.Until(end) > 0; cycle++ {
		sleepCtx(ctx, r.draw(r.cfg.GapMin, r.cfg.GapMax))
		if ctx.Err() != nil || time.Until(end) <= 0 {
			return
		}
		n := ns[r.rng.IntN(len(ns))]
		heal, err := n.inject(ctx, r)
		if err != nil {
			r.note(fmt.Sprintf("cycle %d: %s: %v", cycle, n.name, err))
			r.logf("cycle %d: %s failed: %v", cycle, n.name, err)
		}
		sleepCtx(ctx, r.faultDuration())
		if heal != nil {
			if err := heal(context.WithoutCancel(ctx)); err != nil {
				r.note(fmt.Sprintf("cycle %d: healing %s: %v", cycle, n.name, err))
				r.logf("cycle %d: healing %s failed: %v", cycle, n.name, err)
			}
		}
		r.healAll(ctx)
	}
}

func (r *run) draw(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

func (r *run) faultDuration() time.Duration { return r.draw(r.cfg.FaultMin, r.cfg.FaultMax) }

// healAll undoes whatever a failed heal left behind: every paused node
// resumes, every killed node restarts, the network heals.
func (r *run) healAll(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	var paused, down []int32
	for id := range r.paused {
		paused = append(paused, id)
	}
	for id := range r.down {
		down = append(down, id)
	}
	r.mu.Unlock()
	slices.Sort(paused)
	slices.Sort(down)
	if p, ok := r.cfg.Target.(Processes); ok {
		for _, id := range paused {
			if err := p.Resume(id); err == nil {
				r.markPaused(id, false)
			}
		}
		if len(down) > 0 {
			if err := p.Restart(ctx, down); err != nil {
				r.note(fmt.Sprintf("restart %v: %v", down, err))
			} else {
				for _, id := range down {
					r.markDown(id, false)
				}
			}
		}
	}
	if nw, ok := r.cfg.Target.(Network); ok {
		if err := nw.SetFaults(ctx, nil); err != nil {
			r.note(fmt.Sprintf("heal network: %v", err))
		}
	}
}

func (r *run) markDown(id int32, down bool)     { r.mark(r.down, id, down) }
func (r *run) markPaused(id int32, paused bool) { r.mark(r.paused, id, paused) }

// mark keeps the sets of nodes a heal must still restore.
func (r *run) mark(set map[int32]bool, id int32, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		set[id] = true
	} else {
		delete(set, id)
	}
}

// startFault records a fault beginning and shows it in progress lines.
func (r *run) startFault(name string, kind targetKind, ids []int32) {
	op := Op{Process: NemesisProcess, Type: OK, Kind: Nemesis, Offset: -1, Fault: name + ":start", Targets: ids}
	if len(ids) > 0 {
		op.Node = ids[0]
	}
	r.rec.Record(op)
	desc := fmt.Sprintf("%s %s %v", name, kind, ids)
	r.mu.Lock()
	r.active = append(r.active, desc)
	r.notes = append(r.notes, fmt.Sprintf("%s: %s", time.Now().UTC().Format("15:04:05"), desc))
	r.mu.Unlock()
	r.logf("fault: %s", desc)
}

// stopFault records a fault ending; an error makes the stop's outcome
// unknown (Info), since the heal may have half-worked.
func (r *run) stopFault(name string, ids []int32, err error) {
	op := Op{Process: NemesisProcess, Type: OK, Kind: Nemesis, Offset: -1, Fault: name + ":stop", Targets: ids}
	if len(ids) > 0 {
		op.Node = ids[0]
	}
	if err != nil {
		op.Type, op.Error = Info, err.Error()
	}
	r.rec.Record(op)
	r.mu.Lock()
	for i, a := range r.active {
		if strings.HasPrefix(a, name+" ") {
			r.active = slices.Delete(r.active, i, i+1)
			break
		}
	}
	r.mu.Unlock()
	r.logf("healed: %s %v", name, ids)
}

func (r *run) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, s)
}

func (r *run) notesCopy() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}

func (r *run) activeFaults() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.active) == 0 {
		return "none"
	}
	return strings.Join(r.active, ", ")
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "chaos %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// leaderOf asks a fresh Metadata for a partition's leader.
func (r *run) leaderOf(ctx context.Context, p int32) (int32, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.admin.Partition(ctx, r.cfg.Topic, p)
	if err != nil || st.Leader < 0 {
		return 0, false
	}
	return st.Leader, true
}

func formatOptions(opts [][2]string) string {
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = o[0] + "=" + o[1]
	}
	return strings.Join(parts, " ")
}

var errIncomplete = errors.New("incomplete")
