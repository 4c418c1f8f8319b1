package gossip

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// directory maps the addresses traffic comes from and goes to onto member
// ids; Gossip is one.
type directory interface {
	// peerByAddr finds the member gossiping from or at addr (host:port).
	peerByAddr(addr string) (int32, bool)
	// peerByHost finds the only member on host; inbound streams come from
	// ephemeral ports, so only the host can identify them.
	peerByHost(host string) (int32, bool)
}

// faultTransport wraps memberlist's transport so that in-process tests can
// partition gossip the way they partition the node transport. Traffic from
// a to b is cut while blocked(a, b):
//   - outbound packets vanish, as on a lossy network;
//   - outbound dials hang for their timeout, as to a black-holed host;
//   - inbound packets and streams are discarded, which matters only when
//     the sender does not run this wrapper itself.
//
// Peers are identified by memberlist node name when the caller gives one,
// else by address; traffic to or from an unknown address passes, as does
// an inbound stream from a host that several members share.
type faultTransport struct {
	*memberlist.NetTransport
	self    int32
	blocked func(from, to int32) bool
	dir     directory

	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}  // closed when Shutdown starts: stop delivering
	drained chan struct{}  // closed once the listeners are closed
	once    sync.Once      // runs Shutdown
	shutErr error          // Shutdown's result
	wg      sync.WaitGroup // the two forwarders
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(nt *memberlist.NetTransport, self int32, blocked func(from, to int32) bool, dir directory) *faultTransport {
	t := &faultTransport{
		NetTransport: nt,
		self:         self,
		blocked:      blocked,
		dir:          dir,
		packets:      make(chan *memberlist.Packet),
		streams:      make(chan net.Conn),
		done:         make(chan struct{}),
		drained:      make(chan struct{}),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

// cutTo reports whether traffic to the peer at a is blocked.
func (t *faultTransport) cutTo(a memberlist.Address) bool {
	id, ok := idFromName(a.Name)
	if !ok {
		id, ok = t.dir.peerByAddr(a.Addr)
	}
	return ok && id != t.self && t.blocked(t.self, id)
}

// cutFrom reports whether traffic from peer id (if known) is blocked.
func (t *faultTransport) cutFrom(id int32, ok bool) bool {
	return ok && id != t.self && t.blocked(id, t.self)
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.cutTo(a) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if !t.cutTo(a) {
		return t.NetTransport.DialAddressTimeout(a, timeout)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.done:
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errBlocked}
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *faultTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the listeners. The forwarders stop delivering at once
// but keep draining until the listeners are closed: NetTransport's
// listeners block until someone takes what they read.
func (t *faultTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.shutErr = t.NetTransport.Shutdown()
		close(t.drained)
		t.wg.Wait()
	})
	return t.shutErr
}

func (t *faultTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.drained:
			return
		case p := <-in:
			if t.cutFrom(t.dir.peerByAddr(p.From.String())) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
			}
		}
	}
}

func (t *faultTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case <-t.drained:
			return
		case c := <-in:
			if t.streamCut(c) {
				_ = c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.done:
				_ = c.Close()
			}
		}
	}
}

// streamCut reports whether an inbound stream comes from a blocked peer.
func (t *faultTransport) streamCut(c net.Conn) bool {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	return err == nil && t.cutFrom(t.dir.peerByHost(host))
}
