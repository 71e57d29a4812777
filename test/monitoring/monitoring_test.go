// Package monitoring_test checks the example Prometheus rules and Grafana
// dashboard (examples/prometheus, examples/grafana) with Prometheus's own
// promtool, and against the metrics a running dstd exports: a renamed
// metric breaks this test, not an administrator's alerts.
package monitoring_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
)

const (
	rules     = "../../examples/prometheus/dst-alerts.yml"
	ruleTests = "../../examples/prometheus/dst-alerts_test.yml"
	dashboard = "../../examples/grafana/dst-dashboard.json"
)

// The rules load (promtool check rules) and their unit tests pass
// (promtool test rules): each alert fires on what should make it and not
// on a healthy site.
func TestPrometheusRules(t *testing.T) {
	promtool := dsttest.Require(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", ruleTests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboardJSON is the part of a Grafana dashboard the test checks.
type dashboardJSON struct {
	Title, UID string
	Templating struct {
		List []struct {
			Name, Type string
			Query      any
		}
	}
	Panels []panel
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *struct{ Type, UID string }
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr, RefID string
		Datasource  *struct{ Type, UID string }
	}
}

func loadDashboard(t *testing.T) dashboardJSON {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboard, err)
	}
	return d
}

// The dashboard is one Grafana can import: a title and uid, a Prometheus
// data source variable that every panel and query uses (so it imports
// into any Grafana, whatever its data source is called), panels with
// unique ids on the 24-column grid without overlaps, and queries.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed", d.Title, d.UID)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no templating variable datasource of type datasource, query prometheus")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	queries := 0
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if p.Title == "" || g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: no title, or outside the 24-column grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if o, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at x=%d y=%d", o, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable: %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: a query without expr, or its refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %s does not use the datasource variable", p.Title, q.RefID)
			}
		}
	}
	if queries < 10 {
		t.Errorf("%d queries: the dashboard lost its panels?", queries)
	}
}

var (
	// A metric name: dst_..., not inside a recorded name (a:dst_b:c).
	metricName = regexp.MustCompile(`(?:^|[^:\w])(dst_[a-z0-9_]+)`)
	// A recording rule's name, level:metric:operations.
	recordedName = regexp.MustCompile(`\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b`)
	exprLine     = regexp.MustCompile(`(?m)^\s*(?:- )?(record|expr): *(.*)$`)
)

// referenced are the dst_ metric names of the rules' and the dashboard's
// expressions, with where each is used.
func referenced(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	// An expr may go on over the lines below it (YAML's |): every line
	// that is not a comment or an annotation counts.
	recorded := map[string]bool{}
	for _, m := range exprLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "record" {
			recorded[strings.TrimSpace(m[2])] = true
		}
	}
	inAnnotations := false
	for i, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "#"):
			continue
		case trim == "annotations:":
			inAnnotations = true
			continue
		case strings.HasPrefix(trim, "- alert:") || strings.HasPrefix(trim, "- record:"):
			inAnnotations = false
		}
		if inAnnotations {
			continue
		}
		for _, m := range metricName.FindAllStringSubmatch(line, -1) {
			names[m[1]] = fmt.Sprintf("%s:%d", filepath.Base(rules), i+1)
		}
		for _, n := range recordedName.FindAllString(line, -1) {
			if !recorded[n] {
				t.Errorf("%s:%d uses %s, which no rule records", filepath.Base(rules), i+1, n)
			}
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, q := range p.Targets {
			for _, m := range metricName.FindAllStringSubmatch(q.Expr, -1) {
				names[m[1]] = "dashboard panel " + p.Title
			}
		}
	}
	return names
}

// exported are the metric names of a /metrics page: each family, and for
// a histogram its _bucket, _sum and _count series.
func exported(page string) []string {
	var names []string
	for _, line := range strings.Split(page, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names = append(names, f[2])
		if f[3] == "histogram" || f[3] == "summary" {
			names = append(names, f[2]+"_bucket", f[2]+"_sum", f[2]+"_count")
		}
	}
	return names
}

// Every dst_ metric the rules and the dashboard use is one a real dstd
// exports, from its first scrape: a dstd with a DNS listener, a peer it
// feeds and a keyring (the per-peer and per-origin series).
func TestMetricNamesExported(t *testing.T) {
	names := referenced(t)
	if len(names) < 15 {
		t.Fatalf("only %d dst_ metrics found in the rules and dashboard: %v", len(names), names)
	}
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(dir, "keyring")
	if err := os.WriteFile(keyring, []byte(dkim.KeyringLine("peer.test", "dst", pub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := dsttest.NewDstd(t, "monitor.test", fmt.Sprintf(`[dkim]
keyring = %q

[dns]
zone = "bl.monitor.test"

[[peer]]
name = "peer.test"
feed = "127.0.0.1:%d"
`, keyring, dsttest.FreePort(t)))
	d.Start()
	have := exported(d.Metrics())
	for n, where := range names {
		if !slices.Contains(have, n) {
			t.Errorf("%s (%s) is not exported by dstd", n, where)
		}
	}
	if t.Failed() {
		t.Logf("dstd exports: %s", strings.Join(have, " "))
	}
}
