// Package secrecy_test floods trap reports through two dstd sites and a
// real INN between them, and looks for the trap address everywhere the
// reports went: INN's articles and logs, each site's database, report log,
// action program input and own log. A trap address that leaks is dead, so
// it must be found nowhere (docs/PROTOCOL.md §2.5, DST-Trap-HMAC).
//
// Needs root and an installed inn2 (test.sh installs it). Skipped
// otherwise, except that with CI=true a missing INN is a failure.
package secrecy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dsttest"
)

// The trap, as the spammer spelt it; every case variant must go.
const trap = "Secret.Trap-93kq@Example.NET"

// leak finds the trap's local part in any case, with or without its
// domain: it appears nowhere else in the test's messages.
var leak = regexp.MustCompile(`(?i)secret\.trap-93kq`)

// trapMessage names the trap in every field an MTA or a spammer puts it
// in, in its body and in a base64 HTML part; client sent it to
// mx1.example.net (Postfix).
func trapMessage(client string) []byte {
	html := base64.StdEncoding.EncodeToString([]byte(`<p>Hello SECRET.TRAP-93KQ@EXAMPLE.NET, <a href="https://spam.example/u?e=secret.trap-93kq%40example.net">unsubscribe</a></p>`))
	return []byte("Return-Path: <offers@spam.example>\n" +
		"X-Original-To: secret.trap-93kq@example.net\n" +
		"Delivered-To: Secret.Trap-93kq@example.net\n" +
		"Received: from spam.example (unknown [" + client + "])\n" +
		"\tby mx1.example.net (Postfix) with ESMTP id 57E9998433D\n" +
		"\tfor <SECRET.TRAP-93KQ@example.net>; " + time.Now().Format(time.RFC1123Z) + "\n" +
		"From: \"Prize Department\" <offers@spam.example>\n" +
		"To: \"Secret.Trap-93kq@Example.NET\" <Secret.Trap-93kq@Example.NET>\n" +
		"Cc: secret.trap-93kq@example.net\n" +
		"Subject: prize for secret.trap-93kq@example.net from " + client + "\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: multipart/alternative; boundary=\"b1\"\n" +
		"\n" +
		"--b1\n" +
		"Content-Type: text/plain; charset=us-ascii\n" +
		"\n" +
		"Dear Secret.Trap-93kq@Example.NET, claim your prize.\n" +
		"--b1\n" +
		"Content-Type: text/html; charset=us-ascii\n" +
		"Content-Transfer-Encoding: base64\n" +
		"\n" +
		html + "\n" +
		"--b1--\n")
}

// lab starts two sites whose only peer is one INN between them, each with
// an action program that keeps what it is given.
func lab(t *testing.T) (a, b *dsttest.Dstd, inn *dsttest.INN) {
	t.Helper()
	dsttest.INNBin(t) // skip (or fail with CI=true) before building anything
	a = dsttest.NewDstd(t, "site-a.test", "")
	b = dsttest.NewDstd(t, "site-b.test", "")
	inn = dsttest.StartINN(t, dsttest.INNOptions{Name: "inn.test",
		Feeds: []dsttest.INNFeed{{Name: a.Site, Addr: a.NNTP}, {Name: b.Site, Addr: b.NNTP}}})
	peer := fmt.Sprintf("\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", inn.Name, inn.Addr())
	aLine, bLine := a.KeyringLine(), b.KeyringLine()
	for _, s := range []struct {
		d     *dsttest.Dstd
		trust string
	}{{a, bLine}, {b, aLine}} {
		// The program's input is the enclosed message each site hands to
		// its local tools.
		out := filepath.Join(filepath.Dir(s.d.Dir), "program.out")
		conf := "[policy]\nallow_documentation = true\n" +
			fmt.Sprintf("\n[actions.program]\ncommand = [\"/bin/sh\", \"-c\", \"cat >> %s\"]\n", out) + peer
		s.d.Reconfigure(conf)
		if err := os.WriteFile(filepath.Join(s.d.Dir, "keyring"), []byte(s.trust+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.d.Start()
	}
	return a, b, inn
}

// secret writes a site's trap secret as docs/ADMIN.md says: readable by
// its owner only.
func secret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trap-secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	return p
}

// trapHash is what dstc -trap-hash prints: the site's own way to find
// which trap a report names.
func trapHash(t *testing.T, secretFile, addr string) string {
	t.Helper()
	out, err := exec.Command(dsttest.Bin(t, "dstc"), "-trap-hash", addr, "-secret", secretFile).CombinedOutput()
	if err != nil {
		t.Fatalf("dstc -trap-hash: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestTrapNeverLeaves(t *testing.T) {
	a, b, inn := lab(t)
	secretA, secretB := secret(t, "site-a secret 5d41402abc4b2a76b9719d911017c592"), secret(t, "site-b secret 7d793037a0760186574b0282f2f435e7")

	// At A, the MTA passes the trap with -r (Postfix pipe(8),
	// -r ${original_recipient}).
	out, code := a.Dstc(trapMessage("203.0.113.7"), "-m", "mx1.example.net", "-r", trap, "-secret", secretA)
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc at A: exit %d: %s", code, out)
	}
	dstcLogs := out
	// At B, in the environment, as Postfix local(8) sets it for an alias
	// or .forward pipe (dstc inherits the test's environment).
	t.Setenv("ORIGINAL_RECIPIENT", strings.ToLower(trap))
	t.Setenv("RECIPIENT", "secret.trap-93kq@mx1.example.net")
	out, code = b.Dstc(trapMessage("203.0.113.8"), "-m", "mx1.example.net", "-secret", secretB)
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc at B: exit %d: %s", code, out)
	}
	dstcLogs += out

	// Each report crosses INN and is listed at the other site, whose
	// program gets the enclosed message.
	waitListed(t, b, "203.0.113.7")
	waitListed(t, a, "203.0.113.8")
	for _, s := range []*dsttest.Dstd{a, b} {
		prog := filepath.Join(filepath.Dir(s.Dir), "program.out")
		dsttest.WaitFor(t, 60*time.Second, s.Site+"'s program to get both messages", func() bool {
			c, _ := os.ReadFile(prog)
			return bytes.Count(c, []byte("Subject: prize for")) == 2
		})
	}

	// What dstctl shows of the listings.
	for _, s := range []*dsttest.Dstd{a, b} {
		for _, args := range [][]string{{"lookup", "203.0.113.7"}, {"lookup", "203.0.113.8"}, {"list"}, {"status"}} {
			out, _ := s.Ctl(args...)
			if m := leak.FindString(out); m != "" {
				t.Errorf("%s: dstctl %s names the trap (%q):\n%s", s.Site, strings.Join(args, " "), m, out)
			}
		}
	}

	// The hashes: each report names its trap by the origin's hash, which
	// only the origin can recompute.
	arts, err := inn.GroupArticles("dst.reports")
	if err != nil || len(arts) != 2 {
		t.Fatalf("INN filed %d reports (%v), want 2", len(arts), err)
	}
	wantHash := map[string]string{
		"203.0.113.7": trapHash(t, secretA, trap),
		"203.0.113.8": trapHash(t, secretB, trap),
	}
	if wantHash["203.0.113.7"] == wantHash["203.0.113.8"] {
		t.Error("two sites' secrets give the same hash")
	}
	for _, art := range arts {
		r := parseReport(t, art)
		if want := wantHash[r.SourceIP.String()]; r.TrapHMAC != want || !strings.HasPrefix(want, "hmac-sha256:") {
			t.Errorf("report on %s: DST-Trap-HMAC %q, want %q", r.SourceIP, r.TrapHMAC, want)
		}
		if r.OriginalRcptTo != "" {
			t.Errorf("report on %s carries Original-Rcpt-To %q", r.SourceIP, r.OriginalRcptTo)
		}
		// Decoded, the enclosed message's parts do not name the trap
		// either (the base64 part is not greppable as it is).
		for i, p := range decodedParts(t, r.Message) {
			if m := leak.FindString(p); m != "" {
				t.Errorf("report on %s: decoded part %d names the trap (%q):\n%s", r.SourceIP, i+1, m, p)
			}
		}
	}

	// Stop everything, so that every log and database is complete on
	// disk, then grep every file the sites and INN wrote.
	inn.Stop()
	a.Stop()
	b.Stop()
	if m := leak.FindString(dstcLogs); m != "" {
		t.Errorf("dstc's log names the trap (%q):\n%s", m, dstcLogs)
	}
	dirs := map[string]string{"INN": inn.Dir, a.Site: filepath.Dir(a.Dir), b.Site: filepath.Dir(b.Dir)}
	for who, dir := range dirs {
		placeholders := 0
		files := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			c, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			files++
			for _, loc := range leak.FindAllIndex(c, -1) {
				t.Errorf("%s: %s names the trap at byte %d: %q", who, p, loc[0], c[max(0, loc[0]-40):min(len(c), loc[1]+40)])
			}
			placeholders += bytes.Count(c, []byte("trap@redacted.invalid"))
			return nil
		})
		// The control: the reports really are in these files, so that
		// finding no trap there means something.
		if placeholders == 0 {
			t.Errorf("%s: no file under %s (%d files) holds a redacted report: the grep proves nothing", who, dir, files)
		}
		t.Logf("%s: %d files, %d redacted addresses, no trap", who, files, placeholders)
	}
}

func waitListed(t *testing.T, s *dsttest.Dstd, ip string) {
	t.Helper()
	dsttest.WaitFor(t, 60*time.Second, ip+" listed at "+s.Site, func() bool {
		_, code := s.Ctl("lookup", ip)
		return code == 0
	})
}

func parseReport(t *testing.T, art []byte) *arf.Report {
	t.Helper()
	a, err := article.Parse(art, article.Limits{})
	if err != nil {
		t.Fatalf("INN article: %v", err)
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		t.Fatalf("INN article's report: %v", err)
	}
	return r
}

// decodedParts returns the enclosed message's header section and each MIME
// part's content, transfer encodings undone.
func decodedParts(t *testing.T, msg []byte) []string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("enclosed message: %v", err)
	}
	var hdr strings.Builder
	for k, vs := range m.Header {
		for _, v := range vs {
			dec, _ := new(mime.WordDecoder).DecodeHeader(v)
			hdr.WriteString(k + ": " + dec + "\n")
		}
	}
	parts := []string{hdr.String()}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("enclosed message's Content-Type: %v", err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the enclosed message's MIME structure is broken: %v\n%s", err, msg)
		}
		c, _ := io.ReadAll(p)
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			if c, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(c)), "")); err != nil {
				t.Fatalf("base64 part: %v", err)
			}
		}
		parts = append(parts, string(c))
	}
	if len(parts) != 3 {
		t.Errorf("the enclosed message has %d parts, want 2", len(parts)-1)
	}
	return parts
}
