//go:build !race

package main

const raceProcs = false
