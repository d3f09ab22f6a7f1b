package launch

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Exit codes of `juice run` that do not come from the guest. A guest status
// (debug-exit or power-off) is passed through as the exit code.
const (
	// ExitTimeout: the run exceeded --timeout and the emulator was killed.
	ExitTimeout = 124
	// ExitReset: QEMU ended with status 0 and no power-off line: under
	// -no-reboot that is a guest reset or triple fault. Under Bochs: a
	// triple fault, a reset, or a shutdown without the power-off line.
	ExitReset = 125
	// ExitQEMUFailed: the emulator reported an error (bad option, missing
	// file…).
	ExitQEMUFailed = 126
	// ExitNoQEMU: the emulator could not be started at all.
	ExitNoQEMU = 127
	// ExitKilled: the run was interrupted (signal or caller).
	ExitKilled = 130
)

// PanicStatus is the debug-exit status juice reports after a fatal error
// with juice.panic=poweroff (QEMU exit code 255).
const PanicStatus = 127

// Outcome classifies how an emulator run ended.
type Outcome int

// The outcomes of a run.
const (
	// DebugExit: the guest wrote its status to the isa-debug-exit port.
	DebugExit Outcome = iota + 1
	// PowerOff: QEMU exited normally and juice's last console line said it
	// powered off with a status.
	PowerOff
	// Reset: QEMU exited normally without a power-off line: a reset or a
	// triple fault (the run uses -no-reboot).
	Reset
	// TimedOut: the run exceeded its time limit and was killed.
	TimedOut
	// Killed: the run was stopped by the caller, by a signal, or by the
	// user through the QEMU monitor.
	Killed
	// QEMUFailed: the emulator itself failed (see Result.Stderr and
	// Result.Reason).
	QEMUFailed
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case DebugExit:
		return "debug-exit"
	case PowerOff:
		return "power-off"
	case Reset:
		return "reset"
	case TimedOut:
		return "timed out"
	case Killed:
		return "killed"
	case QEMUFailed:
		return "qemu failed"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is how a run ended.
type Result struct {
	// Outcome classifies the end.
	Outcome Outcome
	// Status is the guest's status for DebugExit and PowerOff, else 0.
	Status int
	// QEMUCode is the emulator's process exit code, -1 if it died by a
	// signal.
	QEMUCode int
	// Stderr is what QEMU wrote to its standard error; for Bochs, its
	// standard output and error and the end of its log.
	Stderr string
	// Emulator is the emulator that ran; empty means EmulatorQEMU.
	Emulator Emulator
	// Reason is the emulator's own account of why it stopped, where it
	// gives one (Bochs, see BochsExitMessage), or why the run was
	// stopped; empty for QEMU.
	Reason string
}

// Exited reports whether the guest ended the run itself with a status
// (through the debug-exit port or a power-off it announced).
func (r Result) Exited() bool { return r.Outcome == DebugExit || r.Outcome == PowerOff }

// ExitCode is the exit code `juice run` uses for this result: the guest's
// status when it exited, else one of the Exit* constants.
func (r Result) ExitCode() int {
	switch r.Outcome {
	case DebugExit, PowerOff:
		return r.Status & 0xff
	case Reset:
		return ExitReset
	case TimedOut:
		return ExitTimeout
	case Killed:
		return ExitKilled
	}
	return ExitQEMUFailed
}

// String describes the result in one line.
func (r Result) String() string {
	switch r.Outcome {
	case DebugExit:
		return fmt.Sprintf("juice exited with status %d (isa-debug-exit, QEMU exit code %d)", r.Status, r.QEMUCode)
	case PowerOff:
		return fmt.Sprintf("juice powered off with status %d", r.Status)
	case Reset:
		if r.Emulator == EmulatorBochs {
			if bochsTripleFault(r.Reason) {
				return fmt.Sprintf("juice triple-faulted (Bochs: %s)", r.Reason)
			}
			return fmt.Sprintf("the machine stopped without juice's power-off line (Bochs: %s)", r.Reason)
		}
		return "juice reset or triple-faulted (QEMU exit code 0 without a power-off line)"
	case TimedOut:
		return fmt.Sprintf("timed out: %s killed", r.Emulator)
	case Killed:
		if r.Emulator == EmulatorBochs {
			return "stopped before juice exited (killed or interrupted)"
		}
		return "stopped before juice exited (killed, interrupted, or quit from the QEMU monitor)"
	}
	if r.Reason != "" {
		return fmt.Sprintf("%s failed (exit code %d): %s", r.Emulator, r.QEMUCode, r.Reason)
	}
	return fmt.Sprintf("%s failed (exit code %d)", r.Emulator, r.QEMUCode)
}

// powerOffRE matches juice's last line before it powers off.
var powerOffRE = regexp.MustCompile(`^juice: power off, status ([0-9]+)`)

// PowerOffStatus returns the status of the last "juice: power off, status
// N" line among texts (timestamps already stripped), and whether there is
// one.
func PowerOffStatus(texts []string) (int, bool) {
	for i := len(texts) - 1; i >= 0; i-- {
		if m := powerOffRE.FindStringSubmatch(texts[i]); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil {
				return 0, false
			}
			return n, true
		}
	}
	return 0, false
}

// DebugExitCode is QEMU's exit code after the guest writes v to the
// isa-debug-exit port: (v<<1)|1, truncated to the 8 bits a process exit
// code has.
func DebugExitCode(v int) int { return (v<<1 | 1) & 0xff }

// Classify turns QEMU's exit code (code, or -1 when it died by a signal)
// into a Result, using the console texts (timestamps stripped) to tell a
// power-off from a reset and a status-0 debug exit from a QEMU error. It
// does not know about timeouts or kills: the caller overrides the outcome
// for those.
func Classify(code int, texts []string, stderr string) Result {
	r := Result{QEMUCode: code, Stderr: stderr, Emulator: EmulatorQEMU}
	status, announced := PowerOffStatus(texts)
	switch {
	case code < 0:
		r.Outcome = Killed
	case code == 0:
		if quitByMonitor(texts) {
			r.Outcome = Killed
		} else if announced {
			r.Outcome, r.Status = PowerOff, status
		} else {
			r.Outcome = Reset
		}
	case code&1 == 1:
		// QEMU's own errors also exit with 1, the code of debug-exit
		// status 0. A guest that printed nothing cannot be juice
		// reporting a status.
		if code == 1 && !announced && !anyText(texts) {
			r.Outcome = QEMUFailed
			break
		}
		r.Outcome, r.Status = DebugExit, code>>1
		if announced && DebugExitCode(status) == code {
			r.Status = status // the full value, beyond 7 bits
		}
	default:
		r.Outcome = QEMUFailed
	}
	return r
}

// quitByMonitor reports whether the last console line is QEMU's note that
// the user quit through the monitor (Ctrl-A x in an interactive run).
func quitByMonitor(texts []string) bool {
	for i := len(texts) - 1; i >= 0; i-- {
		if t := strings.TrimSpace(texts[i]); t != "" {
			return t == "QEMU: Terminated"
		}
	}
	return false
}

// anyText reports whether any of texts is non-blank.
func anyText(texts []string) bool {
	for _, t := range texts {
		for i := 0; i < len(t); i++ {
			if t[i] != ' ' && t[i] != '\t' {
				return true
			}
		}
	}
	return false
}
