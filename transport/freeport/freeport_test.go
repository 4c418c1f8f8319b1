package freeport

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A port claimed by a live process is never handed out again, and the
// claim names this process.
func TestAddrIsClaimedOnce(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		port := a[strings.LastIndex(a, ":")+1:]
		b, err := os.ReadFile(filepath.Join(os.TempDir(), "quire-freeport", port))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("claim of %s names %q, want this process", a, b)
		}
	}
}

// A claim left by an exited process is taken over.
func TestStaleClaimIsTakenOver(t *testing.T) {
	dir := filepath.Join(os.TempDir(), "quire-freeport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "31999")
	// Pid values above the kernel's pid_max are never alive.
	if err := os.WriteFile(name, []byte("2147483646"), 0o666); err != nil {
		t.Fatal(err)
	}
	if !reserve(31999) {
		t.Fatal("stale claim was not taken over")
	}
	if reserve(31999) {
		t.Fatal("a live claim was taken over")
	}
}
