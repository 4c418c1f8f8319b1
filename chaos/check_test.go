package chaos

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const topic = "t"

// builder writes histories by hand on a fake clock that ticks one second
// per op, so times in tests are exact.
type builder struct {
	rec *Recorder
	now time.Time
}

func newBuilder() *builder {
	return &builder{rec: NewRecorder(nil), now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (b *builder) add(op Op) Op {
	b.now = b.now.Add(time.Second)
	op.Time = b.now
	op.Topic = topic
	return b.rec.Record(op)
}

func (b *builder) invoke(proc int, producer string, seq int64, value string) {
	b.add(Op{Process: proc, Type: Invoke, Kind: Produce, Offset: -1, Value: value, Producer: producer, Seq: seq})
}

func (b *builder) complete(proc int, typ OpType, value string, part int32, off int64) {
	b.add(Op{Process: proc, Type: typ, Kind: Produce, Partition: part, Offset: off, Value: value})
}

// produceOK records a produce acknowledged at (part, off).
func (b *builder) produceOK(proc int, producer string, seq int64, value string, part int32, off int64) {
	b.invoke(proc, producer, seq, value)
	b.complete(proc, OK, value, part, off)
}

func (b *builder) consume(proc int, part int32, off int64, value string, seek bool) {
	b.add(Op{Process: proc, Type: OK, Kind: Consume, Partition: part, Offset: off, Value: value, Seek: seek})
}

func (b *builder) groupConsume(proc int, part int32, off int64, value string) {
	b.add(Op{Process: proc, Type: OK, Kind: GroupConsume, Partition: part, Offset: off, Value: value})
}

func (b *builder) groupCommit(part int32, off int64) {
	b.add(Op{Process: 300, Type: OK, Kind: GroupCommit, Partition: part, Offset: off})
}

func (b *builder) final(part int32, off int64, value string) {
	b.add(Op{Process: 99, Type: OK, Kind: FinalRead, Partition: part, Offset: off, Value: value})
}

func (b *builder) nemesis(typ OpType, fault string) {
	b.add(Op{Process: NemesisProcess, Type: typ, Kind: Nemesis, Offset: -1, Fault: fault})
}

// cleanHistory has two producers on two partitions, consumers with a seek
// back, a timed-out produce that landed, one that did not, a failed produce,
// and a control batch at t-1@2 that consumers jump over.
func cleanHistory() []Op {
	b := newBuilder()
	b.nemesis(Info, "partition:start")
	b.produceOK(1, "a", 1, "a1", 0, 0)
	b.produceOK(1, "a", 2, "a2", 0, 1)
	b.produceOK(2, "b", 1, "b1", 0, 2)
	b.produceOK(1, "a", 3, "a3", 1, 0)
	b.invoke(2, "b", 2, "b2")
	b.complete(2, Info, "b2", 0, -1) // timed out, but landed at t-1@1
	b.invoke(2, "b", 3, "b3")
	b.complete(2, Info, "b3", 0, -1) // timed out and never landed
	b.invoke(2, "b", 4, "b4")
	b.complete(2, Fail, "b4", 0, -1)
	b.nemesis(Info, "partition:stop")
	b.produceOK(2, "b", 5, "b5", 1, 3)

	b.consume(10, 0, 0, "a1", false)
	b.consume(10, 0, 1, "a2", false)
	b.consume(10, 0, 2, "b1", false)
	b.consume(10, 0, 0, "a1", true)
	b.consume(10, 0, 1, "a2", false)
	b.consume(10, 1, 0, "a3", false)
	b.consume(10, 1, 1, "b2", false)
	b.consume(10, 1, 3, "b5", false)
	b.consume(11, 1, 1, "b2", false)
	b.consume(11, 1, 3, "b5", false)

	// A group: one member reads partition 0 and commits; after a
	// rebalance another rereads from the commit, and reads partition 1.
	b.groupConsume(200, 0, 0, "a1")
	b.groupConsume(200, 0, 1, "a2")
	b.groupCommit(0, 2)
	b.groupConsume(201, 0, 1, "a2")
	b.groupConsume(201, 0, 2, "b1")
	b.groupConsume(201, 1, 0, "a3")
	b.groupConsume(201, 1, 1, "b2")
	b.groupConsume(201, 1, 3, "b5")
	b.groupConsume(201, 1, 4, "c1")
	b.groupCommit(0, 3)
	b.groupCommit(1, 6)

	b.final(0, 0, "a1")
	b.final(0, 1, "a2")
	b.final(0, 2, "b1")
	b.final(1, 0, "a3")
	b.final(1, 1, "b2")
	b.final(1, 3, "b5")
	// A non-idempotent producer's retry stored c1 twice: allowed.
	b.add(Op{Process: 3, Type: Invoke, Kind: Produce, Offset: -1, Value: "c1", Producer: "c", Seq: 1, MayDuplicate: true})
	b.complete(3, OK, "c1", 1, 4)
	b.final(1, 4, "c1")
	b.final(1, 5, "c1")
	b.digest(1, 0, 3, "0a0b0c0d")
	b.digest(2, 0, 3, "0a0b0c0d")
	b.digest(2, 1, 6, "01020304")
	b.digest(1, 1, 6, "01020304")
	return b.rec.Ops()
}

func (b *builder) digest(node int32, part int32, hw int64, crc string) {
	b.add(Op{Process: NemesisProcess, Type: OK, Kind: Digest, Node: node, Partition: part, Offset: hw, Value: crc})
}

func TestCleanHistory(t *testing.T) {
	for _, r := range CheckAll(cleanHistory()) {
		if r.Violations != 0 {
			t.Errorf("%v", r)
		}
		if r.Checked == 0 {
			t.Errorf("%s checked nothing on the clean history", r.Name)
		}
	}
}

// anomaly is a history with exactly one checker's anomaly in it.
type anomaly struct {
	name    string
	checker string
	want    string // substring of an example
	build   func(b *builder)
}

// anomalies gives each checker a history with exactly its anomaly.
var anomalies = []anomaly{
	{"acknowledged write lost", "lost-write", `value "a2" acknowledged at t-0@1`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.final(0, 0, "a1")
	}},
	{"consumed write lost", "lost-write", `value "b1" consumed at t-0@0`, func(b *builder) {
		b.invoke(2, "b", 1, "b1")
		b.complete(2, Info, "b1", 0, -1)
		b.consume(10, 0, 0, "b1", false)
		b.produceOK(1, "a", 1, "a1", 0, 1)
		b.final(0, 1, "a1")
	}},
	{"two values at one offset", "inconsistent-offset", `t-0@0 holds "a1"`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.consume(10, 0, 0, "a2", false)
		b.final(0, 0, "a1")
		b.final(0, 1, "a2")
	}},
	{"acknowledged at another offset", "inconsistent-offset", `value "a1" seen at t-0@5 (produce`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 5)
		b.final(0, 0, "a1")
	}},
	{"duplicate in log", "duplicate", `value "a1" appears 2 times in the final read: t-0@0, t-0@1`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.final(0, 0, "a1")
		b.final(0, 1, "a1")
	}},
	{"producer reorder", "reorder", `producer "a" on t-0: seq 1 ("a1") at offset 1 but later seq 2 ("a2") at earlier offset 0`, func(b *builder) {
		b.produceOK(1, "a", 2, "a2", 0, 0)
		b.produceOK(1, "a", 1, "a1", 0, 1)
		b.final(0, 0, "a2")
		b.final(0, 1, "a1")
	}},
	{"consumer skip", "consumer-skip-rewind", `process 10 on t-0 skipped 1 record(s) (first at offset 1)`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.produceOK(1, "a", 3, "a3", 0, 2)
		b.consume(10, 0, 0, "a1", false)
		b.consume(10, 0, 2, "a3", false)
		b.final(0, 0, "a1")
		b.final(0, 1, "a2")
		b.final(0, 2, "a3")
	}},
	{"consumer rewind", "consumer-skip-rewind", `process 10 on t-0 rewound from offset 1`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.consume(10, 0, 0, "a1", false)
		b.consume(10, 0, 1, "a2", false)
		b.consume(10, 0, 0, "a1", false)
		b.final(0, 0, "a1")
		b.final(0, 1, "a2")
	}},
	{"replicas differ", "divergence", `t-0: node 1 hw 2 crc 0000aaaa; node 2 hw 2 crc 0000bbbb`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.final(0, 0, "a1")
		b.digest(1, 0, 2, "0000ffff") // superseded by the node's later digest
		b.digest(1, 0, 2, "0000aaaa")
		b.digest(2, 0, 2, "0000bbbb")
	}},
	{"replica never caught up", "divergence", `node 3 hw 1 crc 0000cccc`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.final(0, 0, "a1")
		b.digest(1, 0, 2, "0000aaaa")
		b.digest(3, 0, 1, "0000cccc")
	}},
	{"group commit went back", "group-commit-regress", `group commit on t-0 went back from 2`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.groupConsume(200, 0, 0, "a1")
		b.groupConsume(200, 0, 1, "a2")
		b.groupCommit(0, 2)
		b.groupCommit(0, 1)
		b.final(0, 0, "a1")
		b.final(0, 1, "a2")
	}},
	{"group commit past the end", "group-commit-regress", `is past the end of the final read, 1`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.groupConsume(200, 0, 0, "a1")
		b.groupCommit(0, 5)
		b.final(0, 0, "a1")
	}},
	{"group never given a record", "group-missed", `acknowledged value a2 (at t-0@1) was never given to the group`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.produceOK(1, "a", 2, "a2", 0, 1)
		b.groupConsume(200, 0, 0, "a1")
		b.groupCommit(0, 2)
		b.final(0, 0, "a1")
		b.final(0, 1, "a2")
	}},
	{"phantom value", "unexpected-value", `value "zz" read at t-0@1 (final-read`, func(b *builder) {
		b.produceOK(1, "a", 1, "a1", 0, 0)
		b.final(0, 0, "a1")
		b.final(0, 1, "zz")
	}},
}

// TestAnomalies requires each anomaly to be reported by its checker, with a
// useful example, and by no other checker.
func TestAnomalies(t *testing.T) { runAnomalies(t, anomalies) }

func runAnomalies(t *testing.T, as []anomaly) {
	for _, tt := range as {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			tt.build(b)
			expectOnly(t, b.rec.Ops(), tt.checker, tt.want)
		})
	}
}

// expectOnly requires checker, and no other, to report a violation in h,
// with an example containing want.
func expectOnly(t *testing.T, h []Op, checker, want string) {
	t.Helper()
	found := false
	for _, r := range CheckAll(h) {
		found = found || r.Name == checker
		if r.Name != checker {
			if r.Violations != 0 {
				t.Errorf("unrelated checker fired: %v", r)
			}
			continue
		}
		if r.Violations == 0 {
			t.Fatalf("%s missed the anomaly: %v", checker, r)
		}
		if !containsExample(r, want) {
			t.Errorf("no example contains %q: %v", want, r)
		}
	}
	if !found {
		t.Errorf("checker %s did not run", checker)
	}
}

func containsExample(r Result, want string) bool {
	for _, e := range r.Examples {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

func TestExamplesAreCapped(t *testing.T) {
	b := newBuilder()
	for i := range int64(20) {
		b.produceOK(1, "a", i+1, string(rune('A'+i)), 0, i)
	}
	r := CheckLostWrites(b.rec.Ops())
	if r.Violations != 20 || len(r.Examples) != maxExamples {
		t.Fatalf("got %d violations, %d examples; want 20, %d", r.Violations, len(r.Examples), maxExamples)
	}
}

func TestAvailability(t *testing.T) {
	b := newBuilder()
	b.produceOK(1, "a", 1, "a1", 0, 0)
	b.nemesis(Info, "partition:start")
	b.invoke(1, "a", 2, "a2")
	b.complete(1, Info, "a2", 0, -1)
	b.nemesis(Invoke, "partition:stop") // only the request; the heal is the next op
	b.nemesis(Info, "partition:stop")
	b.invoke(1, "a", 3, "a3")
	b.complete(1, Fail, "a3", 0, -1)
	b.produceOK(1, "a", 4, "a4", 0, 1) // ok at 4s after the heal
	b.nemesis(OK, "heal")              // never followed by an ok produce
	b.invoke(1, "a", 5, "a5")

	got := CheckAvailability(b.rec.Ops())
	want := Availability{Invoked: 5, OK: 2, OKFraction: 0.4, Heals: []time.Duration{4 * time.Second}, Unrecovered: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestRecorderRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	rec := NewRecorder(&stream)
	for _, op := range cleanHistory() {
		rec.Record(op)
	}
	rec.Record(Op{Process: 3, Type: Invoke, Kind: Produce, Offset: -1, Value: "now"}) // stamped by the Recorder
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}
	var written bytes.Buffer
	n, err := rec.WriteTo(&written)
	if err != nil || n != int64(written.Len()) {
		t.Fatalf("WriteTo = %d, %v; buffer has %d bytes", n, err, written.Len())
	}
	if !bytes.Equal(stream.Bytes(), written.Bytes()) {
		t.Fatal("streamed history differs from WriteTo")
	}
	got, err := ReadHistory(&written)
	if err != nil {
		t.Fatal(err)
	}
	if want := rec.Ops(); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the history:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var stream bytes.Buffer
	rec := NewRecorder(&stream)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for range 50 {
				rec.Record(Op{Process: p, Type: Invoke, Kind: Produce, Offset: -1})
			}
		})
	}
	wg.Wait()
	h, err := ReadHistory(&stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 200 {
		t.Fatalf("streamed %d ops, want 200", len(h))
	}
	for i, op := range h {
		if op.Index != int64(i) {
			t.Fatalf("op %d streamed with index %d", i, op.Index)
		}
	}
}

func TestReadHistoryRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":     "{\"index\":0,\"type\":\"ok\",\"kind\":\"produce\"}\n{oops\n",
		"unknown type": `{"type":"done","kind":"produce"}`,
		"unknown kind": `{"type":"ok","kind":"delete"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadHistory(strings.NewReader(in)); !errors.Is(err, ErrBadOp) {
				t.Fatalf("err = %v, want ErrBadOp", err)
			}
		})
	}
}

// FuzzReadHistory checks that no input makes the decoder or a checker panic:
// a run cut short by a crash leaves arbitrary bytes behind.
func FuzzReadHistory(f *testing.F) {
	var buf bytes.Buffer
	rec := NewRecorder(&buf)
	for _, op := range cleanHistory() {
		rec.Record(op)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"type":"ok","kind":"consume","offset":-5}` + "\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ReadHistory(bytes.NewReader(in))
		if err != nil {
			return
		}
		CheckAll(h)
		CheckAvailability(h)
	})
}
