// Package kafka is the Kafka wire listener: it accepts TCP connections, reads
// size-prefixed frames, decodes the request header and body with franz-go's
// kmsg, hands each request to a Handler and writes the responses back in
// request order.
//
// Requests on one connection are read and *started* in order (Handler.Serve
// runs on the connection's reader goroutine, so a produce request is queued
// to its partition before the next request on the connection is looked at),
// but the waiting part of each request (a Raft commit, a fetch long-poll)
// runs concurrently. That keeps Kafka's per-connection ordering guarantee
// while letting pipelined produce requests share one Raft entry.
//
// The package holds no business logic: what a request means is the
// Handler's business (see package cluster).
package kafka
