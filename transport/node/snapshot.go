package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// InstallSnapshot implements raft.Transport. A snapshot takes a stream of
// its own, as it can be large; the time allowed grows with its size.
func (g *RaftGroup) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest,
	resp *raft.InstallSnapshotResponse, data io.Reader) error {
	peer, err := ParseServerAddress(target)
	if err != nil {
		return err
	}
	timeout := g.t.raftTimeout * time.Duration(1+args.Size/(16<<20))
	deadline := time.Now().Add(timeout)
	if !g.t.awaitReachable(peer, deadline, g.closeCh) {
		return fmt.Errorf("node %d: %w", peer, errUnreachable)
	}
	var fb frameBuf
	at := fb.begin(frameCall, false)
	e := encoder{b: fb.buf}
	encodeInstallSnapshot(&e, args)
	fb.buf = e.b
	if err := fb.end(at); err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(g.t.ctx, deadline)
	defer cancel()
	s, err := g.t.openStream(ctx, peer, kindRaftSnap, g.name, fb.buf)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(deadline)
	if _, err := io.Copy(s, data); err != nil {
		return fmt.Errorf("node %d: send snapshot: %w", peer, err)
	}
	typ, p, err := readFrame(bufio.NewReader(s))
	if err != nil {
		return fmt.Errorf("node %d: snapshot answer: %w", peer, err)
	}
	if typ != frameReply || len(p) == 0 {
		return fmt.Errorf("%w: snapshot answer of type %d", errBadFrame, typ)
	}
	switch p[0] {
	case replyOK:
		return decodeRaftResponse(p[1:], resp)
	case replyNoGroup:
		return fmt.Errorf("node %d: %w", peer, ErrNoGroup)
	default:
		return errors.New(string(p[1:]))
	}
}

// serveSnapshot answers an InstallSnapshot stream: the request, then the
// snapshot's bytes, which raft reads as it installs.
func (t *Transport) serveSnapshot(group string, c *streamConn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(headerTimeout))
	r := bufio.NewReaderSize(c, 256<<10)
	typ, p, err := readFrame(r)
	if err != nil || typ != frameCall {
		t.logger.Debug("dropping snapshot stream with a bad request", "peer", c.peer, "group", group, "error", err)
		return
	}
	d := &decoder{b: p}
	req := decodeInstallSnapshot(d)
	if err := d.done(); err != nil {
		t.logger.Debug("dropping snapshot stream with a bad request", "peer", c.peer, "group", group, "error", err)
		return
	}
	c.SetReadDeadline(time.Now().Add(t.raftTimeout * time.Duration(1+req.Size/(16<<20))))
	answered := make(chan raft.RPCResponse, 1)
	in := &inbound{rpc: raft.RPC{Command: req, Reader: io.LimitReader(r, req.Size)},
		answer: func(r raft.RPCResponse) { answered <- r }}
	if g := t.raftGroup(group); g != nil {
		g.snapshots.Add(1)
		defer g.snapshots.Add(-1)
		g.deliver(in)
	} else {
		t.hold(group, in)
	}
	var res raft.RPCResponse
	select {
	case res = <-answered:
	case <-t.ctx.Done():
		return
	}
	var fb frameBuf
	at := fb.begin(frameReply, false)
	e := encoder{b: fb.buf}
	appendReply(&e, rpcInstallSnapshot, res)
	fb.buf = e.b
	fb.end(at)
	c.SetWriteDeadline(time.Now().Add(rpcIOTimeout))
	c.Write(fb.buf)
}
