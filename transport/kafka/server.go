package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Handler gives meaning to Kafka requests.
type Handler interface {
	// Versions reports the inclusive version range served for an API key;
	// ok is false for keys that are not served at all.
	Versions(key int16) (min, max int16, ok bool)

	// Serve is called on the connection's reader goroutine, in request
	// order. It must do only the order-sensitive, non-blocking part of the
	// request (validation, queueing a produce) and return a function that
	// finishes the request; that function may block and runs concurrently
	// with later requests. A nil response from the function means "send
	// nothing" (produce with acks=0).
	Serve(ctx context.Context, c *ConnInfo, req kmsg.Request) func() kmsg.Response
}

// ConnInfo describes the client connection a request arrived on.
type ConnInfo struct {
	Remote   net.Addr
	ClientID string
}

// Config sets the listener's limits.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "127.0.0.1:9092".
	Addr string
	// MaxRequestBytes is the largest frame (excluding the 4-byte size
	// prefix) accepted; larger frames close the connection, as Kafka's
	// socket.request.max.bytes does. Bytes; default 100 MiB.
	MaxRequestBytes int32
	// MaxInFlightPerConn bounds the requests of one connection being
	// processed concurrently; the reader stops reading while it is reached.
	// Default 64.
	MaxInFlightPerConn int
	// IdleTimeout closes connections that send nothing for this long
	// (connections.max.idle.ms). Default 10 minutes.
	IdleTimeout time.Duration
	// MaxQueuedBytes bounds the bytes of requests read but not yet
	// answered, over all connections (queued.max.request.bytes); readers
	// stop reading while it is reached. Default 128 MiB.
	MaxQueuedBytes int64
	// Faults loses responses on purpose (fault injection); nil for none.
	Faults *Faults
}

// DefaultConfig returns the listener defaults.
func DefaultConfig() Config {
	return Config{
		Addr:               "127.0.0.1:9092",
		MaxRequestBytes:    100 << 20,
		MaxInFlightPerConn: 64,
		IdleTimeout:        10 * time.Minute,
		MaxQueuedBytes:     128 << 20,
	}
}

// Validate rejects settings out of range.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("kafka listener: addr must be set")
	case c.MaxRequestBytes < 1024:
		return fmt.Errorf("kafka listener: max request bytes %d is below 1024", c.MaxRequestBytes)
	case c.MaxInFlightPerConn < 1:
		return fmt.Errorf("kafka listener: max in-flight per connection %d must be >= 1", c.MaxInFlightPerConn)
	case c.MaxQueuedBytes < 1<<20:
		return fmt.Errorf("kafka listener: max queued bytes %d is below 1 MiB", c.MaxQueuedBytes)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("kafka listener: idle timeout %s must be > 0", c.IdleTimeout)
	}
	return nil
}

// Server is a running Kafka listener.
type Server struct {
	cfg     Config
	handler Handler
	logger  hclog.Logger
	metrics *metrics
	ln      net.Listener
	queued  *budget
	workers *workers

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// Listen opens the listener and starts accepting connections.
func Listen(cfg Config, h Handler, logger hclog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafka listener: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	queued := newBudget(cfg.MaxQueuedBytes)
	s := &Server{
		cfg:     cfg,
		handler: h,
		logger:  logger.Named("kafka"),
		ln:      ln,
		queued:  queued,
		workers: newWorkers(ctx.Done()),
		metrics: newMetrics(reg, queued),
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the bound listener address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for them.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.logger.Warn("accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	badRequests *prometheus.CounterVec
	conns       prometheus.Gauge
	// faultDrops counts responses that fault injection lost.
	faultDrops *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, queued *budget) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "quire_kafka_queued_request_bytes",
		Help: "Bytes of Kafka requests read and not yet answered (bounded by queued.max.request.bytes).",
	}, func() float64 { return float64(queued.inUse()) })
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_kafka_requests_total",
			Help: "Kafka requests served, by API.",
		}, []string{"api"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quire_kafka_request_duration_seconds",
			Help:    "Time from reading a Kafka request to its response being ready, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"api"}),
		badRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_kafka_bad_requests_total",
			Help: "Connections closed because of a bad request, by reason.",
		}, []string{"reason"}),
		conns: f.NewGauge(prometheus.GaugeOpts{
			Name: "quire_kafka_connections",
			Help: "Open Kafka client connections.",
		}),
		faultDrops: f.NewCounterVec(prometheus.CounterOpts{
			Name: "quire_kafka_fault_dropped_responses_total",
			Help: "Responses not sent, their connection closed instead, by fault injection, by API.",
		}, []string{"api"}),
	}
}
