package groups

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/partition"
)

// shard is the state of one __consumer_offsets partition while this node
// leads it in one epoch. A new epoch gets a new shard, loaded from the
// log: another leader may have written in between.
type shard struct {
	statelog.Loading
	c     *Coordinator
	part  int32
	epoch int32
	log   Log

	mu     sync.Mutex
	groups map[string]*group
	// pending holds, per producer id, the offsets its open transaction
	// committed here (see TxnOffsetCommit).
	pending map[int64][]stateRecord
}

func newShard(c *Coordinator, part int32, log Log) *shard {
	s := &shard{c: c, part: part, epoch: log.Epoch(), log: log, groups: make(map[string]*group), pending: make(map[int64][]stateRecord)}
	s.Init()
	return s
}

// Epoch is the leader epoch the shard was loaded in.
func (s *shard) Epoch() int32 { return s.epoch }

// Drop ends the shard: its timers stop acting, and requests that hold it
// answer NOT_COORDINATOR.
func (s *shard) Drop() {
	if !s.Kill() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		g.stop()
	}
}

// load replays the partition from its start to the high watermark: the
// latest record per key is the state.
func (s *shard) Load() {
	start := s.c.cfg.Now()
	records := 0
	err := statelog.Replay(s.log, func(h partition.BatchHeader, b []byte) {
		if h.IsTransactional() {
			s.replayTxn(h, b)
			return
		}
		if h.IsControl() {
			return
		}
		recs, _, err := partition.DecodeRecords(b)
		if err != nil {
			s.c.logger.Error("group state batch unreadable; skipped", "partition", s.part, "offset", h.BaseOffset, "error", err)
			return
		}
		for _, r := range recs {
			rec, err := decodeRecord(r)
			if err != nil {
				s.c.logger.Warn("group state record unreadable; skipped", "partition", s.part, "error", err)
				continue
			}
			s.replay(rec)
			records++
		}
	})
	if err != nil {
		s.c.logger.Error("group state load failed", "partition", s.part, "error", err)
		s.Finish(kerr.CoordinatorNotAvailable)
		return
	}
	s.mu.Lock()
	for _, g := range s.groups {
		g.mu.Lock()
		g.resume()
		g.mu.Unlock()
	}
	n := len(s.groups)
	s.mu.Unlock()
	s.c.logger.Info("group coordinator loaded", "partition", s.part, "epoch", s.epoch, "groups", n, "records", records, "took", s.c.cfg.Now().Sub(start))
	s.Finish(nil)
}

// replay applies one stored record to the shard's state.
func (s *shard) replay(r stateRecord) {
	g := s.groups[r.group]
	if g == nil {
		if r.tombstone {
			return
		}
		g = newGroup(s, r.group)
		s.groups[r.group] = g
	}
	switch {
	case r.isConsumer:
		g.replayConsumer(r)
	case r.isMeta && r.tombstone:
		delete(s.groups, r.group)
	case r.isMeta && g.cg != nil && len(r.meta.Members) == 0:
		// An empty classic generation written as the group turned into
		// a consumer group: the consumer group came later.
	case r.isMeta:
		g.cg = nil
		// An empty group's generation is written without waiting, so a
		// later generation's record can precede it in the log.
		if r.meta.Generation >= g.generation {
			g.restore(r.meta)
		}
	case r.tombstone:
		delete(g.offsets, topicPart{r.topic, r.partition})
	default:
		g.offsets[topicPart{r.topic, r.partition}] = committed{
			offset: r.offset.Offset, leaderEpoch: r.offset.LeaderEpoch,
			metadata: r.offset.Metadata, timestamp: r.offset.CommitTimestamp,
		}
	}
}

// group returns a group, creating it when create is set.
func (s *shard) group(id string, create bool) *group {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil && create {
		g = newGroup(s, id)
		s.groups[id] = g
	}
	return g
}

// forget removes a deleted group.
func (s *shard) forget(g *group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[g.id] == g {
		delete(s.groups, g.id)
	}
}

// sortedGroups lists the shard's groups by id.
func (s *shard) sortedGroups() []*group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// write commits records through the partition's Raft group.
func (s *shard) write(ctx context.Context, keys, values [][]byte) error {
	if s.Dead() {
		return kerr.NotCoordinator
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_, err := s.log.Append(wctx, encodeBatch(s.c.cfg.Now().UnixMilli(), keys, values))
	if err != nil {
		if kafkaerr.Code(err) == kerr.NotLeaderForPartition.Code || kafkaerr.Code(err) == kerr.NotCoordinator.Code {
			return kerr.NotCoordinator
		}
		return err
	}
	return nil
}

// writeTimeout bounds one state write.
const writeTimeout = 15 * time.Second
