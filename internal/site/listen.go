package site

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/config"
)

// groupID is the id of the group a key names, -1 for "". Validate has
// checked it exists; it is looked up again for the id.
func groupID(name, key string) (int, error) {
	if name == "" {
		return -1, nil
	}
	id, err := config.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return id, nil
}

// ensureDataDir creates the data directory where it is missing: 0750, or,
// with admin.group, 0710 and that group, so that its members can reach
// admin.sock without reading the keys and the database.
func ensureDataDir(dir string, adminGID int, adminGroup string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if adminGID < 0 {
		return nil
	}
	if err := giveToGroup(dir, adminGID, adminGroup, 0o710); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	return nil
}

// giveToGroup sets path's group and mode. Only root, or a member of the
// group, may give a file to a group: the error says so.
func giveToGroup(path string, gid int, group string, mode os.FileMode) error {
	if err := os.Chown(path, -1, gid); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("giving %s to group %s: %w (make dstd's user a member: usermod -aG %s USER, then restart dstd)", path, group, err, group)
		}
		return fmt.Errorf("giving %s to group %s: %w", path, group, err)
	}
	return os.Chmod(path, mode)
}

// ensureSpool creates the spool (dstc's submission directory: it holds
// tmp/, new/ and the NNTP socket) where it is missing. With
// nntp.submit_group, what it creates is that group's, mode 3770 whatever
// the umask: setgid, so the files dstc writes keep the group and dstd can
// read them, and sticky, so that a member can neither remove another's
// report nor swap tmp/, new/ or the socket for a link of its own (dstd
// would then read and delete files elsewhere). Without, 0700: only dstd's
// user may submit. Directories that exist are the administrator's and keep
// their modes, but a spool the submission group cannot write, or that is
// not sticky, is worth a warning.
func ensureSpool(dir string, gid int, group string, log *slog.Logger) error {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new")} {
		if fi, err := os.Stat(d); err == nil {
			if gid < 0 {
				continue
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			fix := fmt.Sprintf("chgrp %s %s && chmod 3770 %s", group, d, d)
			if ok && (int(st.Gid) != gid || fi.Mode().Perm()&0o070 != 0o070) {
				log.Warn("the spool directory is not writable by nntp.submit_group: dstc run by its members cannot spool while dstd is down",
					"dir", d, "group", group, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()), "fix", fix)
			} else if fi.Mode()&os.ModeSticky == 0 {
				log.Warn("the spool directory is not sticky: a member of nntp.submit_group can remove others' reports, or swap a directory for a link",
					"dir", d, "group", group, "fix", fix)
			}
			continue
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating the spool directory: %w", err)
		}
		if gid < 0 {
			if err := os.Chmod(d, 0o700); err != nil {
				return fmt.Errorf("creating the spool directory: %w", err)
			}
			continue
		}
		if err := giveToGroup(d, gid, group, 0o770|os.ModeSetgid|os.ModeSticky); err != nil {
			return fmt.Errorf("creating the spool directory: %w", err)
		}
	}
	return nil
}

// ensureSocketDir creates the directory of a socket (admin.socket,
// nntp.socket) where it is missing: 0710 and the socket's group, so that
// its members reach the socket without listing the directory, or 0700
// without a group. A directory elsewhere than in data_dir, such as
// /run/dst, is usually root's to make: when dstd cannot, the error names
// the directory and the command that makes it.
func ensureSocketDir(path string, gid int, group, key string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		owner := "USER:GROUP"
		if u, uerr := user.Current(); uerr == nil {
			owner = u.Username
			if g, gerr := user.LookupGroupId(u.Gid); gerr == nil {
				owner += ":" + g.Name
			}
		}
		fix := fmt.Sprintf("create it as root: install -d -m 0711 -o %s %s", strings.Replace(owner, ":", " -g ", 1), dir)
		if strings.HasPrefix(dir, "/run/") {
			// /run is emptied at boot: a command is not enough.
			fix += fmt.Sprintf(", and at each boot: RuntimeDirectory=%s in dstd's unit, or a tmpfiles.d line", strings.TrimPrefix(dir, "/run/"))
		}
		return fmt.Errorf("%s %s: its directory %s is missing and dstd cannot create it: %w (%s)", key, path, dir, err, fix)
	}
	if gid < 0 {
		return nil
	}
	if err := giveToGroup(dir, gid, group, 0o710); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", key, err)
	}
	return nil
}

// warnUnreachable logs when the members of group cannot reach the socket at
// path because a directory above it does not let them through: the mode and
// group of the socket are then no help, and they would see "permission
// denied" with no hint of why. A member passes a directory that is the
// group's by its group x bit, and any other by its others x bit (0711, as
// /run/dst): the kernel takes the group bits, not the others', for the
// members of a directory's group, so 0701 with group shuts them out.
func warnUnreachable(log *slog.Logger, path, group string, gid int, key string) {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return
		}
		perm := fi.Mode().Perm()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			ownGroup := int(st.Gid) == gid
			if (ownGroup && perm&0o010 == 0) || (!ownGroup && perm&0o001 == 0) {
				fix := fmt.Sprintf("chgrp %s %s && chmod g+x %s", group, dir, dir)
				if ownGroup {
					fix = "chmod g+x " + dir
				}
				log.Warn("members of "+key+" cannot reach the socket: a directory above it does not let them through",
					"socket", path, "group", group, "dir", dir, "mode", fmt.Sprintf("%04o", perm), "fix", fix)
				return
			}
		}
		if dir == filepath.Dir(dir) {
			return
		}
	}
}

// listenNNTP binds nntp.listen, tls.listen and nntp.socket. What it bound
// before an error, Close closes.
func (s *Site) listenNNTP() error {
	for _, a := range s.cfg.NNTP.Listen {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			return fmt.Errorf("NNTP listener: %w (nntp.listen: stop what holds the port, or pick another port)", err)
		}
		s.nntpLs = append(s.nntpLs, l)
		s.nntpTCP = append(s.nntpTCP, l.Addr())
		s.listenAddrs = append(s.listenAddrs, l.Addr().String())
	}
	for _, a := range s.cfg.TLS.Listen {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			return fmt.Errorf("NNTPS listener: %w (tls.listen: stop what holds the port, or pick another port)", err)
		}
		s.nntpLs = append(s.nntpLs, tls.NewListener(l, s.srv.TLSConfig))
		s.nntpTLS = append(s.nntpTLS, l.Addr())
		s.listenAddrs = append(s.listenAddrs, "tls:"+l.Addr().String())
	}
	if s.cfg.NNTP.Socket != "" {
		// Whoever can connect injects reports signed with the site's
		// key: dstd's user and root, and nntp.submit_group's members.
		mode := os.FileMode(0o600)
		if s.submitGID >= 0 {
			mode = 0o660
		}
		l, err := listenUnix(s.cfg.NNTP.Socket, mode, s.submitGID, s.cfg.NNTP.SubmitGroup)
		if err != nil {
			return fmt.Errorf("NNTP socket: %w", err)
		}
		s.nntpLs = append(s.nntpLs, l)
		s.listenAddrs = append(s.listenAddrs, s.cfg.NNTP.Socket)
		if s.submitGID >= 0 {
			warnUnreachable(s.log, s.cfg.NNTP.Socket, s.cfg.NNTP.SubmitGroup, s.submitGID, "nntp.submit_group")
		}
	}
	return nil
}

// listenAdmin binds admin.socket and admin.listen.
func (s *Site) listenAdmin() error {
	// Whoever can connect may delist and cancel network-wide: dstd's
	// user and root (who ignores modes), and admin.group's members.
	mode := os.FileMode(0o600)
	if s.adminGID >= 0 {
		mode = 0o660
	}
	l, err := listenUnix(s.cfg.Admin.Socket, mode, s.adminGID, s.cfg.Admin.Group)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	s.adminLs = append(s.adminLs, l)
	if s.adminGID >= 0 {
		warnUnreachable(s.log, s.cfg.Admin.Socket, s.cfg.Admin.Group, s.adminGID, "admin.group")
	}
	if !s.cfg.Admin.Listen.IsZero() {
		if s.cfg.Admin.TokenFile != "" {
			tok, err := admin.ReadTokenFile(s.cfg.Admin.TokenFile)
			if err != nil {
				return fmt.Errorf("admin.token_file: %w", err)
			}
			s.adminToken = tok
		}
		l, err := net.Listen("tcp", s.cfg.Admin.Listen.String())
		if err != nil {
			return fmt.Errorf("admin listener: %w (admin.listen: stop what holds the port, or pick another port)", err)
		}
		s.adminLs = append(s.adminLs, l)
	}
	return nil
}

// listenDNS binds UDP and TCP on each of dns.listen, so that the embedded
// server's port in use fails the start like any other.
func (s *Site) listenDNS() error {
	if s.dns.server == nil {
		return nil
	}
	for _, a := range s.cfg.DNS.Listen {
		pc, l, err := listenUDPTCP(a.String(), a.Port == "0")
		if err != nil {
			return fmt.Errorf("DNS listener: %w (dns.listen: stop what holds the port, or pick another port)", err)
		}
		s.dnsPCs = append(s.dnsPCs, pc)
		s.dnsLs = append(s.dnsLs, l)
	}
	return nil
}

// listenUDPTCP binds UDP and then TCP on the port UDP got, so that ":0"
// yields one port for both. The kernel picks the UDP port without looking
// at TCP, where that port may be some connection's local end; with
// anyPort, another port is tried then, as the administrator asked for
// none in particular.
func listenUDPTCP(addr string, anyPort bool) (net.PacketConn, net.Listener, error) {
	return listenUDPThenTCP(net.ListenPacket, addr, anyPort)
}

// maxPortTries bounds listenUDPTCP's attempts with anyPort.
const maxPortTries = 20

// listenUDPThenTCP is listenUDPTCP with the UDP bind given, so that a test
// can hand it a port whose TCP side is taken, which the kernel does only
// by chance.
func listenUDPThenTCP(listenPacket func(network, addr string) (net.PacketConn, error), addr string, anyPort bool) (net.PacketConn, net.Listener, error) {
	for try := 1; ; try++ {
		pc, err := listenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if !anyPort || try == maxPortTries {
			return nil, nil, err
		}
	}
}

// listenUnix replaces a stale socket file left by a crash; the store's lock
// already guarantees no other dstd runs on this data directory. The socket
// gets mode, and group gid unless it is -1. Between bind and chmod the
// socket has the umask's mode; the directory it is in (spool 3770 or 0700,
// data directory 0750 or 0710) keeps others out meanwhile.
func listenUnix(path string, mode os.FileMode, gid int, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		err = giveToGroup(path, gid, group, mode)
	} else {
		err = os.Chmod(path, mode)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
