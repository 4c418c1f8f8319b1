package kafkaapi

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestServedVersions pins the served version ranges: the floors are what
// librdkafka 2.0 (kcat) and sarama send by default, the ceilings what is
// implemented in full.
func TestServedVersions(t *testing.T) {
	want := map[kmsg.Key][2]int16{
		kmsg.Produce:                 {3, 12},
		kmsg.Fetch:                   {4, 16},
		kmsg.ListOffsets:             {1, 11},
		kmsg.Metadata:                {0, 12},
		kmsg.ApiVersions:             {0, 4},
		kmsg.CreateTopics:            {0, 7},
		kmsg.DeleteTopics:            {0, 6},
		kmsg.InitProducerID:          {0, 4},
		kmsg.WriteTxnMarkers:         {0, 2},
		kmsg.AddPartitionsToTxn:      {0, 4},
		kmsg.AddOffsetsToTxn:         {0, 3},
		kmsg.EndTxn:                  {0, 5},
		kmsg.TxnOffsetCommit:         {0, 5},
		kmsg.DescribeTransactions:    {0, 0},
		kmsg.ListTransactions:        {0, 2},
		kmsg.DescribeCluster:         {0, 2},
		kmsg.CreatePartitions:        {0, 3},
		kmsg.DescribeConfigs:         {0, 4},
		kmsg.AlterConfigs:            {0, 2},
		kmsg.IncrementalAlterConfigs: {0, 1},
		kmsg.DeleteRecords:           {0, 2},
		kmsg.OffsetForLeaderEpoch:    {0, 4},
		kmsg.OffsetCommit:            {0, 9},
		kmsg.OffsetFetch:             {0, 9},
		kmsg.FindCoordinator:         {0, 6},
		kmsg.JoinGroup:               {0, 9},
		kmsg.Heartbeat:               {0, 4},
		kmsg.LeaveGroup:              {0, 5},
		kmsg.SyncGroup:               {0, 5},
		kmsg.DescribeGroups:          {0, 5},
		kmsg.ListGroups:              {0, 5},
		kmsg.DeleteGroups:            {0, 2},
		kmsg.OffsetDelete:            {0, 0},
		kmsg.ConsumerGroupHeartbeat:  {0, 1},
		kmsg.ConsumerGroupDescribe:   {0, 1},
	}
	if len(apis) != len(want) {
		t.Fatalf("%d APIs registered, want %d", len(apis), len(want))
	}
	for key, v := range want {
		lo, hi, ok := New(nil).Versions(int16(key))
		if !ok || lo != v[0] || hi != v[1] {
			t.Errorf("%s: v%d-%d (served %v), want v%d-%d", kmsg.NameForKey(int16(key)), lo, hi, ok, v[0], v[1])
		}
	}
	if _, _, ok := Versions(int16(kmsg.DescribeACLs)); ok {
		t.Error("DescribeACLs served")
	}
}

// TestApiVersionsListsKeysInOrder: ApiVersions advertises every
// registered key once, sorted.
func TestApiVersionsListsKeysInOrder(t *testing.T) {
	req := kmsg.NewPtrApiVersionsRequest()
	resp := serveApiVersions(t.Context(), nil, req).(*kmsg.ApiVersionsResponse)
	var got []int16
	for _, k := range resp.ApiKeys {
		got = append(got, k.ApiKey)
		lo, hi, _ := Versions(k.ApiKey)
		if k.MinVersion != lo || k.MaxVersion != hi {
			t.Errorf("key %d advertised v%d-%d, served v%d-%d", k.ApiKey, k.MinVersion, k.MaxVersion, lo, hi)
		}
	}
	if !slices.IsSorted(got) || len(got) != len(apis) {
		t.Fatalf("advertised keys %v", got)
	}
}
