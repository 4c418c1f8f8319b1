package chaos

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var reportEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at is a time in milliseconds after reportEpoch, so latencies in the
// synthetic history are exact.
func at(msec int) time.Time { return reportEpoch.Add(time.Duration(msec) * time.Millisecond) }

// timelineHistory spans 12 s: acknowledged produces every second with
// growing latency, unknown outcomes during a kill of node 2, a failure, and
// a partition that is never stopped.
func timelineHistory() []Op {
	rec := NewRecorder(nil)
	produce := func(proc int, value string, start, lat int, typ OpType) {
		rec.Record(Op{Time: at(start), Process: proc, Type: Invoke, Kind: Produce, Offset: -1, Value: value})
		rec.Record(Op{Time: at(start + lat), Process: proc, Type: typ, Kind: Produce, Offset: -1, Value: value})
	}
	nemesis := func(msec int, node int32, fault string) {
		rec.Record(Op{Time: at(msec), Process: NemesisProcess, Type: OK, Kind: Nemesis, Node: node, Fault: fault})
	}
	for s := 0; s < 12; s++ {
		produce(1, "a"+string(rune('a'+s)), s*1000, 2+s*40, OK)
		produce(2, "b"+string(rune('a'+s)), s*1000+100, 5, OK)
	}
	nemesis(3000, 2, "kill:start")
	produce(3, "c1", 3200, 900, Info)
	produce(3, "c2", 4200, 1500, Info)
	produce(3, "c3", 5000, 20, Fail)
	nemesis(6000, 2, "kill:stop")
	nemesis(6500, 0, "clock-skew:stop") // unmatched stop: ignored
	nemesis(8000, 0, "partition:start")
	return rec.Ops()
}

func renderSVG(t *testing.T, h []Op) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteTimelineSVG(&b, h); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// parseXML decodes to EOF so any malformed markup fails the test.
func parseXML(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, s)
		}
	}
}

func TestTimelineSVG(t *testing.T) {
	h := timelineHistory()
	svg := renderSVG(t, h)
	parseXML(t, svg)
	// Each window is shaded on both panels.
	for fault, want := range map[string]int{"kill": 2, "partition": 2, "clock-skew": 0} {
		if got := strings.Count(svg, `class="fault" data-fault="`+fault+`"`); got != want {
			t.Errorf("%s: %d shaded rects, want %d", fault, got, want)
		}
	}
	for _, want := range []string{
		">kill</text>", ">partition</text>", // legend names
		"kill node 2: 3.0s to 6.0s", "partition: 8.0s to 11.4s (never stopped)",
		"acknowledged produces/s", "produce latency ms (log)",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if again := renderSVG(t, h); again != svg {
		t.Error("SVG differs between two calls on the same history")
	}
}

func TestTimelineSVGEmpty(t *testing.T) {
	svg := renderSVG(t, nil)
	parseXML(t, svg)
	if !strings.Contains(svg, "no operations") {
		t.Errorf("empty SVG does not say so:\n%s", svg)
	}
}

func TestTimelineEscapesFaultNames(t *testing.T) {
	h := []Op{
		{Time: at(0), Process: NemesisProcess, Type: OK, Kind: Nemesis, Fault: `<b>&"x":start`},
		{Time: at(5000), Process: 1, Type: Invoke, Kind: Produce, Value: "v"},
	}
	parseXML(t, renderSVG(t, h))
}

func TestTimelineBucketsLongRun(t *testing.T) {
	h := []Op{
		{Time: at(0), Process: 1, Type: Invoke, Kind: Produce, Value: "v"},
		{Time: at(3 * 3600 * 1000), Process: 1, Type: OK, Kind: Produce, Value: "v"},
	}
	tl := buildTimeline(h)
	if n := len(tl.ok); n > maxBuckets+1 {
		t.Errorf("%d buckets for a 3 h run, want at most %d", n, maxBuckets+1)
	}
	if tl.ok[len(tl.ok)-1] != 1 || tl.lat[len(tl.lat)-1][0] != 3*time.Hour {
		t.Errorf("last bucket: ok %d, latencies %v", tl.ok[len(tl.ok)-1], tl.lat[len(tl.lat)-1])
	}
}

func TestReportFaultWindows(t *testing.T) {
	nem := func(msec int, node int32, fault string) Op {
		return Op{Time: at(msec), Process: NemesisProcess, Type: OK, Kind: Nemesis, Node: node, Fault: fault}
	}
	h := []Op{
		nem(0, 1, "kill:start"),
		nem(1000, 2, "kill:start"),
		{Time: at(1500), Process: NemesisProcess, Type: Invoke, Kind: Nemesis, Node: 2, Fault: "kill:stop"}, // request only
		nem(2000, 2, "kill:stop"), // closes node 2 only
		nem(3000, 0, "pause:start"),
		nem(3500, 7, "pause:stop"), // node matches nothing: closes by name
		nem(4000, 0, "skew:start"),
		nem(4000, 3, "kill:start"),
		nem(5000, 0, "heal"), // closes node 1, node 3 and skew
		nem(6000, 0, "kill:stop"),
		nem(7000, 0, "loss:start"),
		nem(9000, 0, "noop"),
	}
	got := faultWindows(h, reportEpoch, 9*time.Second)
	want := []faultWindow{
		{name: "kill", node: 1, to: 5 * time.Second},
		{name: "kill", node: 2, from: 1 * time.Second, to: 2 * time.Second},
		{name: "pause", from: 3 * time.Second, to: 3500 * time.Millisecond},
		{name: "kill", node: 3, from: 4 * time.Second, to: 5 * time.Second},
		{name: "skew", from: 4 * time.Second, to: 5 * time.Second},
		{name: "loss", from: 7 * time.Second, to: 9 * time.Second, open: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d windows %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("window %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReportNearestRank(t *testing.T) {
	l := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {99, 10}, {10, 1}, {0, 1}, {100, 10}} {
		if got := nearestRank(l, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestHTMLReport(t *testing.T) {
	h := timelineHistory()
	r := Report{
		Title:        `run <script>alert(1)</script>`,
		Seed:         424242,
		Options:      [][2]string{{"nemesis", "kill,partition"}, {"note", "two words"}},
		Started:      reportEpoch,
		Duration:     90 * time.Second,
		Results:      CheckAll(h),
		Availability: CheckAvailability(h),
		Timeline:     "timeline.svg",
		History:      "history.jsonl",
		Notes:        []string{"3s kill node 2", "8s partition <majority>"},
	}
	r.Results[0].Examples = append(r.Results[0].Examples, `value "a<b" acknowledged but lost`)
	var b bytes.Buffer
	if err := WriteHTMLReport(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"lost-write", "duplicate", "reorder", "unexpected-value",
		"value &#34;a&lt;b&#34; acknowledged but lost",
		`<tr class="bad"><td>lost-write</td>`, `<tr class="good"><td>duplicate</td>`,
		"424242", `note=&#34;two words&#34;`,
		`<img src="timeline.svg"`, `<a href="history.jsonl">`,
		"&lt;script&gt;", "8s partition &lt;majority&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("title not escaped")
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page refers to an external resource")
	}
}

func TestHTMLReportWithoutFiles(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTMLReport(&b, Report{Title: "empty"}); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); strings.Contains(page, "<img") || strings.Contains(page, "<a ") {
		t.Errorf("page without Timeline or History links to them:\n%s", page)
	}
}
