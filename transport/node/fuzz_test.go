package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	f.Add(appendHeader(nil, kindRaftSnap, "orders-0"))
	f.Add(appendHeader(nil, kindRPC, "ping"))
	f.Add([]byte{9, 0, 1, 'x'})
	f.Add([]byte{kindRPC, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, name, err := readHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		// A header that decodes must re-encode to the bytes it came from.
		again := appendHeader(nil, kind, name)
		if !bytes.HasPrefix(b, again) {
			t.Fatalf("decoded %d %q from %x, which re-encodes as %x", kind, name, b, again)
		}
	})
}

func FuzzParseHello(f *testing.F) {
	f.Add([]byte("QNT1\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Add([]byte("QNT1\xff\xff\xff\xff\x00\x00\x00\x02"))
	f.Add([]byte("QNM1\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		from, to, err := parseHello(b)
		if err == nil && (from < 0 || to < 0) {
			t.Fatalf("accepted negative ids %d, %d", from, to)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add(encodeRequest(context.Background(), []byte("hello")))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		timeout, req, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if timeout < 0 || len(req) > MaxMessageBytes {
			t.Fatalf("accepted timeout %v, %d byte request", timeout, len(req))
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add(encodeResponse(statusOK, []byte("fine")))
	f.Add(encodeResponse(statusError, []byte("broken")))
	f.Add(encodeResponse(statusUnknownMethod, []byte("nope")))
	f.Add([]byte{7, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := readResponse(bytes.NewReader(b), "m")
		var remote *RemoteError
		switch {
		case err == nil:
			if b[0] != statusOK || len(resp) > MaxMessageBytes {
				t.Fatalf("status %d accepted as success", b[0])
			}
		case errors.As(err, &remote):
			if b[0] == statusOK {
				t.Fatal("status ok decoded as a remote error")
			}
		}
	})
}
