package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxMessageBytes bounds an RPC request or response payload.
const MaxMessageBytes = 64 << 20

const (
	statusOK            byte = 0
	statusError         byte = 1
	statusUnknownMethod byte = 2

	// maxErrorText bounds the handler error text sent back; an error is a
	// message, not a payload.
	maxErrorText = 64 << 10

	// rpcIOTimeout bounds reading an inbound request and writing its
	// response, so a peer that stalls mid-message cannot pin a goroutine.
	rpcIOTimeout = 30 * time.Second
)

// Handler serves one RPC method. ctx carries the caller's remaining timeout
// and is cancelled when the transport closes; from is the caller's node id.
// The returned error's text reaches the caller as a RemoteError.
type Handler func(ctx context.Context, from int32, req []byte) ([]byte, error)

// Handle registers fn for method, replacing any earlier handler; a nil fn
// removes it. Methods may be registered while the transport serves.
func (t *Transport) Handle(method string, fn func(ctx context.Context, from int32, req []byte) ([]byte, error)) {
	t.handlersMu.Lock()
	defer t.handlersMu.Unlock()
	if fn == nil {
		delete(t.handlers, method)
		return
	}
	t.handlers[method] = fn
}

// Call invokes method on node to and returns its response. A call to this
// node's own id takes the same path through a loopback connection, so it
// behaves (and is fault-injected) like any other. Errors from the handler
// come back as *RemoteError; a call that gets no answer fails when ctx does.
func (t *Transport) Call(ctx context.Context, to int32, method string, req []byte) ([]byte, error) {
	if err := checkName(method); err != nil {
		return nil, err
	}
	if len(req) > MaxMessageBytes {
		return nil, fmt.Errorf("call %s: request of %d bytes: %w", method, len(req), ErrMessageTooLarge)
	}
	if t.PeerDown(to) {
		// A dial would retry the refusal for DialTimeout; the caller had
		// better look for another node (a new leader) now.
		return nil, fmt.Errorf("call %s on node %d: %w", method, to, ErrPeerDown)
	}
	if delay, dup := t.faults.RPCFault(t.id, to, method); delay > 0 || dup {
		if dup {
			go t.lateCopy(to, method, req, 2*delay)
		}
		if !t.sleep(delay) {
			return nil, fmt.Errorf("call %s on node %d: %w", method, to, ErrClosed)
		}
	}
	return t.call(ctx, to, method, req)
}

// lateCopy sends a second copy of a call after delay, for an RPC fault
// that duplicates; its answer goes nowhere, as a retransmission's would.
func (t *Transport) lateCopy(to int32, method string, req []byte, delay time.Duration) {
	if !t.sleep(delay) {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	_, _ = t.call(ctx, to, method, req)
}

// call is Call past the checks and faults.
func (t *Transport) call(ctx context.Context, to int32, method string, req []byte) ([]byte, error) {
	c, err := t.openStream(ctx, to, kindRPC, method, encodeRequest(ctx, req))
	if err != nil {
		return nil, fmt.Errorf("call %s on node %d: %w", method, to, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	resp, err := readResponse(c, method)
	var remote *RemoteError
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &remote):
		return nil, remote
	case ctx.Err() != nil:
		// The stream deadline fired because ctx did; say so in ctx's terms.
		err = ctx.Err()
	}
	return nil, fmt.Errorf("call %s on node %d: %w", method, to, err)
}

// encodeRequest frames req after the caller's remaining timeout in
// nanoseconds (0: none). A duration, not a deadline, so clock skew between
// nodes does not matter.
func encodeRequest(ctx context.Context, req []byte) []byte {
	var timeout int64
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(int64(time.Until(dl)), 1)
	}
	b := make([]byte, 0, 12+len(req))
	b = binary.BigEndian.AppendUint64(b, uint64(timeout))
	b = binary.BigEndian.AppendUint32(b, uint32(len(req)))
	return append(b, req...)
}

func readRequest(r io.Reader) (timeout time.Duration, req []byte, err error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, nil, err
	}
	timeout = time.Duration(binary.BigEndian.Uint64(b[:]))
	if timeout < 0 {
		return 0, nil, fmt.Errorf("%w: negative timeout", errBadFrame)
	}
	req, err = readPayload(r)
	return timeout, req, err
}

func readResponse(r io.Reader, method string) ([]byte, error) {
	var status [1]byte
	if _, err := io.ReadFull(r, status[:]); err != nil {
		return nil, err
	}
	payload, err := readPayload(r)
	if err != nil {
		return nil, err
	}
	switch status[0] {
	case statusOK:
		return payload, nil
	case statusError:
		return nil, &RemoteError{Method: method, Msg: string(payload)}
	case statusUnknownMethod:
		return nil, &RemoteError{Method: method, Msg: string(payload), unknownMethod: true}
	}
	return nil, fmt.Errorf("%w: status %d", errBadFrame, status[0])
}

// readPayload reads a uint32 length and that many bytes, refusing lengths
// over MaxMessageBytes before allocating.
func readPayload(r io.Reader) ([]byte, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(b[:])
	if n > MaxMessageBytes {
		return nil, fmt.Errorf("%d bytes: %w", n, ErrMessageTooLarge)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	return p, nil
}

func encodeResponse(status byte, payload []byte) []byte {
	b := make([]byte, 0, 5+len(payload))
	b = append(b, status)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// serveRPC answers one inbound call on c.
func (t *Transport) serveRPC(method string, c *streamConn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(rpcIOTimeout))
	timeout, req, err := readRequest(c)
	if err != nil {
		t.logger.Debug("dropping rpc with unreadable request", "method", method, "peer", c.peer, "error", err)
		return
	}
	ctx, cancel := t.ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(t.ctx, timeout)
	}
	status, resp := t.dispatch(ctx, method, c.peer, req)
	cancel()
	c.SetWriteDeadline(time.Now().Add(rpcIOTimeout))
	if _, err := c.Write(encodeResponse(status, resp)); err != nil {
		t.logger.Debug("rpc response not sent", "method", method, "peer", c.peer, "error", err)
	}
}

// dispatch runs method's handler and turns its outcome into a status and
// payload.
func (t *Transport) dispatch(ctx context.Context, method string, from int32, req []byte) (byte, []byte) {
	t.handlersMu.RLock()
	h := t.handlers[method]
	t.handlersMu.RUnlock()
	if h == nil {
		return statusUnknownMethod, []byte(ErrUnknownMethod.Error() + " " + method)
	}
	resp, err := h(ctx, from, req)
	if err != nil {
		msg := err.Error()
		return statusError, []byte(msg[:min(len(msg), maxErrorText)])
	}
	if len(resp) > MaxMessageBytes {
		err := fmt.Errorf("response of %d bytes: %w", len(resp), ErrMessageTooLarge)
		return statusError, []byte(err.Error())
	}
	return statusOK, resp
}
