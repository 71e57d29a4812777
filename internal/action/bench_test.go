package action

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

// BenchmarkReportLogCatchUp measures the report log working through a
// backlog, as after dstd was stopped with events queued: b.N events are
// queued before the timer starts, then the runner writes their lines
// until the queue is empty. Neither the store nor the log syncs, so that
// what is measured is the runner and its acknowledgements.
func BenchmarkReportLogCatchUp(b *testing.B) {
	dir := b.TempDir()
	db, err := store.Open(filepath.Join(dir, "dst.db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Subscribe("log", nil); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		ev := store.Event{Kind: store.EventReport, Time: time.Unix(1764000000, 0), Origin: "site-a.example", Listed: true,
			IP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), MessageID: fmt.Sprintf("<%d@site-a.example>", i),
			Expires: time.Unix(1764086400, 0)}
		if err := db.Enqueue([]string{"log"}, ev); err != nil {
			b.Fatal(err)
		}
	}
	l, err := NewReportLog(filepath.Join(dir, "reports.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	dsttest.Go(b, func(ctx context.Context) error { return Run(ctx, db, l, RunnerOptions{Concurrency: 1}) })
	dsttest.WaitFor(b, time.Minute, "an empty queue", func() bool {
		d, err := db.QueueDepth("log")
		return err == nil && d == 0
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
