package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	l := slog.New(newSyslogHandler(w, Text, &slog.HandlerOptions{Level: slog.LevelInfo})).With("ip", "203.0.113.7").WithGroup("g")
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

// log.format = "json": one JSON object per line, with time, level, msg and
// the attributes; to syslog, without the time, which syslog adds.
func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	l, done := NewFormat("dstd", Stderr, JSON, slog.LevelInfo, &buf)
	defer done()
	l.With("component", "dns").Info("listing expired", "ip", "203.0.113.7")
	l.Warn(`a "quoted" message`)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	for i, want := range []map[string]string{
		{"level": "INFO", "msg": "listing expired", "component": "dns", "ip": "203.0.113.7"},
		{"level": "WARN", "msg": `a "quoted" message`},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d %q is not JSON: %v", i, lines[i], err)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["time"])); err != nil {
			t.Errorf("line %d: time %v: %v", i, got["time"], err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %q", i, k, got[k], v)
			}
		}
	}
	for _, s := range []string{"text", "json"} {
		if _, err := ParseFormat(s); err != nil {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if _, err := ParseFormat("logfmt"); err == nil {
		t.Error("ParseFormat accepted an unknown format")
	}

	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := syslog.Dial("unixgram", sock, syslog.LOG_MAIL|syslog.LOG_INFO, "dstd")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	slog.New(newSyslogHandler(w, JSON, &slog.HandlerOptions{Level: slog.LevelInfo})).Info("reported", "ip", "203.0.113.7")
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2048)
	n, err := pc.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(b[:n])
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(msg[strings.Index(msg, "{"):])), &got); err != nil {
		t.Fatalf("syslog message %q holds no JSON object: %v", msg, err)
	}
	if _, ok := got["time"]; ok || got["level"] != "INFO" || got["msg"] != "reported" || got["ip"] != "203.0.113.7" {
		t.Errorf("syslog JSON %v, want level, msg and ip and no time", got)
	}
}
