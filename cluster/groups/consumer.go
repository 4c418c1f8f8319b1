package groups

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// This file is the state of a consumer group that speaks the
// next-generation protocol (KIP-848): the coordinator assigns, and members
// reconcile towards their target one heartbeat at a time.
//
// The group has an epoch, bumped whenever what the assignment depends on
// changes (members, subscriptions, the subscribed topics' partitions). The
// target assignment is computed for an epoch. Each member has its own
// epoch, which reaches the target epoch once it holds nothing that its
// target gives to another member; a partition moves only after its old
// owner has said it released it, so no two members ever own one.

// memberState is where a member is in its reconciliation.
type memberState int8

const (
	// memberStable: the member holds its target.
	memberStable memberState = iota
	// memberUnrevoked: it must release partitions first (Revoking).
	memberUnrevoked
	// memberUnreleased: it waits for partitions other members still hold.
	memberUnreleased
)

func (s memberState) String() string {
	return [...]string{"stable", "unrevoked_partitions", "unreleased_partitions"}[s]
}

// cmember is one member of a consumer group. Its exported fields are its
// stored record.
type cmember struct {
	ID                 string      `json:"-"`
	InstanceID         *string     `json:"instance_id,omitempty"`
	RackID             *string     `json:"rack_id,omitempty"`
	ClientID           string      `json:"client_id"`
	ClientHost         string      `json:"client_host"`
	Topics             []string    `json:"topics,omitempty"`
	Regex              string      `json:"regex,omitempty"`
	Assignor           string      `json:"assignor,omitempty"`
	RebalanceTimeoutMs int32       `json:"rebalance_timeout_ms"`
	Epoch              int32       `json:"epoch"`
	PrevEpoch          int32       `json:"prev_epoch"`
	State              memberState `json:"state"`
	// Left is set when a static member left saying it will be back: its
	// partitions stay reserved for its instance id until its session
	// times out.
	Left bool `json:"left,omitempty"`
	// Classic is set for a member that speaks the classic protocol.
	Classic  *classicMeta `json:"classic,omitempty"`
	Assigned assignment   `json:"assigned,omitempty"`
	Revoking assignment   `json:"revoking,omitempty"`
	Target   assignment   `json:"target,omitempty"`

	// enc is the record last written or read for the member.
	enc []byte
}

func (m *cmember) clone() *cmember {
	c := *m
	c.Topics = append([]string(nil), m.Topics...)
	c.Assigned, c.Revoking, c.Target = m.Assigned.clone(), m.Revoking.clone(), m.Target.clone()
	c.Classic = m.Classic.clone()
	return &c
}

func (m *cmember) encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

// consumerGroup is a consumer group's state. A change is made on a copy
// (clone, then mut for each member changed) and installed once written.
type consumerGroup struct {
	Epoch       int32  `json:"epoch"`
	TargetEpoch int32  `json:"target_epoch"`
	Assignor    string `json:"assignor,omitempty"`
	// Subscribed is the subscribed topics' ids and partition counts the
	// target was computed for: a change bumps the epoch.
	Subscribed string `json:"subscribed,omitempty"`

	members map[string]*cmember
	enc     []byte
	// touched members were copied by mut and may need writing; bump
	// asks refresh for a new epoch.
	touched map[string]bool
	bump    bool
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: map[string]*cmember{}, touched: map[string]bool{}}
}

func (cg *consumerGroup) clone() *consumerGroup {
	c := *cg
	c.members = make(map[string]*cmember, len(cg.members))
	for id, m := range cg.members {
		c.members[id] = m
	}
	c.touched = map[string]bool{}
	return &c
}

// mut returns a member that may be changed in this copy.
func (cg *consumerGroup) mut(id string) *cmember {
	m := cg.members[id]
	if m == nil || cg.touched[id] {
		return m
	}
	m = m.clone()
	cg.members[id] = m
	cg.touched[id] = true
	return m
}

func (cg *consumerGroup) add(m *cmember) {
	cg.members[m.ID] = m
	cg.touched[m.ID] = true
}

func (cg *consumerGroup) encode() []byte {
	b, _ := json.Marshal(cg)
	return b
}

func (cg *consumerGroup) sortedMembers() []*cmember {
	out := make([]*cmember, 0, len(cg.members))
	for _, m := range cg.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (cg *consumerGroup) static(instance string) *cmember {
	for _, m := range cg.members {
		if m.InstanceID != nil && *m.InstanceID == instance {
			return m
		}
	}
	return nil
}

// state is the group's state as ConsumerGroupDescribe names it.
func (cg *consumerGroup) state() string {
	if cg == nil || len(cg.members) == 0 {
		return "Empty"
	}
	if cg.TargetEpoch < cg.Epoch {
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.Epoch != cg.TargetEpoch || m.State != memberStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

// topicView is the cluster's topics as the assignors see them. Every
// heartbeat needs one, so the coordinator keeps it until the cluster's
// topics change, and it keeps each subscription it resolved.
type topicView struct {
	byName map[string]TopicInfo
	byID   map[[16]byte]string
	names  []string

	mu       sync.Mutex
	resolved map[string]map[string]bool
}

func newTopicView(ts []TopicInfo) *topicView {
	v := &topicView{byName: map[string]TopicInfo{}, byID: map[[16]byte]string{}, resolved: map[string]map[string]bool{}}
	for _, t := range ts {
		v.byName[t.Name] = t
		v.byID[t.ID] = t.Name
		if !t.Internal {
			v.names = append(v.names, t.Name)
		}
	}
	sort.Strings(v.names)
	return v
}

// racks is the racks of a partition's replicas.
func (v *topicView) racks(tp topicPart) []string {
	if rs := v.byName[tp.topic].Racks; int(tp.partition) < len(rs) {
		return rs[tp.partition]
	}
	return nil
}

// compileRegex compiles a subscription regex; like Kafka's, it must match
// the whole topic name. Every heartbeat resolves its group's expressions,
// so compiled ones are kept (up to a bound: clients choose them).
func compileRegex(expr string) (*regexp.Regexp, error) {
	regexMu.Lock()
	defer regexMu.Unlock()
	if re, ok := regexCache[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, err
	}
	if len(regexCache) >= 1024 {
		clear(regexCache)
	}
	regexCache[expr] = re
	return re, nil
}

var (
	regexMu    sync.Mutex
	regexCache = map[string]*regexp.Regexp{}
)

// subscribed is the existing topics a member subscribes to, by name or by
// regex; a regex never matches an internal topic. The set is shared: it
// must not be changed.
func (m *cmember) subscribed(v *topicView) map[string]bool {
	key := m.Regex + "\x00" + strings.Join(m.Topics, "\x00")
	v.mu.Lock()
	defer v.mu.Unlock()
	if out, ok := v.resolved[key]; ok {
		return out
	}
	if len(v.resolved) >= 4096 {
		clear(v.resolved)
	}
	out := map[string]bool{}
	v.resolved[key] = out
	for _, t := range m.Topics {
		if _, ok := v.byName[t]; ok {
			out[t] = true
		}
	}
	if m.Regex != "" {
		if re, err := compileRegex(m.Regex); err == nil {
			for _, t := range v.names {
				if re.MatchString(t) {
					out[t] = true
				}
			}
		}
	}
	return out
}

// refresh bumps the epoch when the subscribed topics changed and computes
// a new target when the epoch is ahead of it.
func (cg *consumerGroup) refresh(v *topicView, defaultAssignor string) {
	subs := map[string]map[string]bool{}
	union := map[string]int32{}
	for _, m := range cg.sortedMembers() {
		subs[m.ID] = m.subscribed(v)
		for t := range subs[m.ID] {
			union[t] = v.byName[t].Partitions
		}
	}
	var sig strings.Builder
	for _, t := range sortedKeys(union) {
		fmt.Fprintf(&sig, "%s:%x:%d;", t, v.byName[t].ID, union[t])
	}
	if sig.String() != cg.Subscribed || cg.bump {
		cg.Subscribed = sig.String()
		cg.Epoch++
		cg.bump = false
	}
	if cg.TargetEpoch >= cg.Epoch {
		return
	}
	name := cg.chooseAssignor(defaultAssignor)
	var in []assignee
	for _, m := range cg.sortedMembers() {
		a := assignee{id: m.ID, topics: subs[m.ID], prev: m.Target}
		if m.RackID != nil {
			a.rack = *m.RackID
		}
		in = append(in, a)
	}
	out := assignors[name](in, union, v.racks)
	for _, m := range cg.sortedMembers() {
		if t := out[m.ID]; !t.equal(m.Target) {
			cg.mut(m.ID).Target = t
		}
	}
	cg.TargetEpoch, cg.Assignor = cg.Epoch, name
}

// chooseAssignor is the assignor most members ask for, ties going to the
// first by name; with none asked, the default.
func (cg *consumerGroup) chooseAssignor(def string) string {
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.Assignor != "" {
			votes[m.Assignor]++
		}
	}
	best := def
	for _, name := range sortedKeys(votes) {
		if votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// reconcile moves a member one step towards its target. owned is what
// the member says it holds, nil when it did not say.
func (cg *consumerGroup) reconcile(id string, owned assignment) {
	m := cg.members[id]
	if m == nil || m.Left {
		return
	}
	if m.State == memberUnrevoked {
		if owned == nil || owned.intersects(m.Revoking) {
			return
		}
		m = cg.mut(id)
		m.Revoking, m.State = nil, memberStable
	}
	if m.Epoch == cg.TargetEpoch && m.State == memberStable {
		return
	}
	keep := m.Assigned.filter(m.Target.has)
	if revoke := m.Assigned.filter(func(t string, p int32) bool { return !m.Target.has(t, p) }); revoke.size() > 0 {
		m = cg.mut(id)
		m.Assigned, m.Revoking, m.State = keep, revoke, memberUnrevoked
		return
	}
	held := cg.heldByOthers(id)
	next := m.Target.filter(func(t string, p int32) bool { return !held[topicPart{t, p}] })
	state := memberStable
	if next.size() < m.Target.size() {
		state = memberUnreleased
	}
	if m.Epoch == cg.TargetEpoch && m.State == state && next.equal(m.Assigned) {
		return
	}
	m = cg.mut(id)
	if m.Epoch != cg.TargetEpoch {
		m.PrevEpoch, m.Epoch = m.Epoch, cg.TargetEpoch
	}
	m.Assigned, m.State = next, state
}

// heldByOthers is every partition another member holds or still has to
// release.
func (cg *consumerGroup) heldByOthers(id string) map[topicPart]bool {
	out := map[topicPart]bool{}
	for oid, o := range cg.members {
		if oid == id {
			continue
		}
		for _, a := range []assignment{o.Assigned, o.Revoking} {
			for t, ps := range a {
				for _, p := range ps {
					out[topicPart{t, p}] = true
				}
			}
		}
	}
	return out
}

// changes lists the records that turn old into cg: the group's record
// when it changed, each touched member's that changed, and a tombstone
// for each member gone.
func (cg *consumerGroup) changes(group string, old *consumerGroup) (keys, values [][]byte) {
	enc := cg.encode()
	if old == nil || !bytes.Equal(enc, old.enc) {
		keys, values = append(keys, cgKey(group)), append(values, enc)
	}
	cg.enc = enc
	for _, id := range sortedKeys(cg.touched) {
		m := cg.members[id]
		if m == nil {
			continue
		}
		e := m.encode()
		if bytes.Equal(e, m.enc) {
			continue
		}
		m.enc = e
		keys, values = append(keys, cmKey(group, id)), append(values, e)
	}
	if old != nil {
		for _, id := range sortedKeys(old.members) {
			if _, ok := cg.members[id]; !ok {
				keys, values = append(keys, cmKey(group, id)), append(values, nil)
			}
		}
	}
	return keys, values
}
