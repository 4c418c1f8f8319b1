package main

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// listEnds returns each partition's high watermark. Right after a restart
// or fail-over a partition may briefly have no leader, so it retries for a
// while, as a client would.
func listEnds(t *testing.T, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := adm.ListEndOffsets(testCtx(t, 30*time.Second), topic)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			ends := make(map[int32]int64)
			offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			return ends
		}
		if time.Now().After(deadline) {
			t.Fatalf("list end offsets of %s: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func listEndsAddr(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return listEnds(t, cl, topic)
}
