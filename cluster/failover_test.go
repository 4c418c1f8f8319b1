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

// Right after a leader is cut off from its peers, before the survivors'
// liveness timeout, their Metadata does not name it: they only name a
// leader that answered a ping sent after the request came, and otherwise
// wait for the election. A client whose produce to a dead leader just
// failed asks at once, and an answer naming that leader costs it a whole
// metadata cycle.
func TestMetadataConfirmsRemoteLeaders(t *testing.T) {
	c := clustertest.Start(t, 3)
	createTopic(t, c, c.KafkaAddr(0), "mdcut", 1, 3)
	old := c.Leader("mdcut", 0)
	survivor := (old + 1) % 3
	healthy := metadataOf(t, c, survivor, "mdcut").Topics[0].Partitions[0]
	if healthy.Leader != int32(old+1) {
		t.Fatalf("before the cut node %d names leader %d, want %d", survivor+1, healthy.Leader, old+1)
	}
	// A silent cut: streams stay open and say nothing (Isolate would
	// reset them, which the survivors see at once).
	for i := int32(1); i <= 3; i++ {
		if i != int32(old+1) {
			c.Faults.Delay(int32(old+1), i, 4*time.Second)
			c.Faults.Delay(i, int32(old+1), 4*time.Second)
		}
	}
	defer c.Faults.Heal()
	start := time.Now()
	p := metadataOf(t, c, survivor, "mdcut").Topics[0].Partitions[0]
	took := time.Since(start)
	if p.Leader == int32(old+1) {
		t.Fatalf("node %d names the cut-off leader %d %v after the cut", survivor+1, old+1, took)
	}
	t.Logf("first Metadata after the cut took %v and names leader %d", took, p.Leader)
}

// A produce that reaches a replica while its partition's leader is being
// elected waits for the election: it is written there if that replica
// wins, or refused naming the winner. Refused at once with no leader to
// name, franz-go waits for its next metadata refresh (5 s).
func TestProduceDuringElectionWaitsForTheWinner(t *testing.T) {
	c := clustertest.Start(t, 3)
	createTopic(t, c, c.KafkaAddr(0), "elect", 1, 3)
	old := c.Leader("elect", 0)
	follower := (old + 1) % 3
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddr(follower)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	var others []int32
	for i := 0; i < 3; i++ {
		if i != old {
			others = append(others, int32(i+1))
		}
	}
	// Isolate resets the streams, so the others know at once that the
	// old leader is gone and start an election.
	c.Faults.Isolate(int32(old+1), others...)
	defer c.Faults.Heal()
	start := time.Now()
	got := produceOneTo(t, cl, follower, "elect").Topics[0].Partitions[0]
	switch {
	case got.ErrorCode == 0:
		t.Logf("node %d won and wrote the batch after %v", follower+1, time.Since(start))
	case got.ErrorCode == kerr.NotLeaderForPartition.Code && got.CurrentLeader.LeaderID > 0 && got.CurrentLeader.LeaderID != int32(old+1):
		t.Logf("refused after %v naming the winner %d", time.Since(start), got.CurrentLeader.LeaderID)
	default:
		t.Fatalf("produce during the election: error %d, current leader %+v after %v; want success or the winner named",
			got.ErrorCode, got.CurrentLeader, time.Since(start))
	}
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
	pr := produceOneTo(t, cl, follower, "hint")
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

// produceOneTo sends one record to partition 0 of topic on node i (its
// index), with produce v11 (KIP-951 leader hints) and acks=all.
func produceOneTo(t *testing.T, cl *kgo.Client, i int, topic string) *kmsg.ProduceResponse {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 11
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batchtest.Build(0, batchtest.NoProducer, batchtest.Record{Value: []byte("x")})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Broker(i+1).Request(ctxT(t, 30*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ProduceResponse)
}
