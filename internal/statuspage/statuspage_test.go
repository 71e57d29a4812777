package statuspage

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// TestRender: each plot says its points and holds them; what a peer
// chooses (an origin's name, a refusal's reason) is escaped; the page
// refers to nothing outside itself.
func TestRender(t *testing.T) {
	d := Data{Site: "site-a.example", Version: "1.0", Now: t0, Started: t0.Add(-time.Hour), Listings: 2}
	for i := range 5 {
		d.ListingsDay = append(d.ListingsDay, Point{T: t0.Add(time.Duration(i-4) * time.Hour), V: float64(i % 3)})
	}
	d.ListingsFortnight = Series{{T: t0, V: 2}}
	d.Hours = []time.Time{t0.Add(-time.Hour), t0}
	d.ReportsPerOrigin = []OriginSeries{{Origin: "a.example", Counts: []int{1, 2}}, {Origin: `<script>x</script>`, Counts: []int{0, 7}}}
	d.Latency = []Latency{{Origin: "a.example", N: 3, P50: time.Second, P90: 2 * time.Second, P99: 3 * time.Minute}}
	d.Refusals = []Refusal{{Time: t0, From: "peer", MessageID: "<m@x>", Label: "signature", Reason: `bad "<b>" signature`}}
	d.Peers = []Peer{
		{Name: "fed.example", Addr: "192.0.2.1:119", Outgoing: true, Sent: 11, Refused: 12, Deferred: 13, Skipped: 14},
		{Name: "feeds-us.example", Incoming: true, InAccepted: 5},
	}
	var b strings.Builder
	if err := Render(&b, d); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{
		`id="listings-day" data-points="5"`, `data-values="0 1 2 0 1"`,
		`id="listings-fortnight" data-points="1"`,
		`id="reports" data-points="4"`, `data-values="1 2"`, `data-values="0 7"`,
		`&lt;script&gt;x&lt;/script&gt;`, `&lt;m@x&gt;`, "3m0s",
		`<th class="num">skipped</th>`, `data-skipped="14"`,
		`<td class="num">11</td><td class="num">12</td><td class="num">13</td><td class="num">14</td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "<b>") {
		t.Error("the page holds a peer's markup unescaped")
	}
	// Nothing to load: no src or href but the empty data: icon.
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(html, -1) {
		if m[2] != "data:," {
			t.Errorf("the page refers to %s", m[0])
		}
	}
	// Every row of the peers table has as many cells as its head.
	peers := regexp.MustCompile(`(?s)<table id="peers">.*?</table>`).FindString(html)
	head := len(regexp.MustCompile(`<th[ >]`).FindAllString(peers, -1))
	for _, row := range regexp.MustCompile(`(?s)<tr data-peer.*?</tr>`).FindAllString(peers, -1) {
		cells := 0
		for _, m := range regexp.MustCompile(`<td(?: colspan="(\d+)")?`).FindAllStringSubmatch(row, -1) {
			if m[1] == "" {
				cells++
			} else {
				n, _ := strconv.Atoi(m[1])
				cells += n
			}
		}
		if cells != head {
			t.Errorf("a peers row spans %d columns, the head %d: %s", cells, head, row)
		}
	}
	if got := len(regexp.MustCompile(`<polyline`).FindAllString(html, -1)); got != 4 {
		t.Errorf("%d lines, want 4 (two listings plots, two origins)", got)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p50, p90, p99 := Percentiles(ds)
	if p50 != 50*time.Millisecond || p90 != 90*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("Percentiles(1..100ms) = %v %v %v, want 50ms 90ms 99ms", p50, p90, p99)
	}
	if a, b, c := Percentiles([]time.Duration{7}); a != 7 || b != 7 || c != 7 {
		t.Errorf("Percentiles of one = %v %v %v", a, b, c)
	}
	if a, _, _ := Percentiles(nil); a != 0 {
		t.Errorf("Percentiles(nil) = %v", a)
	}
}
