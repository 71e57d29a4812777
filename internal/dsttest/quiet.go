package dsttest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
)

// WaitFeedsQuiet waits until no report is on its way between the sites, so
// that a count taken then is final: a duplicate that would be accepted
// wrongly has been offered by then.
//
// A report on its way is always in some site's feed queue: a site
// queues what it accepts for its peers in the commit that stores it,
// before it answers, and the sender removes the item only after the
// answer and after counting it (sent, refused or deferred). So if, over
// three reads of every site's feeds, the queues were empty in the first
// two and no counter moved, nothing was queued between the first and the
// second: an item queued at a site after that site's first read either
// is still there at its second read, or left it, counted before its
// second read of the counters or, at the latest, before its third.
// Nothing can be queued later either, since only a report on its way
// queues more.
func WaitFeedsQuiet(t testing.TB, sites []*Dstd) {
	t.Helper()
	type feed struct {
		site, peer              string
		depth                   int
		sent, refused, deferred int64
	}
	read := func() []feed {
		var fs []feed
		for _, s := range sites {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ps, err := admin.NewClient(s.Admin).Peers(ctx)
			cancel()
			if err != nil {
				t.Fatalf("peers of %s: %v", s.Site, err)
			}
			for _, p := range ps {
				fs = append(fs, feed{s.Site, p.Name, p.Depth, p.Sent, p.Refused, p.Deferred})
			}
		}
		return fs
	}
	counters := func(fs []feed) []feed {
		out := slices.Clone(fs)
		for i := range out {
			out[i].depth = 0
		}
		return out
	}
	empty := func(fs []feed) bool {
		return !slices.ContainsFunc(fs, func(f feed) bool { return f.depth != 0 })
	}
	var last [][]feed
	WaitFor(t, 60*time.Second, "every feed queue to stay empty", func() bool {
		last = append(last, read())
		if len(last) > 3 {
			last = last[1:]
		}
		return len(last) == 3 && empty(last[0]) && empty(last[1]) &&
			slices.Equal(counters(last[0]), counters(last[1])) && slices.Equal(counters(last[1]), counters(last[2]))
	})
}
