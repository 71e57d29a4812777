package admin

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
)

// The endpoint must not be a target for a web page the administrator
// happens to open: a browser can send a form or a fetch() to any address,
// 127.0.0.1 included, and the API changes listings. Three rules keep it
// out of a browser's reach, and each alone would suffice for POST:
//
//   - A request that carries Origin is refused (403): browsers add it to
//     every cross-site request and to every POST, and dstctl, curl and
//     Prometheus never send it.
//   - A request that may change something (any method but GET and HEAD)
//     must be Content-Type: application/json (415 otherwise). A page can
//     send that type cross-site only after a CORS preflight, which this
//     endpoint never grants; forms can send only form and text types.
//   - On TCP, with a token configured, every request needs it (401).
//     Without a token, the Host header must be an address or localhost:
//     a page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
//     talks to the endpoint as its own origin, and only its Host gives
//     it away.
//
// /healthz and /metrics stay open to all (a Prometheus scraper has neither
// token nor JSON): they change nothing, and a page cannot read their
// answers across origins.

// MinTokenLength is the shortest admin token accepted: a shorter one can
// be guessed over the network.
const MinTokenLength = 16

// openPath reports whether path is answered without the checks above.
func openPath(path string) bool {
	return path == "/healthz" || path == "/metrics"
}

// refuseOrigin answers 403 to any request for a guarded path that carries
// an Origin header.
func refuseOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !openPath(r.URL.Path) {
			if o := r.Header.Values("Origin"); len(o) > 0 {
				writeError(w, http.StatusForbidden, fmt.Sprintf(
					"refused: the request comes from a web page (Origin %q); use dstctl or curl, which send no Origin header", o[0]))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// jsonBody answers 415 and returns false unless r says its body is JSON.
func jsonBody(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return true
	}
	if ct == "" {
		ct = "none"
	}
	writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf(
		"%s %s needs Content-Type: application/json and a JSON body, not %s", r.Method, r.URL.Path, ct))
	return false
}

// ForTCP guards h for a TCP listener. With a token (admin.token_file),
// every request but /healthz and /metrics must carry
// "Authorization: Bearer TOKEN". Without one (the listener is then on
// loopback, which the configuration checks), the Host header must be an
// IP address or localhost. The Unix socket needs neither: its file mode
// decides who may connect, and no browser can reach it.
//
// A browser cannot send a bearer token, so the status page (GET / only)
// also takes the token as the password of HTTP basic authentication, any
// user name: the browser asks for it once and sends it again by itself.
// Because it sends it again to this address whatever page makes the
// request, that password opens the page and nothing else: every other
// route, and every method but GET and HEAD, still wants the bearer
// token, so a page elsewhere cannot use the browser's remembered
// password to change a listing (nor to read anything: the page is
// refused to frames, and its answer cannot be read across origins).
func ForTCP(h http.Handler, token string) http.Handler {
	// Comparing digests keeps the time of the comparison independent of
	// the token's length as well as of its bytes.
	want := sha256.Sum256([]byte("Bearer " + token))
	wantPass := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		page := r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
		if token != "" {
			got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
			ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1
			if _, pass, basic := r.BasicAuth(); page && basic {
				gotPass := sha256.Sum256([]byte(pass))
				ok = subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) == 1
			}
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="dstd admin"`)
				if page {
					// The browser asks for a password: the token.
					w.Header().Add("WWW-Authenticate", `Basic realm="dstd admin: any user name, the admin token as password", charset="UTF-8"`)
				}
				msg := "missing admin token: give dstctl -token-file with the file of admin.token_file, or send Authorization: Bearer TOKEN"
				if r.Header.Get("Authorization") != "" {
					msg = "wrong admin token: use the token in dstd's admin.token_file"
				}
				if page {
					msg = "the status page needs the admin token: give it as the password your browser asks for (any user name), from dstd's admin.token_file"
				}
				writeError(w, http.StatusUnauthorized, msg)
				return
			}
		} else if !literalHost(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf(
				"refused: Host %q is a name, not an address of this host; connect to the address of admin.listen, e.g. 127.0.0.1:PORT", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// literalHost reports whether a Host header names an IP address or
// localhost, which no web site can make its own.
func literalHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// ReadTokenFile reads an admin token: the file's first line, one word of
// at least MinTokenLength printable ASCII characters. Like a private key,
// a token file that others can read, or that anyone but its owner can
// change, is refused; its group may read it (a group of operators).
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the admin token: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading the admin token: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("admin token file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits to check.
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o027 != 0 {
		return "", fmt.Errorf("admin token file %s has mode %04o, so others can read it or its group can change it; run: chmod 600 %s", path, perm, path)
	}
	line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the admin token %s: %w", path, err)
	}
	tok := strings.TrimSpace(line)
	hint := fmt.Sprintf("make one with: (umask 077; openssl rand -hex 32 > %s)", path)
	if strings.IndexFunc(tok, func(c rune) bool { return c < '!' || c > '~' }) >= 0 {
		return "", fmt.Errorf("admin token file %s: the token must be one word of printable ASCII on the first line; %s", path, hint)
	}
	if len(tok) < MinTokenLength {
		return "", fmt.Errorf("admin token file %s: the token is shorter than %d characters; %s", path, MinTokenLength, hint)
	}
	return tok, nil
}
