package tests

import (
	"regexp"
	"strings"
	"testing"
)

// The multiprocessor guest: Debian's kernel with two vCPUs under juice on
// AMD-V (QEMU TCG). juice's host is one CPU, so the two vCPU goroutines
// share it; what is tested is that the guest starts its second CPU
// through INIT and STARTUP IPIs, uses it (per-CPU timer, IPIs between the
// CPUs) and finishes work spread over both.

// smpSliceMiB is how much of /dev/zero each of the two parallel jobs
// hashes.
const smpSliceMiB = 32

var (
	// procStatCPURE is a per-CPU line of /proc/stat: user, nice, system.
	procStatCPURE = regexp.MustCompile(`^\[jeos\] cpu([01]) ([0-9]+) ([0-9]+) ([0-9]+) `)
	// procIntrRE is a line of /proc/interrupts with its two CPUs' counts.
	procIntrRE = regexp.MustCompile(`^\[jeos\]\s*([A-Z]{3}):\s+([0-9]+)\s+([0-9]+)\s`)
	// cpuListRE is the content of /sys/devices/system/cpu/online.
	cpuListRE = regexp.MustCompile(`^\[jeos\] [0-9][0-9,-]*\s*$`)
	// md5LineRE is md5sum's line for its standard input.
	md5LineRE = regexp.MustCompile(`^\[jeos\] ([0-9a-f]{32})\s*$`)
)

// TestJeOSTwoVCPUs: a JeOS VM with two vCPUs boots to user space with
// both CPUs up (the kernel's "smp: Brought up 1 node, 2 CPUs",
// /sys/devices/system/cpu/online reads 0-1); CPU 1 taken offline (it
// halts with interrupts off) and back online (a second INIT and STARTUP)
// leaves 0, then 0-1 online; two CPU-bound jobs started
// in parallel (dd from /dev/zero into md5sum) both finish with the right
// digest; CPU 1 did part of the work (its busy time in /proc/stat grew),
// took timer interrupts and rescheduling or function-call IPIs (its
// columns in /proc/interrupts); the guest powers off with status 0.
func TestJeOSTwoVCPUs(t *testing.T) { jeosTwoVCPUs(t, 0) }

// containsLine reports whether some line contains s.
func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
