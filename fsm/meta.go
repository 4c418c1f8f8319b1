package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Metadata-group command types: the first byte of every entry.
const (
	metaCreateTopic byte = 1
	metaDeleteTopic byte = 2
	metaAllocPIDs   byte = 3
	metaRegister    byte = 4
	metaSetLeader   byte = 5
	metaSetLeaders  byte = 6
	metaAddParts    byte = 7
	metaAlterCfgs   byte = 8
)

// Topic is a topic as the controller knows it.
type Topic struct {
	Name string `json:"name"`
	// ID is the topic's UUID, chosen by the proposer so Apply stays
	// deterministic.
	ID         [16]byte          `json:"id"`
	Partitions []Assignment      `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	// CreatedIndex is the metadata log index at which the topic was
	// created (0 for topics created before it was recorded).
	CreatedIndex uint64 `json:"created_index,omitempty"`
}

// Assignment is the replica set of one partition, preferred leader first,
// and the leader and ISR its leader last reported (KRaft's partition
// record). Leader is -1 until a leader reports.
type Assignment struct {
	Replicas    []int32 `json:"replicas"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr,omitempty"`
}

// Broker is a registered broker: where clients and peers reach it.
type Broker struct {
	ID         int32  `json:"id"`
	KafkaAddr  string `json:"kafka_addr"`
	NodeAddr   string `json:"node_addr"`
	Rack       string `json:"rack,omitempty"`
	Controller bool   `json:"controller"`
}

// MetaState is an immutable view of the cluster metadata. Never modify one
// obtained from MetaFSM.State.
type MetaState struct {
	Topics         map[string]*Topic `json:"topics"`
	Brokers        map[int32]*Broker `json:"brokers"`
	NextProducerID int64             `json:"next_producer_id"`
	Index          uint64            `json:"index"`
	// BrokerConfigs are the dynamic broker configs, under Kafka's names:
	// the cluster-wide defaults under "", one broker's under its id.
	BrokerConfigs map[string]map[string]string `json:"broker_configs,omitempty"`
	// PlacementIndex is the index of the last entry that changed topics or
	// brokers, not only leaders: what each node's set of replicas follows.
	// Leader reports are most of the entries; a node need not look at its
	// replicas again for them. It is not persisted: a restored state
	// counts as changed.
	PlacementIndex uint64 `json:"-"`
}

// SortedTopics returns the topics in name order.
func (s *MetaState) SortedTopics() []*Topic {
	out := make([]*Topic, 0, len(s.Topics))
	for _, t := range s.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SortedBrokers returns the registered brokers in id order.
func (s *MetaState) SortedBrokers() []*Broker {
	out := make([]*Broker, 0, len(s.Brokers))
	for _, b := range s.Brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TopicByID finds a topic by its UUID.
func (s *MetaState) TopicByID(id [16]byte) *Topic {
	for _, t := range s.Topics {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// CreateTopicCmd creates a topic.
type CreateTopicCmd struct {
	Topic Topic `json:"topic"`
}

// AddPartitionsCmd grows a topic: Add are the new partitions' assignments,
// appended after the From partitions the topic has. It applies only to
// the topic of that id with exactly From partitions, so two growths
// decided on one view cannot both apply.
type AddPartitionsCmd struct {
	Topic   string       `json:"topic"`
	TopicID [16]byte     `json:"topic_id"`
	From    int32        `json:"from"`
	Add     []Assignment `json:"add"`
}

// DeleteTopicCmd deletes a topic.
type DeleteTopicCmd struct {
	Name string `json:"name"`
}

// RegisterBrokerCmd adds a broker or updates its addresses.
type RegisterBrokerCmd struct {
	Broker Broker `json:"broker"`
}

// SetLeaderCmd records a partition's leader, epoch and ISR. It is applied
// only if it is not older than what is recorded, so reports that arrive
// late never move the leader back.
type SetLeaderCmd struct {
	Topic     string   `json:"topic"`
	TopicID   [16]byte `json:"topic_id"`
	Partition int32    `json:"partition"`
	Leader    int32    `json:"leader"`
	Epoch     int32    `json:"epoch"`
	ISR       []int32  `json:"isr"`
}

// SetLeadersCmd records many partitions' leaders in one entry: a node that
// wins thousands of elections at once reports them together. Each is
// applied as a SetLeaderCmd would be; stale ones are skipped.
type SetLeadersCmd struct {
	Leaders []SetLeaderCmd `json:"leaders"`
}

// AlterConfigsCmd changes the dynamic configs of a topic (Topic, TopicID)
// or of brokers (Broker: "" for the cluster-wide defaults, else a broker
// id). Replace drops every config not in Set first; otherwise Set and
// Delete change only what they name. The proposer validated the values.
type AlterConfigsCmd struct {
	Topic   string            `json:"topic,omitempty"`
	TopicID [16]byte          `json:"topic_id"`
	Broker  *string           `json:"broker,omitempty"`
	Replace bool              `json:"replace,omitempty"`
	Set     map[string]string `json:"set,omitempty"`
	Delete  []string          `json:"delete,omitempty"`
}

// AllocPIDsCmd reserves a block of producer ids.
type AllocPIDsCmd struct {
	Count int64 `json:"count"`
}

// MetaResult is what Apply returns for a metadata command.
type MetaResult struct {
	Err error
	// FirstProducerID is the start of an allocated block.
	FirstProducerID int64
}

// EncodeMeta encodes a metadata command.
func EncodeMeta(cmd interface{}) ([]byte, error) {
	var t byte
	switch cmd.(type) {
	case *CreateTopicCmd:
		t = metaCreateTopic
	case *DeleteTopicCmd:
		t = metaDeleteTopic
	case *AllocPIDsCmd:
		t = metaAllocPIDs
	case *RegisterBrokerCmd:
		t = metaRegister
	case *SetLeaderCmd:
		t = metaSetLeader
	case *SetLeadersCmd:
		t = metaSetLeaders
	case *AddPartitionsCmd:
		t = metaAddParts
	case *AlterConfigsCmd:
		t = metaAlterCfgs
	default:
		return nil, fmt.Errorf("unknown metadata command %T", cmd)
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	return append([]byte{t}, b...), nil
}

// MetaFSM is the controller's state machine. State is copy-on-write so
// readers never block Apply.
type MetaFSM struct {
	state atomic.Pointer[MetaState]

	// listenersMu guards listeners, told after each applied change.
	listenersMu sync.Mutex
	listeners   []func(*MetaState)
}

// NewMetaFSM returns an empty metadata FSM.
func NewMetaFSM() *MetaFSM {
	m := &MetaFSM{}
	m.state.Store(&MetaState{Topics: map[string]*Topic{}, Brokers: map[int32]*Broker{}, NextProducerID: 1000})
	return m
}

// State returns the current immutable view.
func (m *MetaFSM) State() *MetaState { return m.state.Load() }

// OnChange registers fn to be called (on the FSM goroutine) after every
// change; fn must not block.
func (m *MetaFSM) OnChange(fn func(*MetaState)) {
	m.listenersMu.Lock()
	m.listeners = append(m.listeners, fn)
	m.listenersMu.Unlock()
}

func (m *MetaFSM) publish(s *MetaState) {
	m.state.Store(s)
	m.listenersMu.Lock()
	ls := append([]func(*MetaState){}, m.listeners...)
	m.listenersMu.Unlock()
	for _, fn := range ls {
		fn(s)
	}
}

// Apply implements raft.FSM.
func (m *MetaFSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("metadata: empty entry %d", l.Index))
	}
	cur := m.State()
	next := &MetaState{Topics: cur.Topics, Brokers: cur.Brokers, NextProducerID: cur.NextProducerID, Index: l.Index,
		PlacementIndex: cur.PlacementIndex, BrokerConfigs: cur.BrokerConfigs}
	var res MetaResult
	var err error
	switch l.Data[0] {
	case metaCreateTopic:
		var c CreateTopicCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			c.Topic.CreatedIndex = l.Index
			res.Err = next.createTopic(&c.Topic)
			next.PlacementIndex = l.Index
		}
	case metaDeleteTopic:
		var c DeleteTopicCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			res.Err = next.deleteTopic(c.Name)
			next.PlacementIndex = l.Index
		}
	case metaAddParts:
		var c AddPartitionsCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			res.Err = next.addPartitions(&c)
			next.PlacementIndex = l.Index
		}
	case metaAlterCfgs:
		var c AlterConfigsCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			res.Err = next.alterConfigs(&c)
			next.PlacementIndex = l.Index
		}
	case metaAllocPIDs:
		var c AllocPIDsCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			res.FirstProducerID = next.NextProducerID
			next.NextProducerID += c.Count
		}
	case metaRegister:
		var c RegisterBrokerCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			next.registerBroker(&c.Broker)
			next.PlacementIndex = l.Index
		}
	case metaSetLeader:
		var c SetLeaderCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			res.Err = next.setLeaders([]SetLeaderCmd{c})
		}
	case metaSetLeaders:
		var c SetLeadersCmd
		if err = json.Unmarshal(l.Data[1:], &c); err == nil {
			next.setLeaders(c.Leaders)
		}
	default:
		err = fmt.Errorf("unknown type %d", l.Data[0])
	}
	if err != nil {
		panic(fmt.Sprintf("metadata: entry %d: %v", l.Index, err))
	}
	m.publish(next)
	return &res
}

func (s *MetaState) createTopic(t *Topic) error {
	if _, ok := s.Topics[t.Name]; ok {
		return kerr.TopicAlreadyExists
	}
	s.Topics = copyTopics(s.Topics)
	s.Topics[t.Name] = t
	return nil
}

func (s *MetaState) alterConfigs(c *AlterConfigsCmd) error {
	alter := func(old map[string]string) map[string]string {
		out := map[string]string{}
		if !c.Replace {
			for k, v := range old {
				out[k] = v
			}
		}
		for _, k := range c.Delete {
			delete(out, k)
		}
		for k, v := range c.Set {
			out[k] = v
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	if c.Broker != nil {
		all := make(map[string]map[string]string, len(s.BrokerConfigs)+1)
		for k, v := range s.BrokerConfigs {
			all[k] = v
		}
		if cfgs := alter(all[*c.Broker]); cfgs != nil {
			all[*c.Broker] = cfgs
		} else {
			delete(all, *c.Broker)
		}
		s.BrokerConfigs = all
		return nil
	}
	t, ok := s.Topics[c.Topic]
	if !ok || t.ID != c.TopicID {
		return kerr.UnknownTopicOrPartition
	}
	altered := *t
	altered.Configs = alter(t.Configs)
	s.Topics = copyTopics(s.Topics)
	s.Topics[c.Topic] = &altered
	return nil
}

func (s *MetaState) addPartitions(c *AddPartitionsCmd) error {
	t, ok := s.Topics[c.Topic]
	switch {
	case !ok || t.ID != c.TopicID:
		return kerr.UnknownTopicOrPartition
	case int32(len(t.Partitions)) != c.From || len(c.Add) == 0:
		return kerr.InvalidPartitions
	}
	nt := *t
	nt.Partitions = append(append([]Assignment(nil), t.Partitions...), c.Add...)
	s.Topics = copyTopics(s.Topics)
	s.Topics[c.Topic] = &nt
	return nil
}

func (s *MetaState) deleteTopic(name string) error {
	if _, ok := s.Topics[name]; !ok {
		return kerr.UnknownTopicOrPartition
	}
	s.Topics = copyTopics(s.Topics)
	delete(s.Topics, name)
	return nil
}

func (s *MetaState) registerBroker(b *Broker) {
	brokers := make(map[int32]*Broker, len(s.Brokers)+1)
	for k, v := range s.Brokers {
		brokers[k] = v
	}
	brokers[b.ID] = b
	s.Brokers = brokers
}

// setLeaders applies leader reports in order, copying each topic they
// touch once; it returns the error of the last one refused.
func (s *MetaState) setLeaders(cmds []SetLeaderCmd) error {
	var err error
	copied := make(map[string]*Topic)
	for i := range cmds {
		c := &cmds[i]
		t, ok := s.Topics[c.Topic]
		if !ok || t.ID != c.TopicID || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
			err = kerr.UnknownTopicOrPartition
			continue
		}
		cur := t.Partitions[c.Partition]
		if c.Epoch < cur.LeaderEpoch || (c.Epoch == cur.LeaderEpoch && cur.Leader >= 0 && c.Leader != cur.Leader) {
			err = kerr.FencedLeaderEpoch
			continue
		}
		nt := copied[t.Name]
		if nt == nil {
			if len(copied) == 0 {
				s.Topics = copyTopics(s.Topics)
			}
			cp := *t
			cp.Partitions = append([]Assignment(nil), t.Partitions...)
			nt = &cp
			copied[t.Name] = nt
			s.Topics[t.Name] = nt
		}
		nt.Partitions[c.Partition].Leader = c.Leader
		nt.Partitions[c.Partition].LeaderEpoch = c.Epoch
		nt.Partitions[c.Partition].ISR = append([]int32(nil), c.ISR...)
	}
	return err
}

func copyTopics(in map[string]*Topic) map[string]*Topic {
	out := make(map[string]*Topic, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	return out
}

// Snapshot implements raft.FSM.
func (m *MetaFSM) Snapshot() (raft.FSMSnapshot, error) {
	return &metaSnapshot{state: m.State()}, nil
}

// Restore implements raft.FSM.
func (m *MetaFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s MetaState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("metadata: restore: %w", err)
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	if s.Brokers == nil {
		s.Brokers = map[int32]*Broker{}
	}
	s.PlacementIndex = s.Index
	m.publish(&s)
	return nil
}

type metaSnapshot struct{ state *MetaState }

// Persist writes the state as JSON; encoding/json sorts map keys, so equal
// states give equal bytes.
func (s *metaSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.state); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *metaSnapshot) Release() {}
