//go:build !linux

package launch

import "os/exec"

// dieWithParent does nothing here: only Linux has PR_SET_PDEATHSIG.
func dieWithParent(cmd *exec.Cmd) {}
