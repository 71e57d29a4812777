package crash_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

const (
	// peerSite relays reports to the dstd under test, which trusts its key.
	peerSite = "site-b.test"
	// window is how many TAKETHIS the peer keeps unanswered, as dstd's
	// feeder does: dstd receives them at once and commits them together.
	window = 64
)

// relayed builds a report about ip as peerSite relays it: signed there,
// with its name in front of the Path.
func relayed(signer *dkim.Signer, ip netip.Addr) (id string, art []byte, err error) {
	a, err := report.New(report.Hit{SourceIP: ip, Arrival: time.Now(), Host: "trap." + peerSite,
		UserAgent: "crash-test/1", Message: []byte("From: <a@spam.example>\r\nSubject: buy\r\n\r\nbuy now\r\n")})
	if err != nil {
		return "", nil, err
	}
	signed, err := signer.Sign(a.Bytes())
	if err != nil {
		return "", nil, err
	}
	return a.Get("Message-ID"), append([]byte("Path: "+peerSite+"!not-for-mail\r\n"), signed...), nil
}

// streamUntilError streams TAKETHIS to addr, window at a time, until the
// connection fails (the kill); every 239 is recorded in ack. It returns
// how many articles it sent and how many were taken.
func streamUntilError(t *testing.T, addr string, signer *dkim.Signer, ips *addrs, ack *acked, killing func() bool) (sent, taken int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := nntp.Dial(ctx, addr, 10*time.Second)
	if err != nil {
		t.Errorf("connecting to dstd: %v", err)
		return
	}
	defer c.Close()
	if ok, err := c.ModeStream(ctx); err != nil || !ok {
		t.Errorf("MODE STREAM: %v %v", ok, err)
		return
	}
	var mu sync.Mutex
	inFlight := map[string]netip.Addr{}
	results := make(chan error, 1)
	go func() {
		for {
			r, err := c.NextResult(ctx)
			if err != nil {
				results <- err
				return
			}
			mu.Lock()
			ip := inFlight[r.MsgID]
			delete(inFlight, r.MsgID)
			mu.Unlock()
			if r.Code != 239 {
				results <- fmt.Errorf("TAKETHIS %s answered %d %s", r.MsgID, r.Code, r.Text)
				return
			}
			ack.add(r.MsgID, ip)
			mu.Lock()
			taken++
			mu.Unlock()
		}
	}()
	for {
		select {
		case err := <-results:
			if !killing() {
				t.Errorf("the stream failed while dstd was running: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			return sent, taken
		default:
		}
		if c.Unanswered() >= window {
			time.Sleep(time.Millisecond)
			continue
		}
		ip := ips.next()
		id, art, err := relayed(signer, ip)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		inFlight[id] = ip
		mu.Unlock()
		if err := c.TakeThis(ctx, id, art); err != nil {
			var ne *nntp.Error
			if errors.As(err, &ne) || !killing() {
				t.Errorf("TAKETHIS while dstd was running: %v", err)
			}
			// The reader sees the broken connection too.
		}
		sent++
	}
}

// TestKillDuringStream: a peer streams TAKETHIS with a full window, so
// dstd receives and commits many articles of one connection at once; dstd
// is SIGKILLed at a random moment; every article answered 239 must be in
// the store. Three rounds on one data directory.
func TestKillDuringStream(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts dstd several times")
	}
	pub, priv, err := dkim.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dkim.NewSigner(peerSite, "dst", priv)
	if err != nil {
		t.Fatal(err)
	}
	d := dsttest.NewDstd(t, "site-a.test", lab+fmt.Sprintf("\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\n", peerSite))
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "keyring"), []byte(dkim.KeyringLine(peerSite, "dst", pub)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Start()
	var ips addrs
	var ack acked
	for round := 1; round <= 3; round++ {
		var killing sync.Mutex // held from just before the kill
		var killed bool
		isKilling := func() bool { killing.Lock(); defer killing.Unlock(); return killed }
		done := make(chan [2]int, 1)
		go func() {
			s, k := streamUntilError(t, d.NNTP, signer, &ips, &ack, isKilling)
			done <- [2]int{s, k}
		}()
		before := ack.len()
		wait := killAfter()
		time.Sleep(wait) // the crash comes at a random moment
		dsttest.WaitFor(t, 30*time.Second, "dstd to take an article", func() bool { return ack.len() > before })
		killing.Lock()
		killed = true
		killing.Unlock()
		d.Kill()
		r := <-done

		stored := checkStore(t, d.Dir, ack.snapshot())
		t.Logf("round %d: killed after %v: %d sent, %d taken; store: %d Message-IDs for %d acknowledged in all rounds",
			round, wait.Round(time.Millisecond), r[0], r[1], stored, ack.len())
		if r[1] == 0 {
			t.Errorf("round %d: no article was taken before the kill: the test exercised nothing", round)
		}
		if t.Failed() {
			t.FailNow()
		}
		d.Start()
	}
	d.Stop()
	checkStore(t, d.Dir, ack.snapshot())
}
