package dnsbl

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

const (
	notifyEvery   = time.Second // debounce: at most one NOTIFY a second
	notifyTries   = 3
	notifyTimeout = 2 * time.Second
)

// RunNotify sends NOTIFY (RFC 1996) to Config.Notify whenever the serial has
// changed, at most once a second, until ctx ends. Each target has its own
// worker so a dead secondary delays neither the others nor any lookup.
func (s *Server) RunNotify(ctx context.Context) {
	if len(s.c.Notify) == 0 {
		return
	}
	kicks := make([]chan struct{}, len(s.c.Notify))
	for i, target := range s.c.Notify {
		// Capacity 1: a pending kick already covers any later change,
		// because the worker reads the serial when it sends.
		kicks[i] = make(chan struct{}, 1)
		go s.notifyWorker(ctx, target, kicks[i])
	}
	// Announce the zone once at start too, as BIND does on load: a
	// secondary then catches up with whatever changed while we were down.
	last := s.x.Serial() - 1
	t := time.NewTicker(notifyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cur := s.x.Serial(); cur != last {
			last = cur
			for _, k := range kicks {
				select {
				case k <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (s *Server) notifyWorker(ctx context.Context, target string, kick <-chan struct{}) {
	c := &dns.Client{Net: "udp", Timeout: notifyTimeout, TsigSecret: s.tsigSecret()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		serial := s.x.Serial()
		m := new(dns.Msg)
		m.SetNotify(s.zone)
		// RFC 1996 §3.7: the SOA in the answer section is a hint.
		m.Answer = []dns.RR{s.soa(s.zone, serial, s.soaTTL)}
		if s.tsigName != "" {
			m.SetTsig(s.tsigName, s.tsigAlg, 300, time.Now().Unix())
		}
		for try := 1; try <= notifyTries; try++ {
			r, _, err := c.ExchangeContext(ctx, m, target)
			if err == nil && r.Rcode == dns.RcodeSuccess {
				s.log.Debug("dnsbl: NOTIFY acknowledged", "target", target, "serial", serial)
				break
			}
			s.log.Info("dnsbl: NOTIFY failed", "target", target, "serial", serial, "try", try, "err", err)
			if try == notifyTries {
				break
			}
			// RFC 1996 §3.6: retransmit, with a growing interval.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(try) * time.Second):
			}
		}
	}
}
