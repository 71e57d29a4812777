package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxErrorBody bounds how much of an error answer the client reads.
const maxErrorBody = 64 << 10

// maxListingLine bounds one line of /v1/listings; a listing with 32
// origins is well under 4 KiB.
const maxListingLine = 1 << 20

// Client talks to a dstd admin endpoint. Its methods are safe for
// concurrent use.
type Client struct {
	addr  string
	from  string // where addr came from, for errors; "" when the user gave it
	base  string // URL prefix, "http://host:port" or "http://dstd" for a socket
	token string // sent as a bearer token when not empty
	hc    *http.Client
}

// ClientOption changes how a Client talks to dstd.
type ClientOption func(*Client)

// WithToken makes the client send token (admin.token_file's) with every
// request, as the TCP listener wants when dstd has one.
func WithToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// WithAddrSource says where the address came from ("admin.socket of
// /etc/dst/dstd.toml"), so that an error reaching it names the source to
// fix as well as the address.
func WithAddrSource(from string) ClientOption {
	return func(c *Client) { c.from = from }
}

// IsSocket reports whether NewClient takes addr for a Unix socket path
// rather than a TCP address.
func IsSocket(addr string) bool {
	return !strings.HasPrefix(addr, "http://") && strings.Contains(addr, "/")
}

// NewClient returns a client for addr: host:port or http://host:port for
// TCP, else (anything with a '/') a Unix socket path.
func NewClient(addr string, opts ...ClientOption) *Client {
	c := &Client{addr: addr}
	for _, o := range opts {
		o(c)
	}
	tr := &http.Transport{MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	if hp, ok := strings.CutPrefix(addr, "http://"); ok {
		tr.Proxy = nil // never send admin requests through an HTTP proxy
		c.base = "http://" + strings.TrimSuffix(hp, "/")
	} else if IsSocket(addr) {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", addr)
		}
		// The host part is only a placeholder: every request goes to
		// the socket.
		c.base = "http://dstd"
	} else {
		tr.Proxy = nil // never send admin requests through an HTTP proxy
		c.base = "http://" + addr
	}
	c.hc = &http.Client{Transport: tr}
	return c
}

// Addr returns the address the client was made with.
func (c *Client) Addr() string { return c.addr }

// UnreachableError means the client could not talk to dstd at all
// (nothing listening, no permission, connection cut), as opposed to dstd
// answering with an error.
type UnreachableError struct {
	Addr string
	From string // where Addr came from (WithAddrSource), or ""
	Err  error
}

func (e *UnreachableError) Error() string {
	reason := e.Err.Error()
	hint := "is dstd running?"
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		reason = errno.Error()
		if errno == syscall.EACCES || errno == syscall.EPERM {
			hint = "run dstctl as root, as dstd's user, or as a member of admin.group (docs/ADMIN.md 1.3)"
		}
	}
	addr := e.Addr
	if e.From != "" {
		addr += " (" + e.From + ")"
	}
	return fmt.Sprintf("cannot reach dstd at %s: %s — %s", addr, reason, hint)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is an error answer from dstd.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return "dstd: " + e.Message }

// do sends a request and returns the response when its status is want;
// any other status becomes an *APIError.
// A POST sends in as its JSON body.
func (c *Client) do(ctx context.Context, method, path string, in any, want int) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("admin request %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("request to dstd at %s: %w", c.addr, ctx.Err())
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the placeholder URL, which means nothing to the user
		}
		return nil, &UnreachableError{Addr: c.addr, From: c.from, Err: err}
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil, &APIError{StatusCode: resp.StatusCode, Message: eb.Error}
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading dstd's answer to %s: %w", path, err)
	}
	return nil
}

// Health checks that dstd answers.
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, "/healthz", nil, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Status returns dstd's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.getJSON(ctx, "/v1/status", &s)
	return s, err
}

// Lookup returns the listing of ip and whether there is one.
func (c *Client) Lookup(ctx context.Context, ip netip.Addr) (Listing, bool, error) {
	var l Listing
	err := c.getJSON(ctx, "/v1/lookup?ip="+url.QueryEscape(ip.String()), &l)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		return Listing{}, false, nil
	}
	if err != nil {
		return Listing{}, false, err
	}
	return l, true, nil
}

// List calls fn for each listing as it arrives, and stops at fn's first
// error, which it returns.
func (c *Client) List(ctx context.Context, fn func(Listing) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/listings", nil, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxListingLine)
	for sc.Scan() {
		// A line is a listing, or the error that cut the stream.
		var line struct {
			Listing
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("reading listings from dstd: %w", err)
		}
		if line.Error != "" {
			return &APIError{StatusCode: http.StatusInternalServerError, Message: "listing cut short: " + line.Error}
		}
		if err := fn(line.Listing); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading listings from dstd: %w", err)
	}
	return nil
}

// Delist removes the listing of ip; allow also puts ip on the allow list.
func (c *Client) Delist(ctx context.Context, ip netip.Addr, allow bool) (DelistResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/delist", DelistRequest{IP: ip.String(), Allow: allow}, http.StatusOK)
	if err != nil {
		return DelistResult{}, err
	}
	defer resp.Body.Close()
	var r DelistResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return DelistResult{}, fmt.Errorf("reading dstd's answer to delist: %w", err)
	}
	return r, nil
}

// Cancel makes dstd cancel a report this site originated.
func (c *Client) Cancel(ctx context.Context, messageID string) (CancelResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/cancel", CancelRequest{ID: messageID}, http.StatusOK)
	if err != nil {
		return CancelResult{}, err
	}
	defer resp.Body.Close()
	var r CancelResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return CancelResult{}, fmt.Errorf("reading dstd's answer to cancel: %w", err)
	}
	return r, nil
}

// Resync makes dstd repair the DNS UPDATE server's zone, and waits for it.
func (c *Client) Resync(ctx context.Context) (ResyncResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/resync", struct{}{}, http.StatusOK)
	if err != nil {
		return ResyncResult{}, err
	}
	defer resp.Body.Close()
	var r ResyncResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return ResyncResult{}, fmt.Errorf("reading dstd's answer to resync: %w", err)
	}
	return r, nil
}

// Queues returns the action queues.
func (c *Client) Queues(ctx context.Context) ([]QueueStatus, error) {
	var qs []QueueStatus
	err := c.getJSON(ctx, "/v1/queues", &qs)
	return qs, err
}

// Peers returns the outgoing feeds.
func (c *Client) Peers(ctx context.Context) ([]PeerStatus, error) {
	var ps []PeerStatus
	err := c.getJSON(ctx, "/v1/peers", &ps)
	return ps, err
}

// Keys returns the DKIM keys dstd verifies reports with.
func (c *Client) Keys(ctx context.Context) ([]KeyStatus, error) {
	var ks []KeyStatus
	err := c.getJSON(ctx, "/v1/keys", &ks)
	return ks, err
}

// Close releases idle connections.
func (c *Client) Close() {
	c.hc.CloseIdleConnections()
}
