package nntp

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// This file is admission: which pool a connection counts against, decided
// when it arrives, before a byte is read from it or a TLS handshake begins.
// One shared pool let whoever held its slots (idle connections kept alive
// with a DATE now and then, or TLS handshakes left hanging) lock everyone
// else out: local submission and the peers alike. With a pool per class,
// and a limit per client within it, a flood takes only its own share.

// Class is the pool a connection is counted in; see Server.Classify.
type Class struct {
	// Name names the pool: connections with the same Name are counted
	// together. It appears in the log and in Server.OnRefuse.
	Name string
	// Max is the most connections of this Name at once; 0: no limit.
	Max int
	// Key is the client within the pool that has a limit of its own: an
	// address, a user, a peer. "": none.
	Key string
	// MaxPerKey is the most connections of one Key (within Name) at
	// once; 0: no limit.
	MaxPerKey int
}

// Reasons a connection is turned away before it is served, as given to
// Server.OnRefuse.
const (
	RefusedLimit     = "limit"        // its class is full (Class.Max)
	RefusedKeyLimit  = "client-limit" // its client has its share (Class.MaxPerKey)
	RefusedNotHere   = "not-allowed"  // Classify said no: closed without a byte
	RefusedHandshake = "tls-handshake"
	RefusedDraining  = "draining"
)

// The classes of Pools.
const (
	ClassLocal = "local" // the Unix socket: dstc on this host
	ClassPeer  = "peer"  // from a configured peer's address
	ClassOther = "other" // everyone else: post_allow clients, strangers
)

// Pools is a Server.Classify with three classes, decided from the
// connection alone:
//
//   - local: the Unix socket, at most MaxLocal at once and
//     MaxLocalPerUser per local user (the socket's peer credentials), so
//     that one local user cannot take every slot from the MTA's dstc;
//   - peer: from an address of a configured peer, MaxPeer per peer (the
//     peers that share an address share their allowances);
//   - other: everyone else, MaxOther together and MaxOtherPerAddr per
//     client address (per /64 for IPv6: one host usually has a whole
//     /64 to pick from).
//
// On an implicit-TLS listener only peers are admitted: nothing else has a
// reason to use it (dstc speaks plain NNTP), and refusing before the
// handshake costs nothing. A zero limit means no limit.
type Pools struct {
	MaxLocal, MaxLocalPerUser int
	MaxPeer                   int
	MaxOther, MaxOtherPerAddr int
	// Peers returns the names of the configured peers whose addresses
	// contain a (unmapped); none: not a peer.
	Peers func(a netip.Addr) []string
}

// Classify implements Server.Classify.
func (p *Pools) Classify(c net.Conn, implicitTLS bool) (Class, bool) {
	if isUnix(c) {
		key := ""
		if uid, ok := peerUID(c); ok {
			key = "uid " + strconv.FormatUint(uint64(uid), 10)
		}
		return Class{Name: ClassLocal, Max: p.MaxLocal, Key: key, MaxPerKey: p.MaxLocalPerUser}, !implicitTLS
	}
	a, ok := remoteIP(c)
	if ok && p.Peers != nil {
		if names := p.Peers(a); len(names) > 0 {
			return Class{Name: ClassPeer, Key: strings.Join(names, " "), MaxPerKey: p.MaxPeer * len(names)}, true
		}
	}
	key := "unknown" // all clients of no known address share one allowance
	if ok {
		key = addrKey(a)
	}
	return Class{Name: ClassOther, Max: p.MaxOther, Key: key, MaxPerKey: p.MaxOtherPerAddr}, !implicitTLS
}

// remoteIP is the client's IP address, unmapped (an IPv4 client on a
// dual-stack socket counts as the IPv4 address it is).
func remoteIP(c net.Conn) (netip.Addr, bool) {
	ra := c.RemoteAddr()
	if ta, ok := ra.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().WithZone(""), true
	}
	if ra == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(ra.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// addrKey is what a client address counts as: itself for IPv4, its /64 for
// IPv6.
func addrKey(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// refusalLogEvery is how often refusals of one class for one reason are
// logged as warnings. A flood is refused by the thousand; a line each
// would flood the log too. The ones in between go to the debug level and
// are counted in the next warning; OnRefuse sees every one.
const refusalLogEvery = 10 * time.Second

type refusalLog struct {
	last       time.Time
	suppressed int
}

// refused counts a connection turned away and logs msg (if not empty) with
// attrs, as a warning at most once per refusalLogEvery for its class and
// reason.
func (s *Server) refused(log *slog.Logger, class Class, reason, msg string, attrs ...any) {
	s.noteRefusal(class, reason)
	if msg == "" {
		return
	}
	k := class.Name + " " + reason
	now := time.Now()
	s.mu.Lock()
	if s.refusals == nil {
		s.refusals = make(map[string]*refusalLog)
	}
	r := s.refusals[k]
	if r == nil {
		r = &refusalLog{}
		s.refusals[k] = r
	}
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		r.suppressed++
		s.mu.Unlock()
		log.Debug(msg, attrs...)
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	s.mu.Unlock()
	if n > 0 {
		attrs = append(attrs, "more_since_last_warning", n)
	}
	log.Warn(msg, attrs...)
}

func (s *Server) noteRefusal(class Class, reason string) {
	if s.OnRefuse != nil {
		s.OnRefuse(class, reason)
	}
}
