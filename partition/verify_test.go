package partition

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestVerifyFindsDamageInClosedSegments: a flipped bit in the middle of a
// closed segment passes recovery, which trusts closed segments, but not
// Verify.
func TestVerifyFindsDamageInClosedSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	for i := int64(0); i < 40; i++ {
		if err := l.Append(simpleBatch(i*2, 2, 40, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	next := l.NextOffset()
	if err := l.Verify(next); err != nil {
		t.Fatalf("clean log: %v", err)
	}
	l.Close()

	first := segmentPath(dir, 0, logSuffix)
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(first, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, smallConfig())
	defer l.Close()
	if l.NextOffset() != next {
		t.Fatalf("recovery changed the log: next %d, want %d", l.NextOffset(), next)
	}
	if err := l.Verify(next); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("Verify = %v, want ErrCorruptBatch", err)
	}
	if err := l.Verify(0); err != nil {
		t.Fatalf("Verify below the damage: %v", err)
	}
}

// TestPowerLossJournal: every sync records the durable size of each
// segment and index file.
func TestPowerLossJournal(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.PowerLossJournal = true
	l := openLog(t, dir, cfg)
	defer l.Close()
	for i := int64(0); i < 30; i++ {
		if err := l.Append(simpleBatch(i*2, 2, 40, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, PowerLossJournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var sizes map[string]int64
	if err := json.Unmarshal(raw, &sizes); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if e.Name() == PowerLossJournalFile {
			continue
		}
		info, _ := e.Info()
		if got, ok := sizes[e.Name()]; !ok || got != info.Size() {
			t.Errorf("%s: journal says %d (listed %v), file has %d", e.Name(), got, ok, info.Size())
		}
		n++
	}
	if n < 6 {
		t.Fatalf("want several segments, got %d files", n)
	}
	// Appends after the sync are not durable yet.
	if err := l.Append(simpleBatch(60, 2, 40, 2000)); err != nil {
		t.Fatal(err)
	}
	raw2, _ := os.ReadFile(filepath.Join(dir, PowerLossJournalFile))
	if string(raw2) != string(raw) {
		t.Fatal("the journal changed without a sync")
	}
}
