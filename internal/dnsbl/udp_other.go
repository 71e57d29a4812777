//go:build !linux

package dnsbl

import "net"

// udpReader is Linux's batched UDP reader (udp_linux.go); elsewhere
// dns.Server serves UDP as before.
type udpReader struct{ local net.Addr }

// batchedUDP says that UDP is read by udpReaders (see SpareP).
const batchedUDP = false

func (s *Server) udpReaders(pcs []net.PacketConn) ([]*udpReader, []net.PacketConn) { return nil, pcs }

func (r *udpReader) run() error { return nil }

func (r *udpReader) stop() {}
