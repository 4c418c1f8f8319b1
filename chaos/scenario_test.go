package chaos_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/quirelog/quire/chaos"
	"github.com/quirelog/quire/cluster/clustertest"
	"github.com/quirelog/quire/transport/node"
)

// inProcess is an in-process cluster as a chaos target: the shared fault
// hooks cut its network, and replicas are digested directly.
type inProcess struct {
	c          *clustertest.Cluster
	topic      string
	partitions int32
}

func (p inProcess) Brokers() []string { return p.c.Brokers() }

func (p inProcess) Nodes() []int32 {
	var ids []int32
	for i := 0; i < p.c.Size(); i++ {
		ids = append(ids, int32(i+1))
	}
	return ids
}

func (p inProcess) SetFaults(_ context.Context, rules []node.Rule) error {
	p.c.Faults.SetRules(rules)
	return nil
}

func (p inProcess) Replicas(_ context.Context, id int32) ([]chaos.ReplicaDigest, error) {
	n := p.c.Node(int(id - 1))
	var out []chaos.ReplicaDigest
	for part := int32(0); part < p.partitions; part++ {
		hw, sum, ok, err := n.PartitionDigest(p.topic, part)
		if !ok {
			continue
		}
		d := chaos.ReplicaDigest{Topic: p.topic, Partition: part, HW: hw, CRC32C: sum}
		if err != nil {
			d.Error = err.Error()
		}
		out = append(out, d)
	}
	return out, nil
}

// TestPartitionScenarioInProcess runs the partition scenario (isolated
// leaders, splits, bridges, one-way cuts, flapping) on an in-process
// cluster under the race detector: every checker must check something
// and find nothing. Its group members speak the next-generation protocol
// (the process-level chaos test covers the classic one).
func TestPartitionScenarioInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos scenario")
	}
	c := clustertest.Start(t, 3)
	target := inProcess{c: c, topic: "chaos", partitions: 3}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := chaos.Run(ctx, chaos.Config{Target: target, Scenario: "partition", Duration: 20 * time.Second,
		Seed: 3, Topic: target.topic, Partitions: target.partitions, Rate: 50, GroupMembers: 2, GroupProtocol: "consumer",
		GapMin: time.Second, GapMax: 2 * time.Second, FaultMin: 2 * time.Second, FaultMax: 4 * time.Second,
		Recovery: 4 * time.Second, Progress: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Results {
		if r.Checked == 0 || r.Violations > 0 {
			t.Errorf("%s", r)
		}
	}
	a := out.Availability
	t.Logf("availability: %d of %d produces ok; heal to first ok write: %v", a.OK, a.Invoked, a.Heals)
	if a.OK == 0 || len(a.Heals) == 0 || a.Unrecovered > 0 {
		t.Errorf("availability %+v: want acknowledged writes and a recovery after every heal", a)
	}
	if os.Getenv("QUIRE_CHAOS_NOTES") != "" {
		t.Logf("notes: %v", out.Notes)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", p)
	return len(p), nil
}
