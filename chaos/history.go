package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// OpType says where an operation stands: started, or finished with a known
// or unknown outcome.
type OpType string

const (
	Invoke OpType = "invoke"
	OK     OpType = "ok"
	Fail   OpType = "fail"
	// Info means the outcome is unknown (a timeout, a dropped connection):
	// the write may or may not have landed, so checkers must allow both.
	Info OpType = "info"
)

// OpKind says what an operation did.
type OpKind string

const (
	Produce   OpKind = "produce"
	Consume   OpKind = "consume"
	FinalRead OpKind = "final-read"
	Nemesis   OpKind = "nemesis"
	// GroupConsume is one record given to a member of the run's consumer
	// group; GroupCommit is a committed offset of the group as read back
	// (Offset) for Partition, recorded when it changes.
	GroupConsume OpKind = "group-consume"
	GroupCommit  OpKind = "group-commit"
	// Digest is one replica's state after the run: Node holds it, Offset is
	// its high watermark and Value the hex CRC-32C of its data below that.
	Digest OpKind = "digest"
	// TxnProduce is one record written inside transaction Txn: an Invoke,
	// then OK with its offset once written (not yet committed) or Info.
	TxnProduce OpKind = "txn-produce"
	// TxnEnd ends transaction Txn: the Invoke's Value is what was asked
	// ("commit" or "abort"), the OK's Value what was done; Info is an
	// unknown outcome.
	TxnEnd OpKind = "txn-end"
	// OutputRead is one record of the copier's output topic, as a
	// read_committed reader finds it after the run.
	OutputRead OpKind = "output-read"
)

// NemesisProcess is the Process of every nemesis op, so that fault injection
// never pairs with a client's invocations.
const NemesisProcess = -1

// Op is one line of a history. A produce is an Invoke followed later by an
// OK, Fail or Info op of the same Process and Value; consume and final-read
// ops are single OK ops, one per record read.
type Op struct {
	Index     int64     `json:"index"` // position in the history, assigned by the Recorder
	Time      time.Time `json:"time"`
	Process   int       `json:"process"` // client process id; NemesisProcess for the nemesis
	Type      OpType    `json:"type"`
	Kind      OpKind    `json:"kind"`
	Node      int32     `json:"node,omitempty"` // broker the client talked to, if known
	Topic     string    `json:"topic,omitempty"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`             // -1 when not known
	Value     string    `json:"value,omitempty"`    // unique per produce invocation
	Key       string    `json:"key,omitempty"`      // record key (compacted workload)
	Producer  string    `json:"producer,omitempty"` // producer identity, for reorder checks
	Seq       int64     `json:"seq,omitempty"`      // per-producer sequence of produce invocations
	Seek      bool      `json:"seek,omitempty"`     // consume: the consumer seeked before this read
	Txn       string    `json:"txn,omitempty"`      // transaction of a txn-produce or txn-end
	// MayDuplicate marks a produce from a non-idempotent producer: its
	// retries may legitimately store the value twice.
	MayDuplicate bool    `json:"may_duplicate,omitempty"`
	Fault        string  `json:"fault,omitempty"`   // nemesis: what started or stopped
	Targets      []int32 `json:"targets,omitempty"` // nemesis: every node the fault hit
	Error        string  `json:"error,omitempty"`
}

// maxLineBytes bounds one history line so that a corrupt file fails fast
// instead of being buffered whole.
const maxLineBytes = 1 << 20

// ErrBadOp is returned by ReadHistory for a line that is not a valid Op.
var ErrBadOp = errors.New("chaos: bad history op")

// Recorder collects the ops of one run. It is safe for concurrent use by
// every client process and the nemesis.
//
// It keeps the whole history in memory, because the checkers need all of it;
// a run is bounded by its duration, not by the Recorder.
type Recorder struct {
	mu  sync.Mutex    // guards ops, enc and err
	ops []Op          // in Index order
	enc *json.Encoder // nil when not streaming
	err error         // first streaming error; later writes are skipped
}

// NewRecorder returns a Recorder that also streams each op to w as a JSON
// line while recording, so a crashed run still leaves a checkable prefix.
// w may be nil.
func NewRecorder(w io.Writer) *Recorder {
	r := &Recorder{}
	if w != nil {
		r.enc = json.NewEncoder(w)
	}
	return r
}

// Record appends op and returns it as stored. The Recorder always assigns
// Index, so positions are dense and match the stream order; it stamps Time
// only when the caller left it zero, so a client can record when it actually
// acted. Times are kept in UTC so a JSON round trip reproduces them exactly.
func (r *Recorder) Record(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = int64(len(r.ops))
	if op.Time.IsZero() {
		op.Time = time.Now()
	}
	op.Time = op.Time.UTC()
	r.ops = append(r.ops, op)
	if r.enc != nil && r.err == nil {
		if err := r.enc.Encode(op); err != nil {
			r.err = fmt.Errorf("chaos: stream op %d: %w", op.Index, err)
		}
	}
	return op
}

// Err reports the first error writing the stream, if any. Recording goes on
// after a stream error so the in-memory history stays complete.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// WriteTo writes the whole history to w as JSON lines.
func (r *Recorder) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	enc := json.NewEncoder(cw)
	for _, op := range r.Ops() {
		if err := enc.Encode(op); err != nil {
			return cw.n, fmt.Errorf("chaos: write op %d: %w", op.Index, err)
		}
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadHistory parses JSON lines written by a Recorder, in file order. Blank
// lines are skipped so that hand-edited histories stay readable; an unknown
// type or kind is an error because a checker would silently ignore it.
func ReadHistory(r io.Reader) ([]Op, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var ops []Op
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var op Op
		if err := json.Unmarshal(b, &op); err != nil {
			return ops, fmt.Errorf("line %d: %w: %w", line, ErrBadOp, err)
		}
		if err := validate(op); err != nil {
			return ops, fmt.Errorf("line %d: %w", line, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return ops, fmt.Errorf("chaos: read history: %w", err)
	}
	return ops, nil
}

func validate(op Op) error {
	switch op.Type {
	case Invoke, OK, Fail, Info:
	default:
		return fmt.Errorf("%w: unknown type %q", ErrBadOp, op.Type)
	}
	switch op.Kind {
	case Produce, Consume, FinalRead, Nemesis, Digest, GroupConsume, GroupCommit, TxnProduce, TxnEnd, OutputRead:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrBadOp, op.Kind)
	}
	return nil
}
