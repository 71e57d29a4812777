package bench_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// Stream ingest settings: at least minStream articles per run, fed with
// streamWindow CHECK and TAKETHIS commands unanswered at most (dstd's own
// feeder default, feed.DefaultWindow).
const (
	minStream    = 5000
	streamWindow = 64
	// feederSite is the peer whose feed both servers take.
	feederSite = "peer.test"
)

// streamAddr is the i-th source address: the documentation ranges in turn
// (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, 2001:db8::/32), each
// address once; when a /24 is used up its turns go to 2001:db8::/32.
func streamAddr(i int) netip.Addr {
	k := i / 4
	switch r := i % 4; {
	case r == 0 && k < 256:
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(k)})
	case r == 1 && k < 256:
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(k)})
	case r == 2 && k < 256:
		return netip.AddrFrom4([4]byte{192, 0, 2, byte(k)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, 0xed, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// feedArticles builds n reports as peer.test would relay them: injected
// and signed there (DKIM, Ed25519), with "Path: peer.test!not-for-mail" in
// front. It returns their Message-IDs, the articles, and the keyring line
// that makes a dstd trust them.
func feedArticles(b *testing.B, n int) (ids []string, arts [][]byte, keyringLine string) {
	b.Helper()
	pub, priv, err := dkim.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	signer, err := dkim.NewSigner(feederSite, "dst", priv)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		a, err := report.New(report.Hit{SourceIP: streamAddr(i), Arrival: now, Host: feederSite, UserAgent: "bench/1",
			Message: []byte("From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: buy\r\n\r\nbuy now\r\n")})
		if err != nil {
			b.Fatal(err)
		}
		signed, err := signer.Sign(a.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.Get("Message-ID"))
		arts = append(arts, append([]byte("Path: "+feederSite+"!not-for-mail\r\n"), signed...))
	}
	return ids, arts, dkim.KeyringLine(feederSite, "dst", pub)
}

// streamResult is what one feed run saw.
type streamResult struct {
	elapsed time.Duration // from the first CHECK to the last answer
	taken   int           // 239
	codes   map[int]int   // every final answer, by code
}

// streamFeed sends the articles to the NNTP server at addr as dstd's
// feeder does (internal/feed): MODE STREAM, CHECKs in batches whenever half
// the window is free, TAKETHIS for each 238, at most window commands
// unanswered, answers read by a second goroutine. It does not retry: an
// article deferred (431, 400) is counted under its code and not sent again.
func streamFeed(ctx context.Context, addr string, ids []string, arts [][]byte, window int) (streamResult, error) {
	res := streamResult{codes: make(map[int]int)}
	c, err := nntp.Dial(ctx, addr, time.Minute)
	if err != nil {
		return res, err
	}
	defer c.Close()
	streaming, err := c.ModeStream(ctx)
	if err != nil {
		return res, err
	}
	if !streaming {
		return res, fmt.Errorf("%s refused MODE STREAM", addr)
	}
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}

	type answer struct {
		r   nntp.Result
		err error
	}
	rctx, stop := context.WithCancel(ctx)
	answers := make(chan answer, window+1)
	readerDone := make(chan struct{})
	defer func() { stop(); <-readerDone }()
	go func() {
		defer close(readerDone)
		for {
			r, err := c.NextResult(rctx)
			answers <- answer{r, err}
			if err != nil {
				return
			}
		}
	}()

	next, onWire, done := 0, 0, 0
	start := time.Now()
	for done < len(ids) {
		if free := window - onWire; next < len(ids) && (free >= (window+1)/2 || onWire == 0) {
			k := min(free, len(ids)-next)
			if err := c.Check(ctx, ids[next:next+k]...); err != nil {
				return res, err
			}
			next += k
			onWire += k
		}
		a := <-answers
		onWire--
		if a.err != nil {
			return res, fmt.Errorf("after %d answers: %w", done, a.err)
		}
		switch {
		case a.r.Command == "CHECK" && a.r.Code == 238:
			if err := c.TakeThis(ctx, a.r.MsgID, arts[index[a.r.MsgID]]); err != nil {
				return res, err
			}
			onWire++
		default:
			res.codes[a.r.Code]++
			if a.r.Command == "TAKETHIS" && a.r.Code == 239 {
				res.taken++
			}
			done++
		}
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// BenchmarkStreamIngest feeds the same signed reports, with the same
// streaming client, to a fresh dstd (which trusts peer.test and admits its
// feed from 127.0.0.1) and then to a fresh innd (group dst.reports, peer
// 127.0.0.1, no outgoing feeds), and reports both rates and their ratio.
// A run sends max(b.N, 5000) articles to each; the time is from the first
// CHECK to the last answer, connection setup excluded. Both must take
// every article (239), which is checked from the answers and from each
// server's own counts.
func BenchmarkStreamIngest(b *testing.B) {
	m := max(b.N, minStream)
	ids, arts, keyringLine := feedArticles(b, m)
	var bytes int
	for _, a := range arts {
		bytes += len(a)
	}
	b.Logf("%d articles, %d bytes on average", m, bytes/m)
	ctx := context.Background()
	b.ResetTimer()

	// dstd
	b.StopTimer()
	d := dsttest.NewDstd(b, "site-a.test", "[policy]\nallow_documentation = true\n\n[[peer]]\nname = \""+feederSite+"\"\naddresses = [\"127.0.0.1\"]\n")
	if err := os.MkdirAll(d.Dir, 0o750); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "keyring"), []byte(keyringLine+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	d.Start()
	b.StartTimer()
	dres, err := streamFeed(ctx, d.NNTP, ids, arts, streamWindow)
	b.StopTimer()
	if err != nil {
		b.Fatalf("feeding dstd: %v (answers so far %v)", err, dres.codes)
	}
	checkStream(b, "dstd", dres, m)
	ac := admin.NewClient(d.Admin)
	st, err := ac.Status(ctx)
	ac.Close()
	if err != nil {
		b.Fatal(err)
	}
	if acc := acceptedTotal(b, d); acc != m || st.Listings != m {
		b.Errorf("dstd: %d accepted, %d listings; want %d of each", acc, st.Listings, m)
	}
	out, _ := d.Ctl("status")
	b.Logf("dstd: %d taken in %v; dstctl status:\n%s", dres.taken, dres.elapsed.Round(time.Millisecond), out)
	d.Stop()

	// innd
	ires := feedINN(b, ctx, ids, arts, m)

	dRate := float64(dres.taken) / dres.elapsed.Seconds()
	iRate := float64(ires.taken) / ires.elapsed.Seconds()
	b.ReportMetric(float64(m), "articles")
	b.ReportMetric(dRate, "dstd-reports/s")
	b.ReportMetric(iRate, "innd-reports/s")
	b.ReportMetric(dRate/iRate, "ratio")
}

// checkStream checks that a server took all m articles.
func checkStream(b *testing.B, who string, r streamResult, m int) {
	b.Helper()
	if r.taken != m {
		b.Errorf("%s took %d of %d articles; answers by code: %v", who, r.taken, m, r.codes)
	}
}

// codesString prints a code count map in a stable order.
func codesString(codes map[int]int) string {
	var s []string
	for c := 100; c < 600; c++ {
		if n := codes[c]; n > 0 {
			s = append(s, fmt.Sprintf("%d×%d", n, c))
		}
	}
	return strings.Join(s, " ")
}

// feedINN starts a fresh innd (dsttest.StartINN: group dst.reports,
// 127.0.0.1 allowed to feed, no outgoing feeds, and INN's default history
// sync of every 10 articles), feeds it the articles with streamFeed and
// checks that it stored every one.
func feedINN(b *testing.B, ctx context.Context, ids []string, arts [][]byte, m int) streamResult {
	b.Helper()
	inn := dsttest.StartINN(b, dsttest.INNOptions{HistorySyncEvery: 10})
	b.StartTimer()
	res, err := streamFeed(ctx, inn.Addr(), ids, arts, streamWindow)
	b.StopTimer()
	if err != nil {
		b.Fatalf("feeding innd: %v (answers so far %v)", err, res.codes)
	}
	checkStream(b, "innd", res, m)
	stored := inn.ArticleCount("dst.reports")
	if stored != m {
		b.Errorf("innd stored %d articles in dst.reports, want %d", stored, m)
	}
	b.Logf("innd: %d taken in %v; answers %s; stored %d", res.taken, res.elapsed.Round(time.Millisecond), codesString(res.codes), stored)
	inn.Stop()
	return res
}
