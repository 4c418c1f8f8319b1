package statelog

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Shard is a coordinator's state of one partition, loaded for the leader
// epoch it serves in: a new epoch gets a new shard, loaded from the log,
// because another leader may have written in between.
type Shard interface {
	Epoch() int32
	// Load rebuilds the state from the partition and then calls
	// Loading.Finish. It runs once, on its own goroutine.
	Load()
	// Drop ends the shard: requests that hold it answer NOT_COORDINATOR.
	Drop()
	// Ready waits for the load (see Loading.Ready).
	Ready(ctx context.Context) error
	// Loaded reports whether the load finished without error.
	Loaded() bool
}

// Loading is the part of a shard that says whether it has loaded and
// whether it still serves. Init it before use.
type Loading struct {
	loaded chan struct{}
	err    error
	dead   atomic.Bool
}

// Init prepares l; the shard's constructor calls it.
func (l *Loading) Init() { l.loaded = make(chan struct{}) }

// Finish marks the load done, failed when err is not nil.
func (l *Loading) Finish(err error) {
	l.err = err
	close(l.loaded)
}

// LoadWait bounds how long a request waits for a shard to load before it
// is answered COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
const LoadWait = 5 * time.Second

// Ready waits, up to LoadWait, for the load, and answers what a request
// holding the shard should: nil, or a Kafka error to return.
func (l *Loading) Ready(ctx context.Context) error {
	t := time.NewTimer(LoadWait)
	defer t.Stop()
	select {
	case <-l.loaded:
	case <-ctx.Done():
		return kerr.CoordinatorLoadInProgress
	case <-t.C:
		return kerr.CoordinatorLoadInProgress
	}
	if l.err != nil {
		return l.err
	}
	if l.dead.Load() {
		return kerr.NotCoordinator
	}
	return nil
}

// Loaded reports whether the load finished without error.
func (l *Loading) Loaded() bool {
	select {
	case <-l.loaded:
		return l.err == nil
	default:
		return false
	}
}

// Kill marks the shard dead and reports whether it was alive.
func (l *Loading) Kill() bool { return !l.dead.Swap(true) }

// Dead reports whether the shard was dropped.
func (l *Loading) Dead() bool { return l.dead.Load() }

// Shards keeps a coordinator's shards: one per partition of its internal
// topic that this node leads, for the epoch it leads in.
type Shards[S Shard] struct {
	// Leading returns the partition's log when this node leads it, else
	// the Kafka error to answer.
	Leading func(p int32) (Log, error)
	// New makes an unloaded shard.
	New func(p int32, log Log) S

	mu     sync.Mutex
	m      map[int32]S
	closed bool
}

// Get returns the partition's loaded shard, loading it when this node has
// just become its leader.
func (r *Shards[S]) Get(ctx context.Context, p int32) (S, error) {
	var none S
	log, err := r.Leading(p)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return none, kerr.CoordinatorNotAvailable
	}
	if r.m == nil {
		r.m = make(map[int32]S)
	}
	old, had := r.m[p]
	if err != nil {
		if had {
			old.Drop()
			delete(r.m, p)
		}
		r.mu.Unlock()
		return none, err
	}
	if had && old.Epoch() == log.Epoch() {
		r.mu.Unlock()
		return old, old.Ready(ctx)
	}
	if had {
		old.Drop()
	}
	s := r.New(p, log)
	r.m[p] = s
	r.mu.Unlock()
	go s.Load()
	return s, s.Ready(ctx)
}

// Sweep drops the shards of partitions this node no longer leads, so
// their timers stop and their memory is freed, and loads those it newly
// leads of the topic's partitions, before a client asks: the coordinator
// of a fail-over is ready sooner.
func (r *Shards[S]) Sweep(partitions int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[int32]S)
	}
	for p, s := range r.m {
		log, err := r.Leading(p)
		if err != nil || log.Epoch() != s.Epoch() {
			s.Drop()
			delete(r.m, p)
		}
	}
	if r.closed {
		return
	}
	for p := int32(0); p < partitions; p++ {
		if _, ok := r.m[p]; ok {
			continue
		}
		if log, err := r.Leading(p); err == nil {
			s := r.New(p, log)
			r.m[p] = s
			go s.Load()
		}
	}
}

// Close drops every shard; Get answers COORDINATOR_NOT_AVAILABLE after.
func (r *Shards[S]) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for p, s := range r.m {
		s.Drop()
		delete(r.m, p)
	}
}

// Sorted lists the shards by partition, loaded or not.
func (r *Shards[S]) Sorted() []S {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]int32, 0, len(r.m))
	for p := range r.m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	out := make([]S, 0, len(ps))
	for _, p := range ps {
		out = append(out, r.m[p])
	}
	return out
}
