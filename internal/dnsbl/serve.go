package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Serve answers on sockets the caller has bound: UDP on pcs, TCP on ls.
// Binding them first lets a daemon fail its start on a port in use before it
// serves anything, and learn the ports of ":0". Serve returns nil when ctx
// ends, or the error of the first socket that fails; either way it stops
// the others and closes every socket.
//
// UDP is read by the batched readers of udp_linux.go, with the fast path
// (fast.go); TCP, and UDP where they cannot serve, by miekg/dns's server.
func (s *Server) Serve(ctx context.Context, pcs []net.PacketConn, ls []net.Listener) error {
	readers, rest := s.udpReaders(pcs)
	var servers []*dns.Server
	for _, pc := range rest {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s, TsigSecret: s.tsigSecret(), MsgAcceptFunc: s.acceptFunc(pc)})
	}
	for _, l := range ls {
		servers = append(servers, &dns.Server{Listener: l, Handler: s, TsigSecret: s.tsigSecret(), MsgAcceptFunc: s.acceptFunc(nil)})
	}
	if len(servers) == 0 && len(readers) == 0 {
		<-ctx.Done()
		return nil
	}
	errc := make(chan error, len(servers)+len(readers))
	for _, sv := range servers {
		go func() { errc <- sv.ActivateAndServe() }()
	}
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Go(func() {
			err := r.run()
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("UDP socket %s closed", r.local)
			}
			errc <- err
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, r := range readers {
		r.stop()
	}
	wg.Wait()
	for _, sv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if sv.ShutdownContext(sctx) != nil {
			// Not started, or already failed: close the socket here.
			if sv.PacketConn != nil {
				sv.PacketConn.Close()
			}
			if sv.Listener != nil {
				sv.Listener.Close()
			}
		}
		cancel()
	}
	if errors.Is(err, net.ErrClosed) && ctx.Err() != nil {
		err = nil
	}
	return err
}
