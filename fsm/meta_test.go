package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

func metaEntry(t *testing.T, index uint64, cmd interface{}) *raft.Log {
	t.Helper()
	b, err := EncodeMeta(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

func snapshotBytes(t *testing.T, m *MetaFSM) []byte {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := store.Create(1, 1, 1, raft.Configuration{}, 1, nil)
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	return buf.Bytes()
}

func TestMetaFSMApplyAndSnapshot(t *testing.T) {
	cmds := []interface{}{
		&CreateTopicCmd{Topic: Topic{Name: "b", ID: [16]byte{2}, Partitions: []Assignment{{Replicas: []int32{1}}}}},
		&CreateTopicCmd{Topic: Topic{Name: "a", ID: [16]byte{1}, Partitions: []Assignment{{Replicas: []int32{1}}, {Replicas: []int32{1}}},
			Configs: map[string]string{"segment.bytes": "1048576", "max.message.bytes": "1000"}}},
		&CreateTopicCmd{Topic: Topic{Name: "a", ID: [16]byte{9}}},
		&AllocPIDsCmd{Count: 1000},
		&DeleteTopicCmd{Name: "b"},
		&DeleteTopicCmd{Name: "zzz"},
		&AllocPIDsCmd{Count: 1000},
		// Growing a: only from the count it has, and only the topic of
		// that id.
		&AddPartitionsCmd{Topic: "a", TopicID: [16]byte{1}, From: 2, Add: []Assignment{{Replicas: []int32{1}, Leader: -1, LeaderEpoch: -1}}},
		&AddPartitionsCmd{Topic: "a", TopicID: [16]byte{1}, From: 2, Add: []Assignment{{Replicas: []int32{1}}}},
		&AddPartitionsCmd{Topic: "a", TopicID: [16]byte{7}, From: 3, Add: []Assignment{{Replicas: []int32{1}}}},
	}
	wantErr := []error{nil, nil, kerr.TopicAlreadyExists, nil, nil, kerr.UnknownTopicOrPartition, nil,
		nil, kerr.InvalidPartitions, kerr.UnknownTopicOrPartition}
	wantPID := []int64{0, 0, 0, 1000, 0, 0, 2000, 0, 0, 0}
	m1, m2 := NewMetaFSM(), NewMetaFSM()
	var seen []uint64
	m1.OnChange(func(s *MetaState) { seen = append(seen, s.Index) })
	for i, c := range cmds {
		l := metaEntry(t, uint64(i+1), c)
		r := m1.Apply(l).(*MetaResult)
		m2.Apply(l)
		if !errors.Is(r.Err, wantErr[i]) && !(r.Err == nil && wantErr[i] == nil) {
			t.Fatalf("command %d: err %v, want %v", i, r.Err, wantErr[i])
		}
		if r.FirstProducerID != wantPID[i] {
			t.Fatalf("command %d: first producer id %d, want %d", i, r.FirstProducerID, wantPID[i])
		}
	}
	s := m1.State()
	if len(s.Topics) != 1 || s.Topics["a"] == nil || s.Topics["a"].ID != [16]byte{1} || s.NextProducerID != 3000 ||
		len(s.Topics["a"].Partitions) != 3 {
		t.Fatalf("state: %+v", s)
	}
	if len(seen) != len(cmds) {
		t.Fatalf("listeners saw %d changes, want %d", len(seen), len(cmds))
	}
	b1, b2 := snapshotBytes(t, m1), snapshotBytes(t, m2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("equal histories gave different snapshots")
	}
	m3 := NewMetaFSM()
	m3.Apply(metaEntry(t, 1, &CreateTopicCmd{Topic: Topic{Name: "stale"}}))
	if err := m3.Restore(nopCloser{bytes.NewReader(b1)}); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, m3); !bytes.Equal(got, b1) {
		t.Fatalf("restored state differs:\n%s\n%s", got, b1)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestMetaFSMLeaderRecordsOnlyMoveForward(t *testing.T) {
	m := NewMetaFSM()
	id := [16]byte{7}
	m.Apply(metaEntry(t, 1, &CreateTopicCmd{Topic: Topic{Name: "t", ID: id, Partitions: []Assignment{{Replicas: []int32{1, 2, 3}, Leader: -1}}}}))
	m.Apply(metaEntry(t, 2, &RegisterBrokerCmd{Broker: Broker{ID: 2, KafkaAddr: "h:2", NodeAddr: "h:12"}}))
	m.Apply(metaEntry(t, 3, &RegisterBrokerCmd{Broker: Broker{ID: 2, KafkaAddr: "h:22", NodeAddr: "h:12"}}))
	if b := m.State().Brokers[2]; b == nil || b.KafkaAddr != "h:22" || len(m.State().Brokers) != 1 {
		t.Fatalf("brokers: %+v", m.State().Brokers)
	}
	steps := []struct {
		cmd SetLeaderCmd
		err error
	}{
		{SetLeaderCmd{Topic: "t", TopicID: id, Partition: 0, Leader: 2, Epoch: 3, ISR: []int32{2, 1, 3}}, nil},
		{SetLeaderCmd{Topic: "t", TopicID: id, Partition: 0, Leader: 2, Epoch: 3, ISR: []int32{2, 1}}, nil}, // ISR shrink, same epoch
		{SetLeaderCmd{Topic: "t", TopicID: id, Partition: 0, Leader: 1, Epoch: 2}, kerr.FencedLeaderEpoch},  // late report
		{SetLeaderCmd{Topic: "t", TopicID: id, Partition: 0, Leader: 3, Epoch: 3}, kerr.FencedLeaderEpoch},  // two leaders in one term
		{SetLeaderCmd{Topic: "t", TopicID: [16]byte{8}, Partition: 0, Leader: 3, Epoch: 9}, kerr.UnknownTopicOrPartition},
		{SetLeaderCmd{Topic: "t", TopicID: id, Partition: 1, Leader: 3, Epoch: 9}, kerr.UnknownTopicOrPartition},
	}
	for i, st := range steps {
		r := m.Apply(metaEntry(t, uint64(4+i), &st.cmd)).(*MetaResult)
		if !errors.Is(r.Err, st.err) && !(r.Err == nil && st.err == nil) {
			t.Fatalf("step %d: err %v, want %v", i, r.Err, st.err)
		}
	}
	a := m.State().Topics["t"].Partitions[0]
	if a.Leader != 2 || a.LeaderEpoch != 3 || len(a.ISR) != 2 {
		t.Fatalf("leader record %+v", a)
	}
	// Leader reports leave the placement alone: nodes skip looking at
	// their replicas again for them.
	if got := m.State().PlacementIndex; got != 3 {
		t.Fatalf("placement index after leader reports %d, want 3 (the last registration)", got)
	}
	m.Apply(metaEntry(t, 20, &DeleteTopicCmd{Name: "t"}))
	if got := m.State().PlacementIndex; got != 20 {
		t.Fatalf("placement index after a deletion %d, want 20", got)
	}
}
