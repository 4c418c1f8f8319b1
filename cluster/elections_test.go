package cluster

import (
	"encoding/binary"
	"testing"
)

func TestAgreeAnswersCarryCampaigning(t *testing.T) {
	a, b, c, d := &raftGroup{name: "a"}, &raftGroup{name: "b"}, &raftGroup{name: "c"}, &raftGroup{name: "d"}
	var resp []byte
	resp = binary.AppendUvarint(append(resp, agreeNo), 7)
	resp = binary.AppendUvarint(append(resp, agreeYes), 9)
	resp = binary.AppendUvarint(append(resp, agreeCampaigning), 11)
	resp = binary.AppendUvarint(append(resp, agreeLeading), 12)
	views := parseAgree(resp, []*raftGroup{a, b, c, d})
	want := map[*raftGroup]voterView{
		a: {lastIndex: 7},
		b: {agree: true, lastIndex: 9},
		c: {agree: true, campaigning: true, lastIndex: 11},
		d: {leading: true, lastIndex: 12},
	}
	for g, w := range want {
		if got := views[g]; got != w {
			t.Errorf("group %s: got %+v, want %+v", g.name, got, w)
		}
	}
	// A truncated answer covers only the groups it reached.
	if got := parseAgree(resp[:2], []*raftGroup{a, b}); len(got) != 1 {
		t.Errorf("truncated answer gave %d views, want 1", len(got))
	}
}

func TestNoVoterStandsWhileAnotherLeadsOrCampaigns(t *testing.T) {
	g := &raftGroup{name: "p"}
	other := &raftGroup{name: "q"}
	views := map[int32]map[*raftGroup]voterView{
		2: {g: {agree: true, lastIndex: 5}, other: {agree: true, campaigning: true}},
		3: {g: {agree: true, lastIndex: 5}},
	}
	if anotherStands(g, views) {
		t.Fatal("a campaign in another group held this one back")
	}
	views[3][g] = voterView{agree: true, campaigning: true, lastIndex: 5}
	if !anotherStands(g, views) {
		t.Fatal("a voter campaigning for the group did not hold the others back")
	}
	views[3][g] = voterView{leading: true, lastIndex: 5}
	if !anotherStands(g, views) {
		t.Fatal("a voter leading the group did not hold the others back")
	}
}
