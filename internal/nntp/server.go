package nntp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// LevelTrace is the slog level of protocol transcripts: every command and
// every response, with the connection id. Article bodies are never logged.
const LevelTrace = slog.LevelDebug - 4

// Limits bound what one client can make the server do. A zero field takes
// the default given with it.
type Limits struct {
	// MaxConns is the most connections served at once, all classes
	// together (see Server.Classify); more get "400 too many
	// connections" and are closed. Default: no limit.
	MaxConns int
	// MaxLineBytes bounds a command line, CRLF included. RFC 3977 §3.1
	// sets 512, the default. A longer line is discarded and answered 501.
	MaxLineBytes int
	// MaxArticleBytes bounds an article after dot-unstuffing, CRLFs
	// included. A longer one is read to its end without being kept, then
	// refused. Default: 1,000,000 (dstd.conf's default).
	MaxArticleBytes int64
	// IdleTimeout closes a connection that sends no command for this long.
	// RFC 3977 §3.1 requires at least 3 minutes of a server with an
	// inactivity timer; shorter values are for tests. Default: 5 minutes.
	IdleTimeout time.Duration
	// ArticleTimeout bounds receiving one article. Default: 5 minutes.
	ArticleTimeout time.Duration
	// MaxPipelinedBytes bounds the articles of one connection held while
	// they are being received (pipelined TAKETHIS, see pipeline.go): a
	// TAKETHIS that would go over waits for earlier ones to finish. One
	// article is always allowed. Default: 4 MiB, some 2,500 typical
	// reports, against 64 times MaxArticleBytes without it.
	MaxPipelinedBytes int64
	// HandshakeTimeout bounds a TLS handshake, implicit or after
	// STARTTLS, so that a client cannot hold a connection slot by
	// starting one and going quiet. Default: 10 seconds, plenty for a
	// handshake over any network a peer uses.
	HandshakeTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 512
	}
	if l.MaxArticleBytes <= 0 {
		l.MaxArticleBytes = 1_000_000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 5 * time.Minute
	}
	if l.MaxPipelinedBytes <= 0 {
		l.MaxPipelinedBytes = 4 << 20
	}
	if l.ArticleTimeout <= 0 {
		l.ArticleTimeout = 5 * time.Minute
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = 10 * time.Second
	}
	return l
}

// Server is the NNTP server side of dstd: the wire protocol of RFC 3977, the
// streaming extension of RFC 4644, TLS (RFC 4642, RFC 8143) and AUTHINFO
// USER/PASS (RFC 4643), for POST from dstc and IHAVE, CHECK and TAKETHIS
// from peers. What to do with articles is up to Handler; who may do what is
// up to Authorize (see Session for the permissions model).
//
// For implicit TLS (NNTPS on port 563, RFC 8143), serve a listener wrapped with
// tls.NewListener: the server classifies the connection (Classify) before
// the handshake, and completes the handshake, under
// Limits.HandshakeTimeout, before it asks Authorize, so the client
// certificate is there to be checked.
//
// Set the fields before the first Serve or ServeConn and do not change them
// afterwards. A Server must not be copied once in use.
type Server struct {
	Handler Handler      // required; without one every connection gets 400
	Log     *slog.Logger // nil: no logging
	Limits  Limits
	// Hostname is named in the greeting (RFC 3977 §5.1).
	Hostname string
	// Authorize decides what a connection may do: it gets the connection
	// and the facts the server knows (s.Remote, s.Unix, s.TLS, s.User;
	// no grants) and returns the grants (CanPost, CanFeed, Peer); other
	// fields of its result are ignored. It is called when the connection
	// arrives, after STARTTLS and after a successful AUTHINFO, and each
	// answer replaces the earlier grants.
	//
	// false when the connection arrives gets "502 access denied" and the
	// connection closed (RFC 3977 §5.1.1); after STARTTLS, "400 access
	// denied" to the next command and the end of the session (RFC 3977
	// §3.2.1); after AUTHINFO, "481" as for a wrong password. A
	// connection that may gain grants by authenticating (a peer's
	// address, but its certificate or password is still to come) must be
	// answered true with no grants, or it never gets the chance.
	//
	// A nil Authorize refuses every connection: the server fails closed.
	// It is called from the connection's goroutine, concurrently across
	// connections.
	Authorize func(c net.Conn, s Session) (Session, bool)
	// DeniedText, if set, gives the text of the 502 answer to a
	// connection Authorize refuses when it arrives, so that the client's
	// administrator learns what to do; default "access denied".
	DeniedText func(s Session) string
	// TLSConfig, if set, offers STARTTLS (RFC 4642) on connections that
	// are not already under TLS. To see client certificates, set its
	// ClientAuth (tls.RequestClientCert to pin certificates in Authorize,
	// tls.VerifyClientCertIfGiven to have them chain to ClientCAs).
	TLSConfig *tls.Config
	// Authenticate, if set, offers AUTHINFO USER/PASS (RFC 4643 §2.3),
	// only under TLS: a password is never taken in clear (RFC 4643 §2.2,
	// 483). It reports whether pass is user's password for a client with
	// s's facts; it should compare in constant time. When it says yes,
	// Authorize is asked again with s.User set, and decides the grants.
	Authenticate func(s *Session, user, pass string) bool
	// OnConnChange, if set, is called with +1 and -1 as connections are
	// admitted and end, to drive a gauge. It must not block.
	OnConnChange func(delta int)
	// OnSessionEnd, if set, is called when a session Authorize let in
	// ends, with the session as it last was (facts and grants): to keep
	// a list of who is connected. It must not block.
	OnSessionEnd func(s Session)
	// Classify, if set, decides which pool a connection counts against
	// (see Class, and Pools for dstd's), when it arrives: from what the
	// connection is (its addresses, whether it is implicit TLS) and
	// before a byte is read from it or a TLS handshake begins. A
	// connection over its class's limits gets "400 too many connections"
	// and is closed at once; on implicit TLS it is closed without a
	// word, as a 400 would first need the handshake the limit is there
	// to save. false closes the connection at once without a word (a
	// client that has no business on this listener). nil: one pool,
	// bounded by Limits.MaxConns alone.
	Classify func(c net.Conn, implicitTLS bool) (Class, bool)
	// OnRefuse, if set, is called for each connection turned away before
	// it is served, with its class and one of the Refused* reasons, to
	// drive a counter. It must not block.
	OnRefuse func(class Class, reason string)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perClass  map[string]int // admitted connections by Class.Name
	perKey    map[classKey]int
	refusals  map[string]*refusalLog
	draining  bool
	wg        sync.WaitGroup // one per admitted connection
	lastID    uint64
}

// Serve accepts connections on l and serves each in its own goroutine. It
// returns nil when ctx is done or Shutdown is called, and the listener's
// error if it fails.
//
// When ctx is done the server starts draining, as Shutdown does: idle
// connections are closed, and busy ones once their current command is
// answered. Call Shutdown to wait for that with a bound.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, s.drain)
	defer stop()

	// Connections must outlive a cancelled ctx long enough to finish
	// their command: draining is the server's business, not the
	// caller's context's.
	connCtx := context.WithoutCancel(ctx)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isDraining() {
				return nil
			}
			// Running out of file descriptors passes; giving up the
			// listener over it would take the site off the network.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Error("nntp: accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("nntp: accepting connections on %s: %w", l.Addr(), err)
		}
		backoff = 0
		go s.ServeConn(connCtx, nc)
	}
}

// ServeConn serves one connection and returns when it is closed; it closes
// c. Cancelling ctx tears the connection down at once, and cancels the
// context the Handler gets.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing is the one way to interrupt a blocked read or write that no
	// later SetDeadline can undo.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	lim := s.Limits.withDefaults()
	tc, implicitTLS := c.(*tls.Conn)
	class := Class{Name: "all"}
	ok := true
	if s.Classify != nil {
		class, ok = s.Classify(c, implicitTLS)
	}
	cn := &conn{srv: s, nc: c, lim: lim, cancel: cancel, class: class}
	// After STARTTLS cn.nc is the TLS connection over c; closing it
	// sends the TLS close_notify before c itself is closed. An implicit
	// TLS connection closed before its handshake sends nothing.
	defer func() { cn.nc.Close() }()
	log := s.logger().With("remote", remoteString(c), "class", class.Name)
	if !ok {
		s.refused(log, class, RefusedNotHere, "nntp: closing a connection this listener does not take", "implicit_tls", implicitTLS)
		return
	}

	// Refusals are said before any read: the client is not waited for.
	// Under implicit TLS nothing is said (see Classify).
	say := func(line string) {
		if !implicitTLS {
			cn.refuse(line)
		}
	}
	switch err := s.admit(cn); {
	case errors.Is(err, errTooMany):
		s.refused(log, class, RefusedLimit, "nntp: refusing connection: too many connections", "class_max", class.Max, "max_conns", lim.MaxConns)
		say("400 too many connections, try again later") // RFC 3977 §5.1.1
		return
	case errors.Is(err, errTooManyKey):
		s.refused(log, class, RefusedKeyLimit, "nntp: refusing connection: too many connections from this client", "client", class.Key, "max", class.MaxPerKey)
		if isUnix(c) {
			say("400 too many connections from your user, try again later")
		} else {
			say("400 too many connections from your address, try again later")
		}
		return
	case err != nil: // draining
		s.refused(log, class, RefusedDraining, "")
		say("400 server shutting down")
		return
	}
	defer s.release(cn)

	if s.Handler == nil {
		log.Error("nntp: Server has no Handler; refusing connection")
		cn.refuse("400 service not available")
		return
	}
	cn.baseLog = log.With("conn", cn.id)
	cn.log = cn.baseLog
	facts := Session{ID: cn.id, Remote: c.RemoteAddr(), Unix: isUnix(c)}
	if implicitTLS {
		// Implicit TLS: the handshake would otherwise happen on the first
		// write, the greeting, after Authorize; doing it first, under its
		// own deadline, lets Authorize see the client certificate.
		state, err := cn.handshake(ctx, tc)
		if err != nil {
			cn.log.Info("nntp: TLS handshake failed", "err", err)
			s.noteRefusal(class, RefusedHandshake)
			return
		}
		facts.TLS = state
	}
	if !cn.authorize(facts) {
		cn.log.Info("nntp: access denied")
		text := "access denied"
		if s.DeniedText != nil {
			text = s.DeniedText(facts)
		}
		cn.refuse("502 " + text) // RFC 3977 §5.1.1
		return
	}
	if s.OnSessionEnd != nil {
		defer func() { s.OnSessionEnd(cn.sess) }()
	}
	cn.serve(ctx)
}

// Shutdown stops the listeners, closes idle connections, lets busy ones
// finish the command in progress, and waits for all of them to end. If ctx
// expires first, it closes the remaining connections, cancels their
// handlers' contexts and returns ctx's error. Give it a context of its own
// with a timeout, not one that is already cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drain()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.cancel() // closes the connection (see ServeConn)
	}
	s.mu.Unlock()
	return fmt.Errorf("nntp: shutdown: connections were still busy: %w", ctx.Err())
}

var errTooMany = errors.New("too many connections")
var errTooManyKey = errors.New("too many connections from this client")
var errDraining = errors.New("server shutting down")

// classKey is one client of one class, counted against Class.MaxPerKey.
type classKey struct{ class, key string }

// admit counts c in, or says why not.
func (s *Server) admit(c *conn) error {
	cl := c.class
	ck := classKey{cl.Name, cl.Key}
	s.mu.Lock()
	switch {
	case s.draining:
		s.mu.Unlock()
		return errDraining
	case c.lim.MaxConns > 0 && len(s.conns) >= c.lim.MaxConns,
		cl.Max > 0 && s.perClass[cl.Name] >= cl.Max:
		s.mu.Unlock()
		return errTooMany
	case cl.Key != "" && cl.MaxPerKey > 0 && s.perKey[ck] >= cl.MaxPerKey:
		s.mu.Unlock()
		return errTooManyKey
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
		s.perClass = make(map[string]int)
		s.perKey = make(map[classKey]int)
	}
	s.conns[c] = struct{}{}
	s.perClass[cl.Name]++
	if cl.Key != "" {
		s.perKey[ck]++
	}
	s.lastID++
	c.id = s.lastID
	// Add under mu, with draining false: Shutdown's Wait can only start
	// once draining is set, so no Add races with it.
	s.wg.Add(1)
	s.mu.Unlock()
	if s.OnConnChange != nil {
		s.OnConnChange(+1)
	}
	return nil
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.perClass[c.class.Name]--; s.perClass[c.class.Name] <= 0 {
		delete(s.perClass, c.class.Name)
	}
	if c.class.Key != "" {
		ck := classKey{c.class.Name, c.class.Key}
		if s.perKey[ck]--; s.perKey[ck] <= 0 {
			delete(s.perKey, ck) // the map lives as long as its clients
		}
	}
	s.mu.Unlock()
	if s.OnConnChange != nil {
		s.OnConnChange(-1)
	}
	s.wg.Done()
}

// drain stops accepting and interrupts the connections that wait for a
// command; the others notice s.draining when they next go idle.
func (s *Server) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		if c.idle {
			// A deadline in the past wakes the blocked read. c set its
			// own deadline under mu before reading, so this one sticks.
			c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

func (s *Server) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func remoteString(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "local"
}
