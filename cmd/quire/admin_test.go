package main

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// listEnds returns each partition's high watermark.
func listEnds(t *testing.T, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(cl)
	offs, err := adm.ListEndOffsets(testCtx(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	ends := make(map[int32]int64)
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("list end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		ends[o.Partition] = o.Offset
	})
	return ends
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
