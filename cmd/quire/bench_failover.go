package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quirelog/quire/client"
)

// ackLog remembers, for a steady producer, when records produced at a
// given time were acknowledged.
type ackLog struct {
	mu   sync.Mutex
	acks []struct{ sent, acked time.Time }
}

func (l *ackLog) add(sent, acked time.Time) {
	l.mu.Lock()
	l.acks = append(l.acks, struct{ sent, acked time.Time }{sent, acked})
	l.mu.Unlock()
}

// firstAfter is the first acknowledgement of a record produced after t.
func (l *ackLog) firstAfter(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Acks are appended in time order, and a record sent after t is
	// acknowledged after t, so only the tail needs looking at.
	var best time.Time
	for i := len(l.acks) - 1; i >= 0 && l.acks[i].acked.After(t); i-- {
		if a := l.acks[i]; a.sent.After(t) {
			best = a.acked
		}
	}
	return best, !best.IsZero()
}

// benchFailovers kill -9s the leader of a replicated partition while a
// producer writes about 1,000 records/s with acks=all, and measures the
// time from the kill to the first acknowledgement of a record produced
// after it. The killed broker is restarted and the ISR is full again
// before the next round.
func benchFailovers(ctx context.Context, bc *localCluster, adm *client.Admin, o benchOpts, out, progress io.Writer) error {
	if len(bc.brokers) < 3 {
		return fmt.Errorf("--failovers needs a local cluster of 3 or more nodes")
	}
	topic := fmt.Sprintf("bench-failover-%d", time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := adm.CreateTopic(cctx, topic, 1, 3, nil)
	cancel()
	if err != nil {
		return err
	}
	p, err := client.NewProducer(client.ProducerConfig{Brokers: bc.kafkaAddrs(), Acks: client.AcksAll,
		Idempotent: true, Linger: -1, MetadataMinAge: 250 * time.Millisecond, RetryBackoff: 100 * time.Millisecond,
		ClientID: "quire-bench-failover"})
	if err != nil {
		return err
	}
	defer p.Close()
	var log ackLog
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		value := make([]byte, 100)
		for pctx.Err() == nil {
			sent := time.Now()
			p.Produce(pctx, topic, 0, nil, value, func(_ int64, err error) {
				if err == nil {
					log.add(sent, time.Now())
				}
			})
			time.Sleep(time.Millisecond)
		}
	}()
	// Time fail-overs of a running producer: one still fetching its
	// producer id when the first kill lands would also time that
	// request's own fail-over.
	if _, ok := waitAckAfter(ctx, &log, time.Now(), 60*time.Second); !ok {
		return fmt.Errorf("fail-over producer: no acknowledged write within 60s")
	}
	var times []time.Duration
	for round := 0; round < o.failovers; round++ {
		st, err := waitFullISR(ctx, adm, topic, len(bc.brokers))
		if err != nil {
			return err
		}
		victim := int(st.Leader) - 1
		bc.brokers[victim].Kill()
		// From the moment the process is gone: records sent before it
		// may still have been acknowledged by the old leader.
		killAt := time.Now()
		d, ok := waitAckAfter(ctx, &log, killAt, 30*time.Second)
		if !ok {
			fmt.Fprintf(progress, "bench: failover %d/%d: no acknowledged write within 30s of killing broker %d\n", round+1, o.failovers, victim+1)
			d = 30 * time.Second
		} else {
			fmt.Fprintf(progress, "bench: failover %d/%d: killed leader %d, first new ack after %s\n", round+1, o.failovers, victim+1, ms(d))
		}
		times = append(times, d)
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		b, err := bc.restartBroker(sctx, victim)
		cancel()
		if err != nil {
			return fmt.Errorf("restart broker %d: %w", victim+1, err)
		}
		bc.brokers[victim] = b
	}
	slices.Sort(times)
	var all []string
	for _, t := range times {
		all = append(all, ms(t))
	}
	q := func(f float64) time.Duration { return nearestRank(times, f) }
	fmt.Fprintf(out, "\nFail-over (kill -9 of the partition leader, RF=3, client metadata min age 250ms, retry backoff 100ms): %d rounds, p50 %s, p99 %s, max %s. All: %s.\n",
		len(times), ms(q(0.5)), ms(q(0.99)), ms(times[len(times)-1]), strings.Join(all, ", "))
	return nil
}

func waitFullISR(ctx context.Context, adm *client.Admin, topic string, want int) (client.PartitionState, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := adm.Partition(cctx, topic, 0)
		cancel()
		if err == nil && st.Leader > 0 && len(st.ISR) >= min(want, len(st.Replicas)) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("partition %s/0 did not get a full ISR: %+v %v", topic, st, err)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitAckAfter(ctx context.Context, log *ackLog, t time.Time, limit time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if at, ok := log.firstAfter(t); ok {
			return at.Sub(t), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, false
}

// nearestRank is the q-quantile of sorted samples by the nearest-rank
// method, so with few samples p99 is the maximum rather than an
// interpolation that hides it.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
