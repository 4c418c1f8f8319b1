package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quirelog/quire/chaos"
)

// history writes a small run to a file: one acknowledged produce and,
// unless lost, its value in the final read.
func historyFile(t *testing.T, lost bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := chaos.NewRecorder(f)
	rec.Record(chaos.Op{Process: 1, Type: chaos.Invoke, Kind: chaos.Produce, Topic: "t", Offset: -1, Value: "v1", Producer: "p", Seq: 1})
	rec.Record(chaos.Op{Process: 1, Type: chaos.OK, Kind: chaos.Produce, Topic: "t", Offset: 0, Value: "v1", Producer: "p", Seq: 1})
	if !lost {
		rec.Record(chaos.Op{Process: 2, Type: chaos.OK, Kind: chaos.FinalRead, Topic: "t", Offset: 0, Value: "v1"})
	}
	return path
}

func TestChaosCheckCommand(t *testing.T) {
	for _, lost := range []bool{false, true} {
		cmd := chaosCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"check", historyFile(t, lost)})
		err := cmd.Execute()
		if lost != errors.Is(err, errViolations) {
			t.Fatalf("lost=%v: err %v\n%s", lost, err, out.String())
		}
		if lost && !strings.Contains(out.String(), `"v1"`) {
			t.Fatalf("report does not name the lost value:\n%s", out.String())
		}
	}
}

// TestChaosShortPass is the short chaos pass of `make test`: kill, pause
// and partition scenarios against real local processes, with every
// checker required to find nothing. `make chaos` runs every scenario for
// longer.
func TestChaosShortPass(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos pass")
	}
	out, data := t.TempDir(), t.TempDir()
	stdout, _ := runChaosCmd(t, "--scenario", "kill,pause,partition",
		"--duration", "25s", "--seed", "42", "--out", out, "--fault-min", "3s", "--fault-max", "8s",
		"--data", data, "--keep-data")
	// As root, partitions are packet filters between network namespaces;
	// elsewhere the brokers' hooks (also covered by the test below).
	want := "network faults by hooks"
	if netnsAvailable() == nil {
		want = "network faults by netns"
	}
	if !strings.Contains(stdout, want) {
		t.Errorf("run header lacks %q", want)
	}
	summary, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| kill | 42 |", "| pause | 43 |", "| partition | 44 |"} {
		if !strings.Contains(string(summary), s) {
			t.Errorf("summary lacks a row starting %q", s)
		}
	}
	for _, f := range []string{"history.jsonl", "timeline.svg", "index.html"} {
		if _, err := os.Stat(filepath.Join(out, "kill", f)); err != nil {
			t.Error(err)
		}
	}
	// Restarts keep their data: no replica is swept as an orphan or
	// rebuilt from its peers when nothing damaged it.
	logs, _ := filepath.Glob(filepath.Join(data, "*", "node*", "broker.log"))
	if len(logs) != 9 {
		t.Errorf("broker logs %v, want 3 scenarios x 3 nodes", logs)
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, bad := range []string{"removed orphaned partition directory", "replica data damaged", "Raft store damaged", "open raft store", "panic:"} {
				if strings.Contains(line, bad) {
					t.Errorf("%s: %s", l, line)
				}
			}
		}
	}
	// The saved history re-checks clean offline.
	check := exec.Command(quireBinary(t), "chaos", "check", filepath.Join(out, "partition", "history.jsonl"))
	if b, err := check.CombinedOutput(); err != nil {
		t.Errorf("chaos check: %v\n%s", err, b)
	}
}

// TestChaosTxnShortPass is the short pass of the transactional workload:
// transactional producers, read_committed consumers and an exactly-once
// copier under kill -9 and under delayed, duplicated transaction RPCs
// between brokers, with every checker required to find nothing.
func TestChaosTxnShortPass(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos pass")
	}
	out := t.TempDir()
	stdout, _ := runChaosCmd(t, "--workload", "txn", "--scenario", "kill,txn-rpc",
		"--duration", "20s", "--seed", "77", "--out", out, "--fault-min", "3s", "--fault-max", "6s")
	for _, s := range []string{"| kill | 77 |", "| txn-rpc | 78 |", "txn-torn", "txn-copy"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("summary lacks %q", s)
		}
	}
	history, err := os.ReadFile(filepath.Join(out, "txn-rpc", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := chaos.ReadHistory(bytes.NewReader(history))
	if err != nil {
		t.Fatal(err)
	}
	var commits, aborts, copied int
	for _, op := range ops {
		switch {
		case op.Kind == chaos.TxnEnd && op.Type == chaos.OK && op.Value == "commit":
			commits++
		case op.Kind == chaos.TxnEnd && op.Type == chaos.OK && op.Value == "abort":
			aborts++
		case op.Kind == chaos.OutputRead:
			copied++
		}
	}
	if commits == 0 || aborts == 0 || copied == 0 {
		t.Errorf("txn-rpc history has %d commits, %d aborts and %d copied records; want some of each", commits, aborts, copied)
	}
}

// TestChaosCompactShortPass is the short pass of the compacted workload:
// keyed updates to a compacted topic whose segments are compacted every
// few seconds, under kill -9 and under corruption of segment files and
// Raft stores, with every checker required to find nothing, and the
// final read proving that compaction removed superseded records.
func TestChaosCompactShortPass(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos pass")
	}
	out := t.TempDir()
	// The corrupt scenario kills a node, damages one of its segment files
	// or Raft stores and restarts it.
	stdout, _ := runChaosCmd(t, "--workload", "compact", "--scenario", "corrupt",
		"--duration", "25s", "--seed", "91", "--out", out, "--fault-min", "3s", "--fault-max", "6s")
	for _, s := range []string{"| corrupt | 91 |", "compact-lost"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("summary lacks %q", s)
		}
	}
	history, err := os.ReadFile(filepath.Join(out, "corrupt", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := chaos.ReadHistory(bytes.NewReader(history))
	if err != nil {
		t.Fatal(err)
	}
	var acked, final int
	for _, op := range ops {
		switch {
		case op.Kind == chaos.Produce && op.Type == chaos.OK:
			acked++
		case op.Kind == chaos.FinalRead:
			final++
		}
	}
	if acked == 0 || final >= acked {
		t.Errorf("%d records acknowledged and %d in the final read: compaction removed nothing", acked, final)
	}
}

// TestChaosAgainstExistingCluster attacks a cluster the runner did not
// start, as an operator would: only network scenarios can run (through
// /debug/faults), process and disk scenarios are skipped, and replica
// digests come from the admin listeners.
func TestChaosAgainstExistingCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos pass")
	}
	bs := startCluster(t, 3, "--enable-fault-injection")
	var admins []string
	for _, b := range bs {
		admins = append(admins, fmt.Sprintf("%d=%s", b.id, b.adminAddr))
	}
	stdout, stderr := runChaosCmd(t, "--brokers", strings.Join(seeds(bs), ","),
		"--admin", strings.Join(admins, ","), "--scenario", "all", "--duration", "12s", "--seed", "5",
		"--out", t.TempDir(), "--gap-min", "1s", "--gap-max", "2s", "--fault-min", "2s", "--fault-max", "4s", "--recovery", "4s")
	for _, skipped := range []string{"skipping kill", "skipping power-loss", "skipping corrupt"} {
		if !strings.Contains(stderr, skipped) {
			t.Errorf("progress lacks %q", skipped)
		}
	}
	for _, row := range []string{"| partition |", "| network |"} {
		if !strings.Contains(stdout, row) {
			t.Errorf("summary lacks a %s row", row)
		}
	}
}

// runChaosCmd runs `quire chaos run` with args and fails the test unless
// every checker came back clean.
func runChaosCmd(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(quireBinary(t), append([]string{"chaos", "run"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	t.Logf("summary:\n%s", o.String())
	if err != nil {
		t.Errorf("chaos run: %v\nprogress:\n%s", err, e.String())
		logSavedBrokerLogs(t, args)
		t.FailNow()
	}
	return o.String(), e.String()
}

// logSavedBrokerLogs prints what a failed run saved of its brokers (their
// warnings and errors, and the state of a node that never became ready):
// the results directory is a temporary one, gone when the test ends.
func logSavedBrokerLogs(t *testing.T, args []string) {
	t.Helper()
	out := ""
	for i, a := range args {
		if a == "--out" && i+1 < len(args) {
			out = args[i+1]
		}
	}
	if out == "" {
		return
	}
	files, _ := filepath.Glob(filepath.Join(out, "*", "logs", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		if strings.HasSuffix(f, "broker.log") {
			var kept []string
			for _, l := range lines {
				if strings.Contains(l, "[ERROR]") || strings.Contains(l, "[WARN]") {
					kept = append(kept, l)
				}
			}
			lines = kept
		}
		if len(lines) > 120 {
			lines = lines[len(lines)-120:]
		}
		t.Logf("%s (last %d lines kept):\n%s", f, len(lines), strings.Join(lines, "\n"))
	}
}
