//go:build linux

package dnsbl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The UDP side of the server on Linux: each address is served by several
// sockets bound with SO_REUSEPORT (one per GOMAXPROCS, so the kernel
// spreads the queries over the CPUs), each read by one long-lived
// goroutine that takes up to udpBatch queries per recvmmsg(2), answers
// them (fast path, else slow path) and sends the answers with one
// sendmmsg(2). Per query there is no goroutine, no deadline and, on the
// fast path, no allocation: a goroutine per packet, its stack and the
// one system call per packet each way were most of what a query cost.
//
// A second dstd must still fail to start on a port in use. SO_REUSEPORT
// lets any socket of the same user that sets it join the group, so the
// first socket of an address is bound without it: the bind fails, with
// "address already in use", whenever the port is taken, by another dstd
// or anything else. Only once it holds the port does it set SO_REUSEPORT,
// and the extra sockets join it. A second dstd never gets that far: its
// own first bind, without SO_REUSEPORT, conflicts with the group.

const (
	udpBatch = 32  // queries per recvmmsg
	oobSize  = 128 // room for IP_PKTINFO and IPV6_PKTINFO
)

// mmsghdr is struct mmsghdr, which x/sys/unix does not define.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// udpReader serves one socket. Its buffers are reused for every batch.
type udpReader struct {
	s        *Server
	conn     *net.UDPConn
	rc       syscall.RawConn
	local    net.Addr
	wild     bool // bound to 0.0.0.0 or ::: answer from the address asked
	accept   dns.MsgAcceptFunc
	provider dns.TsigProvider
	// recvFn and sendFn are r.recv and r.send, bound once: a method
	// value made at each call would be an allocation per batch.
	recvFn, sendFn func(fd uintptr) bool

	nread       int   // messages the last recvmmsg returned
	rerr        error // its error
	nsend, sent int   // messages queued in sh, and sent so far
	sc          fastScratch

	rh    [udpBatch]mmsghdr
	riov  [udpBatch]unix.Iovec
	rbuf  [udpBatch][udpReadSize]byte
	rname [udpBatch]unix.RawSockaddrInet6 // large enough for either family
	roob  [udpBatch][oobSize]byte
	sh    [udpBatch]mmsghdr
	siov  [udpBatch]unix.Iovec
	sdata [udpBatch][]byte // keeps the slow path's answers until sent
	wbuf  [udpBatch][fastOutSize]byte
	soob  [udpBatch][oobSize]byte
}

// udpReaders opens the extra SO_REUSEPORT sockets for each UDP socket in
// pcs and returns a reader per socket. The sockets it cannot serve this
// way (not *net.UDPConn) are returned in rest, for dns.Server.
func (s *Server) udpReaders(pcs []net.PacketConn) (readers []*udpReader, rest []net.PacketConn) {
	n := s.udpSockets
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for _, pc := range pcs {
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			rest = append(rest, pc)
			continue
		}
		conns, wild, err := reusePort(uc, n)
		switch {
		case len(conns) == 0:
			s.log.Warn("dnsbl: cannot ask for the destination address of UDP queries; miekg/dns serves this socket", "addr", uc.LocalAddr(), "err", err)
			rest = append(rest, uc)
			continue
		case err != nil:
			// The first socket serves alone: slower, never wrong.
			s.log.Warn("dnsbl: serving UDP on one socket only; the extra SO_REUSEPORT sockets failed", "addr", uc.LocalAddr(), "err", err)
		}
		for _, c := range conns {
			r, err := s.newUDPReader(c, wild)
			if err != nil {
				s.log.Warn("dnsbl: cannot read this UDP socket in batches; miekg/dns serves it", "addr", c.LocalAddr(), "err", err)
				rest = append(rest, c)
				continue
			}
			readers = append(readers, r)
		}
	}
	return readers, rest
}

// reusePort turns the bound socket uc into a group of n sockets on the
// same address (see the comment at the top), and sets up IP_PKTINFO on
// wildcard addresses. conns always holds uc, first; on an error it holds
// the sockets that work.
func reusePort(uc *net.UDPConn, n int) (conns []*net.UDPConn, wild bool, err error) {
	conns = []*net.UDPConn{uc}
	rc, err := uc.SyscallConn()
	if err != nil {
		return conns, false, err
	}
	var (
		sa     unix.Sockaddr
		v6only int
		serr   error
	)
	err = rc.Control(func(fd uintptr) {
		if sa, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			wild = a.Addr == [4]byte{}
		case *unix.SockaddrInet6:
			wild = a.Addr == [16]byte{}
			if v6only, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); serr != nil {
				return
			}
		}
		if wild {
			if serr = setPktinfo(int(fd), sa); serr != nil {
				return
			}
		}
		if n > 1 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if wild {
			// Without IP_PKTINFO a wildcard socket would answer from
			// the wrong address: let miekg/dns serve it instead.
			return nil, false, fmt.Errorf("setting socket options: %w", err)
		}
		return conns, false, fmt.Errorf("setting socket options: %w", err)
	}
	for i := 1; i < n; i++ {
		c, err := reusePortSocket(sa, v6only, wild)
		if err != nil {
			return conns, wild, err
		}
		conns = append(conns, c)
	}
	return conns, wild, nil
}

// setPktinfo asks for the destination address of each datagram.
func setPktinfo(fd int, sa unix.Sockaddr) error {
	if _, ok := sa.(*unix.SockaddrInet4); ok {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
		return err
	}
	// A dual-stack socket's IPv4 queries come with their own IP_PKTINFO,
	// as miekg/dns asks; IPV6_PKTINFO carries them too, mapped.
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	return nil
}

// reusePortSocket binds one more SO_REUSEPORT socket to sa.
func reusePortSocket(sa unix.Sockaddr, v6only int, wild bool) (*net.UDPConn, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "dns-udp")
	defer f.Close()
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return nil, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return nil, fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if wild {
		if err := setPktinfo(fd, sa); err != nil {
			return nil, fmt.Errorf("IP_PKTINFO: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, errors.New("not a UDP socket")
	}
	return uc, nil
}

func (s *Server) newUDPReader(c *net.UDPConn, wild bool) (*udpReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &udpReader{s: s, conn: c, rc: rc, local: c.LocalAddr(), wild: wild,
		accept: s.acceptFunc(c), provider: s.tsigProvider()}
	r.recvFn, r.sendFn = r.recv, r.send
	for i := range r.rh {
		r.riov[i].Base = &r.rbuf[i][0]
		r.riov[i].SetLen(udpReadSize)
		r.rh[i].hdr.Name = (*byte)(unsafe.Pointer(&r.rname[i]))
		r.rh[i].hdr.Iov = &r.riov[i]
		r.rh[i].hdr.SetIovlen(1)
		if wild {
			r.rh[i].hdr.Control = &r.roob[i][0]
		}
		r.sh[i].hdr.Iov = &r.siov[i]
		r.sh[i].hdr.SetIovlen(1)
	}
	return r, nil
}

// run serves until the socket is closed (nil) or fails.
func (r *udpReader) run() error {
	for {
		if err := r.rc.Read(r.recvFn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if r.rerr != nil {
			switch r.rerr {
			case unix.ECONNREFUSED, unix.ENOBUFS, unix.ENOMEM, unix.EHOSTUNREACH, unix.ENETUNREACH:
				// A transient error of this socket, not of the server.
				r.s.log.Debug("dnsbl: UDP read", "addr", r.local, "err", r.rerr)
				continue
			}
			return fmt.Errorf("reading UDP queries on %s: %w", r.local, r.rerr)
		}
		r.nsend, r.sent = 0, 0
		for i := 0; i < r.nread; i++ {
			r.serve(i)
		}
		if err := r.flush(); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// serve answers the i-th query read.
func (r *udpReader) serve(i int) {
	pkt := r.rbuf[i][:r.rh[i].n]
	if len(pkt) < 12 {
		return // dns.Server drops these too
	}
	if r.nsend == udpBatch {
		r.flush()
	}
	if n, ok := r.s.answerFast(pkt, r.wbuf[r.nsend][:], &r.sc); ok {
		r.queue(i, r.wbuf[r.nsend][:n])
		return
	}
	w := &slowWriter{local: r.local, remote: r.remote(i), provider: r.provider}
	r.s.serveSlow(pkt, r.accept, w)
	for _, b := range w.out {
		if r.nsend == udpBatch {
			r.flush()
		}
		r.sdata[r.nsend] = b
		r.queue(i, b)
	}
}

// queue adds the answer b to the query i to the batch to send.
func (r *udpReader) queue(i int, b []byte) {
	k := r.nsend
	h := &r.sh[k].hdr
	h.Name = r.rh[i].hdr.Name
	h.Namelen = r.rh[i].hdr.Namelen
	r.siov[k].Base = unsafe.SliceData(b)
	r.siov[k].SetLen(len(b))
	h.Control = nil
	h.SetControllen(0)
	if r.wild {
		if n := replyPktinfo(r.roob[i][:r.rh[i].hdr.Controllen], r.soob[k][:]); n > 0 {
			h.Control = &r.soob[k][0]
			h.SetControllen(n)
		}
	}
	r.nsend++
}

// flush sends the queued answers.
func (r *udpReader) flush() error {
	if r.sent >= r.nsend {
		r.nsend, r.sent = 0, 0
		return nil
	}
	err := r.rc.Write(r.sendFn)
	clear(r.sdata[:r.nsend])
	r.nsend, r.sent = 0, 0
	return err
}

// recv is recvmmsg on fd, for RawConn.Read: false asks to wait until the
// socket is readable.
func (r *udpReader) recv(fd uintptr) bool {
	for i := range r.rh {
		h := &r.rh[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if r.wild {
			h.SetControllen(oobSize)
		}
		h.Flags = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.rh[0])), udpBatch, 0, 0, 0)
		switch e {
		case 0:
			r.nread, r.rerr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.nread, r.rerr = 0, e
		return true
	}
}

// send is sendmmsg of the queued answers on fd, for RawConn.Write. An
// answer the kernel refuses is dropped, as a lost datagram.
func (r *udpReader) send(fd uintptr) bool {
	for r.sent < r.nsend {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.sh[r.sent])), uintptr(r.nsend-r.sent), 0, 0, 0)
		switch e {
		case 0:
			r.sent += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			r.s.log.Debug("dnsbl: UDP write", "addr", r.local, "err", e)
			r.sent++
		}
	}
	return true
}

// remote is the sender of query i, as net.UDPConn.ReadMsgUDP gives it.
func (r *udpReader) remote(i int) *net.UDPAddr {
	sa := &r.rname[i]
	port := func(p uint16) int { b := (*[2]byte)(unsafe.Pointer(&p)); return int(b[0])<<8 | int(b[1]) }
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return &net.UDPAddr{IP: net.IPv4(sa4.Addr[0], sa4.Addr[1], sa4.Addr[2], sa4.Addr[3]), Port: port(sa4.Port)}
	}
	a := &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: port(sa.Port)}
	if sa.Scope_id != 0 {
		a.Zone = strconv.Itoa(int(sa.Scope_id))
		if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
			a.Zone = ifi.Name
		}
	}
	return a
}

// replyPktinfo writes into out the control message that sends an answer
// from the address the query in oob was sent to, as miekg/dns's
// correctSource does, and returns its length (0: none).
func replyPktinfo(oob, out []byte) int {
	var dst4 [4]byte
	var dst6 [16]byte
	have4, have6 := false, false
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			copy(dst6[:], data[:16])
			have6 = true
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			copy(dst4[:], data[8:12]) // ipi_addr: the header's destination
			have4 = true
		}
		if sp := unix.CmsgSpace(l - unix.CmsgLen(0)); sp < len(oob) {
			oob = oob[sp:]
		} else {
			break
		}
	}
	// IPv6 first, as correctSource; a mapped IPv4 address goes as IPv4.
	if have6 {
		if [12]byte(dst6[:12]) == [12]byte{10: 0xff, 11: 0xff} {
			copy(dst4[:], dst6[12:])
			have4 = true
		} else {
			h := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
			h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
			*pi = unix.Inet6Pktinfo{Addr: dst6}
			return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
		}
	}
	if !have4 {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
	*pi = unix.Inet4Pktinfo{Spec_dst: dst4}
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}
