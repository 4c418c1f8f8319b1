package kafka

import (
	"sync"
	"testing"
	"time"
)

// Every function runs, a blocked one never holds up the others, and idle
// workers are reused rather than one started per call.
func TestWorkersRunEverythingConcurrently(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	w := newWorkers(done)
	release := make(chan struct{})
	blocked := make(chan struct{})
	w.run(func() { close(blocked); <-release })
	<-blocked
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		w.run(wg.Done)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("functions queued behind a blocked one did not run")
	}
	close(release)

	// Sequential calls find the worker the previous call left idle.
	ran := make(chan struct{})
	w.run(func() { ran <- struct{}{} })
	<-ran
	reused := false
	for range 100 {
		select {
		case w.idle <- func() { ran <- struct{}{} }:
			reused = true
		case <-time.After(time.Second):
		}
		if reused {
			<-ran
			break
		}
	}
	if !reused {
		t.Fatal("no idle worker took a second function")
	}
}
