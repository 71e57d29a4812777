package dnsbl

import (
	"net"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/metrics"
)

// queryCounters counts answered queries by (qtype, rcode, proto). The
// counters are resolved once, in New: a query costs two array reads and
// an atomic add, with no label lookup (WithLabelValues hashes its labels
// and takes a lock) and no allocation, so counting does not slow the
// serving loop down.
type queryCounters struct {
	qtype [256]uint8 // index in metrics.DNSQtypes by query type; "other" above 255
	rcode [24]uint8  // index in metrics.DNSRcodes by response code
	// c is indexed by (qtype*len(DNSRcodes)+rcode)*2 + proto (0 udp, 1 tcp).
	c                  []prometheus.Counter
	otherQ, otherR, nR int
}

// newQueryCounters resolves every child of vec; nil: no counting.
func newQueryCounters(vec *prometheus.CounterVec) *queryCounters {
	if vec == nil {
		return nil
	}
	q := &queryCounters{nR: len(metrics.DNSRcodes)}
	q.otherQ = indexOf(metrics.DNSQtypes, "other")
	q.otherR = indexOf(metrics.DNSRcodes, "other")
	for i := range q.qtype {
		q.qtype[i] = uint8(q.otherQ)
	}
	for i, name := range metrics.DNSQtypes {
		if t, ok := dns.StringToType[name]; ok && t < uint16(len(q.qtype)) {
			q.qtype[t] = uint8(i)
		}
	}
	for i := range q.rcode {
		q.rcode[i] = uint8(q.otherR)
	}
	for i, name := range metrics.DNSRcodes {
		if r, ok := dns.StringToRcode[name]; ok && r < len(q.rcode) {
			q.rcode[r] = uint8(i)
		}
	}
	for _, qt := range metrics.DNSQtypes {
		for _, rc := range metrics.DNSRcodes {
			for _, p := range metrics.DNSProtos {
				q.c = append(q.c, vec.WithLabelValues(qt, rc, p))
			}
		}
	}
	return q
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	panic("dnsbl: metrics label list without " + s)
}

// count counts one answer. A nil q counts nothing.
func (q *queryCounters) count(qtype uint16, rcode int, udp bool) {
	if q == nil {
		return
	}
	qi := q.otherQ
	if int(qtype) < len(q.qtype) {
		qi = int(q.qtype[qtype])
	}
	ri := q.otherR
	if rcode >= 0 && rcode < len(q.rcode) {
		ri = int(q.rcode[rcode])
	}
	i := (qi*q.nR + ri) * 2
	if !udp {
		i++
	}
	q.c[i].Inc()
}

// countReply counts the reply m to r.
func (s *Server) countReply(w dns.ResponseWriter, r, m *dns.Msg) {
	if s.queries == nil {
		return
	}
	qtype := uint16(0) // no question: "other"
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
	}
	s.queries.count(qtype, m.Rcode, isUDP(w))
}

// acceptFunc is the dns.Server's check of a request's header, which
// answers FORMERR or NOTIMP itself, before ServeDNS: those answers are
// counted here, as qtype "other" (the question is not read yet).
func (s *Server) acceptFunc(pc net.PacketConn) dns.MsgAcceptFunc {
	udp := pc != nil
	return func(dh dns.Header) dns.MsgAcceptAction {
		a := dns.DefaultMsgAcceptFunc(dh)
		switch a {
		case dns.MsgReject:
			s.queries.count(0, dns.RcodeFormatError, udp)
		case dns.MsgRejectNotImplemented:
			s.queries.count(0, dns.RcodeNotImplemented, udp)
		}
		return a
	}
}
