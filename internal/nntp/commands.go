package nntp

import (
	"context"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/article"
)

// cmdSpec is one command the server knows.
type cmdSpec struct {
	name string
	args string // for HELP
	// allowed says whether the session may use the command, else 480 or
	// 502 (see notPermitted); nil: always.
	allowed func(*conn) bool
	// listed says whether HELP shows the command; nil: as allowed.
	listed func(*conn) bool
	run    func(c *conn, ctx context.Context, args []string)
}

func canPost(c *conn) bool { return c.sess.CanPost }
func canFeed(c *conn) bool { return c.sess.CanFeed }

// commandTable lists the commands, in HELP order. Each session builds it
// once rather than sharing a package variable: the package keeps no globals.
func commandTable() []cmdSpec {
	return []cmdSpec{
		// AUTHINFO and STARTTLS answer their own refusals (483, 502,
		// 580): RFC 4643 §2.2 forbids 480 for AUTHINFO.
		{"AUTHINFO", "USER name|PASS password", nil, (*conn).canAuthinfo, (*conn).authinfo},
		{"CAPABILITIES", "[keyword]", nil, nil, (*conn).capabilities},
		{"CHECK", "message-ID", canFeed, nil, (*conn).check},
		{"DATE", "", nil, nil, (*conn).date},
		{"HELP", "", nil, nil, (*conn).help},
		{"IHAVE", "message-ID", canFeed, nil, (*conn).ihave},
		{"MODE", "READER|STREAM", nil, nil, (*conn).mode},
		// POST answers 440 itself, the command's own code (see post).
		{"POST", "", nil, canPost, (*conn).post},
		{"QUIT", "", nil, nil, (*conn).quit},
		{"STARTTLS", "", nil, (*conn).canStartTLS, (*conn).starttls},
		// TAKETHIS must read its article before refusing (see takethis).
		{"TAKETHIS", "message-ID", nil, canFeed, (*conn).takethis},
	}
}

// dispatch runs one command line. Keywords are case-insensitive and
// arguments are separated by spaces or tabs (RFC 3977 §3.1).
func (c *conn) dispatch(ctx context.Context, line string) {
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	var spec *cmdSpec
	if len(words) > 0 {
		spec = c.lookup(words[0])
	}
	// CHECK and TAKETHIS go on while earlier TAKETHIS articles are being
	// received, their responses queued behind (see pipeline.go). Anything
	// else, errors included, first waits for every earlier response: it
	// runs as if commands were run one at a time, and nothing that changes
	// the Session (AUTHINFO, STARTTLS) overlaps a Receive reading it.
	if spec == nil || (spec.name != "CHECK" && spec.name != "TAKETHIS") {
		if !c.out.wait() {
			return // a response ended the session
		}
	}
	switch {
	case len(words) == 0:
		c.bad++
		c.reply(500, "empty command")
		return
	case spec == nil:
		c.bad++
		c.reply(500, "unknown command") // RFC 3977 §3.2.1
		return
	case spec.name == "TAKETHIS":
		// Whatever is wrong with the line, the article that follows
		// must be read first (see takethis), which checks the rest.
	case strings.ContainsFunc(line, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }):
		c.bad++
		c.reply(501, "control characters in command line")
		return
	case spec.allowed != nil && !spec.allowed(c):
		c.notPermitted(spec.name)
		return
	}
	before := c.bad
	c.line = line
	spec.run(c, ctx, words[1:])
	c.line = ""
	if c.bad == before {
		c.bad = 0
	}
}

func (c *conn) lookup(keyword string) *cmdSpec {
	for i := range c.cmds {
		if strings.EqualFold(keyword, c.cmds[i].name) {
			return &c.cmds[i]
		}
	}
	return nil
}

// syntax answers a malformed command (RFC 3977 §3.2.1).
func (c *conn) syntax(usage string) {
	c.bad++
	c.reply(501, "syntax: %s", usage)
}

// capabilities lists what this session may do (RFC 3977 §5.2). MODE-READER
// is not listed: this is not a mode-switching server and has no reader
// commands (RFC 3977 §3.4.2); MODE READER is still answered (see mode).
func (c *conn) capabilities(_ context.Context, args []string) {
	if len(args) > 1 {
		c.syntax("CAPABILITIES [keyword]")
		return
	}
	c.reply(101, "capability list follows")
	lines := []string{"VERSION 2", "IMPLEMENTATION DST dstd"}
	if c.sess.CanFeed {
		lines = append(lines, "IHAVE", "STREAMING") // RFC 4644 §2.1
	}
	if c.sess.CanPost {
		lines = append(lines, "POST")
	}
	if c.canStartTLS() {
		lines = append(lines, "STARTTLS") // RFC 4642 §2.1
	}
	if c.canAuthinfo() {
		// The label lists the AUTHINFO commands usable now (RFC 4643
		// §2.1): USER only under TLS (§2.2), a bare AUTHINFO before, as
		// INN's nnrpd does. Not listed at all once authenticated.
		if c.sess.TLS != nil {
			lines = append(lines, "AUTHINFO USER")
		} else {
			lines = append(lines, "AUTHINFO")
		}
	}
	c.multiline(lines)
}

// help lists the commands this session may use (RFC 3977 §7.2).
func (c *conn) help(_ context.Context, args []string) {
	if len(args) != 0 {
		c.syntax("HELP")
		return
	}
	c.reply(100, "legal commands")
	var lines []string
	for _, spec := range c.cmds {
		listed := spec.listed
		if listed == nil {
			listed = spec.allowed
		}
		if listed != nil && !listed(c) {
			continue
		}
		lines = append(lines, strings.TrimSpace("  "+spec.name+" "+spec.args))
	}
	c.multiline(lines)
}

// multiline sends the data lines of a multi-line response and its
// terminating "." (RFC 3977 §3.1.1). Our lines never start with ".", so no
// dot-stuffing is needed.
func (c *conn) multiline(lines []string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	c.out.send(b.String())
}

// date answers with the server's UTC time (RFC 3977 §7.1).
func (c *conn) date(_ context.Context, args []string) {
	if len(args) != 0 {
		c.syntax("DATE")
		return
	}
	c.reply(111, "%s", time.Now().UTC().Format("20060102150405"))
}

// quit ends the session (RFC 3977 §5.4).
func (c *conn) quit(_ context.Context, args []string) {
	// RFC 3977 §5.4 has no syntax error case worth refusing a goodbye
	// over: extra words are ignored.
	c.reply(205, "closing connection")
	c.done = true
}

// mode answers MODE STREAM (RFC 4644 §2.3) and MODE READER (RFC 3977 §5.3).
// INN sends MODE STREAM before streaming, and some feeders send MODE READER
// out of habit; this server is not mode-switching, so MODE READER changes
// nothing and is answered 200 or 201 like the greeting.
func (c *conn) mode(_ context.Context, args []string) {
	if len(args) != 1 {
		c.syntax("MODE READER|STREAM")
		return
	}
	switch strings.ToUpper(args[0]) {
	case "STREAM":
		if !c.sess.CanFeed {
			c.notPermitted("MODE STREAM")
			return
		}
		c.reply(203, "streaming permitted")
	case "READER":
		if c.sess.CanPost {
			c.reply(200, "posting allowed")
		} else {
			c.reply(201, "posting prohibited")
		}
	default:
		c.syntax("MODE READER|STREAM")
	}
}

// post is POST (RFC 3977 §6.3.1): 340, the article, then 240, 441 or 403.
// Without CanPost the answer is 440, the command's own "posting not
// permitted", rather than the generic 502.
func (c *conn) post(ctx context.Context, args []string) {
	if len(args) != 0 {
		c.syntax("POST")
		return
	}
	if !c.sess.CanPost {
		c.reply(440, "posting not permitted")
		return
	}
	c.reply(340, "send article to be posted; end with <CR-LF>.<CR-LF>")
	art, problem, ok := c.readBody()
	if !ok {
		return
	}
	t := codes(cmdPost)
	if problem != nil {
		c.reply(t.refuse, "%s", problem)
		return
	}
	v := c.verdict(c.srv.Handler.Post(ctx, &c.sess, art))
	c.log.Debug("nntp: POST", "bytes", len(art), "verdict", v.Kind, "reason", v.Reason)
	c.reply(t.code(v.Kind), "%s", textOr(v.Reason, t.code(v.Kind)))
}

// msgIDArg returns the message-ID argument of IHAVE, CHECK or TAKETHIS.
// ok false means the command had the wrong number of arguments.
func msgIDArg(args []string) (id string, ok bool) {
	if len(args) != 1 {
		return "", false
	}
	return args[0], true
}

// ihave is IHAVE (RFC 3977 §6.3.2): an offer answered 335, 435 or 436;
// after 335, the article, answered 235, 436 or 437.
func (c *conn) ihave(ctx context.Context, args []string) {
	id, ok := msgIDArg(args)
	if !ok {
		c.syntax("IHAVE message-ID")
		return
	}
	offer := codes(cmdIHaveOffer)
	if !article.ValidMessageID(id) {
		// 435 rather than 501, as innd does: "not wanted" makes the
		// sender drop an article that can never be valid, where 501
		// says nothing about the article and leaves it queued.
		c.reply(offer.refuse, "syntax error in message-ID")
		return
	}
	v := c.verdict(c.srv.Handler.Check(ctx, &c.sess, id))
	c.log.Debug("nntp: IHAVE offer", "message_id", id, "verdict", v.Kind, "reason", v.Reason)
	if v.Kind != Accept {
		c.reply(offer.code(v.Kind), "%s", textOr(v.Reason, offer.code(v.Kind)))
		return
	}
	c.reply(offer.accept, "send it; end with <CR-LF>.<CR-LF>")

	art, problem, ok := c.readBody()
	if !ok {
		return
	}
	t := codes(cmdIHave)
	if problem != nil {
		c.reply(t.refuse, "%s", problem)
		return
	}
	v = c.verdict(c.srv.Handler.Receive(ctx, &c.sess, id, art))
	c.log.Debug("nntp: IHAVE", "message_id", id, "bytes", len(art), "verdict", v.Kind, "reason", v.Reason)
	c.reply(t.code(v.Kind), "%s", textOr(v.Reason, t.code(v.Kind)))
}

// check is CHECK (RFC 4644 §2.4), answered "238|431|438 <message-ID>".
// It is decided at once, even with TAKETHIS articles still being received
// (Check only reads), and its response queued behind theirs, so pipelined
// commands are answered in order. A CHECK for an article whose TAKETHIS is
// still in progress may thus get 238; the article sent again is then
// refused as a duplicate, as it would be from another peer.
func (c *conn) check(ctx context.Context, args []string) {
	id, ok := msgIDArg(args)
	if !ok {
		c.syntax("CHECK message-ID")
		return
	}
	t := codes(cmdCheck)
	if !article.ValidMessageID(id) {
		// 438 rather than 501, as innd does (see ihave). The argument
		// is echoed as the sender sent it, so it can match the answer.
		c.reply(t.refuse, "%s syntax error in message-ID", id)
		return
	}
	v := c.verdict(c.srv.Handler.Check(ctx, &c.sess, id))
	c.log.Debug("nntp: CHECK", "message_id", id, "verdict", v.Kind, "reason", v.Reason)
	c.reply(t.code(v.Kind), "%s %s", id, v.Reason)
}

// takethis is TAKETHIS (RFC 4644 §2.5), answered "239|439 <message-ID>", or
// 400 and the end of the session for a temporary failure (see codes). The
// article follows the command without waiting for an answer, so it is read
// before anything else is decided, even for a command that is refused
// outright: otherwise its lines would be taken for commands.
func (c *conn) takethis(ctx context.Context, args []string) {
	art, problem, ok := c.readBody()
	if !ok {
		return
	}
	if !c.sess.CanFeed {
		c.notPermitted("TAKETHIS")
		return
	}
	id, ok := msgIDArg(args)
	if !ok {
		c.syntax("TAKETHIS message-ID")
		return
	}
	t := codes(cmdTakeThis)
	switch {
	case !article.ValidMessageID(id):
		c.reply(t.refuse, "%s syntax error in message-ID", id)
		return
	case problem != nil:
		c.reply(t.refuse, "%s %s", id, problem)
		return
	}
	// Receive runs while the session reads on (see pipeline.go). It reads
	// c.sess and c.log, which only commands that wait for it change.
	c.out.start(int64(len(art)), func() (string, bool) {
		v := c.verdict(c.srv.Handler.Receive(ctx, &c.sess, id, art))
		c.log.Debug("nntp: TAKETHIS", "message_id", id, "bytes", len(art), "verdict", v.Kind, "reason", v.Reason)
		if v.Kind == Defer {
			// 400 ends the session (closesAfter), and the responses
			// queued behind it are not sent. Their articles may have
			// been taken all the same: the peer, unanswered, offers
			// them again, and a handler that remembers what it took
			// (dstd's history) refuses them as duplicates (438,
			// 439). Nothing is lost and nothing is taken twice.
			return c.responseLine(t.deferred, "%s", textOr(v.Reason, t.deferred)), true
		}
		return c.responseLine(t.code(v.Kind), "%s %s", id, v.Reason), false
	})
}
