// Package statelogtest holds an in-memory statelog.Log for coordinator
// tests.
package statelogtest

import (
	"context"
	"sync"

	"github.com/quirelog/quire/partition"
)

// MemLog is one partition kept in memory, with the offsets and batch
// format of a real one: a coordinator cannot tell them apart.
type MemLog struct {
	mu      sync.Mutex
	epoch   int32
	batches [][]byte
	next    int64
	fail    error
}

// New is an empty log led in epoch.
func New(epoch int32) *MemLog { return &MemLog{epoch: epoch} }

// Successor is the same partition led in a later epoch: what a new leader
// finds.
func (l *MemLog) Successor(epoch int32) *MemLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &MemLog{epoch: epoch, batches: append([][]byte(nil), l.batches...), next: l.next}
}

// SetFail makes every Append fail with err (nil: succeed again).
func (l *MemLog) SetFail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

func (l *MemLog) Epoch() int32       { return l.epoch }
func (l *MemLog) StartOffset() int64 { return 0 }
func (l *MemLog) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

func (l *MemLog) Read(off int64, _ int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.batches {
		h, _ := partition.ParseBatchHeader(b)
		if h.LastOffset() >= off {
			out = append(out, b...)
		}
	}
	return out, nil
}

func (l *MemLog) Append(_ context.Context, b []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return 0, l.fail
	}
	h, _ := partition.ParseBatchHeader(b)
	b = append([]byte(nil), b...)
	partition.SetBaseOffset(b, l.next)
	base := l.next
	l.next += int64(h.LastOffsetDelta) + 1
	l.batches = append(l.batches, b)
	return base, nil
}
