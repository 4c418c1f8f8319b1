package raftlog

import (
	"os"
	"syscall"
)

// fdatasync flushes a segment's data and the size that makes it
// readable, without the timestamps an fsync would also write.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// openDirect opens a segment for writes that bypass the page cache.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}
