//go:build linux && !arm

package partition

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback of the
// range's dirty pages, wait for nothing.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk. Nothing waits for it and nothing depends on it: durability still
// comes from fsync, which then finds less to do.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { _ = syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite) })
}
