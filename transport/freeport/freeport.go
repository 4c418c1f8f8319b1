// Package freeport finds loopback ports for local clusters (tests, quire
// bench) that stay bindable across a node's restart.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

var mu sync.Mutex

// Addr returns a 127.0.0.1 address whose port is free for TCP and UDP and
// lies below the kernel's ephemeral range (32768 and up on Linux). A port
// from the ephemeral range can be handed to an outgoing connection while
// its node is stopped, and the restart then fails to bind it.
func Addr() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 1000; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr, nil
	}
	return "", fmt.Errorf("freeport: no free loopback port found")
}
