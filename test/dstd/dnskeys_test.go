package dstd_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestKeysFromDNS: a site named in dkim.dns_key_domains is trusted through
// the key it publishes in DNS, without a keyring line; a site not named is
// not, whatever its DNS says.
func TestKeysFromDNS(t *testing.T) {
	b := dsttest.NewDstd(t, "site-b.test", lab) // never started: only its key is used
	c := dsttest.NewDstd(t, "site-c.test", lab)
	records := map[string]string{}
	for _, s := range []*dsttest.Dstd{b, c} {
		f := strings.Fields(s.KeyringLine()) // site selector key
		records[dns.Fqdn(f[1]+"._domainkey."+f[0])] = "v=DKIM1; k=ed25519; p=" + f[2]
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if txt, ok := records[strings.ToLower(q.Name)]; ok && q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{txt}})
		} else if !ok {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })

	a := dsttest.NewDstd(t, "site-a.test", lab+fmt.Sprintf("[dkim]\ndns_key_domains = [\"site-b.test\"]\ndns_key_server = %q\n"+
		"\n[[peer]]\nname = \"site-b.test\"\naddresses = [\"127.0.0.1\"]\n", pc.LocalAddr().String()))
	a.Start()
	if got := dsttest.IHave(t, a.NNTP, sign(t, signer(t, b), newReport(t, "203.0.113.60"))); got != 235 {
		t.Errorf("B's report, B's key only in DNS: IHAVE answered %d, want 235", got)
	}
	if got := dsttest.IHave(t, a.NNTP, sign(t, signer(t, c), newReport(t, "203.0.113.61"))); got != 437 {
		t.Errorf("C's report, C not among dns_key_domains: IHAVE answered %d, want 437", got)
	}
	if !strings.Contains(a.Log(), "no key in the keyring for the signer: domain site-c.test selector dst") {
		t.Errorf("the refusal of C's report does not say why:\n%s", a.Log())
	}
}
