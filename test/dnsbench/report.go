package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// The report is Markdown between two marker lines, which
// scripts/bench-all.sh copies into its own report, followed by
// tab-separated "result" lines it reads its ratio table from:
//
//	result	LISTINGS	SERVER	KEY	VALUE
//
// SERVER is rbldnsd, dstd or ratio (dstd/rbldnsd).
const (
	reportBegin = "<!-- dnsbench report -->"
	reportEnd   = "<!-- end of dnsbench report -->"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// series applies f to each of a server's measurements.
func series(ms []measurement, f func(measurement) float64) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = f(m)
	}
	return out
}

func qpsOf(m measurement) float64       { return m.perf.qps }
func serverCPUOf(m measurement) float64 { return m.cpuPerQuery(m.serverCPU) }
func perfCPUOf(m measurement) float64   { return m.cpuPerQuery(m.perfCPU) }
func othersOf(m measurement) float64    { return m.cores(m.othersCPU) }

// ratios is dstd's figure over rbldnsd's, round by round: the two
// measurements of a round ran back to back, so a change in the load of the
// machine between rounds moves both.
func ratios(r sizeResult, f func(measurement) float64) []float64 {
	d, b := r.runs["dstd"], r.runs["rbldnsd"]
	var out []float64
	for i := range min(len(d), len(b)) {
		if f(b[i]) > 0 {
			out = append(out, f(d[i])/f(b[i]))
		}
	}
	return out
}

// commas formats a count with thousands separators: 1000000 -> 1,000,000.
func commas(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratioCell(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	if len(v) == 1 {
		return fmt.Sprintf("%.2f", v[0])
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(v), slices.Min(v), slices.Max(v))
}

func cell(ms []measurement, format string, f func(measurement) float64) string {
	if len(ms) == 0 {
		return "–"
	}
	return fmt.Sprintf(format, median(series(ms, f)))
}

func qpsCell(ms []measurement) string {
	if len(ms) == 0 {
		return "–"
	}
	return commas(median(series(ms, qpsOf)))
}

func lostCell(ms []measurement) string {
	if len(ms) == 0 {
		return "–"
	}
	var lost int64
	for _, m := range ms {
		lost += m.perf.lost
	}
	return strconv.FormatInt(lost, 10)
}

func memCell(v int64, ok bool) string {
	if !ok {
		return "–"
	}
	return mib(v)
}

func perListing(v int64, ok bool, n int) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.0f B", float64(v)/float64(n))
}

func report(w io.Writer, o options, results []sizeResult) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("%s\n", reportBegin)
	q := "no `-Q`: as fast as each server answers"
	if o.maxQPS > 0 {
		q = fmt.Sprintf("`-Q %d`", o.maxQPS)
	}
	procs := "Go's default GOMAXPROCS (the CPUs it may run on) plus the spare P dstd adds (dnsbl.SpareP)"
	if o.procs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS %d", o.procs)
	}
	p("dnsperf `-c %d -T %d -q %d` (%s), %v per measurement after a %v warm-up, %d round(s) per listing count, each measuring both servers back to back and alternating which goes first. Servers %s, dnsperf %s; dstd's server process: %s; %d CPUs.\n\n",
		o.clients, o.threads, o.outstand, q, o.duration, o.warmup, o.repeat, pinned(o.serverCPUs), pinned(o.perfCPUs), procs, runtime.NumCPU())
	p("Figures are the median of the rounds. Ratios are dstd/rbldnsd, the median of the rounds' ratios, with the lowest and highest round in parentheses. CPU µs/query: the server's utime+stime (whole process, /proc/PID/stat) during the measurement divided by the queries completed; dnsperf's own CPU the same way; rest of machine: CPU busy time (/proc/stat) not used by the server or dnsperf, in cores, median (highest).\n\n")
	p("| listings | rbldnsd q/s | dstd q/s | q/s dstd/rbldnsd | rbldnsd CPU µs/query | dstd CPU µs/query | CPU/query dstd/rbldnsd | lost (rbldnsd, dstd) | dnsperf CPU µs/query (rbldnsd, dstd) | rest of machine, cores |\n")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		b, d := r.runs["rbldnsd"], r.runs["dstd"]
		all := append(slices.Clone(b), d...)
		others := series(all, othersOf)
		p("| %s | %s | %s | %s | %s | %s | %s | %s, %s | %s, %s | %.2f (%.2f) |\n",
			commas(float64(r.n)), qpsCell(b), qpsCell(d), ratioCell(ratios(r, qpsOf)),
			cell(b, "%.2f", serverCPUOf), cell(d, "%.2f", serverCPUOf), ratioCell(ratios(r, serverCPUOf)),
			lostCell(b), lostCell(d),
			cell(b, "%.2f", perfCPUOf), cell(d, "%.2f", perfCPUOf),
			median(others), slices.Max(others))
	}
	p("\nMemory after the measurements: rbldnsd's whole process; dstd's server process holds the index and the Go runtime only (the whole daemon's memory is BenchmarkMemory1MListings in test/bench).\n\n")
	p("| listings | rbldnsd VmRSS | dstd server RssAnon | dstd index heap | per listing: rbldnsd VmRSS | dstd server RssAnon | dstd index heap |\n")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		bv, bok := r.vmRSS["rbldnsd"]
		da, dok := r.rssAnon["dstd"]
		p("| %s | %s | %s | %s | %s | %s | %s |\n", commas(float64(r.n)),
			memCell(bv, bok), memCell(da, dok), memCell(r.heap, dok),
			perListing(bv, bok, r.n), perListing(da, dok, r.n), perListing(r.heap, dok, r.n))
	}
	p("%s\n\n", reportEnd)

	res := func(n int, who, key string, v float64) {
		p("result\t%d\t%s\t%s\t%s\n", n, who, key, strconv.FormatFloat(v, 'f', -1, 64))
	}
	for _, r := range results {
		for _, who := range []string{"rbldnsd", "dstd"} {
			ms := r.runs[who]
			if len(ms) == 0 {
				continue
			}
			var lost, sent int64
			for _, m := range ms {
				lost, sent = lost+m.perf.lost, sent+m.perf.sent
			}
			res(r.n, who, "qps", float64(int64(median(series(ms, qpsOf))+0.5)))
			res(r.n, who, "cpu_us_per_query", round2(median(series(ms, serverCPUOf))))
			res(r.n, who, "dnsperf_cpu_us_per_query", round2(median(series(ms, perfCPUOf))))
			res(r.n, who, "lost", float64(lost))
			res(r.n, who, "sent", float64(sent))
			res(r.n, who, "vmrss_bytes", float64(r.vmRSS[who]))
			res(r.n, who, "rssanon_bytes", float64(r.rssAnon[who]))
			if who == "dstd" {
				res(r.n, who, "index_heap_bytes", float64(r.heap))
			}
		}
		if v := ratios(r, qpsOf); len(v) > 0 {
			res(r.n, "ratio", "qps", round2(median(v)))
			res(r.n, "ratio", "cpu_us_per_query", round2(median(ratios(r, serverCPUOf))))
		}
	}
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
