package chaos

import (
	"slices"
)

// isTxnHistory tells a transactional workload's history by its ends.
func isTxnHistory(h []Op) bool {
	for _, op := range h {
		if op.Kind == TxnEnd {
			return true
		}
	}
	return false
}

// txnFate is what a history says of one transaction.
type txnFate struct {
	id     string
	values []string // in invocation order
	// endInvoke is the index of the first end invoke, -1 for none: the
	// transaction cannot have committed before it.
	endInvoke int64
	// outcome is "commit" or "abort" when an end came back OK, "" while
	// unknown.
	outcome string
}

// txnFates indexes every transaction, by id, and every value's
// transaction.
func txnFates(h []Op) (map[string]*txnFate, map[string]*txnFate) {
	byID, byValue := map[string]*txnFate{}, map[string]*txnFate{}
	get := func(id string) *txnFate {
		f := byID[id]
		if f == nil {
			f = &txnFate{id: id, endInvoke: -1}
			byID[id] = f
		}
		return f
	}
	for _, op := range h {
		switch {
		case op.Kind == TxnProduce && op.Type == Invoke:
			f := get(op.Txn)
			f.values = append(f.values, op.Value)
			byValue[op.Value] = f
		case op.Kind == TxnEnd && op.Type == Invoke:
			if f := get(op.Txn); f.endInvoke < 0 {
				f.endInvoke = op.Index
			}
		case op.Kind == TxnEnd && op.Type == OK:
			get(op.Txn).outcome = op.Value
		}
	}
	return byID, byValue
}

// sortedFates lists transactions by id, for deterministic examples.
func sortedFates(byID map[string]*txnFate) []*txnFate {
	out := make([]*txnFate, 0, len(byID))
	for _, id := range sortedKeys(byID) {
		out = append(out, byID[id])
	}
	return out
}

// CheckAbortedReads reports a record of an aborted transaction that a
// read_committed reader was given: by a consumer, the final read or the
// copier's output.
func CheckAbortedReads(h []Op) Result {
	res := Result{Name: "txn-aborted-read"}
	_, byValue := txnFates(h)
	for _, op := range h {
		if op.Type != OK || (op.Kind != Consume && op.Kind != FinalRead && op.Kind != OutputRead) {
			continue
		}
		f := byValue[op.Value]
		if f == nil {
			continue // not transactional, or never produced (unexpected-value)
		}
		res.Checked++
		if f.outcome == "abort" {
			res.violate("value %q of aborted transaction %s was read at %s (%s, op %d)", op.Value, f.id, opPos(op), op.Kind, op.Index)
		}
	}
	return res
}

// CheckTornTxns reports a transaction that the final read holds only part
// of: a committed transaction's records become visible together.
func CheckTornTxns(h []Op) Result {
	res := Result{Name: "txn-torn"}
	byID, _ := txnFates(h)
	final := indexFinal(h)
	for _, f := range sortedFates(byID) {
		var present, missing []string
		for _, v := range f.values {
			if len(final.byValue[v]) > 0 {
				present = append(present, v)
			} else {
				missing = append(missing, v)
			}
		}
		if len(present) == 0 {
			continue
		}
		res.Checked++
		if len(missing) > 0 {
			res.violate("transaction %s (%s) is torn: the final read holds %v but not %v", f.id, outcomeText(f), present, missing)
		}
	}
	return res
}

// CheckLostTxns reports a transaction whose commit was acknowledged but
// whose records the final read lacks.
func CheckLostTxns(h []Op) Result {
	res := Result{Name: "txn-lost"}
	byID, _ := txnFates(h)
	final := indexFinal(h)
	for _, f := range sortedFates(byID) {
		if f.outcome != "commit" {
			continue
		}
		res.Checked++
		for _, v := range f.values {
			if len(final.byValue[v]) == 0 {
				res.violate("transaction %s committed, but its value %q is missing from the final read", f.id, v)
				break
			}
		}
	}
	return res
}

// CheckIntermediateReads reports a read_committed consumer given a record
// of a transaction before that transaction's producer asked to commit it:
// it read the transaction's intermediate, uncommitted state.
func CheckIntermediateReads(h []Op) Result {
	res := Result{Name: "txn-intermediate-read"}
	_, byValue := txnFates(h)
	for _, op := range okOps(h, Consume) {
		f := byValue[op.Value]
		if f == nil {
			continue
		}
		res.Checked++
		if f.endInvoke < 0 || f.endInvoke > op.Index {
			res.violate("consumer %d read %q of transaction %s at %s (op %d) before its end was asked (op %d)",
				op.Process, op.Value, f.id, opPos(op), op.Index, f.endInvoke)
		}
	}
	return res
}

// CheckCopy compares the copier's output with its committed offsets. The
// copier commits its group's offsets in the transaction of its copies, so
// for each input partition the output partition must hold each input
// record below the last committed offset exactly once, and nothing else.
func CheckCopy(h []Op) Result {
	res := Result{Name: "txn-copy"}
	committed := map[int32]int64{}
	for _, op := range okOps(h, GroupCommit) {
		committed[op.Partition] = op.Offset // the last one read back wins
	}
	want := map[int32]map[string]bool{}
	for _, op := range okOps(h, FinalRead) {
		if c, ok := committed[op.Partition]; ok && op.Offset < c {
			if want[op.Partition] == nil {
				want[op.Partition] = map[string]bool{}
			}
			want[op.Partition][op.Value] = true
		}
	}
	got := map[int32]map[string]int{}
	for _, op := range okOps(h, OutputRead) {
		if got[op.Partition] == nil {
			got[op.Partition] = map[string]int{}
		}
		got[op.Partition][op.Value]++
	}
	var parts []int32
	for p := range committed {
		parts = append(parts, p)
	}
	for p := range got {
		if _, ok := committed[p]; !ok {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	for _, p := range parts {
		for _, v := range sortedKeys(want[p]) {
			res.Checked++
			if got[p][v] == 0 {
				res.violate("partition %d: input %q is below the committed offset %d but was never copied", p, v, committed[p])
			}
		}
		for _, v := range sortedKeys(got[p]) {
			switch {
			case got[p][v] > 1:
				res.violate("partition %d: input %q was copied %d times", p, v, got[p][v])
			case !want[p][v]:
				res.violate("partition %d: %q was copied, but is not input below the committed offset %d", p, v, committed[p])
			}
		}
	}
	return res
}

func outcomeText(f *txnFate) string {
	if f.outcome == "" {
		return "outcome unknown"
	}
	return f.outcome
}
