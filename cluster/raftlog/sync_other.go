//go:build !linux

package raftlog

import (
	"errors"
	"os"
)

func fdatasync(f *os.File) error { return f.Sync() }

func openDirect(string) (*os.File, error) {
	return nil, errors.New("direct I/O is only used on Linux")
}
