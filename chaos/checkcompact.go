package chaos

import "sort"

// isCompactHistory reports whether the history is the compacted
// workload's: its produces carry keys.
func isCompactHistory(h []Op) bool {
	for _, op := range h {
		if op.Kind == Produce && op.Type == Invoke && op.Key != "" {
			return true
		}
	}
	return false
}

// CheckCompactedLoss checks a compacted topic's final read. An
// acknowledged record may be missing only if the final read holds a later
// record of its key in the same partition: compaction removes superseded
// records and nothing else. Every record read must carry the key it was
// produced with.
func CheckCompactedLoss(h []Op) Result {
	res := Result{Name: "compact-lost"}
	keyOf := map[string]string{}
	for _, op := range h {
		if op.Kind == Produce && op.Type == Invoke {
			keyOf[op.Value] = op.Key
		}
	}
	type tk struct {
		tp  topicPartition
		key string
	}
	// latest is the highest offset at which the final read has each key.
	latest := map[tk]int64{}
	final := map[pos]string{}
	for _, op := range okOps(h, FinalRead) {
		p := opPos(op)
		final[p] = op.Value
		if want, ok := keyOf[op.Value]; ok && want != op.Key {
			res.violate("value %q read at %s with key %q, produced with key %q", op.Value, p, op.Key, want)
		}
		k := tk{p.tp(), op.Key}
		if cur, ok := latest[k]; !ok || p.offset > cur {
			latest[k] = p.offset
		}
	}
	ps := acked(h)
	sort.Slice(ps, func(i, j int) bool { return ps[i].ack().less(ps[j].ack()) })
	for _, p := range ps {
		res.Checked++
		at := p.ack()
		if final[at] == p.done.Value {
			continue
		}
		if last, ok := latest[tk{at.tp(), keyOf[p.done.Value]}]; ok && last > at.offset {
			continue // superseded by a later record of its key
		}
		res.violate("value %q (key %q) acknowledged at %s (op %d) is missing from the final read, and no later record of its key is there",
			p.done.Value, keyOf[p.done.Value], at, p.done.Index)
	}
	return res
}
