package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeDstdConf writes a dstd configuration with a spool_dir of its own
// (not the default under data_dir) and extra keys.
func writeDstdConf(t *testing.T, spool, extra string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "dstd.toml")
	conf := fmt.Sprintf("site = \"site-a.test\"\ndata_dir = %q\nspool_dir = %q\n%s\n", filepath.Join(dir, "data"), spool, extra)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfig: -c takes the submission socket, the spool and the largest
// report from dstd's configuration; -s and -spool given still win.
func TestConfig(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	spool := t.TempDir()
	conf := writeDstdConf(t, spool, "")
	f := startFakeDstd(t, "unix", filepath.Join(spool, "nntp.sock"), "200 dstd ready", "240 article received")
	code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-c", conf)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	select {
	case <-f.got:
	default:
		t.Fatalf("nothing was posted to spool_dir's nntp.sock (%s); log: %s", spool, errs)
	}

	// nntp.socket elsewhere: dstc follows it.
	other := filepath.Join(t.TempDir(), "submit.sock")
	g := startFakeDstd(t, "unix", other, "200 dstd ready", "240 article received")
	conf2 := writeDstdConf(t, spool, fmt.Sprintf("[nntp]\nsocket = %q", other))
	if code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-c", conf2); code != exitOK || len(g.got) != 1 {
		t.Fatalf("nntp.socket: exit %d, %d posted to it: %s", code, len(g.got), errs)
	}
	<-g.got

	// -s wins over -c: nothing listens there, so the report is spooled,
	// and in -c's spool_dir.
	code, _, errs = runDstc(t, msg, "-m", "mx[12].example.net", "-c", conf, "-s", "unix:"+filepath.Join(t.TempDir(), "none.sock"))
	if code != exitOK || !strings.Contains(errs, "report spooled") || len(f.got) != 0 {
		t.Fatalf("-s with -c: exit %d, %d posted to -c's socket: %s", code, len(f.got), errs)
	}
	if des, _ := os.ReadDir(filepath.Join(spool, "new")); len(des) != 1 {
		t.Errorf("-c's spool_dir new/ holds %d reports, want 1", len(des))
	}
	// -spool wins over -c's spool_dir.
	own := t.TempDir()
	code, _, errs = runDstc(t, msg, "-m", "mx[12].example.net", "-c", conf, "-s", "unix:"+filepath.Join(t.TempDir(), "none.sock"), "-spool", own)
	if des, _ := os.ReadDir(filepath.Join(own, "new")); code != exitOK || len(des) != 1 {
		t.Errorf("-spool with -c: exit %d, %d reports in -spool: %s", code, len(des), errs)
	}
}

// TestConfigMaxArticle: -c's nntp.max_article_bytes bounds the report as
// -max-article does, unless -max-article is given.
func TestConfigMaxArticle(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	big := append(append([]byte{}, msg...), bytes.Repeat([]byte("\n"), 900_000)...)
	conf := writeDstdConf(t, t.TempDir(), "[nntp]\nmax_article_bytes = 4000000")
	if _, out, _ := runDstc(t, big, "-n", "-m", "mx[12].example.net", "-c", conf); strings.Contains(out, "text/rfc822-headers") {
		t.Error("with -c whose nntp.max_article_bytes is 4000000 the message should travel whole")
	}
	if _, out, _ := runDstc(t, big, "-n", "-m", "mx[12].example.net", "-c", conf, "-max-article", "1000000"); !strings.Contains(out, "text/rfc822-headers") {
		t.Error("-max-article 1000000 should win over -c: the report should carry the header only")
	}
}

// TestConfigUnreadable: a -c dstc cannot read or parse is a temporary
// failure (exit 75): the MTA keeps the message until it is fixed, rather
// than bouncing it to a forged sender.
func TestConfigUnreadable(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	bad := filepath.Join(t.TempDir(), "dstd.toml")
	os.WriteFile(bad, []byte("spool_dri = \"/x\"\n"), 0o600)
	for _, conf := range []string{filepath.Join(t.TempDir(), "missing.toml"), bad} {
		code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-c", conf)
		if code != exitTempFail || !strings.Contains(errs, "cannot read dstd's configuration (-c)") || !strings.Contains(errs, conf) {
			t.Errorf("-c %s: exit %d, log %s; want exit %d naming the file", conf, code, errs, exitTempFail)
		}
	}
}
