// Package freeport finds loopback ports for local clusters (tests, quire
// bench) that stay bindable across a node's restart.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

var mu sync.Mutex

// Addr returns a 127.0.0.1 address whose port is free for TCP and UDP and
// lies below the kernel's ephemeral range (32768 and up on Linux). A port
// from the ephemeral range can be handed to an outgoing connection while
// its node is stopped, and the restart then fails to bind it.
//
// The port is also reserved for this process's lifetime in a directory
// shared by every process on the machine: go test runs packages as
// parallel processes, and a port whose node is stopped for a restart test
// looks free to every other process until the restart binds it again.
func Addr() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if !bindable(addr) || !reserve(port) {
			continue
		}
		return addr, nil
	}
	return "", fmt.Errorf("freeport: no free loopback port found")
}

func bindable(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	u, err := net.ListenPacket("udp", addr)
	ln.Close()
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// reserve claims port for this process with a file naming its pid. The
// check and the claim happen under an exclusive lock on the directory's
// lock file, so two processes cannot both claim a port. A claim left by a
// process that has exited is taken over. When the directory cannot be
// used at all, the bind check alone decides.
func reserve(port int) bool {
	dir := filepath.Join(os.TempDir(), "quire-freeport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return true
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	name := filepath.Join(dir, strconv.Itoa(port))
	if owner, ok := claimant(name); ok && alive(owner) {
		return false
	}
	return os.WriteFile(name, []byte(strconv.Itoa(os.Getpid())), 0o666) == nil
}

func claimant(name string) (int, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(b))
	return pid, err == nil && pid > 0
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
