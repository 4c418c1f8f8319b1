// Package node is the node-to-node transport: one TCP port per node
// carries the raft traffic of every raft group on the node (each
// partition is its own hashicorp/raft group, and so is the metadata
// group), internal RPCs, and node liveness.
//
// # Use
//
//	t, err := node.Listen(node.Config{ID: 1, Addr: ":9093", Resolve: members.Addr})
//	trans, err := t.RaftGroup("orders-0") // a raft.Transport
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, trans)
//	trans.SetCommitIndex(r.CommitIndex)
//	// raft servers are named node.ServerAddress(id), i.e. "2" for node 2.
//
//	t.WatchPeers([]int32{2, 3}) // ping them; Config.OnReachability hears of changes
//
//	t.Handle("ping", func(ctx context.Context, from int32, req []byte) ([]byte, error) { return req, nil })
//	resp, err := t.Call(ctx, 2, "ping", []byte("hi"))
//
// # Raft mux
//
// Every raft group on a node shares two TCP connections to each peer: a
// control one (heartbeats, votes, pings) and a data one (appends). A call
// is a frame on one of them, not a connection of its own; frames are
// encoded by hand (raftcodec.go), not with msgpack. Frames queued while a
// write is under way leave together in the next, and lazy frames (raft
// heartbeats, appends without entries, their answers, pings) wait up to
// Config.Linger for company: the heartbeats of thousands of groups cost a
// few writes a second. Groups with short timeouts are marked urgent and
// never wait. A group's calls are handed to its raft in arrival order by a
// goroutine that runs only while some are waiting. Calls for a group not
// started yet are held a few seconds, as groups of a new topic start on
// every node at about the same time. InstallSnapshot takes a yamux stream
// of its own.
//
// Beyond raft.Transport, a RaftGroup carries the leader's commit index to
// followers on heartbeats and in a flush after each burst of appends
// (hashicorp/raft would otherwise need a short commit timeout, an append
// to every follower of every group many times a second), reports
// followers whose appends failed (Stalled), and lets the node hand its
// raft a request (Inject), such as a TimeoutNow to start an election.
//
// # Liveness
//
// WatchPeers pings each listed peer every PingInterval on the control
// connection; a peer whose pongs (or any reply) stop for LivenessTimeout
// is unreachable until it answers again, and a peer whose listener refuses
// connections after a lost session is down at once (its process is gone).
// Only round trips count, so a one-way cut makes each side unreachable to
// the other. A silence this process caused itself (it was stopped or
// starved) gives the peer a fresh timeout instead. Raft calls to an
// unreachable peer wait for it, up to the raft timeout, instead of
// failing at once into raft's retry backoff.
//
// # Sessions
//
// RPCs and snapshots run on a yamux session: a node dials each peer once,
// lazily, and opens its outbound streams on it; concurrent callers share
// the dial, and a broken session is redialed on next use. A call to the
// node's own id goes through a loopback connection to its own listener,
// so it takes the same path, faults included, as a call to any other node.
//
// # Wire format
//
// All fixed-width integers are big-endian.
//
//	connection: hello, then yamux or one raft mux stream
//	  hello   = "QNT1" | from int32 | to int32              (yamux)
//	          | "QNM1" | from int32 | to int32 | class byte  (raft mux: 'c' or 'd')
//	  The acceptor closes the connection if to is not its id: the dialer
//	  resolved a stale address. Nothing is sent back.
//
//	raft mux frame = len uint32 | type uint8 | fields (uvarints, byte strings)
//	  dialer:   define(gid, name) | call(id, gid, rpc kind, request) | ping
//	  acceptor: reply(id, status, response or error text) | pong
//
//	yamux stream: header, then kind-specific bytes
//	  header  = kind uint8 (2 rpc, 4 raft snapshot) | len uint16 | name [len]byte
//	  rpc:    name is the method.
//	    request  = timeout int64 (ns left on the caller's ctx; 0 = none)
//	             | len uint32 | payload
//	    response = status uint8 (0 ok, 1 handler error, 2 unknown method)
//	             | len uint32 | payload (error text when status != 0)
//	    Payloads are limited to MaxMessageBytes. One stream per call.
//	  raft snapshot: name is the group; a call frame, the snapshot's
//	    bytes, then a reply frame back.
//
// # Faults
//
// Config.Faults injects network faults for tests and chaos runs. Each
// transport applies the rules for the bytes it writes, so one Faults shared
// by an in-process cluster describes the whole network. A blocked route
// from A to B behaves like iptables DROP, not REJECT:
//
//   - Every byte A writes toward B, on connections in either direction and
//     including yamux's own frames, is discarded while the write reports
//     success. B sees nothing; A's callers time out.
//   - A new connection from A to B hangs for DialTimeout (or the caller's
//     deadline, if sooner) and then fails with a timeout error.
//   - With only A->B cut, B can still connect to A and A's handlers run, but
//     A's answers are lost, so B's calls time out as well.
//
// When a route's drop rule changes, both ends close their connections with
// each other, so no frame is split across the change; raft and later
// calls redial. Delay(A, B, d) makes each write from A to B sleep d first;
// it does not reset connections.
package node
