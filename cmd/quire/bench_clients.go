package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clientAcks is what one producer saw: when each acknowledged record was
// sent and acknowledged, which records those were, and how many failed.
type clientAcks struct {
	ackLog
	mu     sync.Mutex
	ids    map[string]bool
	failed atomic.Int64
}

func newClientAcks() *clientAcks { return &clientAcks{ids: map[string]bool{}} }

func (c *clientAcks) ok(id string, sent, acked time.Time) {
	c.add(sent, acked)
	c.mu.Lock()
	c.ids[id] = true
	c.mu.Unlock()
}

// around reports, for a fault at t, how many records sent before t were
// acknowledged after it (the backlog the fault caught), and the slowest
// acknowledgement in the 2 s before it.
func (c *clientAcks) around(t time.Time) (backlog int, slowest time.Duration) {
	c.ackLog.mu.Lock()
	defer c.ackLog.mu.Unlock()
	for _, a := range c.acks {
		if a.sent.Before(t) && a.acked.After(t) {
			backlog++
		}
		if a.acked.Before(t) && a.acked.After(t.Add(-2*time.Second)) {
			slowest = max(slowest, a.acked.Sub(a.sent))
		}
	}
	return backlog, slowest
}

func (c *clientAcks) acked() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.ids))
	for id := range c.ids {
		out[id] = true
	}
	return out
}

// defaultClient is a producer of one of the Kafka clients users run, on
// that client's default settings except where noted in its name: it
// writes one ~100 B record per millisecond to a topic and reports each
// acknowledgement. Each record's value starts with a unique id.
type defaultClient interface {
	name() string
	// run produces until ctx ends, then waits for what is outstanding
	// (bounded) and returns.
	run(ctx context.Context, brokers []string, topic string, acks *clientAcks) error
}

// failoverClients are the clients `quire bench failover` can drive.
var failoverClients = map[string]func(python string) defaultClient{
	"franz-go":   func(string) defaultClient { return franzClient{} },
	"sarama":     func(string) defaultClient { return saramaClient{} },
	"librdkafka": func(py string) defaultClient { return rdkafkaClient{python: py} },
}

// paddedValue is id, a space, and padding to 100 bytes.
func paddedValue(id string) []byte {
	v := make([]byte, 100)
	n := copy(v, id)
	for i := n; i < len(v); i++ {
		v[i] = ' '
	}
	return v
}

func valueID(v []byte) string {
	s := string(v)
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

type franzClient struct{}

func (franzClient) name() string { return "franz-go" }

// run uses kgo's defaults: acks=all, idempotent, 10 ms linger, 5 s
// metadata minimum age, 10 s request timeout overhead, 2 min delivery
// timeout.
func (franzClient) run(ctx context.Context, brokers []string, topic string, acks *clientAcks) error {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if os.Getenv("QUIRE_FRANZ_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for seq := 0; ctx.Err() == nil; seq++ {
		id := "franz-" + strconv.Itoa(seq)
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: paddedValue(id)}, func(_ *kgo.Record, err error) {
			if err != nil {
				acks.failed.Add(1)
				return
			}
			acks.ok(id, sent, time.Now())
		})
		time.Sleep(time.Millisecond)
	}
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cl.Flush(fctx)
}

type saramaClient struct{}

func (saramaClient) name() string { return "sarama" }

// run uses sarama.NewConfig with two changes a caller of the async
// producer must make to be measured: acks=all (sarama's default is
// WaitForLocal) and Return.Successes.
func (saramaClient) run(ctx context.Context, brokers []string, topic string, acks *clientAcks) error {
	cfg := sarama.NewConfig()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range p.Successes() {
			v, _ := m.Value.Encode()
			acks.ok(valueID(v), m.Metadata.(time.Time), time.Now())
		}
	}()
	go func() {
		defer wg.Done()
		for range p.Errors() {
			acks.failed.Add(1)
		}
	}()
	for seq := 0; ctx.Err() == nil; seq++ {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(paddedValue("sarama-" + strconv.Itoa(seq))),
			Metadata: time.Now()}
		select {
		case p.Input() <- m:
		case <-ctx.Done():
		}
		time.Sleep(time.Millisecond)
	}
	p.AsyncClose()
	wg.Wait()
	return nil
}

// rdkafkaClient drives librdkafka through confluent-kafka-python, the
// way its users do: Producer({'bootstrap.servers': ...}) and nothing
// else (librdkafka's defaults: acks=all, 30 s request timeout, 5 min
// message timeout, 100 ms retry backoff).
type rdkafkaClient struct{ python string }

func (rdkafkaClient) name() string { return "librdkafka" }

const rdkafkaScript = `
import os, sys, time
from confluent_kafka import Producer
conf = {'bootstrap.servers': sys.argv[1]}
if os.environ.get('QUIRE_RDKAFKA_DEBUG'):
    conf['debug'] = os.environ['QUIRE_RDKAFKA_DEBUG']
p = Producer(conf)
topic = sys.argv[2]
out = sys.stdout
def report(err, msg):
    v = msg.value().split(b' ', 1)[0].decode()
    if err is None:
        out.write('ack %s %d\n' % (v, time.time_ns()))
    else:
        out.write('err %s\n' % v)
    out.flush()
seq = 0
while True:
    v = 'rdkafka-%d-%d' % (seq, time.time_ns())
    p.produce(topic, v.encode().ljust(100), callback=report)
    p.poll(0)
    seq += 1
    time.sleep(0.001)
`

func (c rdkafkaClient) run(ctx context.Context, brokers []string, topic string, acks *clientAcks) error {
	cmd := exec.Command(c.python, "-c", rdkafkaScript, strings.Join(brokers, ","), topic)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if os.Getenv("QUIRE_RDKAFKA_DEBUG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("librdkafka producer (%s with confluent_kafka): %w", c.python, err)
	}
	done := make(chan error, 1)
	go func() { done <- readRdkafkaAcks(stdout, acks) }()
	select {
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		return nil
	case err := <-done:
		_ = cmd.Wait()
		return fmt.Errorf("librdkafka producer exited: %v: %s", err, oneLine(stderr.String(), 300))
	}
}

// readRdkafkaAcks parses "ack rdkafka-SEQ-SENTNS ACKEDNS" and "err ID".
func readRdkafkaAcks(r io.Reader, acks *clientAcks) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "err":
			acks.failed.Add(1)
		case len(f) == 3 && f[0] == "ack":
			parts := strings.Split(f[1], "-")
			if len(parts) != 3 {
				return fmt.Errorf("bad id %q", f[1])
			}
			sent, err1 := strconv.ParseInt(parts[2], 10, 64)
			at, err2 := strconv.ParseInt(f[2], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			acks.ok(f[1], time.Unix(0, sent), time.Unix(0, at))
		default:
			return fmt.Errorf("unexpected line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}
