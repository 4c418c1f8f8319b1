package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/quirelog/quire/chaos"
	"github.com/quirelog/quire/transport/node"
)

// processTarget is a local cluster of child processes that a chaos run
// may kill, pause, partition and damage.
type processTarget struct {
	chaos.AdminEndpoints
	lc *localCluster
	// lab, when set, holds the nodes' network namespaces: drops and loss
	// become packet filters there, and only delays use the brokers' hooks.
	lab *netnsLab
	mu  sync.Mutex // guards lc.brokers
}

func newProcessTarget(lc *localCluster) *processTarget {
	t := &processTarget{AdminEndpoints: chaos.AdminEndpoints{}, lc: lc}
	for _, s := range lc.specs {
		t.AdminEndpoints[int32(s.ID)] = s.AdminAddr
	}
	return t
}

func (t *processTarget) Brokers() []string { return t.lc.kafkaAddrs() }

func (t *processTarget) Nodes() []int32 {
	ids := make([]int32, 0, len(t.lc.specs))
	for _, s := range t.lc.specs {
		ids = append(ids, int32(s.ID))
	}
	slices.Sort(ids)
	return ids
}

func (t *processTarget) broker(id int32) (*localBroker, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := int(id) - 1
	if i < 0 || i >= len(t.lc.brokers) || t.lc.brokers[i] == nil {
		return nil, fmt.Errorf("node %d is not running", id)
	}
	return t.lc.brokers[i], nil
}

// Kill implements chaos.Processes. SIGKILL also ends a stopped process.
func (t *processTarget) Kill(_ context.Context, id int32) error {
	b, err := t.broker(id)
	if err != nil {
		return err
	}
	b.Kill()
	t.mu.Lock()
	t.lc.brokers[id-1] = nil
	t.mu.Unlock()
	return nil
}

// Restart implements chaos.Processes: every node starts at once, since a
// cluster killed whole is only ready once a quorum is back.
func (t *processTarget) Restart(ctx context.Context, ids []int32) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			b, err := t.lc.restartBroker(sctx, int(id-1))
			if err != nil {
				errs[i] = fmt.Errorf("restart node %d: %w", id, err)
				return
			}
			t.mu.Lock()
			t.lc.brokers[id-1] = b
			t.mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (t *processTarget) Pause(id int32) error  { return t.signal(id, syscall.SIGSTOP) }
func (t *processTarget) Resume(id int32) error { return t.signal(id, syscall.SIGCONT) }

func (t *processTarget) signal(id int32, sig syscall.Signal) error {
	b, err := t.broker(id)
	if err != nil {
		return err
	}
	return b.cmd.Process.Signal(sig)
}

// SetFaults implements chaos.Network for the running nodes only: a killed
// node cannot be reached, and starts again with no faults anyway.
func (t *processTarget) SetFaults(ctx context.Context, rules []node.Rule) error {
	if t.lab != nil {
		// Packet filters cannot tell one RPC method from another: method
		// rules stay with the hooks, as do delays.
		var packets, hooks []node.Rule
		for _, r := range rules {
			switch {
			case r.Method != "":
				hooks = append(hooks, r)
			case r.DelayMS > 0:
				hooks = append(hooks, node.Rule{From: r.From, To: r.To, DelayMS: r.DelayMS})
				packets = append(packets, r)
			default:
				packets = append(packets, r)
			}
		}
		if err := t.lab.setRules(packets); err != nil {
			return err
		}
		rules = hooks
	}
	running := chaos.AdminEndpoints{}
	t.mu.Lock()
	for i, b := range t.lc.brokers {
		if b != nil {
			running[int32(t.lc.specs[i].ID)] = t.lc.specs[i].AdminAddr
		}
	}
	t.mu.Unlock()
	return running.SetFaults(ctx, rules)
}
