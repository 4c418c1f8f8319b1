package chaos

import (
	"strings"
	"testing"
)

// keyed records a produce of key acknowledged at (0, off).
func (b *builder) keyed(seq int64, key, value string, off int64) {
	b.add(Op{Process: 1, Type: Invoke, Kind: Produce, Offset: -1, Value: value, Key: key, Producer: "i1", Seq: seq})
	b.add(Op{Process: 1, Type: OK, Kind: Produce, Offset: off, Value: value, Key: key, Producer: "i1", Seq: seq})
}

func (b *builder) finalKeyed(off int64, key, value string) {
	b.add(Op{Process: 99, Type: OK, Kind: FinalRead, Offset: off, Value: value, Key: key})
}

// A compacted topic may lose superseded records, and nothing else.
func TestCheckCompactedLoss(t *testing.T) {
	history := func(final func(b *builder)) []Op {
		b := newBuilder()
		b.keyed(1, "a", "v1", 0)
		b.keyed(2, "b", "v2", 1)
		b.keyed(3, "a", "v3", 2)
		b.keyed(4, "c", "v4", 3)
		final(b)
		return b.rec.Ops()
	}
	// v1 is superseded by v3: its removal is compaction.
	clean := history(func(b *builder) {
		b.finalKeyed(1, "b", "v2")
		b.finalKeyed(2, "a", "v3")
		b.finalKeyed(3, "c", "v4")
	})
	if !isCompactHistory(clean) {
		t.Fatal("keyed history not taken for the compacted workload's")
	}
	if res := CheckCompactedLoss(clean); res.Violations != 0 || res.Checked != 4 {
		t.Fatalf("clean history: %+v", res)
	}
	for _, r := range CheckAll(clean) {
		if r.Name == "lost-write" {
			t.Fatal("lost-write runs on a compacted history")
		}
	}
	for name, c := range map[string]struct {
		final func(b *builder)
		want  string
	}{
		"latest of a key lost": {func(b *builder) {
			b.finalKeyed(2, "a", "v3")
			b.finalKeyed(3, "c", "v4")
		}, `"v2" (key "b") acknowledged at t-0@1`},
		"key changed": {func(b *builder) {
			b.finalKeyed(1, "b", "v2")
			b.finalKeyed(2, "a", "v3")
			b.finalKeyed(3, "x", "v4")
		}, `"v4" read at t-0@3 with key "x"`},
	} {
		res := CheckCompactedLoss(history(c.final))
		if res.Violations != 1 || !strings.Contains(strings.Join(res.Examples, "\n"), c.want) {
			t.Errorf("%s: %+v, want one violation naming %s", name, res, c.want)
		}
	}
}
