package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster"
	"github.com/quirelog/quire/cluster/clustertest"
	"github.com/quirelog/quire/partition/batchtest"
)

// An idle producer's sequence state is forgotten after
// ProducerIDExpiration, on the leader's word through Raft: before, a batch
// that leaves a gap is refused; after, it is taken as a new producer's.
func TestIdleProducersExpire(t *testing.T) {
	c := clustertest.Start(t, 3, func(_ int, cfg *cluster.Config) {
		cfg.ProducerIDExpiration, cfg.ProducerIDExpirationCheck = 3*time.Second, 200*time.Millisecond
	})
	createTopic(t, c, c.KafkaAddr(0), "expiry", 1, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(seq int32) error {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "expiry"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batchtest.Idempotent(0, time.Now().UnixMilli(), 4242, 0, seq, []byte(fmt.Sprint(seq)))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		leader := c.Leader("expiry", 0)
		if leader < 0 {
			return fmt.Errorf("no leader")
		}
		resp, err := req.RequestWith(ctxT(t, 15*time.Second), cl.Broker(leader+1))
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	c.Eventually(30*time.Second, func() error { return produce(0) })
	start := time.Now()
	if err := produce(5); err != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("gap while the producer is remembered: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	c.Eventually(60*time.Second, func() error { return produce(5) })
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("producer forgotten after %s, before its expiration of 3s", waited)
	}
}
