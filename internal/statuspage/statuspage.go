// Package statuspage renders dstd's status page: one read-only HTML
// document, served at / on the admin endpoint, with its plots drawn as
// inline SVG on the server. It needs nothing else: no script, no font, no
// style sheet, no image, so that the strict Content-Security-Policy the
// endpoint sends (CSP) holds, and the page works on a host with no
// network.
//
// The page shows what Data holds; the site fills it from the store (so
// that the plots are right after a restart) and from what it knows of its
// queues, peers and recent refusals. Every plot says how many points it
// holds in its data-points attribute, and each of its lines holds its
// values in data-values, for tests and for whoever saves the page.
package statuspage

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy of the page: nothing may be loaded,
// no script may run, and only the page's own style element applies.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// The page's periods and steps. The site computes the points at these
// times; tests count on them.
const (
	// ListingsDayStep is the step of the 24-hour listings plot: 96 steps,
	// 97 points (both ends).
	ListingsDayStep = 15 * time.Minute
	ListingsDay     = 24 * time.Hour
	// ListingsFortnightStep is the step of the 14-day plot: 336 steps,
	// 337 points.
	ListingsFortnightStep = time.Hour
	ListingsFortnight     = 14 * 24 * time.Hour
	// ReportHours is how many hours of reports per origin are plotted,
	// the current one last; latency percentiles cover the same period.
	ReportHours = 24
)

// Data is what the page shows.
type Data struct {
	Site, Version string
	Now, Started  time.Time
	Simulated     bool // policy.simulate: listings are computed, not published
	Listings      int  // listed now
	Pending       int  // reported, below the threshold

	ListingsDay       Series // the last 24 h
	ListingsFortnight Series // the last 14 d
	// Hours are the starts of the hours of ReportsPerOrigin's values.
	Hours            []time.Time
	ReportsPerOrigin []OriginSeries
	Latency          []Latency
	Queues           []Queue
	Peers            []Peer
	Refusals         []Refusal // the most recent first
}

// Point is one value at one time.
type Point struct {
	T time.Time
	V float64
}

// Series is a line of a plot.
type Series []Point

// OriginSeries is one origin's reports per hour, one value per Data.Hours.
type OriginSeries struct {
	Origin string
	Counts []int
}

// Latency is the trap-to-listed latency of one origin's reports that
// listed or extended a listing here: time listed here - the report's Date.
type Latency struct {
	Origin        string
	N             int
	P50, P90, P99 time.Duration
}

// Queue is one action queue.
type Queue struct {
	Name          string
	Depth         int
	Done          int64
	Failures      int64
	LastError     string
	LastErrorTime time.Time
}

// Peer is one configured peer: what this site feeds it (Outgoing) and
// what it feeds this site (Incoming).
type Peer struct {
	Name, Addr string
	Outgoing   bool
	TLS        string // the outgoing connection's protection: "TLS 1.3", "plain", ""
	Connected  bool
	Streaming  bool
	Depth      int
	Sent       int64
	Refused    int64
	Deferred   int64
	// Skipped counts reports not offered because the peer offered them
	// to this site first.
	Skipped       int64
	LastSuccess   time.Time
	LastError     string
	LastErrorTime time.Time

	Incoming   bool // the peer may feed this site
	InSessions int  // its sessions open now
	InTLS      string
	InAccepted int64
	InRefused  int64
	InLastSeen time.Time
}

// Refusal is one refused article.
type Refusal struct {
	Time      time.Time
	From      string
	MessageID string
	Label     string
	Reason    string
}

// Percentiles returns the 50th, 90th and 99th percentiles of ds (nearest
// rank), which it sorts.
func Percentiles(ds []time.Duration) (p50, p90, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return rank(50), rank(90), rank(99)
}

//go:embed page.html.tmpl style.css
var files embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"ago":       ago,
	"when":      when,
	"dur":       dur,
	"lineplot":  lineplot,
	"reportsvg": reportPlot,
	"css":       func() template.CSS { b, _ := files.ReadFile("style.css"); return template.CSS(b) },
}).ParseFS(files, "page.html.tmpl"))

// Render writes the page. It renders into a buffer first, so that a
// template error is an error rather than half a page.
func Render(w io.Writer, d Data) error {
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		return fmt.Errorf("render the status page: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// when formats a time for a table: UTC, to the second; "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago is how long before now t was, rounded for a reader.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return dur(now.Sub(t)) + " ago"
}

// dur formats a duration for a reader: "850ms", "42s", "3m10s", "5h2m", "3d4h".
func dur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = d.Round(time.Millisecond).String()
	case d < time.Minute:
		s = d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		s = d.Round(time.Second).String()
	case d < 48*time.Hour:
		s = strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		s = fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
	if neg {
		return "-" + s
	}
	return s
}

// The plots' geometry, in SVG user units (the viewBox; the page scales it).
const (
	plotW, plotH                       = 720.0, 200.0
	padL, padR, padT, padB             = 48.0, 12.0, 12.0, 28.0
	innerW                             = plotW - padL - padR
	innerH                             = plotH - padT - padB
	maxLabelTicks                      = 4
	palette                            = "#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf #7f7f7f #bcbd22"
	timeLayoutDay, timeLayoutFortnight = "15:04", "Jan 2"
)

// niceMax rounds a plot's top up to 1, 2 or 5 times a power of ten, so
// that its ticks are round numbers; at least 1.
func niceMax(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// svgPlot writes the frame of a plot: the y axis ticks from 0 to top, and
// the x axis labelled with the first, middle and last times.
func svgPlot(b *strings.Builder, id, title string, points int, top float64, ts []time.Time, layout string) {
	fmt.Fprintf(b, `<svg class="plot" id="%s" data-points="%d" viewBox="0 0 %g %g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		id, points, plotW, plotH, template.HTMLEscapeString(title))
	fmt.Fprintf(b, `<rect class="frame" x="%g" y="%g" width="%g" height="%g"/>`, padL, padT, innerW, innerH)
	for i := 0; i <= maxLabelTicks; i++ {
		v := top * float64(i) / maxLabelTicks
		y := padT + innerH - innerH*float64(i)/maxLabelTicks
		fmt.Fprintf(b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, padL, y, padL+innerW, y)
		fmt.Fprintf(b, `<text class="ylabel" x="%g" y="%.1f">%s</text>`, padL-6, y+4, strconv.FormatFloat(v, 'f', -1, 64))
	}
	if len(ts) > 0 {
		for _, i := range []int{0, len(ts) / 2, len(ts) - 1} {
			x := xOf(i, len(ts))
			anchor := "middle"
			if i == 0 {
				anchor = "start"
			} else if i == len(ts)-1 {
				anchor = "end"
			}
			fmt.Fprintf(b, `<text class="xlabel" x="%.1f" y="%g" text-anchor="%s">%s</text>`, x, plotH-8, anchor, ts[i].UTC().Format(layout))
		}
	}
}

// xOf is the x of the i-th of n evenly spaced points.
func xOf(i, n int) float64 {
	if n <= 1 {
		return padL + innerW
	}
	return padL + innerW*float64(i)/float64(n-1)
}

func yOf(v, top float64) float64 { return padT + innerH - innerH*v/top }

// polyline writes one line of a plot, its values in data-values.
func polyline(b *strings.Builder, class, color, name string, vs []float64, top float64) {
	var pts, vals strings.Builder
	for i, v := range vs {
		if i > 0 {
			pts.WriteByte(' ')
			vals.WriteByte(' ')
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", xOf(i, len(vs)), yOf(v, top))
		vals.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	}
	fmt.Fprintf(b, `<polyline class="%s" stroke="%s" data-name="%s" data-values="%s" points="%s"><title>%s</title></polyline>`,
		class, color, template.HTMLEscapeString(name), vals.String(), pts.String(), template.HTMLEscapeString(name))
}

// lineplot draws one series: the listings plots.
func lineplot(id, title string, s Series, fortnight bool) template.HTML {
	var b strings.Builder
	ts := make([]time.Time, len(s))
	vs := make([]float64, len(s))
	top := 0.0
	for i, p := range s {
		ts[i], vs[i] = p.T, p.V
		top = max(top, p.V)
	}
	top = niceMax(top)
	layout := timeLayoutDay
	if fortnight {
		layout = timeLayoutFortnight
	}
	svgPlot(&b, id, title, len(s), top, ts, layout)
	polyline(&b, "line", strings.Fields(palette)[0], title, vs, top)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// reportPlot draws the reports per origin per hour, one line per origin,
// with its legend.
func reportPlot(d Data) template.HTML {
	var b strings.Builder
	top := 0.0
	points := 0
	for _, o := range d.ReportsPerOrigin {
		for _, c := range o.Counts {
			top = max(top, float64(c))
		}
		points += len(o.Counts)
	}
	top = niceMax(top)
	svgPlot(&b, "reports", "reports per origin per hour", points, top, d.Hours, timeLayoutDay)
	colors := strings.Fields(palette)
	for i, o := range d.ReportsPerOrigin {
		vs := make([]float64, len(o.Counts))
		for j, c := range o.Counts {
			vs[j] = float64(c)
		}
		polyline(&b, "line origin", colors[i%len(colors)], o.Origin, vs, top)
	}
	b.WriteString(`</svg><ul class="legend">`)
	for i, o := range d.ReportsPerOrigin {
		total := 0
		for _, c := range o.Counts {
			total += c
		}
		fmt.Fprintf(&b, `<li><span class="swatch" style="background:%s"></span>%s (%d)</li>`,
			colors[i%len(colors)], template.HTMLEscapeString(o.Origin), total)
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String())
}
