package launch

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the emulator cmd starts get SIGKILL when the process
// that started it dies (PR_SET_PDEATHSIG), so that a test binary killed by
// go test's time limit, or a juice command killed by its user, leaves no
// emulator running on. (The signal follows the thread that forked; Go's
// threads end only with a goroutine locked to them, which never starts
// emulators.)
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
