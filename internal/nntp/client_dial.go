package nntp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// The TLS modes of DialOptions.TLS.
const (
	TLSNone     = ""         // plain TCP (or a Unix socket)
	TLSStartTLS = "starttls" // plain TCP upgraded with STARTTLS (RFC 4642)
	TLSImplicit = "implicit" // TLS from the first byte, as on port 563 (nntps)
)

// DialOptions tune DialWith. The zero value is Dial without a timeout.
type DialOptions struct {
	// Timeout bounds connecting, the TLS handshake and each exchange of
	// the session setup, and is the default limit of each later command
	// whose context has no earlier deadline. Zero: only the context's.
	Timeout time.Duration
	// LocalAddr is the source address of a TCP connection, an IP address
	// with or without a port ("192.0.2.1", "[2001:db8::1]:0"): for a host
	// with several addresses whose peer only lets one of them in.
	LocalAddr string
	// TLS is TLSNone, TLSStartTLS or TLSImplicit.
	TLS string
	// TLSConfig verifies the server and may carry a client certificate.
	// nil: the system roots and the host part of the address as the
	// server name. An empty ServerName is likewise filled in from the
	// address. The config is cloned, never changed.
	TLSConfig *tls.Config
	// Username and Password authenticate with AUTHINFO USER/PASS
	// (RFC 4643 §2.3) once TLS is up. Empty Username: no AUTHINFO.
	Username, Password string
	// AllowPlaintextAuth lets the password go over a connection without
	// TLS. RFC 4643 (§2.3, §5) warns against it; it is for a peer on a link
	// that is private anyway (a Unix socket, a VPN).
	AllowPlaintextAuth bool
}

// DialWith connects to the NNTP server at addr (as for Dial), reads the
// greeting, sets up TLS as o.TLS says and authenticates if o.Username is
// set. Any failure closes the connection; a refusal by the server gives an
// error wrapping *Error.
func DialWith(ctx context.Context, addr string, o DialOptions) (*Client, error) {
	network, address := splitAddr(addr)
	if err := o.check(addr, network); err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: o.Timeout}
	if o.LocalAddr != "" {
		la, err := localTCPAddr(o.LocalAddr)
		if err != nil {
			return nil, fmt.Errorf("nntp: source address for %s: %w", addr, err)
		}
		d.LocalAddr = la
	}

	var conn net.Conn
	var err error
	if o.TLS == TLSImplicit {
		td := &tls.Dialer{NetDialer: d, Config: o.tlsConfig(address)}
		conn, err = td.DialContext(ctx, network, address)
	} else {
		conn, err = d.DialContext(ctx, network, address)
	}
	if err != nil {
		return nil, fmt.Errorf("nntp: connecting to %s: %w", addr, err)
	}
	c := newClient(conn, addr, o.Timeout)
	c.tls = o.TLS == TLSImplicit
	if err := c.setUp(ctx, o, address); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// check refuses option combinations that cannot work, before connecting.
func (o DialOptions) check(addr, network string) error {
	switch o.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("nntp: unknown TLS mode %q for %s (want %q, %q or none)", o.TLS, addr, TLSStartTLS, TLSImplicit)
	}
	if o.LocalAddr != "" && network != "tcp" {
		return fmt.Errorf("nntp: a source address applies to TCP only, not to the Unix socket %s", addr)
	}
	if o.Password != "" && o.Username == "" {
		return fmt.Errorf("nntp: a password for %s without a user name", addr)
	}
	// RFC 4643 §5: the password travels in clear within AUTHINFO PASS,
	// so sending it without TLS gives it to anyone on the path.
	if o.Password != "" && o.TLS == TLSNone && !o.AllowPlaintextAuth {
		return fmt.Errorf("nntp: refusing to send the AUTHINFO password for %q to %s over a connection without TLS; use STARTTLS or implicit TLS, or allow plaintext authentication explicitly", o.Username, addr)
	}
	if strings.ContainsAny(o.Username+o.Password, "\r\n\x00") {
		return fmt.Errorf("nntp: the user name or password for %s contains a line break or NUL", addr)
	}
	return nil
}

// tlsConfig is o.TLSConfig with a server name, for a connection to address.
func (o DialOptions) tlsConfig(address string) *tls.Config {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		cfg.ServerName = host
	}
	return cfg
}

// localTCPAddr parses a source address with or without a port.
func localTCPAddr(s string) (*net.TCPAddr, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(strings.Trim(s, "[]"), "0")
	}
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil, err
	}
	if a.IP == nil {
		return nil, fmt.Errorf("%q is not an IP address", s)
	}
	return a, nil
}

// setUp runs the session setup after connecting: greeting, STARTTLS,
// AUTHINFO.
func (c *Client) setUp(ctx context.Context, o DialOptions, address string) error {
	if err := c.greet(ctx); err != nil {
		return err
	}
	if o.TLS == TLSStartTLS {
		if err := c.startTLS(ctx, o.tlsConfig(address)); err != nil {
			return err
		}
	}
	if o.Username != "" {
		if err := c.authinfo(ctx, o.Username, o.Password); err != nil {
			return err
		}
	}
	return nil
}

// startTLS upgrades the session (RFC 4642 §2.2).
func (c *Client) startTLS(ctx context.Context, cfg *tls.Config) error {
	caps, err := c.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("nntp: asking %s whether it offers STARTTLS: %w", c.addr, err)
	}
	// RFC 4642 §2: a server that can do STARTTLS lists it in
	// CAPABILITIES. Going on without TLS would leak what the operator
	// wanted protected, so a server that does not list it is an error,
	// never a fallback.
	if !hasCapability(caps, "STARTTLS") {
		return fmt.Errorf("nntp: %s does not offer STARTTLS (RFC 4642) in its CAPABILITIES; check the peer's TLS setting (implicit TLS, or none)", c.addr)
	}
	end := c.begin(ctx)
	code, text, err := c.command("STARTTLS")
	if err = end(err); err != nil {
		return c.fail("STARTTLS", err)
	}
	if code != 382 { // RFC 4642 §2.1: 382 continue with TLS; 580 TLS not possible; 502
		return fmt.Errorf("nntp: %s refused STARTTLS: %w", c.addr, &Error{Code: code, Text: text})
	}
	// Anything the server sent after 382 and before the handshake would be
	// read as if it had come over TLS: refuse it, as a man in the middle
	// could inject commands' answers that way (the STARTTLS injection of
	// CVE-2011-0411 in SMTP).
	if c.br.Buffered() > 0 {
		return fmt.Errorf("nntp: %s sent data after its 382 answer to STARTTLS, before the TLS handshake; refusing it", c.addr)
	}
	tc := tls.Client(c.conn, cfg)
	end = c.begin(ctx)
	err = end(tc.HandshakeContext(ctx))
	if err != nil {
		return fmt.Errorf("nntp: TLS handshake with %s after STARTTLS: %w", c.addr, err)
	}
	c.conn = tc
	c.br = bufio.NewReaderSize(tc, maxResponseLine)
	c.w = textproto.NewWriter(bufio.NewWriterSize(tc, clientWriteBuffer))
	c.tls = true
	// RFC 4642 §2.2.2: what the server said before TLS may have been
	// forged, so capabilities are asked for again. We keep none, but the
	// exchange also proves the encrypted session works before a password
	// goes over it.
	if _, err := c.Capabilities(ctx); err != nil {
		return fmt.Errorf("nntp: asking %s for its capabilities after STARTTLS: %w", c.addr, err)
	}
	return nil
}

// authinfo authenticates with AUTHINFO USER and PASS (RFC 4643 §2.3).
func (c *Client) authinfo(ctx context.Context, user, pass string) error {
	end := c.begin(ctx)
	code, text, err := c.command("AUTHINFO USER " + user)
	if err = end(err); err != nil {
		return c.fail("AUTHINFO USER", err)
	}
	switch code {
	case 281: // RFC 4643 §2.3.1: accepted without a password
		return nil
	case 381: // password required
	default: // 481 rejected, 482 out of sequence, 502 not permitted, 483 needs TLS
		return fmt.Errorf("nntp: %s refused AUTHINFO USER %q: %w", c.addr, user, &Error{Code: code, Text: text})
	}
	if pass == "" {
		return fmt.Errorf("nntp: %s wants a password for AUTHINFO user %q and none is configured", c.addr, user)
	}
	end = c.begin(ctx)
	code, text, err = c.command("AUTHINFO PASS " + pass)
	if err = end(err); err != nil {
		return c.fail("AUTHINFO PASS", err)
	}
	if code != 281 { // 481 authentication failed
		return fmt.Errorf("nntp: %s refused the password of AUTHINFO user %q: %w", c.addr, user, &Error{Code: code, Text: text})
	}
	return nil
}

// command sends one command line and reads the response line. The caller
// has called begin.
func (c *Client) command(line string) (code int, text string, err error) {
	if _, err := c.w.W.WriteString(line + "\r\n"); err != nil {
		return 0, "", err
	}
	if err := c.w.W.Flush(); err != nil {
		return 0, "", err
	}
	return c.readResponse()
}

// maxCapabilities bounds the lines of a CAPABILITIES answer kept, so a
// broken server cannot grow the list without end.
const maxCapabilities = 256

// Capabilities asks for the server's capability list (RFC 3977 §5.2) and
// returns its lines, such as "VERSION 2", "STREAMING", "IHAVE",
// "STARTTLS". A server that does not know CAPABILITIES (an answer other
// than 101) gives an error wrapping *Error.
func (c *Client) Capabilities(ctx context.Context) (caps []string, err error) {
	if err := c.usableForCommand(); err != nil {
		return nil, fmt.Errorf("nntp: CAPABILITIES to %s: %w", c.addr, err)
	}
	end := c.begin(ctx)
	defer func() { err = end(err) }()
	code, text, err := c.command("CAPABILITIES")
	if err != nil {
		return nil, c.fail("CAPABILITIES", err)
	}
	if code != 101 {
		return nil, fmt.Errorf("nntp: CAPABILITIES to %s: %w", c.addr, &Error{Code: code, Text: text})
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, c.fail("reading the capability list", err)
		}
		if line == "." { // RFC 3977 §3.1.1: end of a multi-line block
			return caps, nil
		}
		line = strings.TrimPrefix(line, ".") // undo dot-stuffing
		if len(caps) < maxCapabilities {
			caps = append(caps, line)
		}
	}
}

// hasCapability reports whether the capability label (the first word of a
// line, case-insensitive: RFC 3977 §3.3.1) is in caps.
func hasCapability(caps []string, label string) bool {
	for _, line := range caps {
		if first, _, _ := strings.Cut(line, " "); strings.EqualFold(first, label) {
			return true
		}
	}
	return false
}

// readLine reads one line of a multi-line block, without its line end.
func (c *Client) readLine() (string, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("line longer than %d bytes", maxResponseLine)
	case err == io.EOF && len(line) == 0:
		return "", errors.New("server closed the connection")
	case err == io.EOF:
		return "", fmt.Errorf("server closed the connection in the middle of the line %q", line)
	case err != nil:
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
}

// TLS reports whether the session is encrypted.
func (c *Client) TLS() bool { return c.tls }

// ConnectionState returns the TLS state of the session (version, cipher
// suite, the server's certificates), and false when it is not encrypted.
func (c *Client) ConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok && c.tls {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Date asks for the server's time (RFC 3977 §7.1): a command that
// changes nothing, to see that a session works.
func (c *Client) Date(ctx context.Context) (t time.Time, err error) {
	if err := c.usableForCommand(); err != nil {
		return time.Time{}, fmt.Errorf("nntp: DATE to %s: %w", c.addr, err)
	}
	end := c.begin(ctx)
	defer func() { err = end(err) }()
	code, text, err := c.command("DATE")
	if err != nil {
		return time.Time{}, c.fail("DATE", err)
	}
	if code != 111 {
		return time.Time{}, fmt.Errorf("nntp: DATE to %s: %w", c.addr, &Error{Code: code, Text: text})
	}
	t, err = time.Parse("20060102150405", strings.TrimSpace(text))
	if err != nil {
		return time.Time{}, fmt.Errorf("nntp: DATE to %s: unreadable answer %q", c.addr, text)
	}
	return t, nil
}
