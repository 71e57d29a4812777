package nntp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// readBufferSize is the bufio buffer under commands and articles. It only
// bounds how much is read per system call: long lines are handled in
// fragments.
const readBufferSize = 64 << 10

// goodbyeWait bounds writing the last words to a client that may have
// stopped reading.
const goodbyeWait = 5 * time.Second

// maxBadCommands is how many unknown or malformed commands in a row end
// the session. Like innd's BAD_COMMAND_COUNT, it gets rid of clients that
// speak another protocol (an HTTP probe) without waiting for the idle timer.
const maxBadCommands = 10

// maxResponseBytes is the longest response line, CRLF included
// (RFC 3977 §3.1).
const maxResponseBytes = 512

// maxAuthFailures is how many rejected AUTHINFO PASS end the session: a
// peer that knows its password needs one try, and closing makes guessing
// cost a connection (and a MaxConns slot) per few guesses.
const maxAuthFailures = 3

// conn is one session.
type conn struct {
	srv     *Server
	nc      net.Conn // the TLS connection after STARTTLS; guarded by srv.mu when written
	lim     Limits
	cancel  context.CancelFunc
	class   Class // the pool it is counted in
	id      uint64
	sess    Session
	baseLog *slog.Logger // with the connection id
	log     *slog.Logger // baseLog with the peer's name, if known

	br   *bufio.Reader
	out  *replyQueue // the responses, and the buffered writer under them
	cmds []cmdSpec

	idle bool // waiting for a command; guarded by srv.mu

	bad  int    // consecutive unknown or malformed commands
	done bool   // the session ends after the current response
	line string // the command line being run, for commands that need it raw

	// farewell, if set, answers the next command, and the session ends:
	// how a refusal after STARTTLS is told (RFC 3977 §3.2.1).
	farewell string

	authUser     string // AUTHINFO USER given, waiting for PASS
	authFailures int    // AUTHINFO PASS rejected so far
}

// flushReader flushes pending responses before every read from the
// network. Responses are buffered so that a pipelined batch of CHECKs is
// answered in a few writes rather than one per line; flushing whenever the
// server is about to wait for the client means the client never waits for
// an answer the server is sitting on (which would deadlock: both sides
// waiting to be read). Responses written by a Receive's goroutine are
// flushed by that goroutine (see replyQueue.finish).
type flushReader struct {
	c *conn
}

func (f flushReader) Read(p []byte) (int, error) {
	if err := f.c.out.flush(); err != nil {
		return 0, fmt.Errorf("writing responses: %w", err)
	}
	return f.c.nc.Read(p)
}

// refuse sends one line to a client that will not be served, and closes.
func (c *conn) refuse(line string) {
	c.nc.SetDeadline(time.Now().Add(goodbyeWait))
	io.WriteString(c.nc, line+"\r\n")
}

func (c *conn) serve(ctx context.Context) {
	c.br = bufio.NewReaderSize(flushReader{c}, readBufferSize)
	c.out = newReplyQueue(c.nc, c.lim.MaxPipelinedBytes, c.stopReading)
	c.cmds = commandTable()
	c.log.Debug("nntp: session start", "unix", c.sess.Unix, "tls", c.sess.TLS != nil, "post", c.sess.CanPost, "feed", c.sess.CanFeed)
	defer c.log.Debug("nntp: session end")
	// Whatever ends the session, no Receive it started may outlive it:
	// the caller closes the connection, and dstd the store, after us.
	defer c.out.running.Wait()

	// RFC 3977 §5.1.1: 200 if posting is allowed, 201 if not.
	if c.sess.CanPost {
		c.reply(200, "%s DST dstd ready, posting allowed", c.srv.Hostname)
	} else {
		c.reply(201, "%s DST dstd ready, no posting", c.srv.Hostname)
	}

	for !c.done {
		if !c.enterIdle() {
			c.goodbye("400 server shutting down")
			return
		}
		line, err := c.readCommand()
		c.leaveIdle()
		switch {
		case errors.Is(err, errLineTooLong):
			c.lineTooLong(line)
		case err != nil:
			c.endOnReadError(err)
			return
		case c.farewell != "":
			c.log.Log(ctx, LevelTrace, "nntp: <", "line", redact(line))
			c.goodbye(c.farewell)
			return
		default:
			c.log.Log(ctx, LevelTrace, "nntp: <", "line", redact(line))
			c.dispatch(ctx, line)
		}
		if c.bad >= maxBadCommands {
			c.goodbye("400 too many unrecognized commands")
			return
		}
	}
	c.goodbye("")
}

// enterIdle marks the session as waiting for a command, with the idle
// deadline, unless the server is draining or a pipelined response has ended
// the session. Both happen under srv.mu so that the deadline in the past
// that drain or stopReading sets cannot be overwritten by ours.
func (c *conn) enterIdle() bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.srv.draining || c.out.ended.Load() {
		return false
	}
	c.idle = true
	c.nc.SetDeadline(time.Now().Add(c.lim.IdleTimeout))
	return true
}

func (c *conn) leaveIdle() {
	c.srv.mu.Lock()
	c.idle = false
	c.srv.mu.Unlock()
}

// stopReading wakes serve if it is waiting for a command, once a response
// written by a Receive's goroutine (400 to a TAKETHIS) has ended the
// session; if serve is busy instead, enterIdle stops it next. The client
// that was told 400 may not hang up itself, and must not hold the
// connection until the idle timer.
func (c *conn) stopReading() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.idle {
		c.nc.SetReadDeadline(time.Unix(1, 0)) // as drain does
	}
}

// endOnReadError says goodbye after a failed read: EOF, the idle timer,
// or drain's interruption.
func (c *conn) endOnReadError(err error) {
	switch {
	case c.out.ended.Load():
		c.goodbye("") // stopReading's doing: the 400 is out
	case c.srv.isDraining():
		c.goodbye("400 server shutting down")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("nntp: idle timeout", "after", c.lim.IdleTimeout)
		c.goodbye("400 idle timeout, closing connection") // RFC 3977 §3.2.1
	case errors.Is(err, io.EOF):
		c.goodbye("")
	default:
		c.log.Debug("nntp: read failed", "err", err)
	}
}

// goodbye waits for the responses still to come (each TAKETHIS is answered
// after its Receive, also when the server shuts down), adds line if not
// empty and the session was not ended by a response, flushes, and lets the
// caller close.
func (c *conn) goodbye(line string) {
	goesOn := c.out.wait()
	c.nc.SetDeadline(time.Now().Add(goodbyeWait))
	if line != "" && goesOn {
		c.log.Log(context.Background(), LevelTrace, "nntp: >", "line", line)
		c.out.send(line + "\r\n")
	}
	if err := c.out.flush(); err != nil {
		c.log.Debug("nntp: writing last responses failed", "err", err)
	}
}

var errLineTooLong = errors.New("command line too long")

// readCommand reads one command line (RFC 3977 §3.1) without its line end.
// CRLF is expected but a bare LF is also taken, as innd does: a command line
// is read by us alone, so its end cannot be read two ways. A line longer
// than MaxLineBytes is read to its end and dropped; the error is then
// errLineTooLong and the returned line is its beginning, for the log and
// for lineTooLong.
func (c *conn) readCommand() (string, error) {
	var line []byte
	long := false
	for {
		frag, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && (len(line) > 0 || len(frag) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("reading command: %w", err)
		}
		if !long {
			if len(line)+len(frag) > c.lim.MaxLineBytes {
				long = true
				line = append(line, frag[:c.lim.MaxLineBytes-len(line)]...)
			} else {
				line = append(line, frag...)
			}
		}
		if err == nil {
			break
		}
	}
	if long {
		return string(line), errLineTooLong
	}
	s := strings.TrimSuffix(string(line), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// lineTooLong answers a command line that was too long. If it was a
// TAKETHIS, an article follows without waiting for us (RFC 4644 §2.5), and
// it must be read and dropped, or its lines would be taken for commands.
func (c *conn) lineTooLong(start string) {
	if !c.out.wait() { // an error, answered after what came before (see dispatch)
		return
	}
	c.log.Info("nntp: command line too long", "max", c.lim.MaxLineBytes, "start", truncate(redact(start), 40))
	c.bad++
	if verb, _, _ := strings.Cut(strings.TrimLeft(start, " \t"), " "); strings.EqualFold(verb, "TAKETHIS") {
		if !c.discardArticle() {
			return
		}
	}
	c.reply(501, "command line longer than %d bytes", c.lim.MaxLineBytes)
}

// reply queues one response line (RFC 3977 §3.2) from serve's goroutine.
func (c *conn) reply(code int, format string, args ...any) {
	c.out.send(c.responseLine(code, format, args...))
	if closesAfter(code) {
		c.done = true
	}
}

// responseLine is one response line with its CRLF. The text is cleaned of
// anything that could end the line early and cut to the length limit.
func (c *conn) responseLine(code int, format string, args ...any) string {
	line := fmt.Sprintf("%03d", code)
	if text := cleanText(fmt.Sprintf(format, args...)); text != "" {
		line += " " + text
	}
	line = truncate(line, maxResponseBytes-2)
	c.log.Log(context.Background(), LevelTrace, "nntp: >", "line", line)
	return line + "\r\n"
}

// cleanText keeps a handler's reason (or an echoed argument) from breaking
// the response line: control characters become spaces.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// readBody reads the article that follows POST, IHAVE or TAKETHIS under the
// article deadline. ok false means the session is over (I/O error);
// otherwise a non-nil problem means the article was read but must be
// refused.
func (c *conn) readBody() (art []byte, problem error, ok bool) {
	c.nc.SetDeadline(time.Now().Add(c.lim.ArticleTimeout))
	art, err := readArticle(c.br, c.lim.MaxArticleBytes)
	var ae *articleError
	switch {
	case errors.As(err, &ae):
		c.log.Info("nntp: article refused while reading", "reason", ae.reason)
		return nil, ae, true
	case err != nil:
		c.log.Info("nntp: connection lost while reading an article", "err", err)
		c.done = true
		return nil, nil, false
	}
	c.log.Log(context.Background(), LevelTrace, "nntp: article received", "bytes", len(art))
	return art, nil, true
}

// discardArticle reads and drops an article; false if the session is over.
func (c *conn) discardArticle() bool {
	_, _, ok := c.readBody()
	return ok
}

// verdict checks a handler's answer: an invalid Kind becomes Defer, never
// an acknowledgement the handler did not mean.
func (c *conn) verdict(v Verdict) Verdict {
	switch v.Kind {
	case Accept, Refuse, Defer:
	default:
		c.log.Error("nntp: handler returned an invalid verdict; deferring", "kind", int(v.Kind))
		v = Deferred("internal error")
	}
	return v
}

// textOr is the text of a response: the handler's reason, or the RFC's
// wording for the code when there is none.
func textOr(reason string, code int) string {
	if reason != "" {
		return reason
	}
	switch code {
	case 240:
		return "article received OK"
	case 441:
		return "posting failed"
	case 403:
		return "temporary failure, try again later"
	case 235:
		return "article transferred OK"
	case 435:
		return "article not wanted"
	case 436:
		return "transfer not possible; try again later"
	case 437:
		return "transfer rejected; do not retry"
	case 400:
		return "service temporarily unavailable"
	}
	return ""
}
