package dnsbl

import (
	"net"
	"sync"

	"github.com/miekg/dns"
)

// recorder is an in-process dns.ResponseWriter (in the spirit of CoreDNS's
// dnstest.Recorder) that keeps every message written.
type recorder struct {
	mu     sync.Mutex
	remote net.Addr
	msgs   []*dns.Msg
	sizes  []int // of each message, packed as sent
}

func newRecorder(tcp bool) *recorder {
	if tcp {
		return &recorder{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	}
	return &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
}

func (r *recorder) LocalAddr() net.Addr {
	if _, ok := r.remote.(*net.TCPAddr); ok {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) Network() string {
	if _, ok := r.remote.(*net.TCPAddr); ok {
		return "tcp"
	}
	return "udp"
}
func (r *recorder) WriteMsg(m *dns.Msg) error {
	// Pack like the real server would, so unpackable replies fail here.
	b, err := m.Pack()
	if err != nil {
		return err
	}
	c := new(dns.Msg)
	if err := c.Unpack(b); err != nil {
		return err
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, c)
	r.sizes = append(r.sizes, len(b))
	r.mu.Unlock()
	return nil
}
func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), r.WriteMsg(m)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}
