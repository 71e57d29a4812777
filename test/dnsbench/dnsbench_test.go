package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// dnsperf 2.10's statistics, as the benchmark reads them.
const perfOut = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5353 -d queries -l 10 -c 4 -T 4 -q 100
[Status] Sending queries (to 127.0.0.1:5353)
[Status] Started at: Sun Nov 29 07:20:41 2026
[Status] Stopping after 10.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         769572
  Queries completed:    769570 (100.00%)
  Queries lost:         2 (0.00%)

  Response codes:       NOERROR 384786 (50.00%), NXDOMAIN 384784 (50.00%)
  Average packet size:  request 43, response 99
  Run time (s):         10.008165
  Queries per second:   76894.216931

  Average Latency (s):  0.001142 (min 0.000016, max 0.023811)
  Latency StdDev (s):   0.000657
`

func TestParsePerf(t *testing.T) {
	r, err := parsePerf([]byte(perfOut))
	if err != nil {
		t.Fatal(err)
	}
	if r.qps != 76894.216931 || r.sent != 769572 || r.completed != 769570 || r.lost != 2 || r.latency != "0.001142 s" {
		t.Errorf("parsed %+v", r)
	}
}

func TestParsePerfRefusesWrongAnswers(t *testing.T) {
	for name, out := range map[string]string{
		"errors":    strings.Replace(perfOut, "NXDOMAIN 384784 (50.00%)", "SERVFAIL 384784 (50.00%)", 1),
		"all hits":  strings.Replace(perfOut, "NOERROR 384786 (50.00%), NXDOMAIN 384784 (50.00%)", "NOERROR 769570 (100.00%)", 1),
		"no rate":   strings.Replace(perfOut, "Queries per second:", "", 1),
		"no losses": strings.Replace(perfOut, "Queries lost:", "", 1),
	} {
		if _, err := parsePerf([]byte(out)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime and stime are
	// fields 14 and 15.
	line := "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 100 1000 200\n"
	got, err := statCPU(line)
	if err != nil || got != 1234+567 {
		t.Errorf("statCPU = %d, %v; want %d", got, err, 1234+567)
	}
	if _, err := statCPU("4242 (x) S 1 2"); err == nil {
		t.Error("a short line was accepted")
	}
}

func run3(qps []float64, cpuUS []float64) []measurement {
	var ms []measurement
	for i := range qps {
		completed := int64(qps[i] * 10)
		ms = append(ms, measurement{
			perf:      perfResult{qps: qps[i], sent: completed, completed: completed},
			serverCPU: time.Duration(cpuUS[i] * float64(completed) * float64(time.Microsecond)),
			wall:      10 * time.Second,
		})
	}
	return ms
}

// TestReport checks the figures and the format scripts/bench-all.sh reads:
// the markers around the Markdown, and the result lines.
func TestReport(t *testing.T) {
	r := sizeResult{n: 1000000, heap: 48 << 20,
		runs: map[string][]measurement{
			"rbldnsd": run3([]float64{100000, 120000, 110000}, []float64{3, 4, 3.5}),
			"dstd":    run3([]float64{130000, 150000, 100000}, []float64{3, 2, 3.5}),
		},
		vmRSS:   map[string]int64{"rbldnsd": 91 << 20, "dstd": 120 << 20},
		rssAnon: map[string]int64{"rbldnsd": 88 << 20, "dstd": 100 << 20},
	}
	var b bytes.Buffer
	report(&b, options{clients: 4, threads: 4, outstand: 100, duration: 10 * time.Second, warmup: time.Second, repeat: 3}, []sizeResult{r})
	out := b.String()
	begin, end := strings.Index(out, reportBegin+"\n"), strings.Index(out, reportEnd+"\n")
	if begin < 0 || end < begin {
		t.Fatalf("no markers around the report:\n%s", out)
	}
	// Rounds' q/s ratios 1.3, 1.25, 0.909: median 1.25; CPU 1, 0.5, 1:
	// median 1. Medians of the servers: 110,000 and 130,000 q/s.
	for _, want := range []string{
		"| 1,000,000 | 110,000 | 130,000 | 1.25 (0.91–1.30) | 3.50 | 3.00 | 1.00 (0.50–1.00) | 0, 0 |",
		"result\t1000000\tratio\tqps\t1.25\n",
		"result\t1000000\tratio\tcpu_us_per_query\t1\n",
		"result\t1000000\tdstd\tqps\t130000\n",
		"result\t1000000\trbldnsd\tcpu_us_per_query\t3.5\n",
		"result\t1000000\trbldnsd\tvmrss_bytes\t95420416\n",
		"result\t1000000\tdstd\trssanon_bytes\t104857600\n",
		"result\t1000000\tdstd\tindex_heap_bytes\t50331648\n",
		"| 1,000,000 | 91.0 MiB | 100.0 MiB | 48.0 MiB | 95 B | 105 B | 50 B |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseSizes(t *testing.T) {
	if got, err := parseSizes("100000, 1000000"); err != nil || len(got) != 2 || got[0] != 100000 || got[1] != 1000000 {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1e6", "100000,"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}
