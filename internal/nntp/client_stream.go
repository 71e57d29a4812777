package nntp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/dst-traps/dst/internal/article"
)

// Result is a server's answer about one article offered or sent with
// CHECK, TAKETHIS or IHAVE.
type Result struct {
	Command string // "CHECK", "TAKETHIS" or "IHAVE"
	MsgID   string // the message-ID the command named
	Code    int    // the status code
	// Text is the rest of the response line; for CHECK and TAKETHIS,
	// without the message-ID that starts it (RFC 4644 §2.4, §2.5).
	Text string
}

// Kind says what the answer means for the article: Accept (238 send it,
// 239 or 235 taken), Refuse (438, 439, 435, 437: never offer it again) or
// Defer (431, 436: offer it again later; 400 to a TAKETHIS, after which the
// server closes the connection). It is zero for any other code.
func (r Result) Kind() Kind {
	switch r.Command {
	case "CHECK":
		return codes(cmdCheck).kind(r.Code)
	case "TAKETHIS":
		return codes(cmdTakeThis).kind(r.Code)
	case "IHAVE":
		// 335 is not a final answer and never ends up in a Result.
		if r.Code == codes(cmdIHaveOffer).accept {
			return 0
		}
		if k := codes(cmdIHaveOffer).kind(r.Code); k != 0 {
			return k
		}
		return codes(cmdIHave).kind(r.Code)
	}
	return 0
}

// kind is the Kind a code stands for in the table, or zero.
func (t codeTable) kind(code int) Kind {
	switch code {
	case t.accept:
		return Accept
	case t.refuse:
		return Refuse
	case t.deferred:
		return Defer
	}
	return 0
}

// pendingCmd is a streaming command waiting for its answer.
type pendingCmd struct {
	cmd, id string
}

// ModeStream asks the server to stream (RFC 4644 §2.3). 203 gives true; 500
// (unknown command), 501 and 502 (not for this session) give false and no
// error: the server does not stream, and the caller should fall back to
// IHAVE. Any other answer gives an error wrapping *Error.
func (c *Client) ModeStream(ctx context.Context) (streaming bool, err error) {
	if err := c.usableForCommand(); err != nil {
		return false, fmt.Errorf("nntp: MODE STREAM to %s: %w", c.addr, err)
	}
	end := c.begin(ctx)
	defer func() { err = end(err) }()
	code, text, err := c.command("MODE STREAM")
	if err != nil {
		return false, c.fail("MODE STREAM", err)
	}
	switch code {
	case 203:
		return true, nil
	case 500, 501, 502:
		return false, nil
	}
	return false, fmt.Errorf("nntp: MODE STREAM to %s: %w", c.addr, &Error{Code: code, Text: text})
}

// Check offers articles with CHECK (RFC 4644 §2.4), one command per
// message-ID, sent together in one write: pipelining, as RFC 3977 §3.5
// allows and RFC 4644 §2.4 intends for CHECK. It does not wait for the
// answers; NextResult reads them, in the order the commands were sent.
//
// Check and TakeThis may be called from one goroutine while NextResult runs
// in another, so that sending never waits for reading: that is the one
// concurrent use a Client allows. The caller bounds how many commands are
// unanswered (its window); the Client keeps them all.
//
// A message-ID that is not valid (RFC 5536 §3.1.3) is an error before
// anything is sent. An I/O error leaves the session unusable.
func (c *Client) Check(ctx context.Context, ids ...string) error {
	if err := c.usable(); err != nil {
		return fmt.Errorf("nntp: CHECK to %s: %w", c.addr, err)
	}
	for _, id := range ids {
		if !article.ValidMessageID(id) {
			return fmt.Errorf("nntp: CHECK to %s: %q is not a valid message-ID", c.addr, id)
		}
	}
	end := c.beginDir(ctx, c.conn.SetWriteDeadline)
	err := func() error {
		for _, id := range ids {
			c.push(pendingCmd{"CHECK", id})
			if _, err := c.w.W.WriteString("CHECK " + id + "\r\n"); err != nil {
				return err
			}
		}
		return c.w.W.Flush()
	}()
	if err = end(err); err != nil {
		return c.fail("sending CHECK", err)
	}
	return nil
}

// TakeThis sends an article with TAKETHIS (RFC 4644 §2.5): the command and
// the article at once, without waiting; NextResult reads the answer. See
// Check for concurrency.
//
// article is in wire form, not dot-stuffed, with CRLF line ends. It is sent
// byte for byte (it is DKIM-signed) except for the transport encoding of
// RFC 3977 §3.1.1: a '.' doubled at the start of a line, a bare LF sent as
// CRLF, a last line without a line end ended with one, and the final ".".
func (c *Client) TakeThis(ctx context.Context, id string, article []byte) error {
	return c.TakeThese(ctx, Offer{ID: id, Article: article})
}

// Offer is an article for TakeThese: its message-ID and its wire form, as
// TakeThis takes them.
type Offer struct {
	ID      string
	Article []byte
}

// TakeThese sends TAKETHIS for each offer, in order, as TakeThis does for
// one, and flushes once at the end: articles that are ready together go
// out in as few writes as the buffer allows, and the peer reads them with
// as few wake-ups. A message-ID that is not valid is an error before
// anything is sent.
func (c *Client) TakeThese(ctx context.Context, offers ...Offer) error {
	if err := c.usable(); err != nil {
		return fmt.Errorf("nntp: TAKETHIS to %s: %w", c.addr, err)
	}
	for _, o := range offers {
		if !article.ValidMessageID(o.ID) {
			return fmt.Errorf("nntp: TAKETHIS to %s: %q is not a valid message-ID", c.addr, o.ID)
		}
	}
	end := c.beginDir(ctx, c.conn.SetWriteDeadline)
	sending := ""
	err := func() error {
		for _, o := range offers {
			sending = o.ID
			c.push(pendingCmd{"TAKETHIS", o.ID})
			if _, err := c.w.W.WriteString("TAKETHIS " + o.ID + "\r\n"); err != nil {
				return err
			}
			if err := writeDotStuffed(c.w.W, o.Article); err != nil {
				return err
			}
		}
		return c.w.W.Flush()
	}()
	if err = end(err); err != nil {
		return c.fail("sending TAKETHIS "+sending, err)
	}
	return nil
}

// push records a command whose answer NextResult will read.
func (c *Client) push(p pendingCmd) {
	c.mu.Lock()
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// head returns the oldest unanswered command, waiting for one if needed.
func (c *Client) head(ctx context.Context) (pendingCmd, error) {
	for {
		c.mu.Lock()
		if len(c.pending) > 0 {
			p := c.pending[0]
			c.mu.Unlock()
			return p, nil
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-ctx.Done():
			return pendingCmd{}, ctx.Err()
		}
	}
}

func (c *Client) pop() {
	c.mu.Lock()
	c.pending[0] = pendingCmd{}
	c.pending = c.pending[1:]
	c.mu.Unlock()
}

// Unanswered is the number of CHECK and TAKETHIS commands sent whose answer
// NextResult has not read yet.
func (c *Client) Unanswered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// NextResult reads the answer to the oldest unanswered CHECK or TAKETHIS.
// With none unanswered, it waits until one is sent or ctx is done.
//
// The answers a command can have (CHECK: 238, 431, 438; TAKETHIS: 239,
// 439) give a Result and no error; they must name the command's
// message-ID, or the session is out of step and unusable. Any other answer
// gives the Result and an error wrapping *Error: after a 400 the server
// closes the connection (RFC 3977 §3.2.1), so the session is unusable; for
// TAKETHIS that is how a server says "try again later" (RFC 4644 §2.5 has
// no such code; INN's innd does the same). An I/O error or ctx leaves the session unusable, as the
// answer may be half read.
func (c *Client) NextResult(ctx context.Context) (Result, error) {
	if err := c.usable(); err != nil {
		return Result{}, fmt.Errorf("nntp: reading a streaming answer from %s: %w", c.addr, err)
	}
	p, err := c.head(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("nntp: waiting for a streaming answer from %s: %w", c.addr, err)
	}
	end := c.beginDir(ctx, c.conn.SetReadDeadline)
	code, text, err := c.readResponse()
	if err = end(err); err != nil {
		return Result{Command: p.cmd, MsgID: p.id}, c.fail("reading the answer to "+p.cmd+" "+p.id, err)
	}
	c.pop()
	r := Result{Command: p.cmd, MsgID: p.id, Code: code, Text: text}
	if code == 400 || r.Kind() == 0 {
		if code == 400 {
			c.fail("streaming", fmt.Errorf("server is closing the connection (%d %s)", code, text))
		}
		return r, fmt.Errorf("nntp: %s %s to %s: %w", p.cmd, p.id, c.addr, &Error{Code: code, Text: text})
	}
	// RFC 4644 §2.4, §2.5: the answer starts with the message-ID. One
	// for another article means the two sides disagree about which
	// command is answered, and every later ack would be wrong.
	got, rest, _ := strings.Cut(text, " ")
	if got != p.id {
		return r, c.fail("streaming", fmt.Errorf("answer %d %q to %s %s names another article; the stream is out of step", code, text, p.cmd, p.id))
	}
	r.Text = strings.TrimSpace(rest)
	return r, nil
}

// IHave transfers an article with IHAVE (RFC 3977 §6.3.2): the offer, then
// after 335 the article (encoded as for TakeThis). The final answers give a
// Result and no error: 435 (not wanted) or 436 (try later) to the offer,
// 235 (taken), 436 (try later) or 437 (refused) after the article. Any
// other answer gives the Result and an error wrapping *Error. Streaming
// commands must all be answered first.
func (c *Client) IHave(ctx context.Context, id string, art []byte) (r Result, err error) {
	r = Result{Command: "IHAVE", MsgID: id}
	if err := c.usableForCommand(); err != nil {
		return r, fmt.Errorf("nntp: IHAVE to %s: %w", c.addr, err)
	}
	if !article.ValidMessageID(id) {
		return r, fmt.Errorf("nntp: IHAVE to %s: %q is not a valid message-ID", c.addr, id)
	}
	if err := ctx.Err(); err != nil {
		// Nothing sent yet: the session stays good.
		return r, fmt.Errorf("nntp: IHAVE to %s: %w", c.addr, err)
	}
	end := c.begin(ctx)
	defer func() { err = end(err) }()

	code, text, err := c.command("IHAVE " + id)
	if err != nil {
		return r, c.fail("sending IHAVE "+id, err)
	}
	r.Code, r.Text = code, text
	switch code {
	case 335: // RFC 3977 §6.3.2.2: send the article
	case 435, 436:
		return r, nil
	default:
		return r, fmt.Errorf("nntp: IHAVE %s to %s: %w", id, c.addr, &Error{Code: code, Text: text})
	}
	if err := writeDotStuffed(c.w.W, art); err != nil {
		return r, c.fail("sending the article "+id, err)
	}
	if err := c.w.W.Flush(); err != nil {
		return r, c.fail("sending the article "+id, err)
	}
	code, text, err = c.readResponse()
	if err != nil {
		return r, c.fail("reading the answer to the article "+id, err)
	}
	r.Code, r.Text = code, text
	switch code {
	case 235, 436, 437:
		return r, nil
	}
	return r, fmt.Errorf("nntp: IHAVE %s to %s: %w", id, c.addr, &Error{Code: code, Text: text})
}

// writeDotStuffed writes an article as a multi-line data block (RFC 3977
// §3.1.1): a '.' before each line that starts with one, CRLF line ends, and
// the terminating ".". Unlike textproto's DotWriter it leaves every other
// byte alone, a lone CR included, because the article is signed: only the
// transport encoding may differ from what the origin signed, and the
// receiver removes exactly that.
func writeDotStuffed(w *bufio.Writer, art []byte) error {
	for len(art) > 0 {
		line, rest, found := bytes.Cut(art, []byte("\n"))
		art = rest
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		switch {
		case found && bytes.HasSuffix(line, []byte("\r")):
			w.WriteByte('\n')
		case found:
			w.WriteString("\r\n") // a bare LF
		case bytes.HasSuffix(line, []byte("\r")):
			w.WriteByte('\n') // the last line ended in CR without LF
		default:
			w.WriteString("\r\n") // the last line had no line end
		}
	}
	// bufio keeps the first write error and returns it from every later
	// call, so checking once here is enough.
	_, err := w.WriteString(".\r\n")
	return err
}
