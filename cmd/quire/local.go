package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quirelog/quire/transport/freeport"
)

// localSpec says where a local broker listens and keeps its data.
type localSpec struct {
	ID         int
	DataDir    string
	KafkaAddr  string
	AdminAddr  string
	NodeAddr   string
	GossipAddr string
	Extra      []string
	// Netns, when set, runs the broker in its own network namespace.
	Netns *netnsLab
}

// localBroker is a quire broker started as a child process of this binary,
// for `quire bench` and `quire dev`.
type localBroker struct {
	ID        int
	KafkaAddr string
	AdminAddr string
	DataDir   string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startLocalBroker runs `quire broker` from this executable with its output
// in DataDir/broker.log, and waits until it accepts Kafka connections.
func startLocalBroker(ctx context.Context, sp localSpec) (*localBroker, error) {
	id, dataDir, kafkaAddr, adminAddr := sp.ID, sp.DataDir, sp.KafkaAddr, sp.AdminAddr
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dataDir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := append([]string{"broker", "--id", strconv.Itoa(id), "--data", dataDir,
		"--kafka-addr", kafkaAddr, "--admin-addr", adminAddr,
		"--node-addr", sp.NodeAddr, "--gossip-addr", sp.GossipAddr}, sp.Extra...)
	cmd := exec.Command(self, args...)
	if sp.Netns != nil {
		cmd = sp.Netns.command(id, append([]string{self}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &localBroker{ID: id, KafkaAddr: kafkaAddr, AdminAddr: adminAddr, DataDir: dataDir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.exited) }()
	for {
		if b.ready() {
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("broker %d exited at start; see %s", id, filepath.Join(dataDir, "broker.log"))
		case <-ctx.Done():
			saveDebug(adminAddr, filepath.Join(dataDir, "not-ready-debug.txt"))
			b.Stop()
			return nil, fmt.Errorf("broker %d not ready: %w; see %s", id, ctx.Err(), filepath.Join(dataDir, "broker.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// saveDebug writes what a broker's admin API says of its state (readiness,
// replicas' raft state, goroutines) to path: where a stuck node waits is
// what its log cannot say.
func saveDebug(adminAddr, path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	cl := http.Client{Timeout: 10 * time.Second}
	for _, p := range []string{"/health/ready", "/debug/partitions", "/debug/pprof/goroutine?debug=2"} {
		fmt.Fprintf(f, "==== %s at %s\n", p, time.Now().Format(time.RFC3339Nano))
		resp, err := cl.Get("http://" + adminAddr + p)
		if err != nil {
			fmt.Fprintln(f, err)
			continue
		}
		io.Copy(f, resp.Body)
		resp.Body.Close()
	}
}

// restartBroker starts broker i again. If it does not become ready, the
// other brokers' state is saved next to their logs too: a node that
// never hears from a partition's leader is stuck because of the leader.
func (bc *localCluster) restartBroker(ctx context.Context, i int) (*localBroker, error) {
	b, err := startLocalBroker(ctx, bc.specs[i])
	if err != nil {
		for j, s := range bc.specs {
			if j != i {
				saveDebug(s.AdminAddr, filepath.Join(s.DataDir, fmt.Sprintf("peer%d-not-ready-debug.txt", i+1)))
			}
		}
	}
	return b, err
}

// ready asks the broker's /health/ready, which turns 200 once it has
// joined the cluster and runs every partition assigned to it.
func (b *localBroker) ready() bool {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + b.AdminAddr + "/health/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Kill sends SIGKILL and waits for the process to be gone.
func (b *localBroker) Kill() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}

// Exited is closed when the process ends.
func (b *localBroker) Exited() <-chan struct{} { return b.exited }

// Stop sends SIGTERM and waits up to 30s, then kills.
func (b *localBroker) Stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// PeakRSS is the process's high-water resident set (VmHWM), in bytes.
func (b *localBroker) PeakRSS() (int64, error) {
	return procStatusBytes(b.cmd.Process.Pid, "VmHWM:")
}

// CPUTime is the user+system CPU the process has used so far.
func (b *localBroker) CPUTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

func procStatusBytes(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// localCluster is a set of brokers started as child processes on
// loopback ports, for `quire bench` and `quire chaos run`.
type localCluster struct {
	specs   []localSpec
	brokers []*localBroker
	dir     string
	keep    bool
}

type localClusterOpts struct {
	nodes   int
	dataDir string // empty: a temporary directory, removed at stop
	keep    bool   // keep a temporary directory
	extra   []string
	// netns puts each broker in its own namespace of this lab, on the
	// lab's addresses, instead of on loopback ports.
	netns *netnsLab
}

func startLocalCluster(ctx context.Context, o localClusterOpts) (*localCluster, error) {
	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "quire-local-")
		if err != nil {
			return nil, err
		}
		dir = tmp
	}
	bc := &localCluster{dir: dir, keep: o.keep || o.dataDir != ""}
	addrs, err := localAddrs(o)
	if err != nil {
		return nil, err
	}
	for i := 0; i < o.nodes; i++ {
		a := addrs[4*i : 4*i+4]
		extra := o.extra
		if o.nodes > 1 {
			extra = append([]string{"--bootstrap-expect", strconv.Itoa(o.nodes), "--join", addrs[3]}, extra...)
		}
		bc.specs = append(bc.specs, localSpec{ID: i + 1, DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			KafkaAddr: a[0], AdminAddr: a[1], NodeAddr: a[2], GossipAddr: a[3], Extra: extra, Netns: o.netns})
	}
	bc.brokers = make([]*localBroker, o.nodes)
	errs := make(chan error, o.nodes)
	for i := range bc.specs {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			b, err := startLocalBroker(sctx, bc.specs[i])
			bc.brokers[i] = b
			errs <- err
		}()
	}
	var first error
	for range bc.specs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		bc.stop()
		return nil, first
	}
	return bc, nil
}

func (bc *localCluster) kafkaAddrs() []string {
	var out []string
	for _, s := range bc.specs {
		out = append(out, s.KafkaAddr)
	}
	return out
}

func (bc *localCluster) stop() {
	bc.stopBrokers()
	if !bc.keep {
		os.RemoveAll(bc.dir)
	}
}

func (bc *localCluster) stopBrokers() {
	for _, b := range bc.brokers {
		if b != nil {
			b.Stop()
		}
	}
}

// saveLogs copies each broker's log, and any state saved by saveDebug, to
// dst/nodeN-*.
func (bc *localCluster) saveLogs(dst string) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, s := range bc.specs {
		files, _ := filepath.Glob(filepath.Join(s.DataDir, "*debug.txt"))
		for _, name := range append([]string{filepath.Join(s.DataDir, "broker.log")}, files...) {
			copyFile(name, filepath.Join(dst, fmt.Sprintf("node%d-%s", s.ID, filepath.Base(name))))
		}
	}
}

func copyFile(from, to string) {
	src, err := os.Open(from)
	if err != nil {
		return
	}
	defer src.Close()
	if f, err := os.Create(to); err == nil {
		io.Copy(f, src)
		f.Close()
	}
}

// usage reports each broker's peak RSS and the CPU all of them used.
func (bc *localCluster) usage() (peak []int64, cpu time.Duration) {
	for _, b := range bc.brokers {
		rss, _ := b.PeakRSS()
		c, _ := b.CPUTime()
		peak = append(peak, rss)
		cpu += c
	}
	return peak, cpu
}

// localAddrs gives each node four addresses: Kafka, admin, node, gossip.
func localAddrs(o localClusterOpts) ([]string, error) {
	if o.netns == nil {
		return freeLoopbackAddrs(4 * o.nodes)
	}
	var out []string
	for id := 1; id <= o.nodes; id++ {
		ip := o.netns.addr(id)
		out = append(out, ip+":9092", ip+":9644", ip+":7000", ip+":7946")
	}
	return out, nil
}

// freeLoopbackAddrs returns n unused 127.0.0.1 addresses.
func freeLoopbackAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := freeport.Addr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}
