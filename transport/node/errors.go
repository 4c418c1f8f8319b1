package node

import (
	"errors"
	"fmt"
	"net"
)

var (
	// ErrClosed is returned by every operation on a closed Transport or
	// RaftGroup. It wraps net.ErrClosed so code written against net
	// listeners (raft's accept loop among them) recognises it.
	ErrClosed = fmt.Errorf("node transport: %w", net.ErrClosed)

	// ErrUnknownNode means Config.Resolve has no address for a node id.
	ErrUnknownNode = errors.New("node transport: no address for node")

	// ErrGroupExists means a raft group of that name is already registered
	// on this Transport.
	ErrGroupExists = errors.New("node transport: raft group already registered")

	// ErrMessageTooLarge means an RPC request or response exceeds
	// MaxMessageBytes.
	ErrMessageTooLarge = errors.New("node transport: message too large")

	// ErrUnknownMethod is wrapped by the RemoteError a peer returns when no
	// handler is registered for the method.
	ErrUnknownMethod = errors.New("node transport: unknown rpc method")

	// ErrBadName means a raft group or RPC method name is empty or longer
	// than the stream header can carry.
	ErrBadName = errors.New("node transport: bad stream name")

	// ErrPeerDown means the called node's listener refused a connection
	// moments ago: its process is gone (see Config.OnPeerDown).
	ErrPeerDown = errors.New("node transport: peer's process is gone")

	errBadHello  = errors.New("node transport: bad hello")
	errBadHeader = errors.New("node transport: bad stream header")
	errBadFrame  = errors.New("node transport: bad rpc frame")
)

// RemoteError is an error returned by the handler on the called node (or by
// the called node's dispatcher, for an unknown method). Its text crossed the
// wire; its type did not.
type RemoteError struct {
	Method string
	Msg    string

	// unknownMethod is set when the peer had no handler for Method, so that
	// errors.Is(err, ErrUnknownMethod) works without parsing Msg.
	unknownMethod bool
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote %s: %s", e.Method, e.Msg)
}

// Unwrap lets callers tell "the peer has no such method" (a version skew
// during a rolling upgrade) from a failure inside the handler.
func (e *RemoteError) Unwrap() error {
	if e.unknownMethod {
		return ErrUnknownMethod
	}
	return nil
}
