package partition

import "fmt"

// Verify reads every batch that starts below upTo and checks its CRC and
// that offsets chain. Recovery only validates the active segment's tail;
// Verify is the full check for a log whose files may have been damaged
// while the process was down. It returns an error wrapping
// ErrCorruptBatch at the first bad batch.
func (l *Log) Verify(upTo int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	for _, s := range segs {
		if s.base >= upTo {
			break
		}
		res, err := scanBatches(s, s.size, 0, s.base, l.recoverBatchLimit(), nil)
		if err != nil {
			return fmt.Errorf("partition: verify %s: %w", s.path(), err)
		}
		if res.reason != "" || res.end != s.size || res.next != s.next {
			return fmt.Errorf("%w: %s: valid up to byte %d (offset %d) of %d: %s",
				ErrCorruptBatch, s.path(), res.end, res.next, s.size, res.reason)
		}
	}
	return nil
}
