package chaos

import "testing"

// rec is one record of a transaction: its value and where it was written.
type rec struct {
	value string
	part  int32
	off   int64
}

// txn records a transaction of producer t1: its records, written, then
// an end asked as ask and answered with outcome ("" for unknown).
func (b *builder) txn(id, ask, outcome string, recs ...rec) {
	for _, r := range recs {
		b.add(Op{Process: 400, Type: Invoke, Kind: TxnProduce, Partition: r.part, Offset: -1, Value: r.value, Producer: "t1", Txn: id})
		b.add(Op{Process: 400, Type: OK, Kind: TxnProduce, Partition: r.part, Offset: r.off, Value: r.value, Producer: "t1", Txn: id})
	}
	b.add(Op{Process: 400, Type: Invoke, Kind: TxnEnd, Offset: -1, Value: ask, Producer: "t1", Txn: id})
	end := Op{Process: 400, Type: OK, Kind: TxnEnd, Offset: -1, Value: outcome, Producer: "t1", Txn: id}
	if outcome == "" {
		end.Type, end.Error = Info, "request timed out"
	}
	b.add(end)
}

func (b *builder) output(part int32, off int64, value string) {
	b.add(Op{Process: 99, Type: OK, Kind: OutputRead, Partition: part, Offset: off, Value: value})
}

// cleanTxnHistory has a committed transaction over two partitions, an
// aborted one, one of unknown outcome that committed and one that did
// not, a read_committed consumer, and a copier that copied what is below
// its commits.
func cleanTxnHistory() []Op {
	b := newBuilder()
	b.txn("t1.1", "commit", "commit", rec{"t1.1.0", 0, 0}, rec{"t1.1.1", 1, 0})
	b.txn("t1.2", "abort", "abort", rec{"t1.2.0", 0, 2})
	b.txn("t1.3", "commit", "", rec{"t1.3.0", 1, 2})
	b.txn("t1.4", "commit", "", rec{"t1.4.0", 0, 4})
	b.consume(100, 0, 0, "t1.1.0", false)
	b.consume(100, 1, 0, "t1.1.1", false)
	b.consume(100, 1, 2, "t1.3.0", false)
	b.groupCommit(0, 1)
	b.groupCommit(1, 3)
	b.final(0, 0, "t1.1.0")
	b.final(1, 0, "t1.1.1")
	b.final(1, 2, "t1.3.0")
	b.output(0, 0, "t1.1.0")
	b.output(1, 0, "t1.1.1")
	b.output(1, 1, "t1.3.0")
	b.digest(1, 0, 5, "0a0b0c0d")
	b.digest(2, 0, 5, "0a0b0c0d")
	return b.rec.Ops()
}

func TestCleanTxnHistory(t *testing.T) {
	results := CheckAll(cleanTxnHistory())
	if len(results) != 12 {
		t.Fatalf("%d checkers ran on a transactional history, want 12", len(results))
	}
	for _, r := range results {
		if r.Violations != 0 {
			t.Errorf("%v", r)
		}
		if r.Checked == 0 {
			t.Errorf("%s checked nothing on the clean history", r.Name)
		}
	}
	if a := CheckAvailability(cleanTxnHistory()); a.Invoked != 3 || a.OK != 1 {
		t.Errorf("availability counts %d commits asked, %d ok; want 3, 1", a.Invoked, a.OK)
	}
}

var txnAnomalies = []anomaly{
	{"aborted read", "txn-aborted-read", `value "t1.2.0" of aborted transaction t1.2 was read at t-0@2 (final-read`, func(b *builder) {
		b.txn("t1.2", "abort", "abort", rec{"t1.2.0", 0, 2})
		b.final(0, 2, "t1.2.0")
	}},
	{"torn", "txn-torn", `transaction t1.1 (outcome unknown) is torn: the final read holds [t1.1.0] but not [t1.1.1]`, func(b *builder) {
		b.txn("t1.1", "commit", "", rec{"t1.1.0", 0, 0}, rec{"t1.1.1", 1, 0})
		b.final(0, 0, "t1.1.0")
	}},
	{"committed lost", "txn-lost", `transaction t1.1 committed, but its value "t1.1.0" is missing`, func(b *builder) {
		b.txn("t1.1", "commit", "commit", rec{"t1.1.0", 0, 0})
		b.txn("t1.2", "commit", "commit", rec{"t1.2.0", 0, 2})
		b.final(0, 2, "t1.2.0")
	}},
	{"intermediate read", "txn-intermediate-read", `consumer 100 read "t1.1.0" of transaction t1.1 at t-0@0`, func(b *builder) {
		b.add(Op{Process: 400, Type: Invoke, Kind: TxnProduce, Partition: 0, Offset: -1, Value: "t1.1.0", Producer: "t1", Txn: "t1.1"})
		b.consume(100, 0, 0, "t1.1.0", false)
		b.add(Op{Process: 400, Type: Invoke, Kind: TxnEnd, Offset: -1, Value: "commit", Producer: "t1", Txn: "t1.1"})
		b.add(Op{Process: 400, Type: OK, Kind: TxnEnd, Offset: -1, Value: "commit", Producer: "t1", Txn: "t1.1"})
		b.final(0, 0, "t1.1.0")
	}},
	{"copied twice", "txn-copy", `partition 0: input "t1.1.0" was copied 2 times`, func(b *builder) {
		b.txn("t1.1", "commit", "commit", rec{"t1.1.0", 0, 0})
		b.groupCommit(0, 1)
		b.final(0, 0, "t1.1.0")
		b.output(0, 0, "t1.1.0")
		b.output(0, 2, "t1.1.0")
	}},
	{"committed but not copied", "txn-copy", `input "t1.1.0" is below the committed offset 1 but was never copied`, func(b *builder) {
		b.txn("t1.1", "commit", "commit", rec{"t1.1.0", 0, 0})
		b.groupCommit(0, 1)
		b.final(0, 0, "t1.1.0")
	}},
	{"copied past the commit", "txn-copy", `"t1.2.0" was copied, but is not input below the committed offset 1`, func(b *builder) {
		b.txn("t1.1", "commit", "commit", rec{"t1.1.0", 0, 0})
		b.txn("t1.2", "commit", "commit", rec{"t1.2.0", 0, 2})
		b.groupCommit(0, 1)
		b.final(0, 0, "t1.1.0")
		b.final(0, 2, "t1.2.0")
		b.output(0, 0, "t1.1.0")
		b.output(0, 1, "t1.2.0")
	}},
}

// TestTxnAnomalies requires each transactional anomaly to be reported by
// its checker, with a useful example, and by no other checker.
func TestTxnAnomalies(t *testing.T) { runAnomalies(t, txnAnomalies) }
