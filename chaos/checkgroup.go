package chaos

// CheckGroupCommits reports a consumer group's committed offset that moved
// backwards, or past the end of the partition's final read: a commit the
// coordinator lost, or one that never should have been taken.
func CheckGroupCommits(h []Op) Result {
	res := Result{Name: "group-commit-regress"}
	final := indexFinal(h)
	last := map[topicPartition]Op{}
	for _, op := range okOps(h, GroupCommit) {
		k := opPos(op).tp()
		res.Checked++
		if prev, ok := last[k]; ok && op.Offset < prev.Offset {
			res.violate("group commit on %s went back from %d (op %d) to %d (op %d)", k, prev.Offset, prev.Index, op.Offset, op.Index)
		}
		last[k] = op
		if offs := final.offsets[k]; len(offs) > 0 && op.Offset > offs[len(offs)-1]+1 {
			res.violate("group commit on %s at %d (op %d) is past the end of the final read, %d", k, op.Offset, op.Index, offs[len(offs)-1]+1)
		}
	}
	return res
}

// CheckGroupDelivery reports acknowledged values that the final read holds
// but no member of the consumer group was ever given: the group must
// consume every acknowledged record at least once, whatever rebalances the
// faults caused. Runs without a group workload check nothing.
func CheckGroupDelivery(h []Op) Result {
	res := Result{Name: "group-missed"}
	given := map[string]bool{}
	for _, op := range okOps(h, GroupConsume) {
		given[op.Value] = true
	}
	if len(given) == 0 && len(okOps(h, GroupCommit)) == 0 {
		return res
	}
	stored := map[string]bool{}
	for _, op := range okOps(h, FinalRead) {
		stored[op.Value] = true
	}
	for _, p := range acked(h) {
		v := p.invoke.Value
		if !stored[v] {
			continue // lost: CheckLostWrites reports it
		}
		res.Checked++
		if !given[v] {
			res.violate("acknowledged value %s (at %s) was never given to the group", v, p.ack())
		}
	}
	return res
}
