package cluster_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/clustertest"
	"github.com/quirelog/quire/partition/batchtest"
)

// metadataOf asks one broker (its index) for a topic's metadata.
func metadataOf(t *testing.T, c *clustertest.Cluster, i int, topic string) *kmsg.MetadataResponse {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddr(i)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxT(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Right after a leader's node stops, the survivors' Metadata never names
// it: an answer waits (briefly) for the new leader instead, so a client
// does not retry against a dead node for its whole metadata refresh cycle.
func TestMetadataNeverNamesAGoneLeader(t *testing.T) {
	c := clustertest.Start(t, 3)
	createTopic(t, c, c.KafkaAddr(0), "md", 4, 3)
	old := c.Leader("md", 0)
	c.Stop(old)
	survivor := (old + 1) % 3
	start := time.Now()
	resp := metadataOf(t, c, survivor, "md")
	took := time.Since(start)
	for _, p := range resp.Topics[0].Partitions {
		if p.Leader == int32(old+1) {
			t.Fatalf("partition %d: node %d names stopped node %d as leader", p.Partition, survivor+1, old+1)
		}
		if p.Leader < 0 && took < time.Second {
			t.Fatalf("partition %d: no leader, answered after %v without waiting for the election", p.Partition, took)
		}
	}
	t.Logf("first Metadata after the stop took %v", took)
}

// A produce sent to a follower is refused with NOT_LEADER_OR_FOLLOWER and
// names the current leader and where it is (KIP-951), so the client can
// move without a metadata refresh.
func TestNotLeaderNamesTheLeader(t *testing.T) {
	c := clustertest.Start(t, 3)
	createTopic(t, c, c.KafkaAddr(0), "hint", 1, 3)
	leader := c.Leader("hint", 0)
	follower := (leader + 1) % 3
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddr(follower)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 11
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "hint"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batchtest.Build(0, batchtest.NoProducer, batchtest.Record{Value: []byte("x")})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Broker(follower+1).Request(ctxT(t, 30*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	pr := resp.(*kmsg.ProduceResponse)
	got := pr.Topics[0].Partitions[0]
	if got.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a follower: error %d, want NOT_LEADER_OR_FOLLOWER", got.ErrorCode)
	}
	_, epoch := c.Node(leader).PartitionLeader("hint", 0)
	if got.CurrentLeader.LeaderID != int32(leader+1) || got.CurrentLeader.LeaderEpoch != epoch {
		t.Fatalf("current leader %+v, want node %d epoch %d", got.CurrentLeader, leader+1, epoch)
	}
	if len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != int32(leader+1) {
		t.Fatalf("node endpoints %+v, want node %d", pr.Brokers, leader+1)
	}
}
