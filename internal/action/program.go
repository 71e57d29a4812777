package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/store"
)

// ProgramName is the queue name of the external program action.
const ProgramName = "program"

// DefaultProgramTimeout is how long a program may run when
// ProgramConfig.Timeout is zero.
const DefaultProgramTimeout = time.Minute

// ExitTempFail is EX_TEMPFAIL from sysexits.h. Like any other non-zero
// status it means "retry later"; it is named because programs written for
// MTAs already use it.
const ExitTempFail = 75

// stderrKeep is how much of a failing program's stderr reaches the log.
const stderrKeep = 1024

// killGrace is how long Do waits for the program's output pipes to close
// after killing it, in case something escaped its process group and holds
// them open.
const killGrace = 5 * time.Second

// ArticleSource gives the stored report article by Message-ID, or nil if
// it is no longer stored. *store.DB satisfies it.
type ArticleSource interface {
	Article(messageID string) ([]byte, error)
}

// ProgramConfig sets up the external program action.
type ProgramConfig struct {
	// Command is the program and its arguments; it is not run through a
	// shell.
	Command []string
	// Timeout bounds each run (default DefaultProgramTimeout).
	Timeout time.Duration
	// Env holds extra "NAME=value" entries for the program's environment.
	Env []string
	// Store gives the report articles, for the trapped message.
	Store ArticleSource
	// Log receives warnings about reports whose message cannot be found.
	Log *slog.Logger
	// Simulate (policy.simulate) says DST_LISTED=simulated instead of yes:
	// the listing is computed but not published, and a program that
	// enforces (a firewall) must not act on it.
	Simulate bool
}

// Program is the "program" action; its contract with the program is in the
// package documentation.
type Program struct {
	c ProgramConfig
}

// NewProgram returns the action. A configuration without a command makes
// every Do fail permanently, so the mistake shows in the log for each
// report instead of silently dropping them.
func NewProgram(c ProgramConfig) *Program {
	if c.Timeout <= 0 {
		c.Timeout = DefaultProgramTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Command = append([]string(nil), c.Command...)
	c.Env = append([]string(nil), c.Env...)
	return &Program{c: c}
}

// Name returns "program".
func (p *Program) Name() string { return ProgramName }

// Wants takes the reports counted for this site's list.
func (p *Program) Wants(ev store.Event) bool {
	return ev.Kind == store.EventReport && ev.Cause == store.CauseListing
}

// ProgramError is a failed run of the program.
type ProgramError struct {
	Command  string        // the program's path, as configured
	ExitCode int           // -1 when killed or not started
	TimedOut bool          // killed after the timeout
	Timeout  time.Duration // the timeout, when TimedOut
	Stderr   string        // the first KiB of its stderr
	Err      error         // from os/exec
}

func (e *ProgramError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "program %s ", e.Command)
	switch {
	case e.TimedOut:
		fmt.Fprintf(&b, "ran longer than %v and was killed", e.Timeout)
	case e.ExitCode == ExitTempFail:
		b.WriteString("reported a temporary failure (exit status 75)")
	case e.ExitCode > 0:
		fmt.Fprintf(&b, "failed with exit status %d", e.ExitCode)
	default:
		fmt.Fprintf(&b, "failed: %v", e.Err)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "; its stderr: %q", s)
	}
	return b.String()
}

func (e *ProgramError) Unwrap() error { return e.Err }

// Do runs the program for one report.
func (p *Program) Do(ctx context.Context, ev store.Event) error {
	if len(p.c.Command) == 0 || p.c.Command[0] == "" {
		return fmt.Errorf("the program action has no command configured: %w", ErrPermanent)
	}
	if ev.Kind != store.EventReport {
		return nil
	}
	msg, err := p.message(ev)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, p.c.Command[0], p.c.Command[1:]...)
	cmd.Env = p.environ(ev)
	cmd.Stdin = bytes.NewReader(msg)
	stderr := &headWriter{max: stderrKeep}
	cmd.Stderr = stderr
	setProcessGroup(cmd)
	cmd.WaitDelay = killGrace

	err = cmd.Run()
	if err == nil {
		return nil
	}
	pe := &ProgramError{Command: p.c.Command[0], ExitCode: -1, Stderr: string(stderr.buf), Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		pe.ExitCode = exitErr.ExitCode()
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		pe.TimedOut, pe.Timeout = true, p.c.Timeout
	}
	return pe
}

// message returns the trapped message of the report, or nil (with a
// warning) when the article is gone or unreadable: the program still runs,
// because the environment alone says what happened.
func (p *Program) message(ev store.Event) ([]byte, error) {
	log := p.c.Log.With("action", ProgramName, "message_id", ev.MessageID, "ip", ev.IP)
	if p.c.Store == nil {
		return nil, nil
	}
	raw, err := p.c.Store.Article(ev.MessageID)
	if err != nil {
		// A store error may pass; retry rather than run without input.
		return nil, fmt.Errorf("cannot read report %s for the program: %w", ev.MessageID, err)
	}
	if raw == nil {
		log.Warn("report article no longer stored (pruned from the history); running the program with empty stdin")
		return nil, nil
	}
	a, err := article.Parse(raw, article.DefaultLimits())
	if err != nil {
		log.Warn("stored report article cannot be parsed; running the program with empty stdin", "err", err)
		return nil, nil
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		log.Warn("stored report has no readable trapped message; running the program with empty stdin", "err", err)
		return nil, nil
	}
	return r.Message, nil
}

// environ builds the program's environment: PATH, then the configured
// extras, then the DST_ variables, later entries winning in os/exec.
func (p *Program) environ(ev store.Event) []string {
	env := make([]string, 0, len(p.c.Env)+7)
	if path, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+path)
	}
	env = append(env, p.c.Env...)
	listed, expires := "no", ""
	if ev.Listed {
		listed, expires = listedYes(p.c.Simulate), ev.Expires.UTC().Format(time.RFC3339)
	}
	ip := ""
	if ev.IP.IsValid() {
		ip = ev.IP.String()
	}
	return append(env,
		"DST_EVENT="+ev.Kind.String(),
		"DST_IP="+ip,
		"DST_ORIGIN="+ev.Origin,
		"DST_MESSAGE_ID="+ev.MessageID,
		"DST_LISTED="+listed,
		"DST_EXPIRES="+expires,
	)
}

// headWriter keeps the first max bytes written to it and discards the
// rest, while always reporting success so the program never blocks on a
// full pipe.
type headWriter struct {
	buf []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
