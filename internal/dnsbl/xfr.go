package dnsbl

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// envelopeBytes bounds one transfer message well below the 64 KiB TCP
// message limit (RFC 1035 §4.2.2) so we never build one giant message.
const envelopeBytes = 32 * 1024

// transfer answers AXFR (RFC 5936) and IXFR (RFC 1995) for the apex.
func (s *Server) transfer(w dns.ResponseWriter, r, m *dns.Msg, lname string) {
	q := r.Question[0]
	if lname != s.zone || !s.transferAllowed(w, r) {
		m.Rcode = dns.RcodeRefused
		s.reply(w, r, m)
		return
	}
	if q.Qtype == dns.TypeAXFR && isUDP(w) {
		// RFC 5936 §4.2: AXFR over UDP is not defined.
		m.Rcode = dns.RcodeRefused
		s.reply(w, r, m)
		return
	}
	if q.Qtype == dns.TypeIXFR {
		var from *dns.SOA
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				from = soa
			}
		}
		if from == nil {
			m.Rcode = dns.RcodeFormatError // RFC 1995 §3: SOA in authority required
			s.reply(w, r, m)
			return
		}
		cur, cs, ok := s.x.changesSince(from.Serial)
		if isUDP(w) || (ok && len(cs) == 0) {
			// RFC 1995 §2/§4: over UDP (where a difference "does not fit")
			// and when the client is up to date, the answer is the SOA alone
			// and the client retries over TCP.
			m.Authoritative = true
			m.Answer = []dns.RR{s.soa(q.Name, cur, s.soaTTL)}
			s.reply(w, r, m)
			return
		}
		if ok {
			s.ixfr(w, r, q.Name, cur, from.Serial, cs)
			return
		}
		// Journal does not reach back: full zone in IXFR form, RFC 1995 §4.
	}
	s.axfr(w, r, q.Name)
}

// transferAllowed: with a transfer key, the request must be signed with
// it (the server has checked the MAC: TsigStatus) and come from
// AllowTransfer when that is set; without one, AllowTransfer alone decides.
func (s *Server) transferAllowed(w dns.ResponseWriter, r *dns.Msg) bool {
	if s.tsigName == "" {
		return s.allowed(w.RemoteAddr())
	}
	t := r.IsTsig()
	if t == nil || w.TsigStatus() != nil || dns.CanonicalName(t.Hdr.Name) != s.tsigName {
		s.log.Info("dnsbl: transfer refused: not signed with the transfer key", "remote", w.RemoteAddr(), "signed", t != nil)
		return false
	}
	return len(s.c.AllowTransfer) == 0 || s.allowed(w.RemoteAddr())
}

// tsigSecret is the dns.Server's key table: it checks the MAC of signed
// requests and signs the replies we mark (signReply, Transfer.Out).
func (s *Server) tsigSecret() map[string]string {
	if s.tsigName == "" {
		return nil
	}
	return map[string]string{s.tsigName: s.c.TransferKey.Secret}
}

// signReply signs a single-message reply to a request signed with our key
// (RFC 8945 §5.3): a refused transfer, or an IXFR answered with the SOA.
func (s *Server) signReply(w dns.ResponseWriter, r, m *dns.Msg) {
	if t := r.IsTsig(); t != nil && s.tsigName != "" && dns.CanonicalName(t.Hdr.Name) == s.tsigName && w.TsigStatus() == nil {
		m.SetTsig(s.tsigName, s.tsigAlg, 300, time.Now().Unix())
	}
}

func (s *Server) allowed(a net.Addr) bool {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.c.AllowTransfer {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// stream runs fill, which emits records, and sends them in envelopes through
// dns.Transfer. If the client goes away, emit reports false and fill stops.
func (s *Server) stream(w dns.ResponseWriter, r *dns.Msg, fill func(emit func(dns.RR) bool)) {
	ch := make(chan *dns.Envelope)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		if err := new(dns.Transfer).Out(w, r, ch); err != nil {
			s.log.Info("dnsbl: transfer aborted", "remote", w.RemoteAddr(), "err", err)
		}
	}()
	var buf []dns.RR
	size := 0
	failed := false
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		select {
		case ch <- &dns.Envelope{RR: buf}:
			buf, size = nil, 0
			return true
		case <-done: // Out stopped on a write error
			failed = true
			return false
		}
	}
	fill(func(rr dns.RR) bool {
		if failed {
			return false
		}
		n := dns.Len(rr)
		if size+n > envelopeBytes && !flush() {
			return false
		}
		size += n
		buf = append(buf, rr)
		return true
	})
	if !failed {
		flush()
	}
	close(ch)
	wg.Wait()
}

// axfr sends SOA, NS, every listing, SOA (RFC 5936 §2.2) from one
// consistent snapshot, so concurrent updates cannot tear the transfer.
func (s *Server) axfr(w dns.ResponseWriter, r *dns.Msg, qname string) {
	serial, ls, sets := s.x.snapshot()
	s.queries.count(r.Question[0].Qtype, dns.RcodeSuccess, false)
	s.log.Info("dnsbl: AXFR", "remote", w.RemoteAddr(), "serial", serial, "listings", len(ls))
	s.stream(w, r, func(emit func(dns.RR) bool) {
		soa := s.soa(s.zone, serial, s.soaTTL)
		if !emit(soa) {
			return
		}
		for _, ns := range s.nsRRs(s.zone) {
			emit(ns)
		}
		for _, ip := range []netip.Addr{test4Yes, test6Yes} {
			a, txt := s.listingRRs(s.reverseName(ip), ip, nil)
			emit(a)
			emit(txt)
		}
		for i := range ls {
			if isTestPoint(ls[i].ip) {
				continue
			}
			e := ls[i].e.unpack(sets[ls[i].e.origins])
			a, txt := s.listingRRs(s.reverseName(ls[i].ip), ls[i].ip, &e)
			if !emit(a) || !emit(txt) {
				return
			}
		}
		emit(soa)
	})
}

// isTestPoint reports addresses whose answer is fixed by RFC 5782 §5 and
// must not be published from the index.
func isTestPoint(ip netip.Addr) bool {
	return ip == test4Yes || ip == test4No || ip == test6Yes || ip == test6No
}

// ixfr sends one difference sequence per journalled change (RFC 1995 §4):
// SOA(new), then for each change SOA(old) deletions SOA(new) additions,
// then SOA(new).
func (s *Server) ixfr(w dns.ResponseWriter, r *dns.Msg, qname string, cur, from uint32, cs []change) {
	s.queries.count(dns.TypeIXFR, dns.RcodeSuccess, false)
	s.log.Info("dnsbl: IXFR", "remote", w.RemoteAddr(), "from", from, "to", cur, "changes", len(cs))
	s.stream(w, r, func(emit func(dns.RR) bool) {
		if !emit(s.soa(s.zone, cur, s.soaTTL)) {
			return
		}
		for _, c := range cs {
			emit(s.soa(s.zone, c.serial-1, s.soaTTL))
			name := s.reverseName(c.ip)
			if c.old.ok && !isTestPoint(c.ip) {
				a, txt := s.listingRRs(name, c.ip, c.old.entry())
				emit(a)
				emit(txt)
			}
			emit(s.soa(s.zone, c.serial, s.soaTTL))
			if c.new.ok && !isTestPoint(c.ip) {
				a, txt := s.listingRRs(name, c.ip, c.new.entry())
				emit(a)
				if !emit(txt) {
					return
				}
			}
		}
		emit(s.soa(s.zone, cur, s.soaTTL))
	})
}
