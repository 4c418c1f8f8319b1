package kafka

import "time"

// workerIdle is how long a worker waits for another request before it
// exits.
const workerIdle = 5 * time.Second

// workers runs the concurrent half of requests on goroutines that outlive
// one request. A goroutine started per request begins on a small stack
// and grows it, copying, on nearly every request that reaches Raft: about
// 5% of a broker's CPU under many small offset commits. A worker hands
// itself the next request while one is waiting and exits after workerIdle
// without one, so a burst leaves nothing behind for long.
type workers struct {
	idle chan func()
	done <-chan struct{}
}

func newWorkers(done <-chan struct{}) *workers {
	return &workers{idle: make(chan func()), done: done}
}

// run runs fn on an idle worker, or on a new one when none is idle.
func (w *workers) run(fn func()) {
	select {
	case w.idle <- fn:
	default:
		go w.work(fn)
	}
}

func (w *workers) work(fn func()) {
	fn()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case fn = <-w.idle:
			fn()
			t.Reset(workerIdle)
		case <-t.C:
			return
		case <-w.done:
			return
		}
	}
}
