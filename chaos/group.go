package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quirelog/quire/client"
)

// Process ids of the group workload.
const (
	firstGroupMember = 200
	commitWatcher    = 300
)

// groupName is the consumer group of a run's group workload.
func (r *run) groupName() string { return r.cfg.Topic + "-group" }

// startGroup starts the group workload: members of one consumer group
// share the topic, committing every second, while a watcher records the
// group's committed offsets. It runs until ctx ends; the run ends it after
// the producers stopped and the group drained (see drainGroup).
func (r *run) startGroup(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.GroupMembers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.groupConsume(ctx, firstGroupMember+i); err != nil {
				r.note(fmt.Sprintf("group member %d: %v", i+1, err))
			}
		}()
	}
	if r.cfg.GroupMembers > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.watchCommits(ctx, r.groupName())
		}()
	}
	return &wg
}

// groupConsume is one member: it records every record it is given.
func (r *run) groupConsume(ctx context.Context, proc int) error {
	c, err := client.NewConsumer(client.ConsumerConfig{Brokers: r.cfg.Target.Brokers(), Topic: r.cfg.Topic,
		Group: r.groupName(), CommitInterval: time.Second, SessionTimeout: 10 * time.Second, NextGen: r.cfg.GroupProtocol == "consumer",
		ClientID: fmt.Sprintf("quire-chaos-member-%d", proc)})
	if err != nil {
		return err
	}
	defer c.Close()
	for ctx.Err() == nil {
		_ = c.Poll(ctx, func(rec client.Record) {
			r.rec.Record(Op{Process: proc, Type: OK, Kind: GroupConsume, Topic: r.cfg.Topic,
				Partition: rec.Partition, Offset: rec.Offset, Value: string(rec.Value)})
			r.groupSeen(string(rec.Value))
		})
	}
	return nil
}

func (r *run) groupSeen(v string) {
	r.groupMu.Lock()
	r.groupValues[v] = true
	r.groupMu.Unlock()
}

// watchCommits records group's committed offsets whenever one changes,
// twice a second.
func (r *run) watchCommits(ctx context.Context, group string) {
	last := map[int32]int64{}
	for {
		sleepCtx(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		r.recordCommits(ctx, group, last)
	}
}

func (r *run) recordCommits(ctx context.Context, group string, last map[int32]int64) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := r.admin.CommittedOffsets(cctx, group, r.cfg.Topic)
	if err != nil {
		return
	}
	for p, o := range offs {
		if prev, ok := last[p]; ok && prev == o {
			continue
		}
		last[p] = o
		r.rec.Record(Op{Process: commitWatcher, Type: OK, Kind: GroupCommit, Topic: r.cfg.Topic, Partition: p, Offset: o})
	}
}

// drainGroup waits, at most limit, until the group has been given every
// acknowledged value, so the delivery checker judges the group and not a
// member that had no time left to catch up.
func (r *run) drainGroup(ctx context.Context, limit time.Duration) {
	if r.cfg.GroupMembers == 0 {
		return
	}
	deadline := time.Now().Add(limit)
	for {
		missing := 0
		r.groupMu.Lock()
		for _, p := range acked(r.rec.Ops()) {
			if !r.groupValues[p.invoke.Value] {
				missing++
			}
		}
		r.groupMu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.note(fmt.Sprintf("group drain: %d acknowledged values not yet given to the group after %v", missing, limit))
			return
		}
		if sleepCtx(ctx, time.Second); ctx.Err() != nil {
			return
		}
	}
}
