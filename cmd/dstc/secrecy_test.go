package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/redact"
)

// trapMsg names the trap Trap.X7Q2@Example.NET in every place an MTA or a
// spammer puts it, in several cases; the local user it is aliased to,
// dst-trap@mx1.example.net, in Delivered-To.
const trapMsg = "Return-Path: <offers@spam.example.com>\n" +
	"X-Original-To: trap.x7q2@example.net\n" +
	"Delivered-To: dst-trap@mx1.example.net\n" +
	"Received: from mx1.example.net (unknown [203.0.113.7])\n" +
	"\tby mx1.example.net (Postfix) with ESMTP id 57E9998433D\n" +
	"\tfor <TRAP.X7Q2@example.net>; Sun, 29 Nov 2026 02:00:20 +0000 (UTC)\n" +
	"From: \"Prize Department\" <offers@spam.example.com>\n" +
	"To: <Trap.X7Q2@Example.NET>\n" +
	"Cc: trap.x7q2@EXAMPLE.net, friend@example.org\n" +
	"Subject: You have won, trap.x7q2@example.net\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=us-ascii\n" +
	"\n" +
	"Dear Trap.X7Q2@Example.NET, claim your prize.\n" +
	"Unsubscribe: https://spam.example.com/u?e=trap.x7q2%40example.net\n"

var trapLeak = regexp.MustCompile(`(?i)trap\.x7q2\s*(@|%40)|dst-trap@mx1`)

const testSecret = "0123456789abcdef0123456789abcdef"

func secretFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trap-secret")
	if err := os.WriteFile(p, []byte(testSecret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantHMAC(t *testing.T, addr string) string {
	t.Helper()
	h, err := redact.TrapHMAC([]byte(testSecret), addr)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// feedback parses a dry run's output as dstd would and returns the report.
func feedback(t *testing.T, out string) *arf.Report {
	t.Helper()
	a, err := article.Parse([]byte(strings.ReplaceAll(out, "\n", "\r\n")), article.DefaultLimits())
	if err != nil {
		t.Fatalf("not an article: %v\n%s", err, out)
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		t.Fatalf("not a feedback report: %v\n%s", err, out)
	}
	return r
}

// clearMTAEnv empties the variables MTAs set, so that the test's own
// environment cannot decide.
func clearMTAEnv(t *testing.T) {
	for _, v := range []string{"ORIGINAL_RECIPIENT", "RECIPIENT", "LOCAL_PART", "DOMAIN"} {
		t.Setenv(v, "")
	}
}

// TestTrapRedactedAndHashed: with -r, the report names the trap only by
// its hash, and neither the trap nor the local user it was aliased to (in
// the environment, as Postfix sets it) appears anywhere in the report.
func TestTrapRedactedAndHashed(t *testing.T) {
	clearMTAEnv(t)
	t.Setenv("RECIPIENT", "dst-trap@mx1.example.net")
	code, out, errs := runDstc(t, []byte(trapMsg), "-n", "-m", "mx1.example.net", "-r", "Trap.X7Q2@example.net", "-secret", secretFile(t, 0o400))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if m := trapLeak.FindString(out); m != "" {
		t.Errorf("the report names the trap (%q):\n%s", m, out)
	}
	if m := trapLeak.FindString(errs); m != "" {
		t.Errorf("dstc's log names the trap (%q):\n%s", m, errs)
	}
	r := feedback(t, out)
	if want := wantHMAC(t, "trap.x7q2@example.net"); r.TrapHMAC != want {
		t.Errorf("DST-Trap-HMAC = %q, want %q", r.TrapHMAC, want)
	}
	if r.OriginalRcptTo != "" {
		t.Errorf("Original-Rcpt-To sent: %q", r.OriginalRcptTo)
	}
	if r.SourceIP.String() != "203.0.113.7" {
		t.Errorf("Source-IP %s", r.SourceIP)
	}
	for _, want := range []string{
		"To: <trap@redacted.invalid>", "Cc: <trap@redacted.invalid>", "Delivered-To: <trap@redacted.invalid>",
		"X-Original-To: <trap@redacted.invalid>", "for <trap@redacted.invalid>;",
		"Subject: You have won, trap@redacted.invalid", "Dear trap@redacted.invalid, claim", "e=trap@redacted.invalid",
	} {
		if !strings.Contains(string(r.Message), want) {
			t.Errorf("the enclosed message lacks %q:\n%s", want, r.Message)
		}
	}
}

// TestTrapHeadersOnly: a message too large to enclose whole is redacted
// in its header section too.
func TestTrapHeadersOnly(t *testing.T) {
	clearMTAEnv(t)
	code, out, errs := runDstc(t, []byte(trapMsg), "-n", "-m", "mx1.example.net", "-r", "trap.x7q2@example.net", "-max-message", "100")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	r := feedback(t, out)
	if !r.HeadersOnly {
		t.Fatalf("the whole message was enclosed:\n%s", out)
	}
	if m := regexp.MustCompile(`(?i)trap\.x7q2@`).FindString(out); m != "" {
		t.Errorf("the report names the trap (%q):\n%s", m, out)
	}
}

// TestTrapFromEnvironment: -r first, then ORIGINAL_RECIPIENT, RECIPIENT,
// LOCAL_PART@DOMAIN; every one given is redacted.
func TestTrapFromEnvironment(t *testing.T) {
	secret := secretFile(t, 0o600)
	msg := "Received: from x (unknown [203.0.113.7]) by mx1.example.net for <a@example.net>; date\n" +
		"Subject: a@example.net b@example.net c@example.net r@example.net\n\nbody\n"
	for _, tc := range []struct {
		name string
		r    string
		env  map[string]string
		want string // the trap hashed
		gone []string
	}{
		{"all", "", map[string]string{"ORIGINAL_RECIPIENT": "A@example.net", "RECIPIENT": "b@example.net", "LOCAL_PART": "c", "DOMAIN": "example.net"},
			"a@example.net", []string{"a@", "b@", "c@"}},
		{"Postfix without aliasing", "", map[string]string{"RECIPIENT": "b@example.net", "LOCAL_PART": "c", "DOMAIN": "example.net"},
			"b@example.net", []string{"b@", "c@"}},
		{"local part and domain", "", map[string]string{"LOCAL_PART": "c", "DOMAIN": "Example.NET"}, "c@example.net", []string{"c@"}},
		{"local part without domain", "", map[string]string{"LOCAL_PART": "c"}, "", nil},
		{"-r wins", "r@example.net", map[string]string{"ORIGINAL_RECIPIENT": "a@example.net"}, "r@example.net", []string{"r@", "a@"}},
		{"bad value skipped", "", map[string]string{"ORIGINAL_RECIPIENT": "not an address", "RECIPIENT": "b@example.net"}, "b@example.net", []string{"b@"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearMTAEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := []string{"-n", "-m", "mx1.example.net", "-secret", secret}
			if tc.r != "" {
				args = append(args, "-r", tc.r)
			}
			code, out, errs := runDstc(t, []byte(msg), args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			r := feedback(t, out)
			want := ""
			if tc.want != "" {
				want = wantHMAC(t, tc.want)
			} else if !strings.Contains(errs, "trap address unknown") {
				t.Errorf("no warning that the trap is unknown: %s", errs)
			}
			if r.TrapHMAC != want {
				t.Errorf("DST-Trap-HMAC = %q, want %q (of %q)", r.TrapHMAC, want, tc.want)
			}
			for _, g := range tc.gone {
				if strings.Contains(strings.ToLower(string(r.Message)), g+"example.net") {
					t.Errorf("%sexample.net is still in the message:\n%s", g, r.Message)
				}
			}
			if !strings.Contains(string(r.Message), "for <trap@redacted.invalid>;") {
				t.Errorf("the Received for clause is not redacted:\n%s", r.Message)
			}
		})
	}
}

// TestTrapSecretRefused: a secret other users may read, or a -secret file
// that does not exist, makes dstc ask the MTA to retry, saying what to do;
// a missing default secret only means no hash.
func TestTrapSecretRefused(t *testing.T) {
	clearMTAEnv(t)
	args := []string{"-n", "-m", "mx1.example.net", "-r", "trap.x7q2@example.net"}
	code, out, errs := runDstc(t, []byte(trapMsg), append(args, "-secret", secretFile(t, 0o644))...)
	if code != exitTempFail || out != "" || !strings.Contains(errs, "chmod o-rwx") {
		t.Errorf("world-readable secret: exit %d, stdout %q, log %s; want 75 and a log saying chmod o-rwx", code, out, errs)
	}
	code, out, errs = runDstc(t, []byte(trapMsg), append(args, "-secret", filepath.Join(t.TempDir(), "none"))...)
	if code != exitTempFail || out != "" || !strings.Contains(errs, "openssl rand") {
		t.Errorf("missing -secret file: exit %d, stdout %q, log %s; want 75 and how to make one", code, out, errs)
	}
	if _, err := os.Stat(redact.DefaultSecretFile); err == nil {
		t.Skipf("%s exists on this host: cannot test its absence", redact.DefaultSecretFile)
	}
	code, out, errs = runDstc(t, []byte(trapMsg), args...)
	if code != exitOK {
		t.Fatalf("no secret: exit %d: %s", code, errs)
	}
	if r := feedback(t, out); r.TrapHMAC != "" || trapLeak.MatchString(out) {
		t.Errorf("no secret: DST-Trap-HMAC %q, or the trap leaks:\n%s", r.TrapHMAC, out)
	}
	if !strings.Contains(errs, "does not say which trap") {
		t.Errorf("no secret: the log does not say so: %s", errs)
	}
}

// TestTrapHashFlag: -trap-hash prints the value a report carries, and
// reads no message.
func TestTrapHashFlag(t *testing.T) {
	code, out, errs := runDstc(t, nil, "-trap-hash", "<Trap.X7Q2@Example.NET>", "-secret", secretFile(t, 0o400))
	if want := wantHMAC(t, "trap.x7q2@example.net") + "\n"; code != exitOK || out != want {
		t.Errorf("exit %d, %q (%s); want %q", code, out, errs, want)
	}
	if code, _, errs := runDstc(t, nil, "-trap-hash", "x@y.example", "-secret", secretFile(t, 0o666)); code == exitOK || !strings.Contains(errs, "chmod") {
		t.Errorf("world-readable secret: exit %d: %s", code, errs)
	}
	if code, _, _ := runDstc(t, nil, "-trap-hash", "no-at-sign", "-secret", secretFile(t, 0o400)); code != exitUsage {
		t.Errorf("bad address: exit %d, want %d", code, exitUsage)
	}
	// A bad -r is no reason to bounce the message: the report goes, with
	// the recipient fields redacted and no hash.
	code, out, errs = runDstc(t, []byte(trapMsg), "-n", "-m", "mx1.example.net", "-r", "not-an-address", "-secret", secretFile(t, 0o400))
	if code != exitOK || !strings.Contains(errs, "-r is not of the form") || strings.Contains(errs, "not-an-address") {
		t.Errorf("bad -r: exit %d (%s), want 0 and a warning that does not repeat it", code, errs)
	}
	if r := feedback(t, out); r.TrapHMAC != "" || !strings.Contains(string(r.Message), "To: <trap@redacted.invalid>") {
		t.Errorf("bad -r: DST-Trap-HMAC %q, message:\n%s", r.TrapHMAC, r.Message)
	}
}
