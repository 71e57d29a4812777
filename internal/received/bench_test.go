package received

import (
	"os"
	"testing"
)

// BenchmarkSourceCorpus walks the Received fields of every corpus message;
// the msgs/s figure excludes reading and report building (see cmd/dstc's
// BenchmarkCorpus for the whole program).
func BenchmarkSourceCorpus(b *testing.B) {
	type job struct {
		site   *Site
		fields []string
	}
	var jobs []job
	for _, c := range loadCorpus(b) {
		msg, err := os.ReadFile(c.eml)
		if err != nil {
			b.Fatal(err)
		}
		s := mustSite(b, c.mx)
		s.Trusted = c.trust
		jobs = append(jobs, job{s, Fields(headerOf(msg))})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := jobs[i%len(jobs)]
		j.site.Source(j.fields)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
