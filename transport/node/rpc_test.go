package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRPC(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	for _, tr := range c.nodes {
		tr.Handle("echo", echo)
		tr.Handle("whoami", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
			return []byte(fmt.Sprint(from)), nil
		})
		tr.Handle("fail", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
			return nil, errors.New("disk on fire")
		})
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)

	tests := []struct {
		name    string
		from    int32
		to      int32
		method  string
		req     []byte
		want    []byte
		wantErr string // RemoteError.Msg substring
		unknown bool
	}{
		{name: "round trip", from: 1, to: 2, method: "echo", req: []byte("hi"), want: []byte("hi")},
		{name: "empty request", from: 2, to: 1, method: "echo", req: nil, want: []byte{}},
		{name: "caller id", from: 2, to: 1, method: "whoami", want: []byte("2")},
		{name: "self call", from: 1, to: 1, method: "whoami", want: []byte("1")},
		{name: "large payload", from: 1, to: 2, method: "echo", req: large, want: large},
		{name: "remote error", from: 1, to: 2, method: "fail", wantErr: "disk on fire"},
		{name: "unknown method", from: 2, to: 1, method: "nope", wantErr: "nope", unknown: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := c.nodes[tc.from].Call(ctx, tc.to, tc.method, tc.req)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("got %d bytes %.20q, want %d bytes %.20q", len(got), got, len(tc.want), tc.want)
				}
				return
			}
			var remote *RemoteError
			if !errors.As(err, &remote) {
				t.Fatalf("got %v (%T), want *RemoteError", err, err)
			}
			if remote.Method != tc.method || !bytes.Contains([]byte(remote.Msg), []byte(tc.wantErr)) {
				t.Fatalf("got %+v, want method %q and message containing %q", remote, tc.method, tc.wantErr)
			}
			if errors.Is(err, ErrUnknownMethod) != tc.unknown {
				t.Fatalf("errors.Is(ErrUnknownMethod) = %v, want %v", !tc.unknown, tc.unknown)
			}
		})
	}
}

func TestRPCConcurrent(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	for _, tr := range c.nodes {
		tr.Handle("echo", echo)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := c.ids[g%3]
			for i := range 20 {
				to := c.ids[(g+i)%3]
				req := fmt.Appendf(nil, "g%d-i%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				got, err := c.nodes[from].Call(ctx, to, "echo", req)
				cancel()
				if err == nil && !bytes.Equal(got, req) {
					err = fmt.Errorf("got %q, want %q", got, req)
				}
				if err != nil {
					errs <- fmt.Errorf("%d->%d: %w", from, to, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRPCHandlerSeesCallerDeadline(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	c.nodes[2].Handle("deadline", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.nodes[1].Call(ctx, 2, "deadline", nil); err != nil {
		t.Fatal(err)
	}
}

func TestRPCCancelledCallReturns(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	release := make(chan struct{})
	defer close(release)
	c.nodes[2].Handle("stuck", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.nodes[1].Call(ctx, 2, "stuck", nil)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestRPCStaleAddressIsRejected(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	var reached atomic.Int32
	c.nodes[3].Handle("echo", func(ctx context.Context, from int32, req []byte) ([]byte, error) {
		reached.Add(1)
		return req, nil
	})
	// Node 2 "moved": its old address now belongs to node 3.
	c.setAddr(2, c.nodes[3].Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.nodes[1].Call(ctx, 2, "echo", []byte("x")); err == nil {
		t.Fatal("call to a stale address succeeded")
	}
	if ctx.Err() != nil {
		t.Fatal("stale address was not rejected before the caller's deadline")
	}
	if reached.Load() != 0 {
		t.Fatal("node 3 served a call meant for node 2")
	}
}

func TestRPCErrors(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	tr := c.nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tr.Call(ctx, 9, "echo", nil); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: got %v, want ErrUnknownNode", err)
	}
	if _, err := tr.Call(ctx, 1, "", nil); !errors.Is(err, ErrBadName) {
		t.Errorf("empty method: got %v, want ErrBadName", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := tr.Call(ctx, 1, "echo", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: got %v, want ErrClosed", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestCluster(t, 1, nil)
	tr, err := Listen(Config{ID: 2, Addr: "127.0.0.1:0", Resolve: c.resolve, Registerer: reg, DialTimeout: testDialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c.nodes[1].Handle("echo", echo)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tr.Call(ctx, 1, "echo", nil); err != nil {
		t.Fatal(err)
	}
	tr.Call(ctx, 7, "echo", nil) // no such node: a dial failure

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = v
		}
	}
	for _, key := range []string{
		"quire_node_transport_streams_opened_total,direction=out,kind=rpc",
		"quire_node_transport_dial_failures_total",
		"quire_node_transport_sessions",
	} {
		if got[key] < 1 {
			t.Errorf("%s = %v, want >= 1 (all: %v)", key, got[key], got)
		}
	}
}
