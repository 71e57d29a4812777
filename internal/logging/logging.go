// Package logging builds the *slog.Logger of DST's programs: to stderr
// when a person is watching, to syslog (facility mail) when an MTA or an
// init system runs the program.
package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"sync"
)

// Mode selects where logs go.
type Mode string

// The modes: Auto is Stderr when stderr is a terminal, else Syslog.
const (
	Auto   Mode = "auto"
	Stderr Mode = "stderr"
	Syslog Mode = "syslog"
)

// ParseMode checks a -log flag value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Stderr, Syslog:
		return m, nil
	}
	return "", fmt.Errorf("unknown log destination %q (want auto, stderr or syslog)", s)
}

// UnmarshalText implements encoding.TextUnmarshaler (ParseMode), for
// configuration files and flag.TextVar.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m), nil }

// Format is how each log line is written.
type Format string

// The formats: Text is slog's key=value lines, JSON one JSON object per
// line (time, level, msg and the attributes), for a log collector
// (journald's or Loki's JSON parsing, jq).
const (
	Text Format = "text"
	JSON Format = "json"
)

// ParseFormat checks a log.format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Text, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown log format %q (want text or json)", s)
}

// UnmarshalText implements encoding.TextUnmarshaler (ParseFormat).
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (f Format) MarshalText() ([]byte, error) { return []byte(f), nil }

// handler is the slog handler of format f writing to w.
func (f Format) handler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if f == JSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// New returns a logger for the program tag, in the text format (see
// NewFormat).
func New(tag string, mode Mode, level slog.Level, stderr io.Writer) (*slog.Logger, func()) {
	return NewFormat(tag, mode, Text, level, stderr)
}

// NewFormat returns a logger for the program tag whose lines are in
// format. When syslog is wanted but cannot be reached (no /dev/log in a
// container), it falls back to stderr and says so once. The returned
// function closes the syslog connection.
func NewFormat(tag string, mode Mode, format Format, level slog.Level, stderr io.Writer) (*slog.Logger, func()) {
	if mode == Auto {
		mode = Syslog
		if f, ok := stderr.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				mode = Stderr
			}
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if mode == Syslog {
		w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, tag)
		if err == nil {
			return slog.New(newSyslogHandler(w, format, opts)), func() { w.Close() }
		}
		l := slog.New(format.handler(stderr, opts))
		l.Warn("syslog unavailable, logging to stderr", "err", err)
		return l, func() {}
	}
	return slog.New(format.handler(stderr, opts)), func() {}
}

// syslogHandler formats records as slog's text or JSON format does,
// without the time (syslog adds its own), and sends each at the syslog
// priority that matches its level.
type syslogHandler struct {
	w      *syslog.Writer
	format Format
	opts   *slog.HandlerOptions
	// with replays WithAttrs and WithGroup calls, in order, on the text
	// handler that formats each record.
	with []func(slog.Handler) slog.Handler
	mu   *sync.Mutex
}

func newSyslogHandler(w *syslog.Writer, format Format, opts *slog.HandlerOptions) *syslogHandler {
	return &syslogHandler{w: w, format: format, opts: opts, mu: new(sync.Mutex)}
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	th := h.format.handler(&buf, &slog.HandlerOptions{
		Level: h.opts.Level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// Syslog has the time and the priority; a JSON line keeps
			// its level, for the collector that parses it.
			if len(groups) == 0 && (a.Key == slog.TimeKey || (a.Key == slog.LevelKey && h.format != JSON)) {
				return slog.Attr{}
			}
			return a
		},
	})
	for _, f := range h.with {
		th = f(th)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	msg := string(bytes.TrimRight(buf.Bytes(), "\n"))
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	default:
		return h.w.Debug(msg)
	}
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.and(func(th slog.Handler) slog.Handler { return th.WithAttrs(as) })
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return h.and(func(th slog.Handler) slog.Handler { return th.WithGroup(name) })
}

func (h *syslogHandler) and(f func(slog.Handler) slog.Handler) slog.Handler {
	h2 := *h
	h2.with = append(append([]func(slog.Handler) slog.Handler(nil), h.with...), f)
	return &h2
}
