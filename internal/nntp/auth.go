package nntp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// This file is the security side of a session: TLS (implicit, RFC 8143, or
// STARTTLS, RFC 4642), AUTHINFO USER/PASS (RFC 4643 §2.3) and the calls to
// Server.Authorize that turn what the connection is into what it may do
// (see Session for the model).

// authorize asks Server.Authorize for the grants of a session with these
// facts. When it says yes they become the session, replacing every earlier
// grant; when it says no the session is left as it was.
func (c *conn) authorize(facts Session) bool {
	facts = facts.facts() // grants come from Authorize alone
	if c.srv.Authorize == nil {
		return false // fail closed
	}
	g, ok := c.srv.Authorize(c.nc, facts)
	if !ok {
		return false
	}
	c.sess = facts.withGrants(g)
	c.log = c.baseLog
	if c.sess.Peer != "" {
		c.log = c.log.With("peer", c.sess.Peer)
	}
	return true
}

// handshake runs the server side of a TLS handshake under the handshake
// deadline. ctx is the connection's: tearing it down ends the handshake.
func (c *conn) handshake(ctx context.Context, tc *tls.Conn) (*tls.ConnectionState, error) {
	tc.SetDeadline(time.Now().Add(c.lim.HandshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	state := tc.ConnectionState()
	attrs := []any{"version", tls.VersionName(state.Version), "cipher", tls.CipherSuiteName(state.CipherSuite)}
	if len(state.PeerCertificates) > 0 {
		attrs = append(attrs, "client_cert", state.PeerCertificates[0].Subject.String())
	}
	c.log.Debug("nntp: TLS established", attrs...)
	return &state, nil
}

// setConn replaces the connection under the session (after STARTTLS),
// under srv.mu because drain reads c.nc from another goroutine.
func (c *conn) setConn(nc net.Conn) {
	c.srv.mu.Lock()
	c.nc = nc
	c.srv.mu.Unlock()
	c.br.Reset(flushReader{c})
	c.out.reset(nc)
}

// canStartTLS: STARTTLS is on offer. RFC 4642 §2.2.1: not under TLS
// already, nor after authentication.
func (c *conn) canStartTLS() bool {
	return c.srv.TLSConfig != nil && c.sess.TLS == nil && c.sess.User == ""
}

// canAuthinfo: AUTHINFO may still be used, now or after STARTTLS. RFC 4643
// §2.2: not once authenticated.
func (c *conn) canAuthinfo() bool {
	return c.srv.Authenticate != nil && c.sess.User == "" && (c.sess.TLS != nil || c.canStartTLS())
}

// notPermitted refuses a command that needs CanFeed: 480 when
// authenticating (a client certificate after STARTTLS, or AUTHINFO) could
// still grant it (RFC 4643 §2.2, RFC 3977 §3.2.1), otherwise 502.
func (c *conn) notPermitted(command string) {
	if c.canStartTLS() || c.canAuthinfo() {
		c.reply(480, "authentication required for %s", command)
		return
	}
	c.reply(502, "%s not allowed in this session", command) // RFC 3977 §3.2.1
}

// starttls is STARTTLS (RFC 4642 §2.2): 382, the handshake, and a new
// session: everything known before is forgotten, and Authorize decides
// again with the TLS state (a client certificate may be what it waited
// for).
func (c *conn) starttls(ctx context.Context, args []string) {
	if len(args) != 0 {
		c.syntax("STARTTLS")
		return
	}
	switch {
	case c.sess.TLS != nil:
		c.reply(502, "already under TLS") // RFC 4642 §2.2.1 note 1, §2.2.2
		return
	case c.sess.User != "":
		c.reply(502, "STARTTLS not allowed after authentication") // RFC 4642 §2.2.1 note 1
		return
	case c.srv.TLSConfig == nil:
		// RFC 4642 §2.2.1-2.2.2: a server that cannot start TLS answers
		// 580 and the session goes on.
		c.reply(580, "TLS not available")
		return
	}
	if n := c.br.Buffered(); n > 0 {
		// STARTTLS must not be pipelined (RFC 4642 §2.2.1). Bytes sent in
		// clear after it must not be run as if they had come under TLS:
		// that is the STARTTLS command injection of CVE-2011-0411. They
		// are dropped; if they were a too-early ClientHello, the
		// handshake fails, which is the client's doing.
		c.log.Info("nntp: dropping data sent after STARTTLS before the handshake", "bytes", n)
		c.br.Discard(n)
	}
	c.reply(382, "continue with TLS negotiation")
	if err := c.out.flush(); err != nil {
		c.log.Debug("nntp: writing 382 failed", "err", err)
		c.done = true
		return
	}
	tc := tls.Server(c.nc, c.srv.TLSConfig)
	state, err := c.handshake(ctx, tc)
	if err != nil {
		// RFC 4642 §2.2.2: after a failed negotiation both sides close.
		// No response: the stream is now neither clear text nor TLS,
		// and the 580 code is for refusing before 382.
		c.log.Info("nntp: STARTTLS failed; closing", "err", err)
		c.srv.noteRefusal(c.class, RefusedHandshake)
		c.done = true
		return
	}
	c.setConn(tc)
	// RFC 4642 §2.2.2: discard all knowledge obtained from the client
	// before TLS; the client must ask CAPABILITIES again.
	c.authUser, c.authFailures, c.bad = "", 0, 0
	if !c.authorize(Session{ID: c.sess.ID, Remote: c.sess.Remote, Unix: c.sess.Unix, TLS: state}) {
		c.log.Info("nntp: access denied after STARTTLS")
		c.sess = Session{ID: c.sess.ID, Remote: c.sess.Remote, Unix: c.sess.Unix, TLS: state}
		// After STARTTLS the server speaks only when spoken to.
		c.farewell = "400 access denied"
	}
}

// authinfo is AUTHINFO USER and AUTHINFO PASS (RFC 4643 §2.3), under TLS
// only. The user name and the password are the rest of the line: they may
// contain spaces (user-pass-char in RFC 4643's formal syntax; INN takes
// them so too), so the words dispatch split are not used for them.
func (c *conn) authinfo(_ context.Context, args []string) {
	switch {
	case c.srv.Authenticate == nil:
		c.reply(502, "authentication not available")
		return
	case c.sess.User != "":
		c.reply(502, "already authenticated") // RFC 4643 §2.2
		return
	case c.sess.TLS == nil:
		// Never take a password in clear, nor a user name that would be
		// followed by one: RFC 4643 §2.2 and §2.3.2, RFC 3977 §3.2.1.
		c.reply(483, "encryption required: use STARTTLS first")
		return
	case len(args) == 0:
		c.syntax("AUTHINFO USER name|PASS password")
		return
	}
	value := authArg(c.line)
	switch strings.ToUpper(args[0]) {
	case "USER":
		if value == "" {
			c.syntax("AUTHINFO USER name")
			return
		}
		// RFC 4643 §2.3.2: each USER replaces the one before.
		c.authUser = value
		c.reply(381, "password required")
	case "PASS":
		switch {
		case c.authUser == "":
			c.reply(482, "authentication commands issued out of sequence") // RFC 4643 §2.3.2
		case value == "":
			c.syntax("AUTHINFO PASS password")
		default:
			c.checkPassword(c.authUser, value)
		}
	case "SASL":
		c.reply(503, "SASL not supported") // not advertised (RFC 4643 §2.4)
	default:
		c.syntax("AUTHINFO USER name|PASS password")
	}
}

// checkPassword ends AUTHINFO: 281 and new grants, or 481 (and the end of
// the session after maxAuthFailures). The password goes nowhere but
// Authenticate: not into a log, not into a response.
func (c *conn) checkPassword(user, pass string) {
	c.authUser = "" // a failed PASS needs a new USER; a good one is done with it
	s := c.sess
	if c.srv.Authenticate(&s, user, pass) {
		facts := c.sess.facts()
		facts.User = user
		if c.authorize(facts) {
			c.log.Info("nntp: authenticated", "user", user, "feed", c.sess.CanFeed, "post", c.sess.CanPost)
			c.reply(281, "authentication accepted")
			return
		}
		c.log.Info("nntp: authenticated, but not authorized", "user", user)
	}
	c.authFailures++
	c.log.Info("nntp: authentication failed", "user", user, "failures", c.authFailures)
	if c.authFailures >= maxAuthFailures {
		c.reply(481, "authentication failed; too many failures, closing connection")
		c.done = true
		return
	}
	c.reply(481, "authentication failed")
}

// authArg is the argument of an AUTHINFO USER or PASS command line: what
// follows the sub-keyword and the blanks after it, as sent.
func authArg(line string) string {
	rest := line
	for range 2 { // skip "AUTHINFO" and "USER" or "PASS"
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			return ""
		}
		rest = rest[i:]
	}
	return strings.TrimLeft(rest, " \t")
}

// redact is line as it may be logged: the argument of AUTHINFO PASS is
// replaced, whatever the case or spacing of the command. Control
// characters count as blanks here, unlike in dispatch, so that a line that
// is refused for them is not logged with its password either.
func redact(line string) string {
	words := strings.FieldsFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if len(words) >= 2 && strings.EqualFold(words[0], "AUTHINFO") && len(words[1]) >= 4 && strings.EqualFold(words[1][:4], "PASS") {
		return "AUTHINFO PASS [redacted]"
	}
	return line
}

// isUnix reports whether c came over a Unix socket, under TLS or not.
func isUnix(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if _, ok := c.(*net.UnixConn); ok {
		return true
	}
	a := c.LocalAddr()
	return a != nil && a.Network() == "unix"
}
