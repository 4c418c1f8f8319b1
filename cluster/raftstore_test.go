package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// fillStore writes entries 1..n and a term and vote, and closes the store.
func fillStore(t *testing.T, path string, n int) []*raft.Log {
	t.Helper()
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs []*raft.Log
	for i := 1; i <= n; i++ {
		l := &raft.Log{Index: uint64(i), Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 300)}
		if i%2 == 0 {
			l.Extensions = []byte("ext")
		}
		logs = append(logs, l)
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if l.Extensions != nil && string(l.Extensions) != "ext" {
			t.Fatalf("StoreLogs changed the caller's entry %d: %q", l.Index, l.Extensions)
		}
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("LastVoteTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	return logs
}

func TestCheckedStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	want := fillStore(t, path, 20)
	if err := verifyRaftStore(path, 0); err != nil {
		t.Fatalf("intact store: %v", err)
	}
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !bytes.Equal(got.Data, w.Data) || !bytes.Equal(got.Extensions, w.Extensions) {
			t.Fatalf("entry %d read back as %+v", w.Index, got)
		}
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("a missing key must read as raft-boltdb's not found, which raft expects: %v", err)
	}
}

// damageValue flips one byte in the middle of a stored value, under
// bbolt, as bit rot on the disk would.
func damageValue(t *testing.T, path, bucket string, key []byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		v := append([]byte(nil), b.Get(key)...)
		if len(v) == 0 {
			t.Fatalf("no value under %q in %s", key, bucket)
		}
		v[len(v)/2] ^= 0x10
		return b.Put(key, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsDamagedEntryAndVote(t *testing.T) {
	for _, tc := range []struct {
		name, bucket string
		key          []byte
	}{
		{"entry", "logs", []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{"term", "conf", []byte("CurrentTerm")},
		{"vote", "conf", []byte("LastVoteCand")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			fillStore(t, path, 20)
			damageValue(t, path, tc.bucket, tc.key)
			if err := verifyRaftStore(path, 0); !errors.Is(err, errRaftDamaged) {
				t.Fatalf("verify = %v, want errRaftDamaged", err)
			}
		})
	}
}

// TestVerifySurvivesAnyDamage: truncations and zeroed or random pages
// anywhere in the file give errRaftDamaged or a clean pass (damage in a
// free page harms nothing), never a crash.
func TestVerifySurvivesAnyDamage(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.db")
	want := fillStore(t, clean, 200)
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var found int
	for i := 0; i < 60; i++ {
		b := append([]byte(nil), orig...)
		at := rng.IntN(len(b))
		switch i % 3 {
		case 0:
			b = b[:at]
		case 1:
			at &^= 4095
			clear(b[at:min(at+4096, len(b))])
		default:
			for j := 0; j < 16; j++ {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("raft-%d.db", i))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := verifyRaftStore(path, 0)
		if err != nil && !errors.Is(err, errRaftDamaged) {
			t.Fatalf("case %d: %v is not errRaftDamaged", i, err)
		}
		if err != nil {
			found++
			continue
		}
		sameAsWritten(t, path, want)
	}
	if found == 0 {
		t.Fatal("no damage was ever found")
	}
	t.Logf("%d of 60 damaged files found damaged", found)
}

// sameAsWritten checks that damage verify let pass left what raft reads
// intact: it hit a free page.
func sameAsWritten(t *testing.T, path string, want []*raft.Log) {
	t.Helper()
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatalf("verified store does not open: %v", err)
	}
	defer s.Close()
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil || got.Term != w.Term || !bytes.Equal(got.Data, w.Data) {
			t.Fatalf("verified store: entry %d is %+v, %v", w.Index, got, err)
		}
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("verified store: term %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "2" {
		t.Fatalf("verified store: vote %q, %v", v, err)
	}
}

// TestVerifyFindsDamagedMetaPage: bbolt would quietly fall back to its
// older meta page and lose the last transaction (here, the vote).
func TestVerifyFindsDamagedMetaPage(t *testing.T) {
	for page := int64(0); page < 2; page++ {
		path := filepath.Join(t.TempDir(), "raft.db")
		fillStore(t, path, 5)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, 64), page*int64(os.Getpagesize())+16); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := verifyRaftStore(path, 0); !errors.Is(err, errRaftDamaged) {
			t.Fatalf("meta page %d zeroed: verify = %v, want errRaftDamaged", page, err)
		}
	}
}

// TestLegacyStoreIsKept: a store written before stores were sealed is
// read as it is, not wiped as damaged, and stays unsealed.
func TestLegacyStoreIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	old, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("a")}, {Index: 2, Term: 1, Data: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	old.Close()
	if err := verifyRaftStore(path, 0); err != nil {
		t.Fatalf("legacy store: %v", err)
	}
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.legacy {
		t.Fatal("legacy store opened as sealed")
	}
	var l raft.Log
	if err := s.GetLog(2, &l); err != nil || string(l.Data) != "b" {
		t.Fatalf("entry 2: %q, %v", l.Data, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("term %d, %v", v, err)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 3, Term: 4, Data: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(3, &l); err != nil || string(l.Data) != "c" || l.Extensions != nil {
		t.Fatalf("entry 3: %+v, %v", l, err)
	}
}

func TestResetKeepsTermAndVote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	fillStore(t, path, 20)
	damageValue(t, path, "logs", []byte{0, 0, 0, 0, 0, 0, 0, 3})
	if err := resetRaftStore(path); err != nil {
		t.Fatal(err)
	}
	if err := verifyRaftStore(path, 0); err != nil {
		t.Fatalf("reset store: %v", err)
	}
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("reset store still has entries up to %d", last)
	}
	term, err := s.GetUint64([]byte("CurrentTerm"))
	cand, cerr := s.Get([]byte("LastVoteCand"))
	if err != nil || cerr != nil || term != 7 || string(cand) != "2" {
		t.Fatalf("term %d (%v), vote %q (%v): want 7 and 2", term, err, cand, cerr)
	}

	s.Close()

	// A damaged vote is dropped, not carried over.
	damageValue(t, path, "conf", []byte("LastVoteCand"))
	if err := resetRaftStore(path); err != nil {
		t.Fatal(err)
	}
	s2, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("damaged vote carried over: %v", err)
	}
}

// TestVerifyLockedIsNotDamage: a store another handle still holds is not
// damaged, and must not be wiped for it.
func TestVerifyLockedIsNotDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	fillStore(t, path, 3)
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = verifyRaftStore(path, 0)
	if err == nil || errors.Is(err, errRaftDamaged) {
		t.Fatalf("verify of a locked store = %v, want a plain error", err)
	}
}

// TestVerifyAllowsCompactionStragglers: raft-boltdb's DeleteRange can
// leave entries behind below a snapshot (found by the chaos pass: every
// kill then looked like damage). Holes below the latest snapshot are
// compaction; a hole after it is damage.
func TestVerifyAllowsCompactionStragglers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	fillStore(t, path, 20)
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(2, 9); err != nil { // 1 stays behind
		t.Fatal(err)
	}
	s.Close()
	if err := verifyRaftStore(path, 10); err != nil {
		t.Fatalf("hole below the snapshot: %v", err)
	}
	if err := verifyRaftStore(path, 5); !errors.Is(err, errRaftDamaged) {
		t.Fatalf("hole after the snapshot: %v, want errRaftDamaged", err)
	}
}

// TestVerifyEmptyFileIsDamage: a crash right after bbolt created the file
// leaves it empty; read-only, bbolt cannot initialise it, and that must
// not block the replica's start as a plain error would.
func TestVerifyEmptyFileIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := verifyRaftStore(path, 0); !errors.Is(err, errRaftDamaged) {
		t.Fatalf("empty file: %v, want errRaftDamaged", err)
	}
}
