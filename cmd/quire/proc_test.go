package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quirelog/quire/transport/freeport"
)

// Tests in this package run real quire processes built from this package.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func quireBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "quire-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "quire")
		args := []string{"build", "-o", binPath}
		if raceProcs {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// broker is one quire process.
type broker struct {
	t         *testing.T
	id        int // 0 means 1
	dataDir   string
	kafkaAddr string
	adminAddr string
	// nodeAddr and gossipAddr are the node-to-node and gossip listeners.
	nodeAddr   string
	gossipAddr string
	extra      []string
	cmd        *exec.Cmd
	exited     chan struct{}
	logPath    string
}

func newBroker(t *testing.T, extra ...string) *broker {
	b := &broker{
		t:          t,
		dataDir:    t.TempDir(),
		kafkaAddr:  freePort(t),
		adminAddr:  freePort(t),
		nodeAddr:   freePort(t),
		gossipAddr: freePort(t),
		extra:      extra,
	}
	b.logPath = filepath.Join(b.dataDir, "broker.log")
	// Ports are picked before the process binds them, so another test
	// process can take one first; a fresh set is the cure.
	for attempt := 0; ; attempt++ {
		b.launch()
		if b.waitStarted() || attempt == 2 || !strings.Contains(b.log(), "address already in use") {
			break
		}
		b.kafkaAddr, b.adminAddr, b.nodeAddr, b.gossipAddr = freePort(t), freePort(t), freePort(t), freePort(t)
	}
	b.waitReady()
	t.Cleanup(b.stop)
	return b
}

// waitStarted reports whether the process is still running after its
// listeners had time to bind.
func (b *broker) waitStarted() bool {
	select {
	case <-b.exited:
		return false
	case <-time.After(500 * time.Millisecond):
		return true
	}
}

func (b *broker) start() {
	b.t.Helper()
	b.launch()
	b.waitReady()
}

// launch starts the process without waiting for it to be ready.
func (b *broker) launch() {
	b.t.Helper()
	id := b.id
	if id == 0 {
		id = 1
	}
	args := append([]string{"broker", "--id", strconv.Itoa(id), "--data", b.dataDir,
		"--kafka-addr", b.kafkaAddr, "--admin-addr", b.adminAddr,
		"--node-addr", b.nodeAddr, "--gossip-addr", b.gossipAddr}, b.extra...)
	cmd := exec.Command(quireBinary(b.t), args...)
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd = cmd
	b.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(b.exited)
	}()
}

func (b *broker) waitReady() {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			b.t.Fatalf("broker exited during start; log:\n%s", b.log())
		default:
		}
		resp, err := http.Get("http://" + b.adminAddr + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("broker not ready after 60s; log:\n%s", b.log())
}

func (b *broker) log() string {
	data, _ := os.ReadFile(b.logPath)
	if len(data) > 20000 {
		data = data[len(data)-20000:]
	}
	return string(data)
}

// kill9 kills the process without warning and waits for it to be gone.
func (b *broker) kill9() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

func (b *broker) alive() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

func (b *broker) stop() {
	if b.cmd == nil || !b.alive() {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		b.kill9()
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
