package groups

import (
	"slices"
	"sort"
)

// assignment is a set of partitions by topic, each list sorted.
type assignment map[string][]int32

func (a assignment) clone() assignment {
	if a == nil {
		return nil
	}
	out := make(assignment, len(a))
	for t, ps := range a {
		out[t] = append([]int32(nil), ps...)
	}
	return out
}

func (a assignment) has(topic string, p int32) bool {
	ps := a[topic]
	i := sort.Search(len(ps), func(i int) bool { return ps[i] >= p })
	return i < len(ps) && ps[i] == p
}

func (a assignment) size() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

func (a assignment) equal(b assignment) bool {
	if a.size() != b.size() {
		return false
	}
	for t, ps := range a {
		for _, p := range ps {
			if !b.has(t, p) {
				return false
			}
		}
	}
	return true
}

// filter keeps the partitions keep accepts.
func (a assignment) filter(keep func(topic string, p int32) bool) assignment {
	out := assignment{}
	for t, ps := range a {
		for _, p := range ps {
			if keep(t, p) {
				out[t] = append(out[t], p)
			}
		}
	}
	return out
}

func (a assignment) intersects(b assignment) bool {
	for t, ps := range a {
		for _, p := range ps {
			if b.has(t, p) {
				return true
			}
		}
	}
	return false
}

// assignee is one member as an assignor sees it.
type assignee struct {
	id   string
	rack string
	// topics are the existing topics it subscribes to.
	topics map[string]bool
	// prev is its current target, kept where possible.
	prev assignment
}

// assignFunc computes a target assignment for members sorted by id over
// topics (name to partition count); racks, when it is set, gives a
// partition's replica racks. It must be deterministic: the same input
// gives the same output on every coordinator.
type assignFunc func(members []assignee, topics map[string]int32, racks func(topicPart) []string) map[string]assignment

// assignors are the server-side assignors, by the name clients ask for.
var assignors = map[string]assignFunc{
	"uniform": assignUniform,
	"range":   assignRange,
}

// assignUniform spreads partitions so that every member's count is within
// one of every other member that could take the same partitions, moving as
// few partitions from their current owner as it can (Kafka's "uniform"
// assignor is sticky in the same way). Among members it could give a
// partition to without upsetting that balance, it prefers one in the rack
// of one of the partition's replicas, so the member reads close by.
func assignUniform(members []assignee, topics map[string]int32, racks func(topicPart) []string) map[string]assignment {
	owner := map[topicPart]int{}
	load := make([]int, len(members))
	owned := make([][]topicPart, len(members))
	for i, m := range members {
		for _, t := range sortedKeys(m.prev) {
			if !m.topics[t] {
				continue
			}
			for _, p := range m.prev[t] {
				tp := topicPart{t, p}
				if _, taken := owner[tp]; taken || p >= topics[t] {
					continue
				}
				owner[tp] = i
				owned[i] = append(owned[i], tp)
				load[i]++
			}
		}
	}
	candidates := map[string][]int{}
	for _, t := range sortedKeys(topics) {
		for i, m := range members {
			if m.topics[t] {
				candidates[t] = append(candidates[t], i)
			}
		}
	}
	local := func(i int, tp topicPart) bool {
		if racks == nil || members[i].rack == "" {
			return false
		}
		return slices.Contains(racks(tp), members[i].rack)
	}
	leastLoaded := func(tp topicPart) int {
		best := -1
		for _, i := range candidates[tp.topic] {
			if best < 0 || load[i] < load[best] || (load[i] == load[best] && local(i, tp) && !local(best, tp)) {
				best = i
			}
		}
		return best
	}
	// Unowned partitions go to the least loaded candidate, the most
	// constrained partitions first.
	var free []topicPart
	for _, t := range sortedKeys(topics) {
		for p := int32(0); p < topics[t]; p++ {
			if _, ok := owner[topicPart{t, p}]; !ok && len(candidates[t]) > 0 {
				free = append(free, topicPart{t, p})
			}
		}
	}
	sort.SliceStable(free, func(i, j int) bool { return len(candidates[free[i].topic]) < len(candidates[free[j].topic]) })
	for _, tp := range free {
		i := leastLoaded(tp)
		owner[tp] = i
		owned[i] = append(owned[i], tp)
		load[i]++
	}
	// Then the most loaded member gives a partition to a candidate with at
	// least two fewer, until no such move is left.
	for moved := true; moved; {
		moved = false
		order := make([]int, len(members))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return load[order[a]] > load[order[b]] })
		for _, from := range order {
			// The partition to give away: one that is local to its new
			// owner and not to this one if there is such, else the last.
			pick, pickTo, pickLocal := -1, -1, false
			for k := len(owned[from]) - 1; k >= 0; k-- {
				tp := owned[from][k]
				to := leastLoaded(tp)
				if to < 0 || load[from]-load[to] < 2 {
					continue
				}
				if good := local(to, tp) && !local(from, tp); pick < 0 || (good && !pickLocal) {
					pick, pickTo, pickLocal = k, to, good
				}
			}
			if pick < 0 {
				continue
			}
			tp := owned[from][pick]
			owned[from] = append(owned[from][:pick], owned[from][pick+1:]...)
			owned[pickTo] = append(owned[pickTo], tp)
			load[from]--
			load[pickTo]++
			moved = true
			break
		}
	}
	out := make(map[string]assignment, len(members))
	for i, m := range members {
		out[m.id] = toAssignment(owned[i])
	}
	return out
}

// assignRange gives each member of a topic a contiguous range of its
// partitions, the first members one more when they do not divide evenly:
// members subscribed to co-partitioned topics get the same partition
// numbers of each.
func assignRange(members []assignee, topics map[string]int32, _ func(topicPart) []string) map[string]assignment {
	out := make(map[string]assignment, len(members))
	for _, m := range members {
		out[m.id] = assignment{}
	}
	for _, t := range sortedKeys(topics) {
		var subs []string
		for _, m := range members {
			if m.topics[t] {
				subs = append(subs, m.id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		n, k := topics[t], int32(len(subs))
		next := int32(0)
		for i, id := range subs {
			count := n / k
			if int32(i) < n%k {
				count++
			}
			for p := next; p < next+count; p++ {
				out[id][t] = append(out[id][t], p)
			}
			next += count
		}
	}
	for id, a := range out {
		for t, ps := range a {
			if len(ps) == 0 {
				delete(a, t)
			}
		}
		out[id] = a
	}
	return out
}

func toAssignment(tps []topicPart) assignment {
	out := assignment{}
	for _, tp := range tps {
		out[tp.topic] = append(out[tp.topic], tp.partition)
	}
	for _, ps := range out {
		sortedInt32(ps)
	}
	return out
}
