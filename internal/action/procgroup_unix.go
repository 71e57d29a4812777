//go:build unix

package action

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the program in a process group of its own and makes
// the context's cancellation kill that whole group: a shell script's
// children (a sleep, a curl) die with it instead of lingering.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
