package tests

import (
	"crypto/md5"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
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
func TestJeOSTwoVCPUs(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	job := fmt.Sprintf("dd if=/dev/zero bs=1M count=%d status=none | md5sum", smpSliceMiB)
	command := strings.Join([]string{
		"cat /sys/devices/system/cpu/online",
		// CPU 1 offline (it halts with interrupts off) and back online
		// (INIT and STARTUP again): the jobs below run on the restart.
		"echo 0 > /sys/devices/system/cpu/cpu1/online",
		"echo SMP-OFFLINE", "cat /sys/devices/system/cpu/online",
		"echo 1 > /sys/devices/system/cpu/cpu1/online",
		"echo SMP-ONLINE", "cat /sys/devices/system/cpu/online",
		"echo SMP-BEFORE", "cat /proc/stat",
		job + " & " + job + " & wait",
		"echo SMP-AFTER", "cat /proc/stat",
		"cat /proc/interrupts",
	}, "; ")
	vm := jeosVM(img, kernel, `console=ttyS0 jeos.exec="`+command+`" `+jeos.PoweroffArg)
	vm.VCPUs = 2
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 4 * time.Minute}, vm)
	r.Expect("juice: vm jeos: starting (256 MiB, 2 vCPU)")
	r.ExpectMatch("the kernel bringing up both CPUs", contains("smp: Brought up 1 node, 2 CPUs"))
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	t.Logf("both CPUs up and user space reached after %v", time.Since(start).Round(time.Second))
	online := func(when, want string) {
		t.Helper()
		l, err := r.M.Console.Wait(r.ctx, r.next, cpuListRE.MatchString)
		if err != nil {
			r.fail("the online CPUs "+when, err)
		}
		r.next = l.Index + 1
		if got := strings.TrimSpace(strings.TrimPrefix(l.Text, "[jeos] ")); got != want {
			t.Errorf("online CPUs %s: %q, want %q", when, got, want)
		}
	}
	online("at boot", "0-1")
	r.ExpectNext("[jeos] SMP-OFFLINE")
	online("with CPU 1 taken offline", "0")
	r.ExpectNext("[jeos] SMP-ONLINE")
	online("with CPU 1 back online", "0-1")
	r.ExpectMatch("the end of the command", contains("JEOS-EXEC status="))
	t.Logf("parallel jobs done after %v", time.Since(start).Round(time.Second))
	r.Expect("juice: vm jeos: exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)

	lines := r.Texts()
	if !containsLine(lines, "JEOS-EXEC status=0") {
		t.Errorf("the command failed: %q", r.Find("[jeos] JEOS-EXEC"))
	}
	want := fmt.Sprintf("%x", md5.Sum(make([]byte, smpSliceMiB<<20)))
	sums := 0
	for _, l := range lines {
		if m := md5LineRE.FindStringSubmatch(l); m != nil {
			if m[1] != want {
				t.Errorf("a job's digest %s, want %s", m[1], want)
			}
			sums++
		}
	}
	if sums != 2 {
		t.Errorf("%d digests on the console, want 2 (one per job)", sums)
	}

	// CPU 1's busy time (user, nice, system) before and after the jobs.
	var busy [2][2]uint64 // [before/after][cpu]
	phase := -1
	for _, l := range lines {
		switch {
		case strings.HasSuffix(l, "SMP-BEFORE"):
			phase = 0
		case strings.HasSuffix(l, "SMP-AFTER"):
			phase = 1
		}
		if m := procStatCPURE.FindStringSubmatch(l); m != nil && phase >= 0 {
			cpu, _ := strconv.Atoi(m[1])
			var sum uint64
			for _, f := range m[2:] {
				n, _ := strconv.ParseUint(f, 10, 64)
				sum += n
			}
			busy[phase][cpu] = sum
		}
	}
	d0, d1 := busy[1][0]-busy[0][0], busy[1][1]-busy[0][1]
	t.Logf("busy ticks during the jobs: CPU 0 %d, CPU 1 %d", d0, d1)
	if busy[1][1] == 0 || d1 == 0 {
		t.Errorf("CPU 1 did none of the work (busy ticks %v)", busy)
	}

	intr := map[string][2]uint64{}
	for _, l := range lines {
		if m := procIntrRE.FindStringSubmatch(l); m != nil {
			a, _ := strconv.ParseUint(m[2], 10, 64)
			b, _ := strconv.ParseUint(m[3], 10, 64)
			intr[m[1]] = [2]uint64{a, b}
		}
	}
	t.Logf("interrupts (CPU 0, CPU 1): %v", intr)
	if intr["LOC"][1] == 0 {
		t.Errorf("CPU 1 took no local timer interrupts: %v", intr["LOC"])
	}
	if intr["RES"][1]+intr["CAL"][1] == 0 {
		t.Errorf("CPU 1 took no rescheduling or function-call IPIs: RES %v CAL %v", intr["RES"], intr["CAL"])
	}
}

// containsLine reports whether some line contains s.
func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
