package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/quirelog/quire/transport/node"
)

// capability is an optional Target interface a nemesis needs.
type capability string

const (
	needProcesses capability = "processes"
	needNetwork   capability = "network"
	needDisks     capability = "disks"
)

// nemesis is one kind of fault. inject starts it (possibly through several
// scripted steps, recording each) and returns what undoes it; the runner
// holds the fault for a drawn duration in between.
type nemesis struct {
	name   string
	needs  []capability
	inject func(ctx context.Context, r *run) (heal func(context.Context) error, err error)
}

// nemeses are every fault the runner knows, by name.
var nemeses = map[string]nemesis{
	"kill":           {"kill", []capability{needProcesses}, injectKill},
	"pause":          {"pause", []capability{needProcesses}, injectPause},
	"isolate-leader": {"isolate-leader", []capability{needNetwork}, injectIsolateLeader},
	"split":          {"split", []capability{needNetwork}, injectSplit},
	"bridge":         {"bridge", []capability{needNetwork}, injectBridge},
	"one-way":        {"one-way", []capability{needNetwork}, injectOneWay},
	"flapping":       {"flapping", []capability{needNetwork}, injectFlapping},
	"delay":          {"delay", []capability{needNetwork}, injectDelay},
	"loss":           {"loss", []capability{needNetwork}, injectLoss},
	"pause-kill":     {"pause-kill", []capability{needProcesses}, injectPauseKill},
	"partition-kill": {"partition-kill", []capability{needProcesses, needNetwork}, injectPartitionKill},
	"power-loss":     {"power-loss", []capability{needProcesses, needDisks}, injectPowerLoss},
	"corrupt":        {"corrupt", []capability{needProcesses, needDisks}, injectCorrupt},
	"txn-rpc":        {"txn-rpc", []capability{needNetwork}, injectTxnRPC},
}

// scenarios group nemeses; a run draws one of its scenario's nemeses per
// cycle. Every single nemesis is a scenario of its own too.
var scenarios = map[string][]string{
	"partition": {"isolate-leader", "split", "bridge", "one-way", "flapping"},
	"network":   {"delay", "loss"},
}

// Scenarios lists every scenario name `--scenario all` runs, in order.
func Scenarios() []string {
	return []string{"kill", "pause", "partition", "network", "pause-kill", "partition-kill", "power-loss", "corrupt"}
}

// ScenariosFor lists what `--scenario all` runs for workload: the
// transactional one adds delayed and duplicated transaction RPCs.
func ScenariosFor(workload string) []string {
	if workload == WorkloadTxn {
		return append(Scenarios(), "txn-rpc")
	}
	return Scenarios()
}

// scenarioNemeses resolves a scenario name.
func scenarioNemeses(name string) ([]nemesis, error) {
	names, ok := scenarios[name]
	if !ok {
		names = []string{name}
	}
	var out []nemesis
	for _, n := range names {
		nm, ok := nemeses[n]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(knownScenarios(), ", "))
		}
		out = append(out, nm)
	}
	return out, nil
}

func knownScenarios() []string {
	var out []string
	for n := range nemeses {
		out = append(out, n)
	}
	for n := range scenarios {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// targetKind says which nodes one fault hits.
type targetKind string

const (
	oneNode  targetKind = "one"
	leader   targetKind = "leader"
	minority targetKind = "minority"
	allNodes targetKind = "all"
)

// targets draws a kind among kinds and the nodes it names. A leader that
// cannot be found (mid-election) falls back to one random node.
func (r *run) targets(ctx context.Context, kinds ...targetKind) (targetKind, []int32) {
	kind := kinds[r.rng.IntN(len(kinds))]
	nodes := r.cfg.Target.Nodes()
	switch kind {
	case leader:
		if id, ok := r.leaderOf(ctx, int32(r.rng.IntN(int(r.cfg.Partitions)))); ok {
			return kind, []int32{id}
		}
		return oneNode, []int32{nodes[r.rng.IntN(len(nodes))]}
	case minority:
		return kind, r.sample(nodes, (len(nodes)-1)/2)
	case allNodes:
		return kind, slices.Clone(nodes)
	default:
		return oneNode, []int32{nodes[r.rng.IntN(len(nodes))]}
	}
}

// sample draws k distinct nodes, ascending.
func (r *run) sample(nodes []int32, k int) []int32 {
	perm := r.rng.Perm(len(nodes))
	out := make([]int32, 0, k)
	for _, i := range perm[:k] {
		out = append(out, nodes[i])
	}
	slices.Sort(out)
	return out
}

func without(nodes, drop []int32) []int32 {
	var out []int32
	for _, n := range nodes {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func injectKill(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader, minority, allNodes)
	return r.kill(ctx, "kill", kind, ids)
}

// kill SIGKILLs ids; the heal restarts them.
func (r *run) kill(ctx context.Context, name string, kind targetKind, ids []int32) (func(context.Context) error, error) {
	p := r.cfg.Target.(Processes)
	r.startFault(name, kind, ids)
	for _, id := range ids {
		if err := p.Kill(ctx, id); err != nil {
			return nil, err
		}
		r.markDown(id, true)
	}
	return func(ctx context.Context) error {
		err := p.Restart(ctx, ids)
		if err == nil {
			for _, id := range ids {
				r.markDown(id, false)
			}
		}
		r.stopFault(name, ids, err)
		return err
	}, nil
}

func injectPause(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader, minority, allNodes)
	return r.pause(ctx, "pause", kind, ids)
}

func (r *run) pause(_ context.Context, name string, kind targetKind, ids []int32) (func(context.Context) error, error) {
	p := r.cfg.Target.(Processes)
	r.startFault(name, kind, ids)
	for _, id := range ids {
		if err := p.Pause(id); err != nil {
			return nil, err
		}
		r.markPaused(id, true)
	}
	return func(context.Context) error {
		var first error
		for _, id := range ids {
			if err := p.Resume(id); err != nil && first == nil {
				first = err
			}
			r.markPaused(id, false)
		}
		r.stopFault(name, ids, first)
		return first
	}, nil
}

// cutBetween drops traffic both ways between every node of a and of b.
func cutBetween(a, b []int32) []node.Rule {
	var rules []node.Rule
	for _, x := range a {
		for _, y := range b {
			rules = append(rules, node.Rule{From: x, To: y, Drop: true}, node.Rule{From: y, To: x, Drop: true})
		}
	}
	return rules
}

// network applies rules for a fault and returns the heal.
func (r *run) network(ctx context.Context, name string, kind targetKind, ids []int32, rules []node.Rule) (func(context.Context) error, error) {
	nw := r.cfg.Target.(Network)
	r.startFault(name, kind, ids)
	if err := nw.SetFaults(ctx, rules); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		err := nw.SetFaults(ctx, nil)
		r.stopFault(name, ids, err)
		return err
	}, nil
}

func injectIsolateLeader(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, leader)
	return r.network(ctx, "isolate-leader", kind, ids, cutBetween(ids, without(r.cfg.Target.Nodes(), ids)))
}

// injectSplit cuts a random minority off from the majority or, one time
// in four, every node off from every other, so no side has a quorum.
func injectSplit(ctx context.Context, r *run) (func(context.Context) error, error) {
	nodes := r.cfg.Target.Nodes()
	if r.rng.IntN(4) == 0 {
		var rules []node.Rule
		for i, a := range nodes {
			rules = append(rules, cutBetween([]int32{a}, nodes[i+1:])...)
		}
		return r.network(ctx, "split", allNodes, nodes, rules)
	}
	ids := r.sample(nodes, max(1, (len(nodes)-1)/2))
	return r.network(ctx, "split", minority, ids, cutBetween(ids, without(nodes, ids)))
}

// injectBridge splits the cluster in two halves that cannot talk, except
// through one node that sees both: each half plus the bridge is a majority,
// which tempts two leaders.
func injectBridge(ctx context.Context, r *run) (func(context.Context) error, error) {
	nodes := r.cfg.Target.Nodes()
	perm := r.sample(nodes, len(nodes))
	r.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	bridge := perm[0]
	rest := perm[1:]
	left, right := rest[:len(rest)/2], rest[len(rest)/2:]
	return r.network(ctx, "bridge", oneNode, []int32{bridge}, cutBetween(left, right))
}

// injectOneWay makes a leader deaf or mute: its messages vanish but it
// still hears the others (or the reverse), which defeats failure detectors
// that assume symmetric links.
func injectOneWay(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, leader, oneNode)
	others := without(r.cfg.Target.Nodes(), ids)
	mute := r.rng.IntN(2) == 0
	var rules []node.Rule
	for _, o := range others {
		if mute {
			rules = append(rules, node.Rule{From: ids[0], To: o, Drop: true})
		} else {
			rules = append(rules, node.Rule{From: o, To: ids[0], Drop: true})
		}
	}
	name := "one-way-deaf"
	if mute {
		name = "one-way-mute"
	}
	return r.network(ctx, name, kind, ids, rules)
}

// injectFlapping switches between random splits and a healed network every
// few hundred milliseconds until healed.
func injectFlapping(ctx context.Context, r *run) (func(context.Context) error, error) {
	nw := r.cfg.Target.(Network)
	nodes := r.cfg.Target.Nodes()
	r.startFault("flapping", allNodes, nodes)
	type step struct {
		rules []node.Rule
		wait  time.Duration
	}
	// Drawn up front so the flapping goroutine never shares the run's rng.
	var steps []step
	for i := 0; i < 200; i++ {
		ids := r.sample(nodes, max(1, (len(nodes)-1)/2))
		var rules []node.Rule
		if i%2 == 0 {
			rules = cutBetween(ids, without(nodes, ids))
		}
		steps = append(steps, step{rules, time.Duration(200+r.rng.IntN(800)) * time.Millisecond})
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; fctx.Err() == nil; i++ {
			s := steps[i%len(steps)]
			if err := nw.SetFaults(fctx, s.rules); err != nil && fctx.Err() == nil {
				r.logf("flapping: %v", err)
			}
			sleepCtx(fctx, s.wait)
		}
	}()
	return func(ctx context.Context) error {
		cancel()
		<-done
		err := nw.SetFaults(ctx, nil)
		r.stopFault("flapping", nodes, err)
		return err
	}, nil
}

// injectDelay slows every link of the target nodes by 50-250 ms each way.
func injectDelay(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader, allNodes)
	d := int64(50 + r.rng.IntN(200))
	rules := linkRules(ids, r.cfg.Target.Nodes(), func(rl *node.Rule) { rl.DelayMS = d })
	return r.network(ctx, fmt.Sprintf("delay-%dms", d), kind, ids, rules)
}

// injectTxnRPC delays every transaction RPC between brokers (the markers
// a coordinator sends partition leaders, the checks leaders make with a
// coordinator) by 0.2-3 s and sends each twice, the copy later still: the
// late and duplicated messages that tore transactions in Kafka before
// KIP-890 must be fenced.
func injectTxnRPC(ctx context.Context, r *run) (func(context.Context) error, error) {
	nodes := r.cfg.Target.Nodes()
	d := int64(200 + r.rng.IntN(2800))
	rules := linkRules(nodes, nodes, func(rl *node.Rule) { rl.Method, rl.DelayMS, rl.Duplicate = "txn.", d, true })
	return r.network(ctx, fmt.Sprintf("txn-rpc-delay-%dms-duplicated", d), allNodes, nodes, rules)
}

// injectLoss loses 5-30% of the packets on every link of the targets.
func injectLoss(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader, allNodes)
	p := float64(5+r.rng.IntN(26)) / 100
	rules := linkRules(ids, r.cfg.Target.Nodes(), func(rl *node.Rule) { rl.Loss = p })
	return r.network(ctx, fmt.Sprintf("loss-%.0f%%", 100*p), kind, ids, rules)
}

// linkRules makes one rule per direction of every link touching ids.
func linkRules(ids, nodes []int32, set func(*node.Rule)) []node.Rule {
	seen := map[[2]int32]bool{}
	var rules []node.Rule
	for _, a := range ids {
		for _, b := range nodes {
			for _, rt := range [][2]int32{{a, b}, {b, a}} {
				if a == b || seen[rt] {
					continue
				}
				seen[rt] = true
				rl := node.Rule{From: rt[0], To: rt[1]}
				set(&rl)
				rules = append(rules, rl)
			}
		}
	}
	return rules
}

// injectPauseKill is the compound fault from Jepsen's NATS JetStream
// analysis: pause a minority while writes go on, kill another node, resume
// the paused (stale) minority so it forms a new majority with whoever is
// left, and finally bring the killed node back (the heal).
func injectPauseKill(ctx context.Context, r *run) (func(context.Context) error, error) {
	nodes := r.cfg.Target.Nodes()
	stale := r.sample(nodes, max(1, (len(nodes)-1)/2))
	resume, err := r.pause(ctx, "pause", minority, stale)
	if err != nil {
		return nil, err
	}
	return r.thenKill(ctx, stale, resume)
}

// injectPartitionKill is pause-kill with a network partition in place of
// the pause: the stale minority keeps running, cut off.
func injectPartitionKill(ctx context.Context, r *run) (func(context.Context) error, error) {
	nodes := r.cfg.Target.Nodes()
	stale := r.sample(nodes, max(1, (len(nodes)-1)/2))
	heal, err := r.network(ctx, "split", minority, stale, cutBetween(stale, without(nodes, stale)))
	if err != nil {
		return nil, err
	}
	return r.thenKill(ctx, stale, heal)
}

// thenKill is the second half of the compound faults: after a phase of
// writes, kill one of the up-to-date nodes, undo the first fault so the
// stale nodes rejoin a majority without it, and return the restart.
func (r *run) thenKill(ctx context.Context, stale []int32, undo func(context.Context) error) (func(context.Context) error, error) {
	sleepCtx(ctx, r.faultDuration())
	fresh := without(r.cfg.Target.Nodes(), stale)
	victim := fresh[r.rng.IntN(len(fresh))]
	if id, ok := r.leaderOf(ctx, 0); ok && slices.Contains(fresh, id) {
		victim = id
	}
	restart, err := r.kill(ctx, "kill", oneNode, []int32{victim})
	if err != nil {
		undo(ctx)
		return nil, err
	}
	if err := undo(ctx); err != nil {
		return restart, err
	}
	return restart, nil
}

// injectPowerLoss kills nodes and drops every write they had not fsync'd,
// as a power cut would; sometimes all nodes at once.
func injectPowerLoss(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader, allNodes)
	restart, err := r.kill(ctx, "power-loss", kind, ids)
	if err != nil {
		return nil, err
	}
	d := r.cfg.Target.(Disks)
	for _, id := range ids {
		what, err := d.LosePower(id, r.rng)
		if err != nil {
			return restart, err
		}
		r.logf("power loss on node %d: %s", id, what)
		r.note(fmt.Sprintf("power loss on node %d: %s", id, what))
	}
	return restart, nil
}

// injectCorrupt damages a file of one stopped node (a minority): the node
// must notice and must never win an election with data it lost.
func injectCorrupt(ctx context.Context, r *run) (func(context.Context) error, error) {
	kind, ids := r.targets(ctx, oneNode, leader)
	restart, err := r.kill(ctx, "corrupt", kind, ids)
	if err != nil {
		return nil, err
	}
	what, err := r.cfg.Target.(Disks).Corrupt(ids[0], r.rng)
	if err != nil {
		return restart, err
	}
	r.logf("corrupted node %d: %s", ids[0], what)
	r.note(fmt.Sprintf("corrupted node %d: %s", ids[0], what))
	return restart, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func sortInt32s(s []int32) { slices.Sort(s) }
