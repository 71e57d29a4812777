package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/spool"
)

func runDstc(t testing.TB, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"-log", "stderr"}, args...), bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sourceIP parses a report article the way dstd will, and returns its
// Source-IP.
func sourceIP(t testing.TB, wire []byte) string {
	t.Helper()
	a, err := article.Parse(wire, article.DefaultLimits())
	if err != nil {
		t.Fatalf("report is not a valid article: %v\n%s", err, wire)
	}
	for _, h := range []string{"From", "Newsgroups", "Subject", "Message-ID", "Date", "MIME-Version"} {
		if a.Get(h) == "" {
			t.Errorf("report lacks %s:\n%s", h, wire)
		}
	}
	if !article.ValidMessageID(a.Get("Message-ID")) {
		t.Errorf("bad Message-ID %q", a.Get("Message-ID"))
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		t.Fatalf("report body is not a feedback report: %v\n%s", err, wire)
	}
	return r.SourceIP.String()
}

func TestDryRunSample(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	code, out, errs := runDstc(t, msg, "-n", "-m", "mx[12].example.net")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wire := []byte(strings.ReplaceAll(out, "\n", "\r\n"))
	if got := sourceIP(t, wire); got != "203.0.113.7" {
		t.Errorf("Source-IP = %s, want 203.0.113.7", got)
	}
	if !strings.Contains(out, "Subject: You have won") {
		t.Error("the report does not carry the trapped message")
	}
}

func TestDryRunNothingToReport(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	code, out, errs := runDstc(t, msg, "-n", "-m", "other.example.org")
	if code != exitOK || out != "" {
		t.Fatalf("exit %d, stdout %q; want 0 and nothing", code, out)
	}
	if !strings.Contains(errs, "nothing to report") || !strings.Contains(errs, "matches no MX pattern") {
		t.Errorf("log does not say why: %s", errs)
	}
	code, out, _ = runDstc(t, []byte("Subject: no trace fields\n\nhi\n"), "-n", "-m", "mx1.example.net")
	if code != exitOK || out != "" {
		t.Fatalf("exit %d, stdout %q; want 0 and nothing", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-n"},                            // no -m
		{"-m", "mx[1.example.net"},        // bad glob
		{"-m", "mx", "-t", "10.0.0.0/33"}, // bad CIDR
		{"-m", "mx", "extra"},             // stray argument
		{"-m", "mx", "-log", "file"},      // bad log mode
		{"-bogus"},
	} {
		r := &countingReader{r: strings.NewReader("Subject: x\n\nbody\n")}
		var out, errb bytes.Buffer
		code := run(context.Background(), args, r, &out, &errb)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if errb.Len() == 0 {
			t.Errorf("%q: no error message", args)
		}
		if !r.eof {
			t.Errorf("%q: stdin not read to its end", args)
		}
	}
}

type countingReader struct {
	r   io.Reader
	eof bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSpoolWhenDstdIsDown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	msg := readFile(t, "../../examples/trap-hit.eml")
	code, out, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-s", closedAddr(t), "-spool", dir)
	if code != exitOK || out != "" {
		t.Fatalf("exit %d stdout %q: %s", code, out, errs)
	}
	entries, err := spool.List(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("spool holds %d entries (%v), want 1; log: %s", len(entries), err, errs)
	}
	if got := sourceIP(t, readFile(t, entries[0].Path)); got != "203.0.113.7" {
		t.Errorf("spooled Source-IP = %s", got)
	}
	if !strings.Contains(errs, "report spooled") {
		t.Errorf("log does not say the report was spooled: %s", errs)
	}
}

func TestTempFailWhenNothingWorks(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notADir, nil, 0o600)
	msg := readFile(t, "../../examples/trap-hit.eml")
	code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-s", closedAddr(t), "-spool", filepath.Join(notADir, "spool"))
	if code != exitTempFail {
		t.Fatalf("exit %d, want %d: %s", code, exitTempFail, errs)
	}
	if !strings.Contains(errs, "cannot submit nor spool") {
		t.Errorf("log: %s", errs)
	}
}

// fakeDstd is a minimal NNTP server that answers POST with a fixed code and
// records what it received.
type fakeDstd struct {
	addr     string
	greeting string
	answer   string
	got      chan []byte
}

func startFakeDstd(t *testing.T, network, addr, greeting, answer string) *fakeDstd {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeDstd{addr: l.Addr().String(), greeting: greeting, answer: answer, got: make(chan []byte, 1)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeDstd) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "%s\r\n", f.greeting)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch strings.ToUpper(strings.TrimSpace(line)) {
		case "POST":
			fmt.Fprintf(c, "340 send article\r\n")
			var art bytes.Buffer
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				art.WriteString(strings.TrimPrefix(l, "."))
			}
			f.got <- art.Bytes()
			fmt.Fprintf(c, "%s\r\n", f.answer)
		case "QUIT":
			fmt.Fprintf(c, "205 bye\r\n")
			return
		default:
			fmt.Fprintf(c, "500 what?\r\n")
		}
	}
}

func TestPostToDstd(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	sock := filepath.Join(t.TempDir(), "nntp.sock")
	for _, tc := range []struct {
		name, network, addr, greeting, answer string
		spooled                               bool
	}{
		{"accepted over tcp", "tcp", "127.0.0.1:0", "200 dstd ready", "240 article received", false},
		{"accepted over a unix socket", "unix", sock, "200 dstd ready", "240 article received", false},
		{"refused", "tcp", "127.0.0.1:0", "200 dstd ready", "441 duplicate", false},
		{"posting not allowed", "tcp", "127.0.0.1:0", "201 read only", "440 posting not permitted", true},
		{"server fault", "tcp", "127.0.0.1:0", "200 dstd ready", "403 disk full", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeDstd(t, tc.network, tc.addr, tc.greeting, tc.answer)
			dir := t.TempDir()
			code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-s", f.addr, "-spool", dir)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			entries, _ := spool.List(dir)
			if spooled := len(entries) == 1; spooled != tc.spooled {
				t.Fatalf("spooled = %v, want %v; log: %s", spooled, tc.spooled, errs)
			}
			if tc.spooled {
				return
			}
			select {
			case wire := <-f.got:
				if got := sourceIP(t, wire); got != "203.0.113.7" {
					t.Errorf("posted Source-IP = %s", got)
				}
			default:
				t.Fatal("the fake dstd received no article")
			}
		})
	}
}

// TestCorpus runs the whole program, as the MTA would, on every message of
// the Received corpus, with the flags of its .want file.
func TestCorpus(t *testing.T) {
	wants, err := filepath.Glob("../../internal/received/testdata/*/*.want")
	if err != nil || len(wants) == 0 {
		t.Fatalf("no corpus (%v)", err)
	}
	for _, wf := range wants {
		name := strings.TrimPrefix(wf, "../../internal/received/testdata/")
		t.Run(name, func(t *testing.T) {
			args, want := wantArgs(t, wf)
			msg := readFile(t, strings.TrimSuffix(wf, ".want")+".eml")
			code, out, errs := runDstc(t, msg, append(args, "-n")...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if want == "none" {
				if out != "" {
					t.Errorf("reported something, want nothing: %s", out)
				}
				return
			}
			if authenticatedInCorpus[name] {
				// The walk still finds the client (the log names it), but
				// it logged in at the MX: a user of the site.
				if out != "" || !strings.Contains(errs, "not reported: the client authenticated at the MX") ||
					!strings.Contains(errs, " ip="+want+" ") {
					t.Errorf("want nothing reported, because %s authenticated at the MX: %s\n%s", want, errs, out)
				}
				return
			}
			if out == "" {
				t.Fatalf("reported nothing, want %s: %s", want, errs)
			}
			if got := sourceIP(t, []byte(strings.ReplaceAll(out, "\n", "\r\n"))); got != want {
				t.Errorf("Source-IP = %s, want %s", got, want)
			}
		})
	}
}

// authenticatedInCorpus are the corpus messages whose MX hop records SMTP
// AUTH (internal/classify): dstc reports none of them.
var authenticatedInCorpus = map[string]bool{
	// "(authenticated bits=0)" after the client's address (Sendmail).
	"public/sendmail-folded-may-be-forged-auth.want": true,
	// "with ESMTPSA" (Zimbra's Postfix).
	"public/zimbra-amavis-postfix-submission.want": true,
}

func wantArgs(t testing.TB, path string) (args []string, want string) {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `'"`)
		switch k {
		case "mx":
			args = append(args, "-m", v)
		case "trust":
			args = append(args, "-t", v)
		case "want":
			want = v
		}
	}
	return args, want
}

// A message under -max-message can still make a report over what dstd
// takes (LF line ends become CRLF, the ARF parts add their own): dstd would
// refuse it and the hit would be lost. Such a report carries the header.
func TestReportFitsMaxArticle(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	// 900 KB of empty LF lines: 1.8 MB once in CRLF.
	big := append(append([]byte{}, msg...), bytes.Repeat([]byte("\n"), 900_000)...)
	code, out, errs := runDstc(t, big, "-n", "-m", "mx[12].example.net")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wire := []byte(strings.ReplaceAll(out, "\n", "\r\n"))
	if len(wire) > 1_000_000 {
		t.Errorf("report of %d bytes, over dstd's default nntp.max_article_bytes", len(wire))
	}
	if !strings.Contains(out, "text/rfc822-headers") || !strings.Contains(errs, "sending its header only") {
		t.Errorf("the report does not fall back to the header:\n%s", errs)
	}
	if got := sourceIP(t, wire); got != "203.0.113.7" {
		t.Errorf("Source-IP = %s, want 203.0.113.7", got)
	}
	// The same message whole when dstd takes it.
	_, out, _ = runDstc(t, big, "-n", "-m", "mx[12].example.net", "-max-article", "4000000")
	if strings.Contains(out, "text/rfc822-headers") {
		t.Error("with -max-article 4000000 the message should travel whole")
	}
}
