package nntp

import (
	"context"
	"crypto/tls"
	"net"
)

// Session is what the server knows about one connection, and what the
// connection may do. Handlers must treat it as read-only.
//
// # Permissions model
//
// A Session holds facts and grants.
//
// Facts are what the connection is; only the server sets them: ID, Remote,
// Unix, TLS (once a TLS handshake has completed, implicit or after STARTTLS)
// and User (once AUTHINFO USER/PASS has succeeded).
//
// Grants are what it may do; only Server.Authorize sets them: CanPost,
// CanFeed and Peer. POST needs CanPost; IHAVE, CHECK, TAKETHIS and MODE
// STREAM need CanFeed. Everything else (CAPABILITIES, HELP, DATE, MODE
// READER, QUIT, STARTTLS, AUTHINFO) needs nothing.
//
// Authorize is asked whenever the facts change: when the connection
// arrives (after the handshake, with implicit TLS), after STARTTLS, and
// after AUTHINFO has verified a password. Each answer replaces every
// earlier grant, and the server puts its own facts back into what
// Authorize returns, so a hook can neither forge a fact nor carry a grant
// past the change that should have revoked it. There is thus one place
// that decides, for example "this address, and either this client
// certificate or that user name".
//
// A command refused for lack of CanFeed is answered 480 "authentication
// required" (RFC 4643 §2.2, RFC 3977 §3.2.1) when authenticating could
// still grant it (STARTTLS or AUTHINFO is still available), and 502
// otherwise. POST without CanPost gets its own 440 (RFC 3977 §6.3.1.2).
type Session struct {
	// Facts, set by the server.
	ID     uint64               // connection id, in every log line about the connection
	Remote net.Addr             // the client's address
	Unix   bool                 // the connection came over a Unix socket
	TLS    *tls.ConnectionState // nil until a TLS handshake has completed
	User   string               // the AUTHINFO user name, once authenticated; "" before

	// Grants, set by Server.Authorize.
	CanPost bool   // POST is allowed (say, the local dstc on loopback or the socket)
	CanFeed bool   // IHAVE, CHECK and TAKETHIS are allowed (a configured peer)
	Peer    string // the peer's name, for logs; may be set before CanFeed is granted
}

// withGrants is facts with the grants of g, and nothing else from g.
func (facts Session) withGrants(g Session) Session {
	facts.CanPost, facts.CanFeed, facts.Peer = g.CanPost, g.CanFeed, g.Peer
	return facts
}

// facts is s without its grants.
func (s Session) facts() Session {
	return Session{ID: s.ID, Remote: s.Remote, Unix: s.Unix, TLS: s.TLS, User: s.User}
}

// Kind is what a Handler decided about an article or an offer.
type Kind int

// The zero Kind is deliberately not among these: a Verdict left empty by
// mistake must never acknowledge an article (an ack means the report is
// durably stored), so the server treats it as Defer.
const (
	// Accept: the article was taken (and durably stored), or, in answer
	// to an offer (IHAVE's first phase, CHECK), is wanted.
	Accept Kind = iota + 1
	// Refuse: the article was refused, or the offer is not wanted;
	// the sender must not try again.
	Refuse
	// Defer: a temporary problem; the sender should try again later.
	Defer
)

func (k Kind) String() string {
	switch k {
	case Accept:
		return "accept"
	case Refuse:
		return "refuse"
	case Defer:
		return "defer"
	}
	return "invalid"
}

// Verdict is a Handler's answer. Reason is free text for the response line
// and the sender's logs; the server strips control characters from it and
// shortens it to fit a response line (RFC 3977 §3.1: 512 octets).
type Verdict struct {
	Kind   Kind
	Reason string
}

// Accepted, Refused and Deferred build Verdicts.
func Accepted() Verdict              { return Verdict{Kind: Accept} }
func Refused(reason string) Verdict  { return Verdict{Kind: Refuse, Reason: reason} }
func Deferred(reason string) Verdict { return Verdict{Kind: Defer, Reason: reason} }

// Handler decides what happens to articles. Its methods are called
// concurrently across connections, and within one connection too: the
// articles of pipelined TAKETHIS commands are received at once, and CHECK
// is decided meanwhile (see pipeline.go). Post, and both calls of an IHAVE,
// have their connection to themselves. The Session does not change while a
// call has it. ctx is cancelled when the connection is torn down (a forced
// Shutdown, or the context given to ServeConn); ServeConn returns only
// after every call it made has returned.
//
// Articles are in wire form without the transport encoding: dot-unstuffed,
// without the terminating ".", every line ending in CRLF. The slice belongs
// to the handler.
type Handler interface {
	// Post is a POST (RFC 3977 §6.3.1) from a session with CanPost.
	Post(ctx context.Context, s *Session, article []byte) Verdict
	// Check is an offer: IHAVE's first phase (RFC 3977 §6.3.2) or CHECK
	// (RFC 4644 §2.4). msgID is a valid RFC 5536 §3.1.3 msg-id. Accept
	// means "send it".
	Check(ctx context.Context, s *Session, msgID string) Verdict
	// Receive is an article transferred by a peer: IHAVE's second phase or
	// TAKETHIS (RFC 4644 §2.5). msgID is the one named in the command; the
	// handler must check that the article carries the same. The answer is
	// sent once Receive has returned, so Accept must mean the article is
	// taken for good. Several calls may run at once for one connection
	// (pipelined TAKETHIS), in any order.
	Receive(ctx context.Context, s *Session, msgID string, article []byte) Verdict
}

// command names the points at which a Verdict becomes a status code.
type command int

const (
	cmdPost       command = iota // POST, after the article
	cmdIHaveOffer                // IHAVE, first phase
	cmdIHave                     // IHAVE, after the article
	cmdCheck                     // CHECK
	cmdTakeThis                  // TAKETHIS, after the article
)

// codeTable is the response code of a command for each Kind.
type codeTable struct{ accept, refuse, deferred int }

// codes is the one place where verdicts become status codes.
//
// Two rows need a word:
//   - POST has no "try again later" code (RFC 3977 §6.3.1.2 lists only 240
//     and 441, and our client, like most, takes 441 as final). A temporary
//     failure is answered with the generic 403 "internal fault preventing
//     action being taken" (RFC 3977 §3.2.1), which dstc treats as "spool and
//     retry".
//   - TAKETHIS has no such code either (RFC 4644 §2.5.2: 239 or 439, and 439
//     means "do not retry"). Like INN's innd (nc.c, when paused), a
//     temporary failure is answered with 400 and the connection is closed,
//     so the article stays in the sender's queue and is offered again; see
//     closesAfter.
func codes(c command) codeTable {
	switch c {
	case cmdPost:
		return codeTable{240, 441, 403} // RFC 3977 §6.3.1.2, §3.2.1
	case cmdIHaveOffer:
		return codeTable{335, 435, 436} // RFC 3977 §6.3.2.2, initial response
	case cmdIHave:
		return codeTable{235, 437, 436} // RFC 3977 §6.3.2.2, subsequent response
	case cmdCheck:
		return codeTable{238, 438, 431} // RFC 4644 §2.4.2
	case cmdTakeThis:
		return codeTable{239, 439, 400} // RFC 4644 §2.5.2; 400 closes (§3.2.1)
	}
	panic("nntp: no code table for command") // a programming error, not input
}

// code maps a Verdict to the command's status code. An invalid Kind counts
// as Defer: never an ack the handler did not mean.
func (t codeTable) code(k Kind) int {
	switch k {
	case Accept:
		return t.accept
	case Refuse:
		return t.refuse
	}
	return t.deferred
}

// closesAfter reports whether the server must close the connection after
// sending code: 400 means "service not available" (RFC 3977 §3.2.1) and the
// client expects the connection to go away.
func closesAfter(code int) bool { return code == 400 }
