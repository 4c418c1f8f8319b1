package chaos

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quirelog/quire/transport/node"
)

func TestCutBetween(t *testing.T) {
	got := cutBetween([]int32{1}, []int32{2, 3})
	want := []node.Rule{{From: 1, To: 2, Drop: true}, {From: 2, To: 1, Drop: true},
		{From: 1, To: 3, Drop: true}, {From: 3, To: 1, Drop: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestLinkRulesCoverEveryDirectionOnce(t *testing.T) {
	rules := linkRules([]int32{1, 2}, []int32{1, 2, 3}, func(r *node.Rule) { r.DelayMS = 7 })
	seen := map[[2]int32]int{}
	for _, r := range rules {
		if r.From == r.To || r.DelayMS != 7 {
			t.Fatalf("bad rule %+v", r)
		}
		seen[[2]int32{r.From, r.To}]++
	}
	// Every link touching 1 or 2, both ways: 1-2, 1-3, 2-3.
	if len(seen) != 6 || len(rules) != 6 {
		t.Fatalf("rules %v", rules)
	}
}

// TestScenarios: every listed scenario resolves to known nemeses, and an
// unknown one is refused with the list of known names.
func TestScenarios(t *testing.T) {
	for _, s := range Scenarios() {
		if _, err := scenarioNemeses(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := scenarioNemeses("nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
}

// TestTargetsAreSeeded: the same seed draws the same targets.
func TestTargetsAreSeeded(t *testing.T) {
	draw := func() []int32 {
		r := &run{cfg: Config{Target: fixedTarget{1, 2, 3, 4, 5}, Partitions: 3},
			rng: rand.New(rand.NewPCG(9, 0x71c3))}
		var out []int32
		for i := 0; i < 20; i++ {
			out = append(out, r.sample(r.cfg.Target.Nodes(), 2)...)
		}
		return out
	}
	a, b := draw(), draw()
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different draws: %v vs %v", a, b)
	}
}

// TestCapabilitiesAreChecked: a nemesis the target cannot serve is
// refused before the run starts.
func TestCapabilitiesAreChecked(t *testing.T) {
	ns, _ := scenarioNemeses("kill")
	if err := checkCapabilities(fixedTarget{1, 2, 3}, ns); err == nil {
		t.Fatal("kill accepted for a target without process control")
	}
}

type fixedTarget []int32

func (f fixedTarget) Brokers() []string { return []string{"127.0.0.1:1"} }
func (f fixedTarget) Nodes() []int32    { return f }
