package dnsbl

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net"

	"github.com/miekg/dns"
)

// The slow path answers a UDP query the fast path declines as
// miekg/dns's server did before there was a fast path: it runs the same
// steps as dns.Server's serveDNS (the accept function, with its FORMERR
// and NOTIMP answers, Unpack, TSIG verification) and calls ServeDNS with
// a ResponseWriter that packs and signs as dns.Server's does. TCP is
// still served by dns.Server itself.

// slowWriter is the dns.ResponseWriter of one slow-path query. What it
// writes is kept in out, for the reader to send.
type slowWriter struct {
	local, remote  net.Addr
	provider       dns.TsigProvider // nil: no key
	tsigStatus     error
	tsigTimersOnly bool
	tsigRequestMAC string
	out            [][]byte
}

func (w *slowWriter) LocalAddr() net.Addr  { return w.local }
func (w *slowWriter) RemoteAddr() net.Addr { return w.remote }
func (w *slowWriter) Close() error         { return nil }
func (w *slowWriter) TsigStatus() error    { return w.tsigStatus }
func (w *slowWriter) TsigTimersOnly(b bool) {
	w.tsigTimersOnly = b
}
func (w *slowWriter) Hijack() {}

// WriteMsg packs m, and signs it when it carries a TSIG record, as
// dns.Server's writer does.
func (w *slowWriter) WriteMsg(m *dns.Msg) error {
	if w.provider != nil {
		if t := m.IsTsig(); t != nil {
			data, mac, err := dns.TsigGenerateWithProvider(m, w.provider, w.tsigRequestMAC, w.tsigTimersOnly)
			if err != nil {
				return err
			}
			w.tsigRequestMAC = mac
			_, err = w.Write(data)
			return err
		}
	}
	data, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func (w *slowWriter) Write(b []byte) (int, error) {
	w.out = append(w.out, b)
	return len(b), nil
}

// serveSlow answers the UDP query pkt (at least 12 bytes, cut to
// udpReadSize) into w, as dns.Server's serveDNS does; accept is
// acceptFunc's for UDP.
func (s *Server) serveSlow(pkt []byte, accept dns.MsgAcceptFunc, w *slowWriter) {
	if len(pkt) < 12 {
		return // dns.Server drops these unanswered
	}
	dh := dns.Header{
		Id: binary.BigEndian.Uint16(pkt), Bits: binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]), Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]), Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	req := new(dns.Msg)
	setHdr(req, dh)
	switch action := accept(dh); action {
	case dns.MsgAccept:
		// Unpack reads the header again, as dns.Server's setHdr did,
		// and leaves what it read of a broken message in req, as
		// dns.Server's unpack does: the FORMERR below echoes it.
		if req.Unpack(pkt) == nil {
			break
		}
		fallthrough
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		opcode := req.Opcode
		req.SetRcodeFormatError(req)
		req.Zero = false
		if action == dns.MsgRejectNotImplemented {
			req.Opcode = opcode
			req.Rcode = dns.RcodeNotImplemented
		}
		req.Ns, req.Answer, req.Extra = nil, nil, nil
		w.WriteMsg(req)
		return
	case dns.MsgIgnore:
		return
	}
	w.tsigStatus = nil
	if w.provider != nil {
		if t := req.IsTsig(); t != nil {
			w.tsigStatus = dns.TsigVerifyWithProvider(pkt, w.provider, "", false)
			w.tsigTimersOnly = false
			w.tsigRequestMAC = t.MAC
		}
	}
	s.ServeDNS(w, req)
}

// setHdr is dns.Msg's unexported setHdr: the header bits as read.
func setHdr(m *dns.Msg, dh dns.Header) {
	const (
		qr = 1 << 15
		aa = 1 << 10
		tc = 1 << 9
		rd = 1 << 8
		ra = 1 << 7
		z  = 1 << 6
		ad = 1 << 5
		cd = 1 << 4
	)
	m.Id = dh.Id
	m.Response = dh.Bits&qr != 0
	m.Opcode = int(dh.Bits>>11) & 0xF
	m.Authoritative = dh.Bits&aa != 0
	m.Truncated = dh.Bits&tc != 0
	m.RecursionDesired = dh.Bits&rd != 0
	m.RecursionAvailable = dh.Bits&ra != 0
	m.Zero = dh.Bits&z != 0
	m.AuthenticatedData = dh.Bits&ad != 0
	m.CheckingDisabled = dh.Bits&cd != 0
	m.Rcode = int(dh.Bits & 0xF)
}

// tsigKeys is dns.Server's TSIG provider for its TsigSecret table (a
// key name, exactly as the record spells it, to a base64 secret), which
// miekg/dns does not export.
type tsigKeys map[string]string

func (k tsigKeys) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	secret, ok := k[t.Hdr.Name]
	if !ok {
		return nil, dns.ErrSecret
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return nil, err
	}
	var h hash.Hash
	switch dns.CanonicalName(t.Algorithm) {
	case dns.HmacSHA1:
		h = hmac.New(sha1.New, raw)
	case dns.HmacSHA224:
		h = hmac.New(sha256.New224, raw)
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, raw)
	case dns.HmacSHA384:
		h = hmac.New(sha512.New384, raw)
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, raw)
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

func (k tsigKeys) Verify(msg []byte, t *dns.TSIG) error {
	b, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(b, mac) {
		return dns.ErrSig
	}
	return nil
}

// tsigProvider is the provider dns.Server builds from tsigSecret, or nil.
func (s *Server) tsigProvider() dns.TsigProvider {
	if sec := s.tsigSecret(); sec != nil {
		return tsigKeys(sec)
	}
	return nil
}
