package site

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/nntp"
)

// commandPeer is a peer that takes every report and records, in order,
// the streaming commands it was sent for each.
type commandPeer struct {
	mu   sync.Mutex
	cmds []string // "CHECK <id>", "TAKETHIS <id>"
}

func (p *commandPeer) Post(context.Context, *nntp.Session, []byte) nntp.Verdict {
	return nntp.Refused("no posting here")
}

func (p *commandPeer) Check(_ context.Context, _ *nntp.Session, id string) nntp.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds = append(p.cmds, "CHECK "+id)
	return nntp.Accepted()
}

func (p *commandPeer) Receive(_ context.Context, _ *nntp.Session, id string, _ []byte) nntp.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds = append(p.cmds, "TAKETHIS "+id)
	return nntp.Accepted()
}

func (p *commandPeer) commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cmds)
}

// startCommandPeer serves a commandPeer on a loopback port.
func startCommandPeer(t *testing.T, name string) (*commandPeer, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commandPeer{}
	srv := &nntp.Server{Handler: p, Hostname: name,
		Authorize: func(_ net.Conn, ss nntp.Session) (nntp.Session, bool) {
			ss.CanFeed, ss.Peer = true, "a.test"
			return ss, true
		}}
	return p, dsttest.ServeNNTP(t, srv, l)
}

// TestCheckSize: [[peer]] check_size = 0 makes the feed offer every
// report with CHECK before sending it; without it, a report (far smaller
// than feed.DefaultCheckSize) goes with TAKETHIS alone.
func TestCheckSize(t *testing.T) {
	checks, checksAddr := startCommandPeer(t, "checks.test")
	takes, takesAddr := startCommandPeer(t, "takes.test")
	zero := 0
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		documentation(c)
		c.Peers = []config.Peer{
			{Name: "checks.test", Feed: config.MustParseHostPort(checksAddr), CheckSize: &zero},
			{Name: "takes.test", Feed: config.MustParseHostPort(takesAddr)},
		}
	})
	a := start(t, cfg)
	post(t, a.Site, "192.0.2.9")
	sent := func(p *commandPeer) bool {
		cmds := p.commands()
		return len(cmds) > 0 && strings.HasPrefix(cmds[len(cmds)-1], "TAKETHIS ")
	}
	dsttest.WaitFor(t, 20*time.Second, "both peers to be sent the report", func() bool { return sent(checks) && sent(takes) })
	c, k := checks.commands(), takes.commands()
	id := strings.TrimPrefix(k[len(k)-1], "TAKETHIS ")
	if want := []string{"CHECK " + id, "TAKETHIS " + id}; !slices.Equal(c, want) {
		t.Errorf("check_size = 0: the peer was sent %q, want %q", c, want)
	}
	if want := []string{"TAKETHIS " + id}; !slices.Equal(k, want) {
		t.Errorf("no check_size: the peer was sent %q, want %q", k, want)
	}
}

// TestCheckSizeMapping: absent is the feed default, 0 CHECK for all, and
// the configuration's default is the feed's.
func TestCheckSizeMapping(t *testing.T) {
	if config.DefaultCheckSize != feed.DefaultCheckSize {
		t.Errorf("config.DefaultCheckSize %d, feed.DefaultCheckSize %d", config.DefaultCheckSize, feed.DefaultCheckSize)
	}
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		in   *int
		want int
	}{{nil, 0}, {n(0), -1}, {n(1), 1}, {n(50000), 50000}} {
		if got := checkSize(config.Peer{CheckSize: tc.in}); got != tc.want {
			t.Errorf("check_size %v: feed.Peer.CheckSize %d, want %d", tc.in, got, tc.want)
		}
	}
}
