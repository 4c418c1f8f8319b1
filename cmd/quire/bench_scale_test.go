package main

import (
	"slices"
	"testing"
)

func TestBenchMostLeader(t *testing.T) {
	leaders := map[int32]int32{0: 2, 1: 3, 2: 2, 3: -1, 4: 3, 5: 1}
	if got := mostLeader(leaders); got != 2 {
		t.Fatalf("mostLeader = %d, want 2 (tie with 3 goes to the lower id)", got)
	}
	if got := mostLeader(map[int32]int32{0: -1}); got != -1 {
		t.Fatalf("mostLeader without leaders = %d, want -1", got)
	}
}

func TestBenchScaleBrokerArgs(t *testing.T) {
	// 10,000 partitions at RF 3 on 3 nodes: each node hosts 10,000
	// replicas, so the cap must be above that; the user's value comes last
	// and wins.
	o := scaleOpts{nodes: 3, rf: 3, brokerArgs: []string{"--max-partitions-per-node=7"}}
	args := scaleBrokerArgs(o, 10000)
	i := slices.Index(args, "--max-partitions-per-node")
	if i < 0 || args[i+1] != "20100" {
		t.Fatalf("args %q: want --max-partitions-per-node 20100", args)
	}
	if args[len(args)-1] != "--max-partitions-per-node=7" {
		t.Fatalf("args %q: the user's args must come last", args)
	}
	if got := scaleBrokerArgs(scaleOpts{nodes: 3, rf: 3}, 10); !slices.Contains(got, "2000") {
		t.Fatalf("small N must keep the default cap of 2000: %q", got)
	}
}

func TestBenchShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"--nodes":                 "--nodes",
		"100,1000":                "100,1000",
		"--broker-arg=--x=1s":     "--broker-arg=--x=1s",
		"a b":                     "'a b'",
		"it's":                    `'it'\''s'`,
		"":                        "''",
		"$HOME":                   "'$HOME'",
		"--data=/tmp/q uire/data": "'--data=/tmp/q uire/data'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
