//go:build !unix

package action

import "os/exec"

// setProcessGroup is a no-op where there are no process groups; the
// context's cancellation then kills only the program itself.
func setProcessGroup(*exec.Cmd) {}
