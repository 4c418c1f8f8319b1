package kafka

import (
	"context"
	"sync"
)

// budget bounds the bytes of requests read but not yet answered across all
// connections (Kafka's queued.max.request.bytes), so a burst of large
// produce requests waits in the kernel's socket buffers instead of the heap.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int64
	used  int64
}

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire takes n bytes, waiting while they do not fit. A request larger
// than the whole budget is admitted alone, so it is never starved. The
// bytes taken are returned for release.
func (b *budget) acquire(ctx context.Context, n int64) (int64, error) {
	if n > b.limit {
		n = b.limit
	}
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used+n > b.limit {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b.cond.Wait()
	}
	b.used += n
	return n, nil
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
