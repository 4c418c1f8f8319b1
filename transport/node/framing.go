package node

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"
)

// Frames on a raft mux stream: a uint32 length (of what follows it), a
// type byte, and the type's fields.
const (
	frameDefine byte = 1 // gid, name: names a group for later calls on this stream
	frameCall   byte = 2 // id, gid, rpc kind, request
	framePing   byte = 3 // nothing, or one byte asking for the pong at once: the acceptor answers with a pong
	frameReply  byte = 4 // id, status, response or error text
	framePong   byte = 5 // nothing

	frameHeaderLen = 5

	// maxFrameBytes bounds one frame. The largest is an AppendEntries
	// carrying raft's MaxAppendEntries entries of up to a group-commit
	// round each.
	maxFrameBytes = 256 << 20
)

// Reply statuses.
const (
	replyOK      byte = 0
	replyError   byte = 1 // raft's error, as text
	replyNoGroup byte = 2 // the group does not run on the answering node
)

// frameBuf is the frames queued for one stream. Whoever queues a frame
// appends it to buf under the owner's lock; a writer goroutine takes the
// whole buffer and writes it at once, so frames queued while a write is
// under way leave together in the next one: heartbeats of every group,
// replies to many calls, one syscall.
type frameBuf struct {
	buf    []byte
	frames int
	// lazy is true while everything queued may wait out the linger
	// (heartbeats and their replies); lazySince is when the first of
	// them was queued.
	lazy      bool
	lazySince time.Time
	// kick is set when the writer must be woken for what was queued.
	kick bool
}

// needKick reports, once, whether the writer must be woken.
func (f *frameBuf) needKick() bool {
	k := f.kick
	f.kick = false
	return k
}

// begin starts a frame of typ and returns the offset to pass to end.
// The writer needs a kick only when the first frame arrives, or the first
// urgent one: it sleeps through the linger otherwise, and a wake per lazy
// frame would cost as much as the writes the linger saves.
func (f *frameBuf) begin(typ byte, lazy bool) int {
	if len(f.buf) == 0 {
		f.lazy = true
		f.lazySince = time.Now()
		f.kick = true
	}
	if !lazy {
		if f.lazy {
			f.kick = true
		}
		f.lazy = false
	}
	f.frames++
	at := len(f.buf)
	f.buf = append(f.buf, 0, 0, 0, 0, typ)
	return at
}

// end patches the length of the frame begun at at.
func (f *frameBuf) end(at int) error {
	n := len(f.buf) - at - 4
	if n > maxFrameBytes {
		f.buf = f.buf[:at]
		return fmt.Errorf("frame of %d bytes: %w", n, ErrMessageTooLarge)
	}
	binary.BigEndian.PutUint32(f.buf[at:], uint32(n))
	return nil
}

// frameWriter drains a frameBuf guarded by mu into w.
type frameWriter struct {
	mu     *sync.Mutex
	frames *frameBuf
	wake   chan struct{}
	// linger is how long lazy frames may wait for company.
	linger time.Duration
	m      *metrics
}

func newFrameWriter(mu *sync.Mutex, frames *frameBuf, linger time.Duration, m *metrics) *frameWriter {
	return &frameWriter{mu: mu, frames: frames, wake: make(chan struct{}, 1), linger: linger, m: m}
}

// kick tells the writer that frames are queued.
func (w *frameWriter) kick() { kick(w.wake) }

// run writes queued frames until a write fails or done closes.
func (w *frameWriter) run(out io.Writer, done <-chan struct{}) error {
	var spare []byte
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-w.wake:
		case <-done:
			return nil
		}
		for {
			w.mu.Lock()
			f := w.frames
			if len(f.buf) == 0 {
				w.mu.Unlock()
				break
			}
			if f.lazy && w.linger > 0 {
				if wait := w.linger - time.Since(f.lazySince); wait > 0 {
					f.kick = false // an urgent frame still kicks
					w.mu.Unlock()
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-w.wake:
						timer.Stop()
					case <-done:
						return nil
					}
					continue
				}
			}
			buf, n := f.buf, f.frames
			f.buf, f.frames = spare[:0], 0
			w.mu.Unlock()
			if _, err := out.Write(buf); err != nil {
				return err
			}
			w.m.muxWrite(n, len(buf))
			// Keep the buffer for the next round unless a burst grew it
			// far past what steady traffic needs.
			if cap(buf) <= 4<<20 {
				spare = buf
			} else {
				spare = nil
			}
		}
	}
}

// kick wakes a goroutine waiting on ch without blocking; wakes coalesce.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// readFrame reads one frame, allocating its payload afresh: decoded
// messages keep slices of it.
func readFrame(r *bufio.Reader) (typ byte, payload []byte, err error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > maxFrameBytes {
		return 0, nil, fmt.Errorf("%w: frame length %d", errBadFrame, n)
	}
	payload = make([]byte, n-1)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[4], payload, nil
}
