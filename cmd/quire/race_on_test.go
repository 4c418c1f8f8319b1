//go:build race

package main

import "os"

// raceProcs builds the quire processes under test with the race detector
// too, when the tests run with it and QUIRE_RACE_PROCS is set. By default
// they run uninstrumented: the server's concurrency is raced in-process by
// the cluster package's tests, and instrumented brokers made this
// package's process and chaos tests several times slower than the faults
// they time.
var raceProcs = os.Getenv("QUIRE_RACE_PROCS") != ""
