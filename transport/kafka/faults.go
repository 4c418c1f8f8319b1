package kafka

import (
	"math/rand/v2"
	"sort"
	"sync"
)

// Faults makes the listener lose responses on purpose, for tests and
// chaos runs: a request of a chosen API is served in full, and then, with
// the rule's probability, its response is not sent and the connection is
// closed instead, as a network that fails mid-flight would. The client
// cannot know whether the request took effect, so it retries: this is the
// fault idempotent producers exist for. A nil *Faults has no faults.
type Faults struct {
	mu    sync.RWMutex
	drops map[string]float64 // by API name, as kmsg names it ("Produce")
}

// Drop is one rule: responses of API are lost with probability Fraction.
type Drop struct {
	API      string  `json:"api"`
	Fraction float64 `json:"fraction"`
}

// NewFaults returns Faults with no rules.
func NewFaults() *Faults { return &Faults{} }

// Set replaces every rule; nil heals.
func (f *Faults) Set(drops []Drop) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drops = nil
	for _, d := range drops {
		if d.Fraction <= 0 {
			continue
		}
		if f.drops == nil {
			f.drops = map[string]float64{}
		}
		f.drops[d.API] = min(d.Fraction, 1)
	}
}

// Rules returns the rules in force, by API name.
func (f *Faults) Rules() []Drop {
	if f == nil {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Drop, 0, len(f.drops))
	for api, p := range f.drops {
		out = append(out, Drop{API: api, Fraction: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].API < out[j].API })
	return out
}

// dropResponse draws whether one response of api is lost.
func (f *Faults) dropResponse(api string) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	p := f.drops[api]
	f.mu.RUnlock()
	return p > 0 && rand.Float64() < p
}
