package site

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/nntp"
)

// incoming keeps what dstctl peers shows of the peers feeding this site:
// their sessions open now, and what became of what they sent, since dstd
// started. The NNTP server tells it of sessions (Authorize, OnSessionEnd)
// and the counting handler of verdicts.
type incoming struct {
	mu    sync.Mutex
	conns map[uint64]*inConn // by session id
	peers map[string]*inPeer
}

type inConn struct {
	peer, addr string
	tls        feed.TLSInfo
	since      time.Time
}

type inPeer struct {
	accepted, refused int64
	refusals          map[string]*feed.Refusal
	lastSeen          time.Time
	lastAddr          string
	lastTLS           feed.TLSInfo
}

func newIncoming() *incoming {
	return &incoming{conns: make(map[uint64]*inConn), peers: make(map[string]*inPeer)}
}

// peer returns the record of name; in.mu held.
func (in *incoming) peer(name string) *inPeer {
	p := in.peers[name]
	if p == nil {
		p = &inPeer{refusals: make(map[string]*feed.Refusal)}
		in.peers[name] = p
	}
	return p
}

// authorized notes a session Authorize granted: a peer's feed is
// connected (again after STARTTLS, with its TLS state now).
func (in *incoming) authorized(s nntp.Session) {
	if !s.CanFeed || s.Peer == "" {
		return
	}
	addr := "unix"
	if s.Remote != nil {
		addr = s.Remote.String()
	}
	ti := feed.DescribeTLS(s.TLS, addr)
	if s.Unix {
		ti = feed.DescribeTLS(s.TLS, "unix:")
	}
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.conns[s.ID]
	if c == nil {
		c = &inConn{since: now}
		in.conns[s.ID] = c
	}
	c.peer, c.addr, c.tls = s.Peer, addr, ti
	p := in.peer(s.Peer)
	p.lastSeen, p.lastAddr, p.lastTLS = now, addr, ti
}

// ended notes the end of a session.
func (in *incoming) ended(s nntp.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.conns[s.ID]
	if c == nil {
		return
	}
	delete(in.conns, s.ID)
	in.peer(c.peer).lastSeen = time.Now()
}

// verdict counts what this site answered a peer: an article taken
// (received), or an offer or article refused. code is the refusal's
// (438 for an offer, 439 for an article).
func (in *incoming) verdict(s *nntp.Session, v nntp.Verdict, received bool) {
	if s == nil || s.Peer == "" || !s.CanFeed {
		return
	}
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.peer(s.Peer)
	p.lastSeen = now
	switch {
	case v.Kind == nntp.Accept && received:
		p.accepted++
	case v.Kind == nntp.Refuse:
		code := 438
		if received {
			code = 439
		}
		reason := feed.RefusalReason(code, v.Reason)
		p.refused++
		r := p.refusals[reason]
		if r == nil {
			r = &feed.Refusal{Reason: reason}
			p.refusals[reason] = r
		}
		r.Count++
		r.LastCode, r.LastText, r.LastTime = code, v.Reason, now
	}
}

// status is what peer fed this site.
func (in *incoming) status(peer string) *admin.IncomingStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := &admin.IncomingStatus{Connections: []admin.IncomingConn{}}
	for _, c := range in.conns {
		if c.peer == peer {
			st.Connections = append(st.Connections, admin.IncomingConn{Addr: c.addr, TLS: tlsState(c.tls), Since: c.since})
		}
	}
	slices.SortFunc(st.Connections, func(a, b admin.IncomingConn) int { return a.Since.Compare(b.Since) })
	p := in.peers[peer]
	if p == nil {
		return st
	}
	st.Accepted, st.Refused, st.LastSeen, st.LastAddr = p.accepted, p.refused, p.lastSeen, p.lastAddr
	if p.lastTLS.State != "" {
		t := tlsState(p.lastTLS)
		st.LastTLS = &t
	}
	var rs []feed.Refusal
	for _, r := range p.refusals {
		rs = append(rs, *r)
	}
	st.Refusals = refusalCounts(rs)
	return st
}

// countingHandler is the NNTP handler with the verdicts counted per peer.
type countingHandler struct {
	nntp.Handler
	in *incoming
	// offered records what each peer offered, for the feeds (PeerHas);
	// peers tells which connections come from one peer only.
	offered *feed.Offered
	peers   []peerAuth
}

// noteOffer records that the session's peer offered msgID, when the
// session can only be that peer: peers that share an address (all on one
// host) cannot be told apart by it, and a wrong guess would keep a report
// from a peer that does not have it.
func (h countingHandler) noteOffer(s *nntp.Session, msgID string) {
	if h.offered == nil || !s.CanFeed || s.Peer == "" {
		return
	}
	ip, ok := remoteIP(*s)
	if !ok || len(peersAt(h.peers, ip)) != 1 {
		return
	}
	h.offered.Add(s.Peer, msgID)
}

func (h countingHandler) Check(ctx context.Context, s *nntp.Session, msgID string) nntp.Verdict {
	h.noteOffer(s, msgID)
	v := h.Handler.Check(ctx, s, msgID)
	h.in.verdict(s, v, false)
	return v
}

func (h countingHandler) Receive(ctx context.Context, s *nntp.Session, msgID string, article []byte) nntp.Verdict {
	h.noteOffer(s, msgID)
	v := h.Handler.Receive(ctx, s, msgID, article)
	h.in.verdict(s, v, true)
	return v
}

func tlsState(t feed.TLSInfo) admin.TLSState {
	return admin.TLSState{State: t.State, Version: t.Version, Cipher: t.Cipher, CertSHA256: t.CertSHA256, CertSubject: t.CertSubject}
}

// refusalCounts is rs for the API, most frequent first.
func refusalCounts(rs []feed.Refusal) []admin.RefusalCount {
	slices.SortFunc(rs, func(a, b feed.Refusal) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []admin.RefusalCount
	for _, r := range rs {
		out = append(out, admin.RefusalCount{Reason: r.Reason, Count: r.Count, LastCode: r.LastCode, LastText: r.LastText, LastTime: r.LastTime})
	}
	return out
}
