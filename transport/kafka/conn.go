package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

// inflight is one request whose response the writer sends in order.
type inflight struct {
	done    chan struct{}
	resp    kmsg.Response
	corr    int32
	version int16
	// flexHeader is true when the response header carries tagged fields;
	// ApiVersions responses never do, so old clients can parse them.
	flexHeader bool
	api        string
	start      time.Time
	// queued is what the request holds of the server's byte budget until
	// its response is written.
	queued int64
}

// errBadRequest marks a request that closes the connection.
type errBadRequest struct{ reason, detail string }

func (e *errBadRequest) Error() string { return e.reason + ": " + e.detail }

func (s *Server) serveConn(nc net.Conn) {
	s.metrics.conns.Inc()
	defer s.metrics.conns.Dec()
	defer nc.Close()

	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	queue := make(chan *inflight, s.cfg.MaxInFlightPerConn)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop(nc, queue, cancel)
	}()

	err := s.readLoop(ctx, nc, queue)
	var bad *errBadRequest
	switch {
	case errors.As(err, &bad):
		s.metrics.badRequests.WithLabelValues(bad.reason).Inc()
		s.logger.Warn("closing connection on bad request", "remote", nc.RemoteAddr(), "reason", bad.reason, "detail", bad.detail)
		cancel()
	case err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil:
		s.logger.Debug("connection read ended", "remote", nc.RemoteAddr(), "error", err)
	}
	close(queue)
	<-writerDone
}

func (s *Server) readLoop(ctx context.Context, nc net.Conn, queue chan<- *inflight) error {
	br := bufio.NewReaderSize(nc, 64<<10)
	info := &ConnInfo{Remote: nc.RemoteAddr()}
	var sizeBuf [4]byte
	for {
		nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 8 || size > s.cfg.MaxRequestBytes {
			return &errBadRequest{"frame_size", fmt.Sprintf("frame of %d bytes (max %d)", size, s.cfg.MaxRequestBytes)}
		}
		queued, err := s.queued.acquire(ctx, int64(size))
		if err != nil {
			return err
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			s.queued.release(queued)
			return err
		}
		start := time.Now()
		req, hdr, err := s.decode(body)
		if err != nil {
			s.queued.release(queued)
			return err
		}
		if hdr.clientID != "" && info.ClientID == "" {
			info.ClientID = hdr.clientID
		}
		f := &inflight{
			done:       make(chan struct{}),
			corr:       hdr.corr,
			version:    req.GetVersion(),
			flexHeader: req.IsFlexible() && req.Key() != apiVersionsKey,
			api:        kmsg.NameForKey(req.Key()),
			start:      start,
			queued:     queued,
		}
		finish := s.serve(ctx, info, req, hdr)
		select {
		case queue <- f:
		case <-ctx.Done():
			// finish is never run: the handler's half is abandoned with
			// the connection.
			s.queued.release(queued)
			return ctx.Err()
		}
		s.workers.run(func() {
			f.resp = finish()
			close(f.done)
		})
	}
}

// serve runs the ordered half of a request and returns the concurrent half.
func (s *Server) serve(ctx context.Context, info *ConnInfo, req kmsg.Request, hdr header) func() kmsg.Response {
	if hdr.unsupportedApiVersions {
		// Kafka answers an ApiVersions request it cannot parse with a v0
		// response carrying UNSUPPORTED_VERSION and only ApiVersions' own
		// range (KIP-511), so the client retries at a version both sides
		// know. With every range, franz-go keeps the v0 answer, which has
		// no features: it then did not see transaction.version 2.
		finish := s.handler.Serve(ctx, info, req)
		return func() kmsg.Response {
			resp := finish()
			if av, ok := resp.(*kmsg.ApiVersionsResponse); ok {
				av.ErrorCode = kerr.UnsupportedVersion.Code
				keys := av.ApiKeys[:0]
				for _, k := range av.ApiKeys {
					if k.ApiKey == apiVersionsKey {
						keys = append(keys, k)
					}
				}
				av.ApiKeys = keys
			}
			return resp
		}
	}
	return s.handler.Serve(ctx, info, req)
}

type header struct {
	corr                   int32
	clientID               string
	unsupportedApiVersions bool
}

// decode parses the request header and body. Any error is a bad request
// that closes the connection.
func (s *Server) decode(body []byte) (kmsg.Request, header, error) {
	var h header
	r := kbin.Reader{Src: body}
	key, version, corr := r.Int16(), r.Int16(), r.Int32()
	clientID := r.NullableString()
	if !r.Ok() {
		return nil, h, &errBadRequest{"header", "truncated request header"}
	}
	h.corr = corr
	if clientID != nil {
		h.clientID = *clientID
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, h, &errBadRequest{"api_key", fmt.Sprintf("unknown api key %d", key)}
	}
	min, max, ok := s.handler.Versions(key)
	if !ok {
		return nil, h, &errBadRequest{"api_key", fmt.Sprintf("api %s not served", kmsg.NameForKey(key))}
	}
	if version < min || version > max {
		if key == apiVersionsKey {
			req.SetVersion(0)
			h.unsupportedApiVersions = true
			return req, h, nil
		}
		return nil, h, &errBadRequest{"api_version", fmt.Sprintf("%s v%d not in [%d, %d]", kmsg.NameForKey(key), version, min, max)}
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
		if !r.Ok() {
			return nil, h, &errBadRequest{"header", "truncated request header tags"}
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return nil, h, &errBadRequest{"body", fmt.Sprintf("%s v%d: %v", kmsg.NameForKey(key), version, err)}
	}
	return req, h, nil
}

func (s *Server) writeLoop(nc net.Conn, queue <-chan *inflight, cancel context.CancelFunc) {
	bw := bufio.NewWriterSize(nc, 64<<10)
	var buf []byte
	failed := false
	for f := range queue {
		<-f.done
		s.queued.release(f.queued)
		s.metrics.requests.WithLabelValues(f.api).Inc()
		s.metrics.duration.WithLabelValues(f.api).Observe(time.Since(f.start).Seconds())
		if failed || f.resp == nil {
			continue
		}
		if s.cfg.Faults.dropResponse(f.api) {
			s.metrics.faultDrops.WithLabelValues(f.api).Inc()
			bw.Flush()
			failed = true
			cancel()
			nc.Close()
			continue
		}
		buf = encodeResponse(buf[:0], f)
		nc.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
		_, err := bw.Write(buf)
		if err == nil && len(queue) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			failed = true
			cancel()
			nc.Close()
		}
	}
	if !failed {
		bw.Flush()
	}
}

func encodeResponse(dst []byte, f *inflight) []byte {
	f.resp.SetVersion(f.version)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(f.corr))
	if f.flexHeader {
		dst = append(dst, 0) // no tagged fields
	}
	dst = f.resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst
}
