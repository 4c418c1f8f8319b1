package chaos

import (
	"bytes"
	"cmp"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The timeline is drawn on a fixed canvas so that reports from different
// runs line up when viewed side by side.
const (
	svgWidth  = 1000
	svgHeight = 420
	plotLeft  = 70.0
	plotRight = svgWidth - 20.0
	// maxBuckets bounds the number of points per series; longer runs get
	// wider buckets so the SVG stays small and readable.
	maxBuckets = 600
)

// Panels, in pixels from the top of the canvas.
var (
	topPanel    = panel{top: 40, bottom: 180}
	bottomPanel = panel{top: 212, bottom: 352}
)

type panel struct{ top, bottom float64 }

func (p panel) height() float64 { return p.bottom - p.top }

// Series colours; faults get their own palette so a shaded window is never
// mistaken for a series.
const (
	colorOK      = "#1f77b4"
	colorBad     = "#d62728"
	colorP50     = "#2ca02c"
	colorP99     = "#ff7f0e"
	colorMax     = "#555555"
	faultOpacity = "0.18"
)

var faultPalette = []string{
	"#e6ab02", "#7570b3", "#e7298a", "#66a61e",
	"#a6761d", "#1b9e77", "#d95f02", "#999999",
}

// faultWindow is one interval during which a nemesis fault was active.
type faultWindow struct {
	name     string
	node     int32
	from, to time.Duration // since the first op
	open     bool          // no stop seen yet
}

// timeline is a history reduced to what the SVG shows.
type timeline struct {
	span    time.Duration // first op to last op, at least a second
	bucket  time.Duration
	ok, bad []int             // produce completions per bucket
	lat     [][]time.Duration // produce latencies per bucket, sorted
	windows []faultWindow     // sorted by start
	faults  []string          // distinct fault names, sorted
}

// buildTimeline uses the earliest and latest op times rather than the first
// and last ops, because clients stamp their own times and a history is in
// recording order, not necessarily time order.
func buildTimeline(h []Op) timeline {
	t0, t1 := h[0].Time, h[0].Time
	for _, op := range h {
		if op.Time.Before(t0) {
			t0 = op.Time
		}
		if op.Time.After(t1) {
			t1 = op.Time
		}
	}
	tl := timeline{span: max(t1.Sub(t0), time.Second), bucket: time.Second}
	if tl.span > maxBuckets*time.Second {
		tl.bucket = time.Duration(math.Ceil(float64(tl.span)/maxBuckets/float64(time.Second))) * time.Second
	}
	n := int(tl.span/tl.bucket) + 1
	tl.ok, tl.bad, tl.lat = make([]int, n), make([]int, n), make([][]time.Duration, n)
	at := func(t time.Time) int { return min(max(int(t.Sub(t0)/tl.bucket), 0), n-1) }
	for _, op := range h {
		if op.Kind != Produce {
			continue
		}
		switch op.Type {
		case OK:
			tl.ok[at(op.Time)]++
		case Fail, Info:
			tl.bad[at(op.Time)]++
		}
	}
	for _, p := range produces(h) {
		if p.done.Type != "" {
			i := at(p.done.Time)
			tl.lat[i] = append(tl.lat[i], p.done.Time.Sub(p.invoke.Time))
		}
	}
	for _, l := range tl.lat {
		slices.Sort(l)
	}
	tl.windows = faultWindows(h, t0, t1.Sub(t0))
	for _, w := range tl.windows {
		if !slices.Contains(tl.faults, w.name) {
			tl.faults = append(tl.faults, w.name)
		}
	}
	slices.Sort(tl.faults)
	return tl
}

// faultWindows pairs nemesis starts with stops. Only completed nemesis ops
// count, as in isHeal: an invoke is just the request. A stop for a node
// closes that node's windows of the same name; a stop without a node, or
// whose node matches none, closes every window of that name, so a labelling
// slip cannot leave a window stuck open. Windows never stopped run to end.
func faultWindows(h []Op, t0 time.Time, end time.Duration) []faultWindow {
	var done, open []faultWindow
	for _, op := range h {
		if op.Kind != Nemesis || (op.Type != OK && op.Type != Info) {
			continue
		}
		at := min(max(op.Time.Sub(t0), 0), end)
		if op.Fault == "heal" {
			done, open = closeWindows(done, open, at, func(faultWindow) bool { return true })
			continue
		}
		if name, ok := strings.CutSuffix(op.Fault, ":start"); ok {
			dup := slices.ContainsFunc(open, func(w faultWindow) bool { return w.name == name && w.node == op.Node })
			if !dup { // the fault is already active; a second start adds nothing
				open = append(open, faultWindow{name: name, node: op.Node, from: at, open: true})
			}
			continue
		}
		name, ok := strings.CutSuffix(op.Fault, ":stop")
		if !ok {
			continue
		}
		byNode := op.Node != 0 && slices.ContainsFunc(open, func(w faultWindow) bool { return w.name == name && w.node == op.Node })
		done, open = closeWindows(done, open, at, func(w faultWindow) bool {
			return w.name == name && (!byNode || w.node == op.Node)
		})
	}
	for _, w := range open {
		w.to = end
		done = append(done, w)
	}
	slices.SortStableFunc(done, func(a, b faultWindow) int {
		return cmp.Or(cmp.Compare(a.from, b.from), strings.Compare(a.name, b.name))
	})
	return done
}

// closeWindows ends the open windows that match at time at.
func closeWindows(done, open []faultWindow, at time.Duration, match func(faultWindow) bool) ([]faultWindow, []faultWindow) {
	still := open[:0]
	for _, w := range open {
		if !match(w) {
			still = append(still, w)
			continue
		}
		w.to, w.open = max(at, w.from), false
		done = append(done, w)
	}
	return done, still
}

// WriteTimelineSVG draws a run over time as a self-contained SVG: produce
// throughput on top, produce latency (log scale) below, with fault windows
// shaded on both. The output depends only on h.
func WriteTimelineSVG(w io.Writer, h []Op) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	if len(h) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="16">no operations</text>`+"\n", svgWidth/2, svgHeight/2)
	} else {
		c := canvas{b: &b, tl: buildTimeline(h)}
		c.draw()
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// canvas renders one timeline into b.
type canvas struct {
	b  *bytes.Buffer
	tl timeline
}

func (c canvas) draw() {
	c.drawWindows(topPanel, true)
	c.drawWindows(bottomPanel, false)
	c.drawThroughput()
	c.drawLatency()
	c.drawXAxis()
	c.drawLegend()
}

func (c canvas) printf(format string, args ...any) { fmt.Fprintf(c.b, format, args...) }

// x maps a time since the first op to a pixel column.
func (c canvas) x(d time.Duration) float64 {
	f := float64(d) / float64(c.tl.span)
	return plotLeft + min(max(f, 0), 1)*(plotRight-plotLeft)
}

// mid is where a bucket's point goes: its middle, clamped to the run.
func (c canvas) mid(i int) float64 {
	return c.x(time.Duration(i)*c.tl.bucket + c.tl.bucket/2)
}

func (c canvas) faultColor(name string) string {
	i, _ := slices.BinarySearch(c.tl.faults, name)
	return faultPalette[i%len(faultPalette)]
}

func (c canvas) drawWindows(p panel, label bool) {
	for _, w := range c.tl.windows {
		x0, x1 := c.x(w.from), c.x(w.to)
		desc := w.name
		if w.node != 0 {
			desc += fmt.Sprintf(" node %d", w.node)
		}
		desc += fmt.Sprintf(": %.1fs to %.1fs", w.from.Seconds(), w.to.Seconds())
		if w.open {
			desc += " (never stopped)"
		}
		c.printf(`<rect class="fault" data-fault="%s" x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="%s"><title>%s</title></rect>`+"\n",
			esc(w.name), num(x0), num(p.top), num(max(x1-x0, 1)), num(p.height()), c.faultColor(w.name), faultOpacity, esc(desc))
		// Labels only where they fit; the legend names every fault anyway.
		if label && x1-x0 >= textWidth(w.name)+6 {
			c.printf(`<text x="%s" y="%s" font-size="10" fill="#333">%s</text>`+"\n", num(x0+3), num(p.top+11), esc(w.name))
		}
	}
}

func (c canvas) drawThroughput() {
	peak := 0.0
	secs := c.tl.bucket.Seconds()
	for i := range c.tl.ok {
		peak = max(peak, float64(c.tl.ok[i])/secs, float64(c.tl.bad[i])/secs)
	}
	step := niceStep(max(peak, 1) / 4)
	// A step of headroom keeps a flat peak off the panel's frame line.
	top := (math.Floor(max(peak, 1)/step) + 1) * step
	y := func(v float64) float64 { return topPanel.bottom - v/top*topPanel.height() }
	c.frame(topPanel, "acknowledged produces/s")
	for i := 0; float64(i)*step <= top; i++ {
		c.yTick(y(float64(i)*step), formatTick(float64(i)*step))
	}
	for _, s := range []struct {
		counts []int
		color  string
	}{{c.tl.bad, colorBad}, {c.tl.ok, colorOK}} {
		var pts []string
		for i, n := range s.counts {
			pts = append(pts, num(c.mid(i))+","+num(y(float64(n)/secs)))
		}
		c.printf(`<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
	}
}

func (c canvas) drawLatency() {
	peak := 1.0
	for _, l := range c.tl.lat {
		if len(l) > 0 {
			peak = max(peak, ms(l[len(l)-1]))
		}
	}
	decades := max(math.Ceil(math.Log10(peak)), 1)
	y := func(v float64) float64 {
		return bottomPanel.bottom - math.Log10(max(v, 1))/decades*bottomPanel.height()
	}
	c.frame(bottomPanel, "produce latency ms (log)")
	for d := 0.0; d <= decades; d++ {
		c.yTick(y(math.Pow(10, d)), formatTick(math.Pow(10, d)))
	}
	for i, l := range c.tl.lat {
		if len(l) > 0 {
			c.printf(`<circle cx="%s" cy="%s" r="1.5" fill="%s" fill-opacity="0.35"/>`+"\n",
				num(c.mid(i)), num(y(ms(l[len(l)-1]))), colorMax)
		}
	}
	for _, s := range []struct {
		p     float64
		color string
	}{{99, colorP99}, {50, colorP50}} {
		c.printf(`<path fill="none" stroke="%s" stroke-width="1.5" stroke-linecap="round" d="%s"/>`+"\n", s.color, c.percentilePath(s.p, y))
	}
}

// percentilePath breaks the line at empty buckets: no produce finished
// there, so there is no latency to draw, and a line across would invent one.
// A lone point gets a zero-length segment so the round cap shows it.
func (c canvas) percentilePath(p float64, y func(float64) float64) string {
	var d []string
	prev := false
	for i, l := range c.tl.lat {
		if len(l) == 0 {
			prev = false
			continue
		}
		pt := num(c.mid(i)) + "," + num(y(ms(nearestRank(l, p))))
		if prev {
			d = append(d, "L"+pt)
		} else {
			d = append(d, "M"+pt, "l0,0")
		}
		prev = true
	}
	if len(d) == 0 {
		return "M0,0"
	}
	return strings.Join(d, " ")
}

// frame draws a panel's box and title.
func (c canvas) frame(p panel, title string) {
	c.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#888"/>`+"\n",
		num(plotLeft), num(p.top), num(plotRight-plotLeft), num(p.height()))
	c.printf(`<text x="%s" y="%s" font-weight="bold">%s</text>`+"\n", num(plotLeft), num(p.top-6), esc(title))
}

func (c canvas) yTick(y float64, label string) {
	c.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#ddd"/>`+"\n", num(plotLeft), num(y), num(plotRight), num(y))
	c.printf(`<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", num(plotLeft-4), num(y+4), esc(label))
}

func (c canvas) drawXAxis() {
	span := c.tl.span.Seconds()
	step := niceStep(span / 10)
	// Integer steps: accumulating a float step drifts and can drop the end.
	for i := 0; float64(i)*step <= span; i++ {
		s := float64(i) * step
		x := c.x(time.Duration(s * float64(time.Second)))
		for _, p := range []panel{topPanel, bottomPanel} {
			c.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`+"\n", num(x), num(p.bottom), num(x), num(p.bottom+4))
		}
		c.printf(`<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(x), num(bottomPanel.bottom+16), esc(formatTick(s)))
	}
	c.printf(`<text x="%s" y="%s" text-anchor="middle">seconds since first op (%s buckets)</text>`+"\n",
		num((plotLeft+plotRight)/2), num(bottomPanel.bottom+32), esc(c.tl.bucket.String()))
}

// drawLegend puts the series on the top line and the faults on the bottom
// line, each item placed after the previous one's estimated width.
func (c canvas) drawLegend() {
	x := plotLeft
	for _, s := range [][2]string{
		{colorOK, "ok produces/s"}, {colorBad, "failed/unknown produces/s"},
		{colorP50, "p50 latency"}, {colorP99, "p99 latency"}, {colorMax, "max latency"},
	} {
		c.printf(`<rect x="%s" y="6" width="12" height="10" fill="%s"/>`+"\n", num(x), s[0])
		c.printf(`<text x="%s" y="15">%s</text>`+"\n", num(x+16), esc(s[1]))
		x += 16 + textWidth(s[1]) + 14
	}
	if len(c.tl.faults) == 0 {
		return
	}
	y := float64(svgHeight - 16)
	c.printf(`<text x="%s" y="%s">faults:</text>`+"\n", num(plotLeft), num(y+9))
	x = plotLeft + 48
	for _, name := range c.tl.faults {
		c.printf(`<rect class="legend" x="%s" y="%s" width="12" height="10" fill="%s" fill-opacity="0.5"/>`+"\n",
			num(x), num(y), c.faultColor(name))
		c.printf(`<text x="%s" y="%s">%s</text>`+"\n", num(x+16), num(y+9), esc(name))
		x += 16 + textWidth(name) + 14
	}
}

// nearestRank returns the p-th percentile of sorted l by the nearest-rank
// method, which always yields an observed value.
func nearestRank(l []time.Duration, p float64) time.Duration {
	r := int(math.Ceil(p / 100 * float64(len(l))))
	return l[min(max(r, 1), len(l))-1]
}

// ms is a latency in milliseconds, clamped at 1 so the log axis has a floor
// and clock skew between invoke and completion cannot go negative.
func ms(d time.Duration) float64 { return max(float64(d)/float64(time.Millisecond), 1) }

// niceStep rounds v up to 1, 2 or 5 times a power of ten, for tick steps.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func formatTick(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// num formats a coordinate with fixed precision so output is byte-stable.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// textWidth estimates rendered width at font-size 11; SVG has no layout
// engine to ask, and an overestimate only drops a label.
func textWidth(s string) float64 { return 6.5 * float64(len([]rune(s))) }

func esc(s string) string { return html.EscapeString(s) }

// Report is everything a chaos run's HTML page shows.
type Report struct {
	Title        string
	Seed         int64
	Options      [][2]string // derived options in display order: name, value
	Started      time.Time
	Duration     time.Duration
	Results      []Result // checker results, in order
	Availability Availability
	Timeline     string   // file name of the SVG, relative to the HTML file ("" = none)
	History      string   // file name of the history JSON lines ("" = none)
	Notes        []string // free text lines, e.g. the nemesis schedule
}

// replayLine renders the options as name=value words, quoting values that
// a shell would split, so the line can be pasted back.
func (r Report) replayLine() string {
	words := []string{"seed=" + strconv.FormatInt(r.Seed, 10)}
	for _, o := range r.Options {
		v := o[1]
		if v == "" || strings.ContainsAny(v, " \t\n\"'\\$`") {
			v = strconv.Quote(v)
		}
		words = append(words, o[0]+"="+v)
	}
	return strings.Join(words, " ")
}

func roundDurations(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond).String()
	}
	return out
}

var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

// WriteHTMLReport writes a self-contained page (no scripts, no external
// resources beyond the Timeline and History files next to it).
func WriteHTMLReport(w io.Writer, r Report) error {
	data := struct {
		Report
		Replay      string
		Started     string
		Duration    string
		OKPercent   string
		Heals       []string
		Violations  int
		ShowStarted bool
	}{
		Report:      r,
		Replay:      r.replayLine(),
		Started:     r.Started.UTC().Format(time.RFC3339),
		Duration:    r.Duration.Round(time.Millisecond).String(),
		OKPercent:   strconv.FormatFloat(100*r.Availability.OKFraction, 'f', 1, 64),
		Heals:       roundDurations(r.Availability.Heals),
		ShowStarted: !r.Started.IsZero(),
	}
	for _, res := range r.Results {
		data.Violations += res.Violations
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, data); err != nil {
		return fmt.Errorf("chaos: render report: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }
td.n { text-align: right; }
tr.bad { background: #fbdada; }
tr.good { background: #dcf3dc; }
code { background: #f4f4f4; padding: 2px 4px; }
.verdict-bad { color: #b00; } .verdict-good { color: #070; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>seed <b>{{.Seed}}</b>{{if .ShowStarted}}, started {{.Started}}{{end}}, duration {{.Duration}}</p>
<p>replay: <code>{{.Replay}}</code></p>
<h2>Checkers</h2>
{{if .Violations}}<p class="verdict-bad">{{.Violations}} violation(s) found</p>{{else}}<p class="verdict-good">no violations found</p>{{end}}
<table>
<tr><th>checker</th><th>checked</th><th>violations</th></tr>
{{range .Results}}<tr class="{{if .Violations}}bad{{else}}good{{end}}"><td>{{.Name}}</td><td class="n">{{.Checked}}</td><td class="n">{{.Violations}}</td></tr>
{{if and .Violations .Examples}}<tr class="bad"><td colspan="3"><ul>
{{range .Examples}}<li><code>{{.}}</code></li>
{{end}}</ul></td></tr>
{{end}}{{end}}</table>
<h2>Availability</h2>
<ul>
<li>{{.Availability.OK}} of {{.Availability.Invoked}} produces acknowledged ({{.OKPercent}}%)</li>
<li>heal to first acknowledged write: {{if .Heals}}{{range $i, $h := .Heals}}{{if $i}}, {{end}}{{$h}}{{end}}{{else}}none{{end}}</li>
<li>heals never followed by an acknowledged write: {{.Availability.Unrecovered}}</li>
</ul>
{{if .Timeline}}<h2>Timeline</h2>
<p><img src="{{.Timeline}}" alt="throughput and latency over time" width="1000" height="420"></p>
{{end}}{{if .History}}<p>history: <a href="{{.History}}">{{.History}}</a></p>
{{end}}{{if .Notes}}<h2>Notes</h2>
<pre>{{range .Notes}}{{.}}
{{end}}</pre>
{{end}}</body>
</html>
`
