// Package nntp speaks the Network News Transfer Protocol (RFC 3977), the
// protocol DST sites use to exchange reports and that dstc uses to hand a
// report to its local dstd.
//
// The package has both sides of dstd's NNTP: the server, with POST, IHAVE
// and the streaming of RFC 4644 (MODE STREAM, CHECK, TAKETHIS) and a Handler
// deciding about articles; and the client, with POST for dstc, and IHAVE and
// pipelined CHECK/TAKETHIS over TLS (RFC 4642) and AUTHINFO (RFC 4643) for
// feeds to peers. It knows nothing about what an article means: it moves
// bytes, applies the dot-stuffing of RFC 3977 §3.1.1, and maps answers to
// and from status codes.
package nntp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Error is a response from the server other than the one the client hoped
// for, such as "441 Posting failed" or "400 Service temporarily
// unavailable".
type Error struct {
	Code int    // the three-digit status code (RFC 3977 §3.2)
	Text string // the rest of the response line
}

func (e *Error) Error() string {
	return fmt.Sprintf("NNTP server replied %d %s", e.Code, e.Text)
}

// Permanent reports whether retrying the same article is pointless: only
// 441 (RFC 3977 §6.3.1.2), where the server has read the article and
// refused it. Every other code (440 posting not permitted, 400 service
// unavailable, 480 authentication required, 5xx, ...) describes the
// session or the server rather than the article, so the caller should spool
// the article and try again later.
func (e *Error) Permanent() bool {
	return e.Code == 441
}

// maxResponseLine bounds a response line. RFC 3977 §3.1 allows 512 octets;
// the extra room is for servers that are generous with their text, while
// still keeping a broken or hostile server from growing the buffer.
const maxResponseLine = 4096

// quitWait is the longest Close waits for the server to answer QUIT; the
// work is done by then, so a slow goodbye must not hold up the caller.
const quitWait = 2 * time.Second

// Client is a connection to an NNTP server. It is not safe for concurrent
// use, with one exception: while streaming, one goroutine may send CHECK
// and TAKETHIS while another reads their results (see Check).
type Client struct {
	conn    net.Conn
	addr    string // as given to Dial, for error messages
	timeout time.Duration
	br      *bufio.Reader
	w       *textproto.Writer

	postingAllowed bool
	tls            bool // the session is encrypted (implicit TLS or STARTTLS)

	// mu guards what the sending and the reading goroutine of a stream
	// share.
	mu sync.Mutex
	// broken is the I/O error that left the session in an unknown state
	// (say, half an article sent). No command may follow it.
	broken error
	// pending are the streaming commands sent and not yet answered, in
	// the order they were sent: a server answers pipelined commands in
	// order (RFC 3977 §3.5), so the head is what the next response is
	// about.
	pending []pendingCmd
	// wake tells a NextResult waiting for a command that one was sent.
	wake   chan struct{}
	closed bool
}

// Dial connects to the NNTP server at addr and reads its greeting
// (RFC 3977 §5.1). addr is "host:port", "[v6addr]:port", or the path of a
// Unix socket, either absolute ("/run/dstd/post.sock") or prefixed with
// "unix:".
//
// timeout bounds the connection and the greeting, and is also the default
// limit for each later command when its context has no earlier deadline. Zero
// means no limit other than the context's.
//
// A 200 or 201 greeting gives a Client (see PostingAllowed). A 400 or 502
// greeting, or any other code, gives an error wrapping *Error.
//
// Dial is DialWith with only a timeout: no TLS, no authentication.
func Dial(ctx context.Context, addr string, timeout time.Duration) (*Client, error) {
	return DialWith(ctx, addr, DialOptions{Timeout: timeout})
}

// clientWriteBuffer is the size of a Client's write buffer: room for the
// articles of a TakeThese (a DST report is about 1.5 KiB) to go out in one
// write, where bufio's default 4 KiB would split them.
const clientWriteBuffer = 32 << 10

// newClient wraps a connection that is ready for the greeting.
func newClient(conn net.Conn, addr string, timeout time.Duration) *Client {
	return &Client{
		conn:    conn,
		addr:    addr,
		timeout: timeout,
		br:      bufio.NewReaderSize(conn, maxResponseLine),
		w:       textproto.NewWriter(bufio.NewWriterSize(conn, clientWriteBuffer)),
		wake:    make(chan struct{}, 1),
	}
}

// greet reads the greeting (RFC 3977 §5.1).
func (c *Client) greet(ctx context.Context) error {
	end := c.begin(ctx)
	code, text, err := c.readResponse()
	err = end(err)
	if err != nil {
		return fmt.Errorf("nntp: reading greeting from %s: %w", c.addr, err)
	}
	switch code {
	case 200: // RFC 3977 §5.1.1: service available, posting allowed
		c.postingAllowed = true
	case 201: // service available, posting prohibited
	default: // 400 temporarily unavailable, 502 permanently unavailable
		return fmt.Errorf("nntp: %s refused the session: %w", c.addr, &Error{Code: code, Text: text})
	}
	return nil
}

// splitAddr maps a Dial address to a network and an address for net.Dial.
func splitAddr(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix", path
	}
	if strings.HasPrefix(addr, "/") {
		return "unix", addr
	}
	return "tcp", addr
}

// PostingAllowed reports whether the greeting was 200 rather than 201
// (RFC 3977 §5.1.1). Post still sends POST when it is false: the server's
// 440 answer is the authoritative one and tells the operator more.
func (c *Client) PostingAllowed() bool {
	return c.postingAllowed
}

// Post sends an article with POST (RFC 3977 §6.3.1): "POST", a 340 answer,
// the article dot-stuffed with CRLF line ends and ended by ".", then 240
// when the server took it.
//
// article is in wire form, not dot-stuffed; lines may end in CRLF or bare
// LF, and Post sends CRLF either way. The context's deadline and
// cancellation apply to the network I/O.
//
// An answer other than 340 or 240 gives an error wrapping *Error; use
// errors.As and Error.Permanent to decide between dropping and spooling the
// article. Other errors (a connection dropped half-way, a timeout) leave
// the Client unusable except for Close, and mean the article may or may
// not have been posted.
func (c *Client) Post(ctx context.Context, article []byte) (err error) {
	if err := c.usableForCommand(); err != nil {
		return fmt.Errorf("nntp: POST to %s: %w", c.addr, err)
	}
	if err := ctx.Err(); err != nil {
		// Checked first so that a dead context does not cost the
		// session: nothing has been sent yet.
		return fmt.Errorf("nntp: POST to %s: %w", c.addr, err)
	}
	end := c.begin(ctx)
	defer func() { err = end(err) }()

	if err := c.w.PrintfLine("POST"); err != nil {
		return c.fail("sending POST", err)
	}
	code, text, err := c.readResponse()
	if err != nil {
		return c.fail("reading the answer to POST", err)
	}
	if code != 340 { // RFC 3977 §6.3.1.2: 340 send article; 440 not permitted
		return fmt.Errorf("nntp: POST to %s: %w", c.addr, &Error{Code: code, Text: text})
	}

	// DotWriter stuffs a '.' before lines that start with one, turns
	// bare LF into CRLF and writes the terminating "." line (RFC 3977
	// §3.1.1).
	dw := c.w.DotWriter()
	if _, err := dw.Write(article); err != nil {
		dw.Close()
		return c.fail("sending the article", err)
	}
	if err := dw.Close(); err != nil {
		return c.fail("sending the article", err)
	}

	code, text, err = c.readResponse()
	if err != nil {
		return c.fail("reading the answer to the article", err)
	}
	if code != 240 { // RFC 3977 §6.3.1.2: 240 received; 441 failed
		return fmt.Errorf("nntp: posting to %s: %w", c.addr, &Error{Code: code, Text: text})
	}
	return nil
}

// Close ends the session with QUIT (RFC 3977 §5.4), waits a short while
// for the 205 answer, and closes the connection. After an I/O error it just
// closes the connection. Errors are only worth logging: whatever was posted
// before stays posted.
//
// While streaming, Close must not run concurrently with NextResult: cancel
// the context given to NextResult and wait for it to return first. With
// streaming commands still unanswered Close does not send QUIT, whose
// answer would come after theirs: nobody is waiting for those any more, so
// it just hangs up.
func (c *Client) Close() error {
	// Decided before closed is set, which makes every command unusable.
	sayGoodbye := c.usableForCommand() == nil
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var qerr error
	if sayGoodbye {
		wait := quitWait
		if c.timeout > 0 && c.timeout < wait {
			wait = c.timeout
		}
		c.conn.SetDeadline(time.Now().Add(wait))
		if err := c.w.PrintfLine("QUIT"); err != nil {
			qerr = err
		} else if code, text, err := c.readResponse(); err != nil {
			qerr = err
		} else if code != 205 {
			qerr = &Error{Code: code, Text: text}
		}
		if qerr != nil {
			qerr = fmt.Errorf("nntp: QUIT to %s: %w", c.addr, qerr)
		}
	}
	if err := c.conn.Close(); err != nil {
		return errors.Join(qerr, fmt.Errorf("nntp: closing connection to %s: %w", c.addr, err))
	}
	return qerr
}

func (c *Client) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return net.ErrClosed
	case c.broken != nil:
		return fmt.Errorf("connection unusable after an earlier error: %w", c.broken)
	}
	return nil
}

// usableForCommand is usable for a command with a response of its own
// (everything but CHECK and TAKETHIS): its response would be taken for the
// answer to a streaming command still unanswered.
func (c *Client) usableForCommand() error {
	if err := c.usable(); err != nil {
		return err
	}
	if n := c.Unanswered(); n > 0 {
		return fmt.Errorf("%d streaming commands are still unanswered", n)
	}
	return nil
}

// fail records that the session is in an unknown state and wraps err.
func (c *Client) fail(doing string, err error) error {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
	return fmt.Errorf("nntp: %s to %s: %w", doing, c.addr, err)
}

// begin applies ctx and c.timeout to the connection for one exchange.
// The returned function undoes it and, if err came from a cancelled or
// expired context, makes that visible in the error.
func (c *Client) begin(ctx context.Context) func(error) error {
	return c.beginDir(ctx, c.conn.SetDeadline)
}

// beginDir is begin for one direction: set is the connection's
// SetDeadline, SetReadDeadline or SetWriteDeadline. While streaming, the
// sending and the reading goroutine each set their own direction's
// deadline, so neither cuts the other short.
func (c *Client) beginDir(ctx context.Context, set func(time.Time) error) func(error) error {
	var deadline time.Time
	if c.timeout > 0 {
		deadline = time.Now().Add(c.timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	set(deadline)
	// Cancellation without a deadline must also interrupt a blocked read
	// or write: a deadline in the past does that.
	stop := context.AfterFunc(ctx, func() { set(time.Unix(1, 0)) })
	return func(err error) error {
		stop()
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%w (%w)", err, cerr)
		}
		// The connection deadline can fire a moment before the
		// context notices its own.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
		}
		return err
	}
}

// readResponse reads one response line (RFC 3977 §3.2): a three-digit
// status code, optionally followed by a space and text.
func (c *Client) readResponse() (code int, text string, err error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return 0, "", fmt.Errorf("response line longer than %d bytes", maxResponseLine)
	case err == io.EOF && len(line) == 0:
		return 0, "", errors.New("server closed the connection")
	case err == io.EOF:
		return 0, "", fmt.Errorf("server closed the connection in the middle of the response line %q", line)
	case err != nil:
		return 0, "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if len(s) < 3 || (len(s) > 3 && s[3] != ' ') {
		return 0, "", fmt.Errorf("malformed response line %q", s)
	}
	code, err = strconv.Atoi(s[:3])
	if err != nil || code < 100 || code > 599 {
		return 0, "", fmt.Errorf("malformed response line %q", s)
	}
	if len(s) > 3 {
		text = s[4:]
	}
	return code, text, nil
}
