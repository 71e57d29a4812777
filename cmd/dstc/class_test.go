package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
)

// reportClass parses a dry run's article and returns its DST-Class.
func reportClass(t *testing.T, out string) string {
	t.Helper()
	a, err := article.Parse([]byte(strings.ReplaceAll(out, "\n", "\r\n")), article.DefaultLimits())
	if err != nil {
		t.Fatalf("report is not an article: %v\n%s", err, out)
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		t.Fatalf("report body: %v\n%s", err, out)
	}
	return r.Class
}

// The sample's MX hop (Received field 2) with another protocol.
func sampleWith(t *testing.T, with string) []byte {
	t.Helper()
	msg := string(readFile(t, "../../examples/trap-hit.eml"))
	mx := "by mx1.example.net (Postfix) with ESMTP id 57E9998433D"
	if !strings.Contains(msg, mx) {
		t.Fatal("examples/trap-hit.eml changed: its MX hop is not where the test expects it")
	}
	return []byte(strings.Replace(msg, mx, "by mx1.example.net (Postfix) with "+with+" id 57E9998433D", 1))
}

func TestClassInReport(t *testing.T) {
	t.Setenv("SENDER", "offers@spam.example.com") // what an MTA's environment may say; -f wins
	for _, tc := range []struct {
		name string
		msg  []byte
		args []string
		want string
	}{
		{"spam: no field, as older versions wrote", sampleWith(t, "ESMTP"), nil, ""},
		{"null sender from -f", sampleWith(t, "ESMTP"), []string{"-f", ""}, "backscatter"},
		{"Postfix pipe(8) null sender", sampleWith(t, "ESMTP"), []string{"-f", "MAILER-DAEMON"}, "backscatter"},
		{"auto-reply", append([]byte("Auto-Submitted: auto-replied\n"), sampleWith(t, "ESMTP")...), nil, "auto-reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runDstc(t, tc.msg, append([]string{"-n", "-m", "mx[12].example.net", "-secret", "/nonexistent"}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if got := reportClass(t, out); got != tc.want {
				t.Errorf("DST-Class = %q, want %q\n%s", got, tc.want, errs)
			}
		})
	}
}

// Postfix local(8) and Exim's pipe transport give the envelope sender in
// $SENDER, empty for a bounce.
func TestClassFromSenderEnvironment(t *testing.T) {
	t.Setenv("SENDER", "")
	code, out, errs := runDstc(t, sampleWith(t, "ESMTP"), "-n", "-m", "mx[12].example.net", "-secret", "/nonexistent")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got := reportClass(t, out); got != "backscatter" {
		t.Errorf("DST-Class = %q, want backscatter\n%s", got, errs)
	}
}

// A client that logged in at the MX is a user of the site: nothing is
// submitted nor spooled, and the MTA gets 0 so that it neither retries nor
// bounces.
func TestAuthenticatedNotReported(t *testing.T) {
	for _, with := range []string{"ESMTPA", "ESMTPSA", "LMTPA"} {
		t.Run(with, func(t *testing.T) {
			spoolDir := t.TempDir()
			code, out, errs := runDstc(t, sampleWith(t, with), "-m", "mx[12].example.net", "-secret", "/nonexistent",
				"-spool", spoolDir, "-s", "unix:"+filepath.Join(t.TempDir(), "no-dstd.sock"))
			if code != exitOK || out != "" {
				t.Fatalf("exit %d, stdout %q; want 0 and nothing", code, out)
			}
			if !strings.Contains(errs, "not reported: the client authenticated at the MX") {
				t.Errorf("the log does not say why nothing was reported:\n%s", errs)
			}
			for _, d := range []string{"new", "tmp"} {
				if ents, _ := os.ReadDir(filepath.Join(spoolDir, d)); len(ents) > 0 {
					t.Errorf("a report was spooled in %s: %v", d, ents)
				}
			}
			if ents, _ := os.ReadDir(spoolDir); len(ents) > 0 {
				t.Logf("spool: %v", ents)
			}
		})
	}
	// The same message from a client that did not log in is reported
	// (here: spooled, as no dstd listens), so the test above can fail.
	spoolDir := t.TempDir()
	code, _, errs := runDstc(t, sampleWith(t, "ESMTPS"), "-m", "mx[12].example.net", "-secret", "/nonexistent",
		"-spool", spoolDir, "-s", "unix:"+filepath.Join(t.TempDir(), "no-dstd.sock"))
	if code != exitOK || !strings.Contains(errs, "report spooled") {
		t.Fatalf("exit %d; want the report spooled:\n%s", code, errs)
	}
}
