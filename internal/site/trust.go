package site

import (
	"context"
	"net/netip"
	"strings"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/classify"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/received"
)

// Origins describes every origin's record with the keyring and policy in
// force: what it is now follows from both, so a keyring change shows at
// once.
func (s *Site) Origins(_ context.Context) ([]admin.OriginStatus, error) {
	recs, err := s.db.Origins()
	if err != nil {
		return nil, err
	}
	snap := s.snap.Load()
	// The policy keys of trust take effect at a restart (the ingester has
	// the start's); the keyring at a reload.
	pol := s.cfg.Policy
	self := strings.ToLower(s.cfg.Site)
	out := make([]admin.OriginStatus, 0, len(recs))
	for _, r := range recs {
		configured := r.Origin != self && (snap.kr.Probation(r.Origin) ||
			(pol.NewOrigin == config.OriginProbation && !snap.kr.InFile(r.Origin)))
		st := admin.OriginStatus{
			Origin: r.Origin, Operator: snap.kr.Operator(r.Origin), State: "trusted", Weight: 1,
			InKeyring: snap.kr.InFile(r.Origin),
			Reports:   r.Reports, Addresses: r.Addresses, Corroborated: r.Corroborated, CorroboratedShare: r.CorroboratedShare(),
			Disputed: r.Disputed, DisputedShare: r.DisputedShare(), Held: r.Held, Earned: r.Earned,
			Needed: pol.ProbationCorroborations, First: r.First, Last: r.Last,
		}
		if r.Origin != self && r.OnProbation(configured, pol.ProbationCorroborations) {
			st.State, st.Weight = "probation", 0
			if r.Demoted {
				st.State = "demoted"
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Why gathers every report of ip this site holds, with what its article
// says: the class, the evidence, and whether its signature verifies with
// the keyring in force.
func (s *Site) Why(_ context.Context, ip netip.Addr) (admin.WhyResult, error) {
	ip = ip.Unmap()
	res := admin.WhyResult{IP: ip}
	l, ok, err := s.db.Lookup(ip)
	if err != nil {
		return res, err
	}
	if ok {
		al := admin.FromStore(l)
		res.Listed, res.Listing = true, &al
	}
	reps, err := s.db.ReportsOf(ip)
	if err != nil {
		return res, err
	}
	kr := s.snap.Load().kr
	for _, r := range reps {
		w := admin.WhyReport{MessageID: r.MessageID, Origin: r.Origin, Operator: kr.Operator(r.Origin), Time: r.Hit,
			Class: "spam", Probation: r.Probation, Corroborated: r.Corroborated, Held: r.Held, Signature: "article pruned",
			RelayOnly: r.RelayOnly, RelayReason: r.RelayReason}
		if r.Class != "" {
			w.Class = r.Class
		}
		raw, err := s.db.Article(r.MessageID)
		if err != nil {
			return res, err
		}
		if raw != nil {
			w.Signature = "valid"
			if _, err := kr.Verify(raw); err != nil {
				w.Signature = err.Error()
			}
			lim := article.DefaultLimits()
			lim.MaxBytes = max(lim.MaxBytes, int64(len(raw))+1) // it was accepted once; judge it no more
			if a, err := article.Parse(raw, lim); err == nil {
				if fb, err := arf.Parse(a.Get("Content-Type"), a.Body); err == nil {
					w.Class = reportClass(fb)
					w.Received = evidence(fb.Message, ip)
				}
			}
		}
		res.Reports = append(res.Reports, w)
	}
	return res, nil
}

// reportClass is the report's class. Reports that carry none (every report
// made before classes) are spam.
func reportClass(fb *arf.Report) string {
	if fb.Class != "" {
		return fb.Class
	}
	return string(classify.Spam)
}

// evidence is the Received field of the trapped message that names ip:
// the hop the report's Source-IP was read from. dstc has already redacted
// the trap in it.
func evidence(msg []byte, ip netip.Addr) string {
	want := ip.String()
	for _, f := range received.Fields(msg) {
		if namesAddr(f, want) {
			return strings.Join(strings.Fields(f), " ")
		}
	}
	return ""
}

// namesAddr tells whether s holds addr not as part of a longer address
// (203.0.113.7 in 203.0.113.70).
func namesAddr(s, addr string) bool {
	hexDigit := func(c byte) bool {
		return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':'
	}
	for i := 0; ; {
		j := strings.Index(s[i:], addr)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(addr)
		if (j == 0 || !hexDigit(s[j-1])) && (end == len(s) || !hexDigit(s[end])) {
			return true
		}
		i = j + 1
	}
}
