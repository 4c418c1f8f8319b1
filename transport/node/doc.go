// Package node is the node-to-node transport: one TCP port per node carries
// the raft traffic of every partition (each its own hashicorp/raft group)
// and internal RPCs, multiplexed with hashicorp/yamux.
//
// # Use
//
//	t, err := node.Listen(node.Config{ID: 1, Addr: ":9093", Resolve: members.Addr})
//	sl, err := t.StreamLayer("orders-0")
//	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
//		Stream: sl, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
//	})
//	// raft servers are named node.ServerAddress(id), i.e. "2" for node 2.
//
//	t.Handle("ping", func(ctx context.Context, from int32, req []byte) ([]byte, error) { return req, nil })
//	resp, err := t.Call(ctx, 2, "ping", []byte("hi"))
//
// # Sessions
//
// A node dials each peer once, lazily, and opens all its outbound streams on
// that yamux session (the dialer is the yamux client); concurrent callers
// share the dial, and a broken session is redialed on next use. Streams the
// peer opens arrive on the session the peer dialed. A call to the node's own
// id goes through a loopback connection to its own listener, so it takes the
// same path, faults included, as a call to any other node.
//
// # Wire format
//
// All integers are big-endian.
//
//	connection: hello, then yamux
//	  hello   = "QNT1" | from int32 | to int32
//	  The acceptor closes the connection if to is not its id: the dialer
//	  resolved a stale address. Nothing is sent back.
//
//	stream: header, then kind-specific bytes
//	  header  = kind uint8 (1 raft, 2 rpc) | len uint16 | name [len]byte
//	  raft:   name is the raft group; then raft's own NetworkTransport bytes.
//	          A stream for a group not registered (yet) is closed at once;
//	          raft redials.
//	  rpc:    name is the method.
//	    request  = timeout int64 (ns left on the caller's ctx; 0 = none)
//	             | len uint32 | payload
//	    response = status uint8 (0 ok, 1 handler error, 2 unknown method)
//	             | len uint32 | payload (error text when status != 0)
//	    Payloads are limited to MaxMessageBytes. One stream per call.
//
// # Faults
//
// Config.Faults injects network faults for tests and chaos runs. Each
// transport applies the rules for the bytes it writes, so one Faults shared
// by an in-process cluster describes the whole network. A blocked route
// from A to B behaves like iptables DROP, not REJECT:
//
//   - Every byte A writes toward B, on sessions in either direction and
//     including yamux's own frames, is discarded while the write reports
//     success. B sees nothing; A's callers time out.
//   - A new session from A to B hangs for DialTimeout (or the caller's
//     deadline, if sooner) and then fails with a timeout error.
//   - With only A->B cut, B can still connect to A and A's handlers run, but
//     A's answers are lost, so B's calls time out as well.
//
// When a route's drop rule changes, both ends close their sessions with
// each other, so no yamux frame is split across the change; raft and later
// calls redial. Delay(A, B, d) makes each stream write from A to B sleep d
// first; it does not reset sessions.
package node
