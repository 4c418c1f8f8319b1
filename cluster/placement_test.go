package cluster

import (
	"testing"

	"github.com/quirelog/quire/fsm"
)

func brokersIn(racks ...string) []*fsm.Broker {
	var out []*fsm.Broker
	for i, r := range racks {
		out = append(out, &fsm.Broker{ID: int32(i + 1), Rack: r})
	}
	return out
}

func TestPlaceIsRackAwareAndBalanced(t *testing.T) {
	// Six brokers in three racks, as ids 1-6: a a b b c c.
	brokers := brokersIn("a", "a", "b", "b", "c", "c")
	rackOf := map[int32]string{}
	for _, b := range brokers {
		rackOf[b.ID] = b.Rack
	}
	empty := &fsm.MetaState{Topics: map[string]*fsm.Topic{}}
	as := place(brokers, empty, 12, 3)
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	for p, a := range as {
		if len(a.Replicas) != 3 {
			t.Fatalf("partition %d: %v", p, a.Replicas)
		}
		racks := map[string]bool{}
		seen := map[int32]bool{}
		for _, id := range a.Replicas {
			if seen[id] {
				t.Fatalf("partition %d places broker %d twice: %v", p, id, a.Replicas)
			}
			seen[id] = true
			racks[rackOf[id]] = true
			replicas[id]++
		}
		if len(racks) != 3 {
			t.Fatalf("partition %d: replicas %v span racks %v, want all three", p, a.Replicas, racks)
		}
		leaders[a.Replicas[0]]++
		if a.Leader != -1 {
			t.Fatalf("new partition has recorded leader %d", a.Leader)
		}
	}
	for id := int32(1); id <= 6; id++ {
		if leaders[id] != 2 || replicas[id] != 6 {
			t.Fatalf("broker %d leads %d and hosts %d replicas; want 2 and 6 (%v %v)", id, leaders[id], replicas[id], leaders, replicas)
		}
	}
}

func TestPlaceStartsAtTheLeastLoadedBroker(t *testing.T) {
	brokers := brokersIn("", "", "")
	state := &fsm.MetaState{Topics: map[string]*fsm.Topic{
		"old": {Name: "old", Partitions: []fsm.Assignment{{Replicas: []int32{1, 2}}, {Replicas: []int32{2, 3}}}},
	}}
	as := place(brokers, state, 1, 2)
	if as[0].Replicas[0] != 3 {
		t.Fatalf("new single-partition topic led by %d; broker 3 leads nothing yet", as[0].Replicas[0])
	}
}
