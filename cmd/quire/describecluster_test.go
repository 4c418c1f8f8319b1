package main

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeCluster: sarama's ClusterAdmin at V4_0_0_0 describes the
// cluster through the DescribeCluster API (it falls back to Metadata only
// when the API is missing), and a request for controller endpoints gets
// UNSUPPORTED_ENDPOINT_TYPE, as from a Kafka broker.
func TestDescribeCluster(t *testing.T) {
	b := newBroker(t)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	adm, err := sarama.NewClusterAdmin([]string{b.kafkaAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	brokers, controller, err := adm.DescribeCluster()
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || brokers[0].ID() != 1 || brokers[0].Addr() != b.kafkaAddr || controller != 1 {
		t.Fatalf("brokers %v, controller %d; want broker 1 at %s, controller 1", brokers, controller, b.kafkaAddr)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = 2
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controller endpoints: error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	req.EndpointType = 1
	if resp, err = req.RequestWith(testCtx(t, 30*time.Second), cl); err != nil || resp.ErrorCode != 0 || resp.ClusterID == "" {
		t.Fatalf("broker endpoints: %+v, %v", resp, err)
	}
}
