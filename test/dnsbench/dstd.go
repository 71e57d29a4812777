package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsbl"
)

// startDstd builds a dnsbl index of listed and serves it in this process on
// a free loopback port. heap is the live heap the index added, measured
// after a full GC on both sides; the caller's own copy of the addresses
// exists on both sides, so it cancels out.
func startDstd(ctx context.Context, zone string, listed []netip.Addr, expires func(int) time.Time) (addr string, heap int64, err error) {
	before := liveHeap()
	idx := dnsbl.NewIndex()
	first := time.Now().Truncate(time.Second)
	for i, ip := range listed {
		idx.Set(ip, dnsbl.Entry{Expires: expires(i), FirstSeen: first, Hits: 1, Origins: []string{"site-a.example"}})
	}
	heap = int64(liveHeap() - before)

	srv, err := dnsbl.New(dnsbl.Config{Zone: zone}, idx)
	if err != nil {
		return "", 0, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return "", 0, err
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, []string{addr}) }()

	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("2.0.0.127."+zone+".", dns.TypeA)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-done:
			return "", 0, errors.Join(errors.New("dnsbl server stopped"), err)
		default:
		}
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr, heap, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", 0, errors.New("dnsbl server did not answer within 30s")
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers released
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
