package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startCluster runs n real quire processes that form one cluster by
// gossip (bootstrap-expect n, all joining node 1) and waits until every
// one is ready.
func startCluster(t *testing.T, n int) []*broker {
	t.Helper()
	dir := t.TempDir()
	var bs []*broker
	for i := 0; i < n; i++ {
		b := &broker{t: t, id: i + 1, dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			kafkaAddr: freePort(t), adminAddr: freePort(t), nodeAddr: freePort(t), gossipAddr: freePort(t)}
		b.logPath = filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))
		bs = append(bs, b)
	}
	// Last first, a little apart: every node joins node 1, which starts
	// last, so the cluster only forms because joining is retried.
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		b.extra = []string{"--bootstrap-expect", strconv.Itoa(n), "--join", bs[0].gossipAddr}
		b.launch()
		t.Cleanup(b.stop)
		time.Sleep(300 * time.Millisecond)
	}
	for _, b := range bs {
		b.waitReady()
	}
	return bs
}

func seeds(bs []*broker) []string {
	var out []string
	for _, b := range bs {
		if b.alive() {
			out = append(out, b.kafkaAddr)
		}
	}
	return out
}

// TestThreeProcessKill9Leader runs three quire processes, produces with
// acks=all to an RF=3 topic, kill -9s the partition leader mid-stream,
// restarts it, and finds every acknowledged record at its offset on every
// broker.
func TestThreeProcessKill9Leader(t *testing.T) {
	bs := startCluster(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(bs)...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(testCtx(t, 30*time.Second), 1, 3, nil, "k9")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	leader := waitLeader(t, adm, "k9")

	var mu sync.Mutex
	var acked []ackedRecord
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			r := &kgo.Record{Topic: "k9", Partition: 0, Value: []byte(fmt.Sprintf("k9-%07d", i))}
			cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, ackedRecord{r.Partition, r.Offset, r.Value})
					mu.Unlock()
					n.Add(1)
				}
			})
			if i%32 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitCount := func(target int64) {
		deadline := time.Now().Add(90 * time.Second)
		for n.Load() < target && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n.Load() < target {
			t.Fatalf("only %d records acknowledged, waiting for %d", n.Load(), target)
		}
	}
	waitCount(2000)
	killed := bs[leader-1]
	killed.kill9()
	before := n.Load()
	t.Logf("killed leader %d after %d acknowledged records", leader, before)
	waitCount(before + 2000) // a new leader acknowledges again
	cancel()
	<-done
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	cl.Flush(fctx)
	fcancel()
	killed.start()
	mu.Lock()
	all := append([]ackedRecord(nil), acked...)
	mu.Unlock()
	t.Logf("%d records acknowledged in all", len(all))
	for _, b := range bs {
		got := consumeAllAvailable(t, b.kafkaAddr, "k9")
		checkConsumed(t, all, got)
	}
}

func waitLeader(t *testing.T, adm *kadm.Client, topic string) int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		md, err := adm.Metadata(testCtx(t, 10*time.Second), topic)
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[0]; ok && p.Leader > 0 {
				return p.Leader
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader for %s", topic)
	return -1
}
