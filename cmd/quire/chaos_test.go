package main

import (
	"bytes"
	"errors"
	"os"
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
