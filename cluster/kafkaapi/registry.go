// Package kafkaapi gives meaning to Kafka requests: one file per API key
// (named by key, as franz-go's kfake does), each registering its version
// range and handler in init. The handlers talk to the cluster through the
// narrow Broker interface, which package cluster implements.
package kafkaapi

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/transport/kafka"
)

// serveFunc starts one request: it does the order-sensitive part, if any,
// and returns the func that finishes the request (see kafka.Handler).
type serveFunc func(ctx context.Context, b Broker, c *kafka.ConnInfo, req kmsg.Request) func() kmsg.Response

// api is one served API key.
type api struct {
	min, max int16
	serve    serveFunc
}

// apis is the served version range and handler per API key. The floors are
// the oldest versions librdkafka 2.0 (kcat) and sarama's defaults send; the
// ceilings are the newest whose semantics we implement in full.
var apis = map[int16]api{}

// register serves key at versions min through max; each API file calls it
// from init.
func register(key kmsg.Key, min, max int16, serve serveFunc) {
	if _, dup := apis[int16(key)]; dup {
		panic(fmt.Sprintf("kafkaapi: %s registered twice", kmsg.NameForKey(int16(key))))
	}
	apis[int16(key)] = api{min: min, max: max, serve: serve}
}

// ordered adapts a handler that does part of its work on the connection's
// reader goroutine, in request order, and returns the rest.
func ordered[R kmsg.Request](h func(ctx context.Context, b Broker, req R) func() kmsg.Response) serveFunc {
	return func(ctx context.Context, b Broker, _ *kafka.ConnInfo, req kmsg.Request) func() kmsg.Response {
		r, ok := req.(R)
		if !ok {
			return noResponse
		}
		return h(ctx, b, r)
	}
}

// plain adapts a handler that runs entirely in the returned func.
func plain[R kmsg.Request](h func(ctx context.Context, b Broker, req R) kmsg.Response) serveFunc {
	return ordered(func(ctx context.Context, b Broker, req R) func() kmsg.Response {
		return func() kmsg.Response { return h(ctx, b, req) }
	})
}

// withConn adapts a handler that also needs to know the connection (the
// client id and address a group member is shown with).
func withConn[R kmsg.Request](h func(ctx context.Context, b Broker, c *kafka.ConnInfo, req R) kmsg.Response) serveFunc {
	return func(ctx context.Context, b Broker, c *kafka.ConnInfo, req kmsg.Request) func() kmsg.Response {
		r, ok := req.(R)
		if !ok {
			return noResponse
		}
		return func() kmsg.Response { return h(ctx, b, c, r) }
	}
}

func noResponse() kmsg.Response { return nil }

// Versions is the served version range of an API key; ok is false for
// keys that are not served.
func Versions(key int16) (min, max int16, ok bool) {
	a, ok := apis[key]
	return a.min, a.max, ok
}

// keys lists the served API keys in order.
func keys() []int16 {
	out := make([]int16, 0, len(apis))
	for k := range apis {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Handler serves the registered APIs for one broker; it implements
// kafka.Handler.
type Handler struct {
	b Broker
}

var _ kafka.Handler = (*Handler)(nil)

// New returns the Kafka handler of broker b.
func New(b Broker) *Handler { return &Handler{b: b} }

// Versions implements kafka.Handler.
func (h *Handler) Versions(key int16) (int16, int16, bool) { return Versions(key) }

// Serve implements kafka.Handler. Produce does its ordered part (queueing
// batches to partitions) here; everything else runs in the returned func.
func (h *Handler) Serve(ctx context.Context, c *kafka.ConnInfo, req kmsg.Request) func() kmsg.Response {
	// The listener accepts before the node has started; a request that
	// arrives then waits (a restarted node is dialled at once).
	if !h.b.AwaitStarted(ctx) {
		return noResponse
	}
	a, ok := apis[req.Key()]
	if !ok {
		// Versions only admits registered keys; the transport closes
		// the connection before Serve for anything else.
		return noResponse
	}
	return a.serve(ctx, h.b, c, req)
}

// requestTimeout turns a client's timeout in milliseconds into a context,
// bounded so a silly value cannot pin a goroutine forever.
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 || d > 5*time.Minute {
		d = 30 * time.Second
	}
	return context.WithTimeout(ctx, d)
}
