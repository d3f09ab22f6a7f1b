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

// The 2-vCPU Debian guest on a juice with two host CPUs: the two vCPU
// goroutines run in parallel and move between the host CPUs (thousands
// of moves in a run). This is what found QEMU's TCG delivering an
// interrupt injected through the VMCB's EVENTINJ a second time, with the
// guest's interrupts off, when its round-robin timer kicked the CPU
// (juice now posts external interrupts through V_IRQ: svm.postVIRQ): the
// guest double-faulted in its entry code ("ENTRY_TRAMPOLINE stack guard
// page was hit") in most runs before.

// vcpuMovesRE is juice's count of a VM's vCPU moves between host CPUs.
var vcpuMovesRE = regexp.MustCompile(`^juice: vm jeos: its vCPUs changed host CPU ([0-9]+) times`)

// TestJeOSTwoVCPUsTwoCPUs is TestJeOSTwoVCPUs on a juice with two CPUs:
// the same guest and workload (both CPUs up, CPU 1 offline and back, two
// parallel jobs with the right digests, CPU 1 busy and taking timer
// interrupts and IPIs, power-off with status 0), no guest oops or double
// fault on the console, and the vCPUs did move between the host CPUs.
func TestJeOSTwoVCPUsTwoCPUs(t *testing.T) {
	r := jeosTwoVCPUs(t, 2)
	for _, s := range r.Find("[jeos] ") {
		if strings.Contains(s, "stack guard page was hit") || strings.Contains(s, "double fault") ||
			strings.Contains(s, "BUG: ") || strings.Contains(s, "Oops") {
			t.Errorf("guest kernel trouble: %q", s)
		}
	}
	moves := -1
	for _, l := range r.Texts() {
		if m := vcpuMovesRE.FindStringSubmatch(l); m != nil {
			moves, _ = strconv.Atoi(m[1])
		}
	}
	t.Logf("vCPU moves between host CPUs: %d", moves)
	if moves <= 0 {
		t.Errorf("the vCPUs never changed host CPU (count %d): not the two-CPU case", moves)
	}
}

// jeosTwoVCPUs runs TestJeOSTwoVCPUs's guest and checks on a juice with
// cpus host CPUs (0: the suite's default) and returns the run.
func jeosTwoVCPUs(t *testing.T, cpus int) *Run {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	job := fmt.Sprintf("dd if=/dev/zero bs=1M count=%d status=none | md5sum", smpSliceMiB)
	command := strings.Join([]string{
		"cat /sys/devices/system/cpu/online",
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
	r := BootVMs(t, launch.Config{Mem: "512M", CPUs: cpus, Timeout: 4 * time.Minute}, vm)
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

	var busy [2][2]uint64 // [before/after][cpu]: user, nice, system
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
	t.Logf("busy ticks during the jobs: CPU 0 %d, CPU 1 %d", busy[1][0]-busy[0][0], busy[1][1]-busy[0][1])
	if busy[1][1] == 0 || busy[1][1] == busy[0][1] {
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
	return r
}
