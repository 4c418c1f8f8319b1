package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Raft RPC kinds on the wire.
const (
	rpcAppendEntries   byte = 1
	rpcRequestVote     byte = 2
	rpcRequestPreVote  byte = 3
	rpcTimeoutNow      byte = 4
	rpcInstallSnapshot byte = 5
)

var errShortMessage = errors.New("node transport: truncated raft message")

// The raft messages are encoded by hand rather than with msgpack, as
// hashicorp/raft's NetworkTransport does: a heartbeat is a dozen bytes, and
// an entry's data is copied once into the frame and read back as a slice of
// it, without reflection. Integers are uvarints; byte strings are a uvarint
// length and the bytes.

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bytes(p []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) header(h raft.RPCHeader) {
	e.uint(uint64(h.ProtocolVersion))
	e.bytes(h.ID)
	e.bytes(h.Addr)
}

// decoder reads what an encoder wrote. Byte strings are returned as
// slices of the input, which the caller must not reuse. The first error
// sticks; every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortMessage
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShortMessage
		return nil
	}
	if n == 0 {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errShortMessage
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v != 0
}

func (d *decoder) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(d.uint()), ID: d.bytes(), Addr: d.bytes()}
}

// done reports the first error, or that bytes were left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("node transport: %d bytes after a raft message", len(d.b))
	}
	return d.err
}

func encodeAppendEntries(e *encoder, r *raft.AppendEntriesRequest) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.bytes(r.Leader)
	e.uint(r.PrevLogEntry)
	e.uint(r.PrevLogTerm)
	e.uint(r.LeaderCommitIndex)
	e.uint(uint64(len(r.Entries)))
	for _, l := range r.Entries {
		e.uint(l.Index)
		e.uint(l.Term)
		e.uint(uint64(l.Type))
		e.bytes(l.Data)
		e.bytes(l.Extensions)
		var at int64
		if !l.AppendedAt.IsZero() {
			at = l.AppendedAt.UnixNano()
		}
		e.uint(uint64(at))
	}
}

// appendEntriesSize bounds the encoded size of r, so one allocation holds it.
func appendEntriesSize(r *raft.AppendEntriesRequest) int {
	n := 64 + len(r.ID) + len(r.Addr) + len(r.Leader)
	for _, l := range r.Entries {
		n += 48 + len(l.Data) + len(l.Extensions)
	}
	return n
}

func decodeAppendEntries(d *decoder) *raft.AppendEntriesRequest {
	r := &raft.AppendEntriesRequest{RPCHeader: d.header()}
	r.Term = d.uint()
	r.Leader = d.bytes()
	r.PrevLogEntry = d.uint()
	r.PrevLogTerm = d.uint()
	r.LeaderCommitIndex = d.uint()
	n := d.uint()
	// Each entry takes at least six bytes, so a bogus count fails here
	// instead of allocating.
	if d.err != nil || n > uint64(len(d.b)/6) {
		d.err = errShortMessage
		return r
	}
	if n > 0 {
		logs := make([]raft.Log, n)
		r.Entries = make([]*raft.Log, n)
		for i := range logs {
			l := &logs[i]
			l.Index = d.uint()
			l.Term = d.uint()
			l.Type = raft.LogType(d.uint())
			l.Data = d.bytes()
			l.Extensions = d.bytes()
			if at := int64(d.uint()); at != 0 {
				l.AppendedAt = time.Unix(0, at)
			}
			r.Entries[i] = l
		}
	}
	return r
}

// isHeartbeat reports whether r is one of raft's heartbeats, which it
// lets a transport hand to a fast path outside its main loop.
func isHeartbeat(r *raft.AppendEntriesRequest) bool {
	leader := r.Addr
	if len(leader) == 0 {
		leader = r.Leader
	}
	return r.Term != 0 && leader != nil && r.PrevLogEntry == 0 && r.PrevLogTerm == 0 &&
		len(r.Entries) == 0 && r.LeaderCommitIndex == 0
}

func encodeAppendEntriesResponse(e *encoder, r *raft.AppendEntriesResponse) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.uint(r.LastLog)
	e.bool(r.Success)
	e.bool(r.NoRetryBackoff)
}

func decodeAppendEntriesResponse(d *decoder, r *raft.AppendEntriesResponse) {
	r.RPCHeader = d.header()
	r.Term = d.uint()
	r.LastLog = d.uint()
	r.Success = d.bool()
	r.NoRetryBackoff = d.bool()
}

func encodeRequestVote(e *encoder, r *raft.RequestVoteRequest) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.bytes(r.Candidate)
	e.uint(r.LastLogIndex)
	e.uint(r.LastLogTerm)
	e.bool(r.LeadershipTransfer)
}

func decodeRequestVote(d *decoder) *raft.RequestVoteRequest {
	return &raft.RequestVoteRequest{RPCHeader: d.header(), Term: d.uint(), Candidate: d.bytes(),
		LastLogIndex: d.uint(), LastLogTerm: d.uint(), LeadershipTransfer: d.bool()}
}

func encodeRequestVoteResponse(e *encoder, r *raft.RequestVoteResponse) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.bytes(r.Peers)
	e.bool(r.Granted)
}

func decodeRequestVoteResponse(d *decoder, r *raft.RequestVoteResponse) {
	r.RPCHeader = d.header()
	r.Term = d.uint()
	r.Peers = d.bytes()
	r.Granted = d.bool()
}

func encodeRequestPreVote(e *encoder, r *raft.RequestPreVoteRequest) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.uint(r.LastLogIndex)
	e.uint(r.LastLogTerm)
}

func decodeRequestPreVote(d *decoder) *raft.RequestPreVoteRequest {
	return &raft.RequestPreVoteRequest{RPCHeader: d.header(), Term: d.uint(), LastLogIndex: d.uint(), LastLogTerm: d.uint()}
}

func encodeRequestPreVoteResponse(e *encoder, r *raft.RequestPreVoteResponse) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.bool(r.Granted)
}

func decodeRequestPreVoteResponse(d *decoder, r *raft.RequestPreVoteResponse) {
	r.RPCHeader = d.header()
	r.Term = d.uint()
	r.Granted = d.bool()
}

func encodeInstallSnapshot(e *encoder, r *raft.InstallSnapshotRequest) {
	e.header(r.RPCHeader)
	e.uint(uint64(r.SnapshotVersion))
	e.uint(r.Term)
	e.bytes(r.Leader)
	e.uint(r.LastLogIndex)
	e.uint(r.LastLogTerm)
	e.bytes(r.Peers)
	e.bytes(r.Configuration)
	e.uint(r.ConfigurationIndex)
	e.uint(uint64(r.Size))
}

func decodeInstallSnapshot(d *decoder) *raft.InstallSnapshotRequest {
	r := &raft.InstallSnapshotRequest{RPCHeader: d.header()}
	r.SnapshotVersion = raft.SnapshotVersion(d.uint())
	r.Term = d.uint()
	r.Leader = d.bytes()
	r.LastLogIndex = d.uint()
	r.LastLogTerm = d.uint()
	r.Peers = d.bytes()
	r.Configuration = d.bytes()
	r.ConfigurationIndex = d.uint()
	r.Size = int64(d.uint())
	if r.Size < 0 {
		d.err = fmt.Errorf("node transport: snapshot of negative size")
	}
	return r
}

func encodeInstallSnapshotResponse(e *encoder, r *raft.InstallSnapshotResponse) {
	e.header(r.RPCHeader)
	e.uint(r.Term)
	e.bool(r.Success)
}

func decodeInstallSnapshotResponse(d *decoder, r *raft.InstallSnapshotResponse) {
	r.RPCHeader = d.header()
	r.Term = d.uint()
	r.Success = d.bool()
}

// decodeRaftRequest decodes a request of kind (not InstallSnapshot, which has
// its own stream).
func decodeRaftRequest(kind byte, body []byte) (any, error) {
	d := &decoder{b: body}
	var cmd any
	switch kind {
	case rpcAppendEntries:
		cmd = decodeAppendEntries(d)
	case rpcRequestVote:
		cmd = decodeRequestVote(d)
	case rpcRequestPreVote:
		cmd = decodeRequestPreVote(d)
	case rpcTimeoutNow:
		cmd = &raft.TimeoutNowRequest{RPCHeader: d.header()}
	default:
		return nil, fmt.Errorf("node transport: unknown raft rpc kind %d", kind)
	}
	return cmd, d.done()
}

// encodeRaftResponse appends the response raft gave for a request of kind.
func encodeRaftResponse(e *encoder, kind byte, resp any) error {
	switch r := resp.(type) {
	case *raft.AppendEntriesResponse:
		encodeAppendEntriesResponse(e, r)
	case *raft.RequestVoteResponse:
		encodeRequestVoteResponse(e, r)
	case *raft.RequestPreVoteResponse:
		encodeRequestPreVoteResponse(e, r)
	case *raft.TimeoutNowResponse:
		e.header(r.RPCHeader)
	case *raft.InstallSnapshotResponse:
		encodeInstallSnapshotResponse(e, r)
	default:
		return fmt.Errorf("node transport: raft answered a kind %d request with %T", kind, resp)
	}
	return nil
}

// decodeRaftResponse decodes a response into out, which must be the response
// type of kind.
func decodeRaftResponse(body []byte, out any) error {
	d := &decoder{b: body}
	switch r := out.(type) {
	case *raft.AppendEntriesResponse:
		decodeAppendEntriesResponse(d, r)
	case *raft.RequestVoteResponse:
		decodeRequestVoteResponse(d, r)
	case *raft.RequestPreVoteResponse:
		decodeRequestPreVoteResponse(d, r)
	case *raft.TimeoutNowResponse:
		r.RPCHeader = d.header()
	case *raft.InstallSnapshotResponse:
		decodeInstallSnapshotResponse(d, r)
	default:
		return fmt.Errorf("node transport: cannot decode into %T", out)
	}
	return d.done()
}
