package dsttest

// Real Unix users and groups for the tests of who may do what: a trap user
// that runs dstc, an administrator, a stranger. Reading file modes proves
// nothing about what the kernel lets a process do; running the programs as
// these users does.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// User is a Unix user a test created.
type User struct {
	Name   string
	UID    uint32
	GID    uint32   // its primary group, of its own name
	Groups []uint32 // supplementary groups
}

// accountsMu serialises this process's useradd and groupadd calls; other
// test binaries are waited for by retrying (they lock /etc/passwd too).
var accountsMu sync.Mutex

// NewGroup creates a system group named prefix plus the test process's pid
// and a number (so concurrent tests do not collide) and deletes it at cleanup.
// It returns the group's name and gid. It needs root.
func NewGroup(t testing.TB, prefix string) (string, uint32) {
	t.Helper()
	RequireRoot(t, "groupadd")
	name := accountName(prefix)
	accounts(t, "groupadd", "--system", name)
	t.Cleanup(func() { accountsQuiet("groupdel", name) })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatalf("group %s: %v", name, err)
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	return name, uint32(gid)
}

// NewUser creates a system user (no home, no login shell) named prefix plus
// the test process's pid, with a primary group of its own and membership in
// groups, and deletes it at cleanup. It needs root.
func NewUser(t testing.TB, prefix string, groups ...string) *User {
	t.Helper()
	RequireRoot(t, "useradd")
	name := accountName(prefix)
	args := []string{"--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	accounts(t, "useradd", append(args, name)...)
	t.Cleanup(func() {
		accountsQuiet("userdel", name)
		accountsQuiet("groupdel", name) // when userdel left the user group
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	out := &User{Name: name, UID: uint32(uid), GID: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatalf("groups of %s: %v", name, err)
	}
	for _, g := range gids {
		n, _ := strconv.ParseUint(g, 10, 32)
		if uint32(n) != out.GID {
			out.Groups = append(out.Groups, uint32(n))
		}
	}
	return out
}

// Command returns a command that runs as u, with u's groups and no others.
func (u *User) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	u.Apply(cmd)
	return cmd
}

// Apply makes cmd run as u.
func (u *User) Apply(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, u.Groups...)}
	// A home the user cannot enter would only make programs complain.
	cmd.Env = append(os.Environ(), "HOME=/", "USER="+u.Name, "LOGNAME="+u.Name)
}

// accountSeq tells apart the accounts one process makes with one prefix.
var accountSeq atomic.Int64

// accountName is prefix plus the pid and a sequence number, within the 32
// characters useradd allows.
func accountName(prefix string) string {
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), accountSeq.Add(1))
	if len(name) > 32 {
		name = name[len(name)-32:]
	}
	return name
}

// accounts runs useradd or groupadd, retrying while another process holds
// the lock on the account files.
func accounts(t testing.TB, prog string, args ...string) {
	t.Helper()
	accountsMu.Lock()
	defer accountsMu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(prog, args...).CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func accountsQuiet(prog string, args ...string) {
	accountsMu.Lock()
	defer accountsMu.Unlock()
	for range 100 {
		out, err := exec.Command(prog, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
