//go:build linux

package dnsbl

import (
	"cmp"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The UDP side of the server on Linux: each address is served by one or
// more sockets bound with SO_REUSEPORT (see udpReaders for how many), each
// read by one long-lived goroutine that takes up to udpBatch queries per
// recvmmsg(2), answers them (fast path, else slow path) and sends the
// answers with one sendmmsg(2). Per query there is no goroutine, no
// deadline and, on the fast path, no allocation: a goroutine per packet,
// its stack and the one system call per packet each way were most of what
// a query cost.
//
// The sockets are blocking, and outside the runtime's network poller: a
// reader with nothing to read sleeps in recvmmsg itself (MSG_WAITFORONE:
// it returns as soon as one query is there, with whatever else is
// queued), and the kernel wakes its thread when a query arrives. Through
// the poller, an empty socket cost an EAGAIN, a park, the scheduler's
// search for work, epoll_pwait and futex wake-ups of other threads. While
// queries are waiting, recvmmsg and sendmmsg are called with MSG_DONTWAIT
// as raw system calls, which the runtime does not see: they cannot block,
// and a P seen in a system call for longer than one sysmon tick (20 µs;
// a sendmmsg of a batch takes longer) is taken from its thread when no
// other P is idle, and sysmon, having taken one, goes back to waking every
// 20 µs, which keeps it taking them. With the poller and two readers on two
// Ps, that runtime work was a fifth of the server's CPU under dnsperf
// (test/dnsbench/README.md). Stopping shuts the socket down (shutdown(2)
// wakes a blocked recvmmsg) before closing it.
//
// A second dstd must still fail to start on a port in use. SO_REUSEPORT
// lets any socket of the same user that sets it join the group, so the
// first socket of an address is bound without it: the bind fails, with
// "address already in use", whenever the port is taken, by another dstd
// or anything else. Only once it holds the port does it set SO_REUSEPORT,
// and the extra sockets join it. A second dstd never gets that far: its
// own first bind, without SO_REUSEPORT, conflicts with the group.

// batchedUDP says that UDP is read by udpReaders (see SpareP).
const batchedUDP = true

const (
	udpBatch = 32  // queries per recvmmsg
	oobSize  = 128 // room for IP_PKTINFO and IPV6_PKTINFO
	// yieldEvery is how often a busy reader yields its P (see run):
	// sysmon preempts a goroutine that has not for 10 ms, and a batch
	// takes well under the 2 ms left.
	yieldEvery = 8 * time.Millisecond
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
	fd       int // blocking, owned: closed when run returns
	local    net.Addr
	wild     bool // bound to 0.0.0.0 or ::: answer from the address asked
	accept   dns.MsgAcceptFunc
	provider dns.TsigProvider
	stopping atomic.Bool

	nread       int // messages the last recvmmsg returned
	nsend, sent int // messages queued in sh, and sent so far
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

// udpReaders turns each UDP socket in pcs into a group of SO_REUSEPORT
// sockets and returns a reader per socket. The sockets it cannot serve
// this way (not *net.UDPConn) are returned in rest, for dns.Server.
//
// Unless set (udpSockets), an address gets GOMAXPROCS-1 sockets, at least
// one: the kernel spreads the queries over them, and one P stays free,
// for the rest of the daemon and so that sysmon never finds every P busy
// while a reader waits for queries in recvmmsg (see the comment at the
// top). With as many readers as Ps it does, takes them back and wakes
// every 20 µs again, and the CPU per query varied by a quarter from one
// run to the next. On 2 CPUs that is one reader, or two when the program
// has called SpareP, as dstd does.
func (s *Server) udpReaders(pcs []net.PacketConn) (readers []*udpReader, rest []net.PacketConn) {
	n := s.udpSockets
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	for _, pc := range pcs {
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			rest = append(rest, pc)
			continue
		}
		fds, wild, err := reusePort(uc, n)
		switch {
		case len(fds) == 0:
			s.log.Warn("dnsbl: cannot read this UDP socket in batches; miekg/dns serves it", "addr", uc.LocalAddr(), "err", err)
			rest = append(rest, uc)
			continue
		case err != nil:
			// The first socket serves alone: slower, never wrong.
			s.log.Warn("dnsbl: serving UDP on one socket only; the extra SO_REUSEPORT sockets failed", "addr", uc.LocalAddr(), "err", err)
		}
		// The readers hold their own descriptors (fds[0] is a duplicate
		// of uc's): closing uc takes the socket out of the runtime's
		// poller, which would otherwise wake for every query.
		local, accept := uc.LocalAddr(), s.acceptFunc(uc)
		uc.Close()
		for _, fd := range fds {
			readers = append(readers, s.newUDPReader(fd, local, wild, accept))
		}
	}
	return readers, rest
}

// reusePort turns the bound socket uc into a group of n blocking sockets
// on the same address (see the comment at the top), and sets up
// IP_PKTINFO on wildcard addresses. fds[0] is a duplicate of uc's
// descriptor; on an error, fds holds the sockets that work (none: uc
// cannot be served here, and is left as it was).
func reusePort(uc *net.UDPConn, n int) (fds []int, wild bool, err error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, false, err
	}
	var (
		sa     unix.Sockaddr
		v6only int
		dup    = -1
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
				// Without IP_PKTINFO a wildcard socket would answer
				// from the wrong address: miekg/dns serves it instead.
				return
			}
		}
		if dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); serr != nil {
			return
		}
		// O_NONBLOCK belongs to the open file, which uc shares: uc is
		// closed once the readers have their descriptors.
		serr = unix.SetNonblock(dup, false)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if dup >= 0 {
			unix.SetNonblock(dup, true)
			unix.Close(dup)
		}
		return nil, false, fmt.Errorf("setting socket options: %w", err)
	}
	fds = []int{dup}
	if n <= 1 {
		return fds, wild, nil
	}
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil || serr != nil {
		return fds, wild, fmt.Errorf("SO_REUSEPORT: %w", cmp.Or(err, serr))
	}
	for i := 1; i < n; i++ {
		fd, err := reusePortSocket(sa, v6only, wild)
		if err != nil {
			return fds, wild, err
		}
		fds = append(fds, fd)
	}
	return fds, wild, nil
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

// reusePortSocket binds one more SO_REUSEPORT socket to sa, blocking.
func reusePortSocket(sa unix.Sockaddr, v6only int, wild bool) (int, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := func() error {
		if family == unix.AF_INET6 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
				return fmt.Errorf("IPV6_V6ONLY: %w", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", err)
		}
		if wild {
			if err := setPktinfo(fd, sa); err != nil {
				return fmt.Errorf("IP_PKTINFO: %w", err)
			}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	}(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (s *Server) newUDPReader(fd int, local net.Addr, wild bool, accept dns.MsgAcceptFunc) *udpReader {
	r := &udpReader{s: s, fd: fd, local: local, wild: wild, accept: accept, provider: s.tsigProvider()}
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
	return r
}

// stop makes run return: shutdown(2) wakes a recvmmsg blocked on the
// socket (it returns an empty message, then every later call does), and
// the flag tells run that this is the end, not a query. Unconnected UDP
// sockets answer ENOTCONN but are shut down all the same.
func (r *udpReader) stop() {
	r.stopping.Store(true)
	unix.Shutdown(r.fd, unix.SHUT_RDWR)
}

// run serves until stop (nil) or until the socket fails; it closes the
// socket as it returns.
func (r *udpReader) run() error {
	defer unix.Close(r.fd)
	yielded := time.Now()
	for {
		err := r.recv()
		if r.stopping.Load() {
			return nil
		}
		if err != nil {
			switch err {
			case unix.ECONNREFUSED, unix.ENOBUFS, unix.ENOMEM, unix.EHOSTUNREACH, unix.ENETUNREACH:
				// A transient error of this socket, not of the server.
				r.s.log.Debug("dnsbl: UDP read", "addr", r.local, "err", err)
				continue
			}
			return fmt.Errorf("reading UDP queries on %s: %w", r.local, err)
		}
		r.nsend, r.sent = 0, 0
		for i := 0; i < r.nread; i++ {
			r.serve(i)
		}
		r.flush()
		// A goroutine that never parks looks to sysmon like one that
		// hogs its P: after 10 ms it preempts it, takes the P from its
		// system call, and goes back to waking every 20 µs to watch the
		// Ps. Yielding now and then shows it the reader moves on; not
		// at every batch, as each yield also wakes an idle P's thread.
		if now := time.Now(); now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = now
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
func (r *udpReader) flush() {
	r.send()
	clear(r.sdata[:r.nsend])
	r.nsend, r.sent = 0, 0
}

// recv reads the next batch with recvmmsg. While queries are waiting it
// does not tell the runtime it is in a system call (see the comment at
// the top); only when the socket is empty does it wait, in a recvmmsg
// that returns with the first query.
func (r *udpReader) recv() error {
	for i := range r.rh {
		h := &r.rh[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if r.wild {
			h.SetControllen(oobSize)
		}
		h.Flags = 0
	}
	wait := false
	for {
		var n uintptr
		var e unix.Errno
		if wait {
			n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.rh[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
		} else {
			n, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.rh[0])), udpBatch, unix.MSG_DONTWAIT, 0, 0)
		}
		switch e {
		case 0:
			r.nread = int(n)
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			wait = true
			continue
		}
		r.nread = 0
		return e
	}
}

// send is sendmmsg of the queued answers, without waiting (as recv) unless
// the socket's buffer is full. An answer the kernel refuses is dropped, as
// a lost datagram.
func (r *udpReader) send() {
	wait := false
	for r.sent < r.nsend {
		var n uintptr
		var e unix.Errno
		if wait {
			n, _, e = unix.Syscall6(unix.SYS_SENDMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.sh[r.sent])), uintptr(r.nsend-r.sent), 0, 0, 0)
		} else {
			n, _, e = unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.sh[r.sent])), uintptr(r.nsend-r.sent), unix.MSG_DONTWAIT, 0, 0)
		}
		switch {
		case e == 0:
			r.sent += int(n)
			wait = false
		case e == unix.EINTR:
		case e == unix.EAGAIN && !wait:
			wait = true
		default:
			if !r.stopping.Load() {
				r.s.log.Debug("dnsbl: UDP write", "addr", r.local, "err", e)
			}
			r.sent++
		}
	}
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
