//go:build unix

package azuritetest

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts Azurite (node and anything it spawns) in its own
// process group so that killProcessGroup stops all of it.
func ownProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
