package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result is what one checker found. Checked counts the things it looked at,
// so a run that checked nothing is visible instead of passing silently.
type Result struct {
	Name       string
	Checked    int
	Violations int
	Examples   []string // at most maxExamples, in a deterministic order
}

// maxExamples keeps reports readable when one fault produces thousands of
// violations; the count still says how many there were.
const maxExamples = 5

func (r *Result) violate(format string, args ...any) {
	r.Violations++
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

func (r Result) String() string {
	s := fmt.Sprintf("%s: %d violations in %d checked", r.Name, r.Violations, r.Checked)
	for _, e := range r.Examples {
		s += "\n  " + e
	}
	return s
}

// CheckAll runs every violation checker of the history's workload, always
// in the same order.
func CheckAll(h []Op) []Result {
	if isTxnHistory(h) {
		return []Result{
			CheckLostWrites(h),
			CheckInconsistentOffsets(h),
			CheckDuplicates(h),
			CheckConsumers(h),
			CheckUnexpectedValues(h),
			CheckDivergence(h),
			CheckGroupCommits(h),
			CheckAbortedReads(h),
			CheckTornTxns(h),
			CheckLostTxns(h),
			CheckIntermediateReads(h),
			CheckCopy(h),
		}
	}
	if isCompactHistory(h) {
		// Compaction removes superseded records: lost-write gives way to
		// compact-lost, which allows exactly that.
		return []Result{
			CheckCompactedLoss(h),
			CheckInconsistentOffsets(h),
			CheckDuplicates(h),
			CheckReorders(h),
			CheckConsumers(h),
			CheckUnexpectedValues(h),
			CheckDivergence(h),
		}
	}
	return []Result{
		CheckLostWrites(h),
		CheckInconsistentOffsets(h),
		CheckDuplicates(h),
		CheckReorders(h),
		CheckConsumers(h),
		CheckUnexpectedValues(h),
		CheckDivergence(h),
		CheckGroupCommits(h),
		CheckGroupDelivery(h),
	}
}

// CheckLostWrites reports values that were acknowledged, or that a consumer
// read, but are absent from the final read. Both count: a consumer only sees
// committed records, so a consumed value that vanishes was lost as surely as
// an acknowledged one. A value present at another position than acknowledged
// is left to CheckInconsistentOffsets.
func CheckLostWrites(h []Op) Result {
	res := Result{Name: "lost-write"}
	final := indexFinal(h)
	reported := map[string]bool{}
	for _, p := range acked(h) {
		res.Checked++
		reported[p.done.Value] = true
		if len(final.byValue[p.done.Value]) == 0 {
			res.violate("value %q acknowledged at %s (op %d, invoked op %d) is missing from the final read",
				p.done.Value, p.ack(), p.done.Index, p.invoke.Index)
		}
	}
	for _, op := range okOps(h, Consume) {
		if reported[op.Value] {
			continue
		}
		reported[op.Value] = true
		res.Checked++
		if len(final.byValue[op.Value]) == 0 {
			res.violate("value %q consumed at %s (op %d, process %d) is missing from the final read",
				op.Value, opPos(op), op.Index, op.Process)
		}
	}
	return res
}

// CheckInconsistentOffsets reports positions that held two values and values
// seen at a position where the final read does not have them. Several final
// positions for one value are a duplicate, not an inconsistency, so they are
// left to CheckDuplicates.
func CheckInconsistentOffsets(h []Op) Result {
	res := Result{Name: "inconsistent-offset"}
	obs := observations(h)
	res.Checked = len(obs)

	byPos := map[pos][]observation{}
	byValue := map[string][]observation{}
	for _, o := range obs {
		byPos[o.pos] = append(byPos[o.pos], o)
		byValue[o.value] = append(byValue[o.value], o)
	}
	for _, p := range sortedPositions(byPos) {
		os := byPos[p]
		for _, o := range os[1:] {
			if o.value != os[0].value {
				res.violate("%s holds %q (%s, op %d) and %q (%s, op %d)",
					p, os[0].value, os[0].source, os[0].index, o.value, o.source, o.index)
				break
			}
		}
	}
	for _, v := range sortedKeys(byValue) {
		if msg := valueConflict(v, byValue[v]); msg != "" {
			res.violate("%s", msg)
		}
	}
	return res
}

// valueConflict explains why one value's observations disagree, or returns
// "". The final read is authoritative when it has the value; otherwise the
// acknowledgements and consumes must at least agree with each other.
func valueConflict(v string, os []observation) string {
	var final []pos
	for _, o := range os {
		if o.source == FinalRead && !slices.Contains(final, o.pos) {
			final = append(final, o.pos)
		}
	}
	for _, o := range os {
		if len(final) > 0 && !slices.Contains(final, o.pos) {
			return fmt.Sprintf("value %q seen at %s (%s, op %d) but the final read has it at %s",
				v, o.pos, o.source, o.index, joinPositions(final))
		}
		if len(final) == 0 && o.pos != os[0].pos {
			return fmt.Sprintf("value %q seen at %s (%s, op %d) and at %s (%s, op %d)",
				v, os[0].pos, os[0].source, os[0].index, o.pos, o.source, o.index)
		}
	}
	return ""
}

// CheckDuplicates reports values stored at more than one position in the
// final read, such as a retried produce that was not deduplicated. Reading
// one position twice is not a duplicate.
func CheckDuplicates(h []Op) Result {
	res := Result{Name: "duplicate"}
	final := indexFinal(h)
	atLeastOnce := map[string]bool{}
	for _, op := range h {
		if op.Kind == Produce && op.MayDuplicate {
			atLeastOnce[op.Value] = true
		}
	}
	for _, v := range sortedKeys(final.byValue) {
		if atLeastOnce[v] {
			continue
		}
		res.Checked++
		if ps := final.byValue[v]; len(ps) > 1 {
			res.violate("value %q appears %d times in the final read: %s", v, len(ps), joinPositions(ps))
		}
	}
	return res
}

// CheckReorders reports, per producer and partition, acknowledged produces
// whose offsets run against their Seq. Comparing neighbours in Seq order is
// enough: any inversion implies an inverted neighbouring pair.
func CheckReorders(h []Op) Result {
	res := Result{Name: "reorder"}
	type key struct {
		producer string
		tp       topicPartition
	}
	groups := map[key][]produce{}
	for _, p := range acked(h) {
		if p.producer() == "" || p.done.Offset < 0 {
			continue
		}
		k := key{p.producer(), p.ack().tp()}
		groups[k] = append(groups[k], p)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].producer != keys[j].producer {
			return keys[i].producer < keys[j].producer
		}
		return keys[i].tp.less(keys[j].tp)
	})
	for _, k := range keys {
		ps := groups[k]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].seq() < ps[j].seq() })
		for i := 1; i < len(ps); i++ {
			res.Checked++
			prev, cur := ps[i-1], ps[i]
			if cur.done.Offset < prev.done.Offset {
				res.violate("producer %q on %s: seq %d (%q) at offset %d but later seq %d (%q) at earlier offset %d",
					k.producer, k.tp, prev.seq(), prev.done.Value, prev.done.Offset,
					cur.seq(), cur.done.Value, cur.done.Offset)
			}
		}
	}
	return res
}

// CheckConsumers reports, per consumer process and partition, reads that
// skip a record of the final read or go back without a seek. Offsets missing
// from the final read (control batches, aborted transactions) may be jumped.
func CheckConsumers(h []Op) Result {
	res := Result{Name: "consumer-skip-rewind"}
	final := indexFinal(h)
	type key struct {
		process int
		tp      topicPartition
	}
	last := map[key]Op{}
	for _, op := range okOps(h, Consume) {
		k := key{op.Process, opPos(op).tp()}
		prev, seen := last[k]
		last[k] = op
		if !seen || op.Seek {
			continue
		}
		res.Checked++
		if op.Offset <= prev.Offset {
			res.violate("process %d on %s rewound from offset %d (op %d) to %d (op %d) without a seek",
				op.Process, k.tp, prev.Offset, prev.Index, op.Offset, op.Index)
			continue
		}
		if skipped := between(final.offsets[k.tp], prev.Offset, op.Offset); len(skipped) > 0 {
			res.violate("process %d on %s skipped %d record(s) (first at offset %d) between offset %d (op %d) and %d (op %d)",
				op.Process, k.tp, len(skipped), skipped[0], prev.Offset, prev.Index, op.Offset, op.Index)
		}
	}
	return res
}

// CheckUnexpectedValues reports values read (finally or by a consumer) that
// no produce ever invoked: corruption or a phantom write.
func CheckUnexpectedValues(h []Op) Result {
	res := Result{Name: "unexpected-value"}
	invoked := map[string]bool{}
	for _, op := range h {
		if (op.Kind == Produce || op.Kind == TxnProduce) && op.Type == Invoke {
			invoked[op.Value] = true
		}
	}
	seen := map[string]bool{}
	for _, op := range h {
		if op.Type != OK || (op.Kind != FinalRead && op.Kind != Consume && op.Kind != OutputRead) || seen[op.Value] {
			continue
		}
		seen[op.Value] = true
		res.Checked++
		if !invoked[op.Value] {
			res.violate("value %q read at %s (%s, op %d) was never produced", op.Value, opPos(op), op.Kind, op.Index)
		}
	}
	return res
}

// CheckDivergence compares, per partition, the last digest each replica
// reported after the run: every replica must hold the same high watermark
// and the same bytes below it. A replica behind the others counts too: the
// runner waits for replicas to converge before it records digests, so one
// still behind then never caught up.
func CheckDivergence(h []Op) Result {
	res := Result{Name: "divergence"}
	last := map[topicPartition]map[int32]Op{}
	for _, op := range h {
		if op.Kind != Digest {
			continue
		}
		tp := topicPartition{op.Topic, op.Partition}
		if last[tp] == nil {
			last[tp] = map[int32]Op{}
		}
		last[tp][op.Node] = op
	}
	tps := make([]topicPartition, 0, len(last))
	for tp := range last {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return tps[i].less(tps[j]) })
	for _, tp := range tps {
		res.Checked++
		nodes := make([]int32, 0, len(last[tp]))
		for id := range last[tp] {
			nodes = append(nodes, id)
		}
		slices.Sort(nodes)
		if msg := digestConflict(last[tp], nodes); msg != "" {
			res.violate("%s: %s", tp, msg)
		}
	}
	return res
}

func digestConflict(byNode map[int32]Op, nodes []int32) string {
	first := byNode[nodes[0]]
	for _, id := range nodes {
		d := byNode[id]
		if d.Type != OK {
			return fmt.Sprintf("node %d could not digest its replica: %s", id, d.Error)
		}
		if d.Offset != first.Offset || d.Value != first.Value {
			var all []string
			for _, id := range nodes {
				all = append(all, fmt.Sprintf("node %d hw %d crc %s", id, byNode[id].Offset, byNode[id].Value))
			}
			return strings.Join(all, "; ")
		}
	}
	return ""
}

// Availability summarises how the cluster served producers; it is a measure,
// not a pass/fail check.
type Availability struct {
	Invoked    int     // produce invocations
	OK         int     // produces acknowledged ok
	OKFraction float64 // OK / Invoked; 0 when nothing was invoked
	// Heals holds, for each heal followed by an ok produce and in heal
	// order, the time from the heal to the first ok produce recorded after
	// it. Unrecovered counts heals after which no produce succeeded.
	Heals       []time.Duration
	Unrecovered int
}

// CheckAvailability measures Availability. A heal is a completed nemesis op
// whose Fault ends in ":stop" or is "heal"; an invoke is only the request.
// In a transactional history the writes are the commits asked for.
func CheckAvailability(h []Op) Availability {
	var a Availability
	var pending []time.Time // heals not yet followed by an ok write
	isWrite := func(op Op) bool { return op.Kind == Produce || (op.Kind == TxnEnd && op.Value == "commit") }
	for _, op := range h {
		switch {
		case isWrite(op) && op.Type == Invoke:
			a.Invoked++
		case isWrite(op) && op.Type == OK:
			a.OK++
			for _, t := range pending {
				a.Heals = append(a.Heals, op.Time.Sub(t))
			}
			pending = pending[:0]
		case isHeal(op):
			pending = append(pending, op.Time)
		}
	}
	if a.Invoked > 0 {
		a.OKFraction = float64(a.OK) / float64(a.Invoked)
	}
	a.Unrecovered = len(pending)
	return a
}

func isHeal(op Op) bool {
	return op.Kind == Nemesis && (op.Type == OK || op.Type == Info) &&
		(strings.HasSuffix(op.Fault, ":stop") || op.Fault == "heal")
}

// topicPartition names a partition; checkers key by topic too so one
// history can cover several topics.
type topicPartition struct {
	topic     string
	partition int32
}

func (t topicPartition) String() string {
	if t.topic == "" {
		return fmt.Sprintf("partition %d", t.partition)
	}
	return fmt.Sprintf("%s-%d", t.topic, t.partition)
}

func (t topicPartition) less(u topicPartition) bool {
	if t.topic != u.topic {
		return t.topic < u.topic
	}
	return t.partition < u.partition
}

// pos is one record slot in the log.
type pos struct {
	topic     string
	partition int32
	offset    int64
}

func opPos(op Op) pos { return pos{op.Topic, op.Partition, op.Offset} }

func (p pos) tp() topicPartition { return topicPartition{p.topic, p.partition} }

func (p pos) String() string { return fmt.Sprintf("%s@%d", p.tp(), p.offset) }

func (p pos) less(q pos) bool {
	if p.tp() != q.tp() {
		return p.tp().less(q.tp())
	}
	return p.offset < q.offset
}

// produce pairs an invocation with its completion; done.Type is empty while
// the produce never completed.
type produce struct {
	invoke Op
	done   Op
}

// ack is where the completion says the value landed. Clients may leave
// Topic, Producer and Seq on the invoke only, so those fall back to it.
func (p produce) ack() pos {
	at := opPos(p.done)
	if at.topic == "" {
		at.topic = p.invoke.Topic
	}
	return at
}

func (p produce) producer() string {
	if p.invoke.Producer != "" {
		return p.invoke.Producer
	}
	return p.done.Producer
}

func (p produce) seq() int64 {
	if p.invoke.Seq != 0 {
		return p.invoke.Seq
	}
	return p.done.Seq
}

// produces pairs each produce invoke with the first later completion of the
// same process and value, in invoke order.
func produces(h []Op) []produce {
	type key struct {
		process int
		value   string
	}
	pending := map[key]int{}
	var out []produce
	for _, op := range h {
		if op.Kind != Produce {
			continue
		}
		k := key{op.Process, op.Value}
		if op.Type == Invoke {
			pending[k] = len(out)
			out = append(out, produce{invoke: op})
			continue
		}
		if i, ok := pending[k]; ok {
			out[i].done = op
			delete(pending, k)
		}
	}
	return out
}

func acked(h []Op) []produce {
	var out []produce
	for _, p := range produces(h) {
		if p.done.Type == OK {
			out = append(out, p)
		}
	}
	return out
}

func okOps(h []Op, kind OpKind) []Op {
	var out []Op
	for _, op := range h {
		if op.Kind == kind && op.Type == OK {
			out = append(out, op)
		}
	}
	return out
}

// finalIndex is the final read, the authoritative log contents.
type finalIndex struct {
	byValue map[string][]pos           // distinct positions, in read order
	offsets map[topicPartition][]int64 // distinct offsets, ascending
}

func indexFinal(h []Op) finalIndex {
	f := finalIndex{byValue: map[string][]pos{}, offsets: map[topicPartition][]int64{}}
	for _, op := range okOps(h, FinalRead) {
		p := opPos(op)
		if !slices.Contains(f.byValue[op.Value], p) {
			f.byValue[op.Value] = append(f.byValue[op.Value], p)
		}
		f.offsets[p.tp()] = append(f.offsets[p.tp()], p.offset)
	}
	for tp, offs := range f.offsets {
		slices.Sort(offs)
		f.offsets[tp] = slices.Compact(offs)
	}
	return f
}

// between returns the offsets strictly between lo and hi; offs is ascending.
func between(offs []int64, lo, hi int64) []int64 {
	i, _ := slices.BinarySearch(offs, lo+1)
	j, _ := slices.BinarySearch(offs, hi)
	if i >= j {
		return nil
	}
	return offs[i:j]
}

// observation is one claim that a value sits at a position.
type observation struct {
	pos    pos
	value  string
	source OpKind // Produce for an acknowledgement
	index  int64
}

// observations gathers every positioned claim: acknowledgements first, then
// reads in history order. Acks with an unknown offset claim nothing.
func observations(h []Op) []observation {
	var out []observation
	for _, p := range acked(h) {
		if p.done.Offset >= 0 {
			out = append(out, observation{p.ack(), p.done.Value, Produce, p.done.Index})
		}
	}
	for _, op := range h {
		if op.Type == OK && op.Offset >= 0 && (op.Kind == Consume || op.Kind == FinalRead) {
			out = append(out, observation{opPos(op), op.Value, op.Kind, op.Index})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedPositions[V any](m map[pos]V) []pos {
	keys := make([]pos, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}

func joinPositions(ps []pos) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
