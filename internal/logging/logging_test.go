package logging

import (
	"bytes"
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "stderr", "syslog"} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	if _, err := ParseMode("file"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
}

func TestStderrWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	l, done := New("dstc", Stderr, slog.LevelInfo, &buf)
	defer done()
	l.Info("no source address", "reason", "no Received field")
	l.Debug("hidden")
	if got := buf.String(); !strings.Contains(got, `msg="no source address" reason="no Received field"`) || strings.Contains(got, "hidden") {
		t.Errorf("log = %q", got)
	}
}

func TestSyslogPriorities(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := syslog.Dial("unixgram", sock, syslog.LOG_MAIL|syslog.LOG_INFO, "dstc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	l := slog.New(newSyslogHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("ip", "203.0.113.7").WithGroup("g")
	l.Error("cannot spool", "k", "v")
	l.Info("reported")
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	want := []string{"<19>", "<22>"} // mail.err, mail.info (RFC 5424 PRI = 2*8 + severity)
	for i, pri := range want {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, pri) || !strings.Contains(got, "dstc[") || !strings.Contains(got, "ip=203.0.113.7") {
			t.Errorf("message %d = %q, want priority %s, tag and attributes", i, got, pri)
		}
		if i == 0 && (!strings.Contains(got, `msg="cannot spool"`) || !strings.Contains(got, " g.k=v")) {
			t.Errorf("message %d = %q, want the group applied", i, got)
		}
	}
}
