package tests

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
)

// Host SMP: juice starts every CPU of the machine, runs the Go runtime on
// all of them, and runs guests on them.

// ranRE is the per-CPU line juice prints after the self-test and the
// stress run on a machine with several CPUs.
var ranRE = regexp.MustCompile(`^(?:smp|smpstress): cpu ([0-9]+) \(apic ([0-9]+)\) ran threads for ([0-9]+) ms, ([0-9]+) switches`)

// expectCPUsOnline checks the start-up report of a machine with n CPUs
// that all came up: one "online" line per CPU after the first, in order,
// then the count and the banner.
func expectCPUsOnline(t *testing.T, r *Run, n int) {
	t.Helper()
	for k := 1; k < n; k++ {
		r.ExpectNext(fmt.Sprintf("smp: cpu %d (apic %d) online", k, k))
	}
	expectCPUCount(t, r, n, n)
}

// expectCPUCount checks the "smp: N of M CPUs online" line and that the
// banner says the same.
func expectCPUCount(t *testing.T, r *Run, online, n int) {
	t.Helper()
	r.ExpectNext(fmt.Sprintf("smp: %d of %d CPUs online", online, n))
	mem := r.ExpectNext("memory: ")
	if want := fmt.Sprintf("%d CPUs running (of %d in the MADT)", online, n); !strings.Contains(mem, want) {
		t.Errorf("banner %q does not say %q", mem, want)
	}
}

// checkEveryCPURan checks that a per-CPU statistics line exists for each
// CPU in cpus and that each ran threads.
func checkEveryCPURan(t *testing.T, r *Run, cpus []int) {
	t.Helper()
	ran := map[int]int{}
	for _, l := range r.Texts() {
		m := ranRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		k, _ := strconv.Atoi(m[1])
		ms, _ := strconv.Atoi(m[3])
		ran[k] = ms
	}
	for _, k := range cpus {
		ms, ok := ran[k]
		switch {
		case !ok:
			t.Errorf("no statistics line for cpu %d", k)
		case ms == 0:
			t.Errorf("cpu %d ran no thread", k)
		}
	}
	if len(ran) != len(cpus) {
		t.Errorf("statistics for CPUs %v, want %v", ran, cpus)
	}
}

// The self-test on two CPUs (make test-slow: four): every CPU reports
// in, the runtime sees them all (GOMAXPROCS), every check passes, and
// every CPU ran threads.
func TestSMPSelftest(t *testing.T) {
	t.Parallel()
	smpSelftest(t, 2)
}

// smpSelftest boots the self-test on n CPUs. QEMU runs a host thread per
// CPU; the harness runs it alone on a small host (see slots): on an
// overcommitted host a virtual CPU holding a lock is stalled while the
// others spin, and the self-test's timing checks fail.
func smpSelftest(t *testing.T, n int) {
	r := Boot(t, launch.Config{Mem: "128M", CPUs: n, Append: launch.SelftestArgs, Timeout: 4 * time.Minute})
	r.ExpectNext("juice: booted by pvh")
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	expectCPUsOnline(t, r, n)
	done := r.ExpectNext("selftest: done in ")
	r.ExpectNext("juice: power off, status 0")
	r.ExpectExit(0)
	checkSelftestLines(t, r.Texts(), done)
	checkEveryCPURan(t, r, all)
}

// A CPU that does not answer its start-up IPIs (juice.mode=smpfailtest
// withholds them from the last one) is reported and left out; the others
// run the self-test.
// (make test-slow: three CPUs.)
func smpCPUFails(t *testing.T) {
	r := Boot(t, launch.Config{Mem: "128M", CPUs: 3, Append: "juice.mode=smpfailtest juice.panic=poweroff"})
	r.ExpectNext("juice: booted by pvh")
	r.ExpectNext("smp: cpu 1 (apic 1) online")
	r.ExpectNext("smp: cpu 2 (apic 2) did not start; left out")
	expectCPUCount(t, r, 2, 3)
	done := r.ExpectNext("selftest: done in ")
	r.ExpectExit(0)
	checkSelftestLines(t, r.Texts(), done)
	checkEveryCPURan(t, r, []int{0, 1})
}

// Guests on two CPUs. By default AMD-V is enabled on both and vCPUs run
// on either (each entry checks where it is and flushes the vCPU's ASID
// after a move); juice.vcpus=boot keeps AMD-V and the vCPUs, pinned, on the
// boot CPU. Either way both VMs run to their ends. QEMU runs the CPUs in
// one thread here (launch's choice for guests on several CPUs: see
// launch.Config.SingleTCGThread).
func TestSMPGuests(t *testing.T) {
	for _, c := range []struct {
		name, append, enabled string
		pinned                bool
	}{
		{"spread", "", "juice: svm enabled on cpus [0 1]; vCPUs run on any of them", false},
		{"boot", "juice.vcpus=boot", "juice: svm enabled on cpus [0]; vCPUs stay on the CPU they are placed on", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := BootVMs(t, launch.Config{Mem: "128M", CPUs: 2, Append: c.append},
				launch.VMSpec{Name: "timer"},
				launch.VMSpec{Name: "spin"})
			r.ExpectNext("smp: 2 of 2 CPUs online")
			r.ExpectNext(c.enabled)
			r.Expect(GuestLine("timer", "timer: done"))
			r.Expect(VMEnd("timer") + "exited with status 0")
			r.Expect(GuestLine("spin", "spin done"))
			r.Expect(VMEnd("spin") + "exited with status 0")
			r.ExpectExit(0)
			for _, vm := range []string{"timer", "spin"} {
				placed := r.Find(VMEnd(vm) + "vCPU 0 runs on cpu 0")
				if c.pinned != (len(placed) == 1) {
					t.Errorf("vm %s: placement lines %q; pinned to cpu 0: %v", vm, placed, c.pinned)
				}
			}
			noFailLines(t, r, "timer")
			noFailLines(t, r, "spin")
			moves := r.Find(VMEnd("spin") + "its vCPUs changed host CPU ")
			if c.pinned == (len(moves) == 1) {
				t.Errorf("vCPU move counts %q with pinned vCPUs: %v", moves, c.pinned)
			}
			t.Logf("%q", moves)
			if f := r.Find("juice: fatal"); len(f) > 0 {
				t.Errorf("fatal: %q", f)
			}
		})
	}
}

// stressRun boots juice.mode=smpstress on n CPUs for secs seconds and
// checks the verdict and that every CPU ran threads.
func stressRun(t *testing.T, n, secs int) {
	t.Helper()
	r := Boot(t, launch.Config{Mem: "256M", CPUs: n, Timeout: BootTimeout + time.Duration(secs)*time.Second,
		Append: fmt.Sprintf("juice.mode=smpstress juice.stress=%d juice.panic=poweroff", secs)})
	r.ExpectNext(fmt.Sprintf("smp: %d of %d CPUs online", n, n))
	r.ExpectNext(fmt.Sprintf("smpstress: %d CPUs, GOMAXPROCS %d, running for %v", n, n, time.Duration(secs)*time.Second))
	t.Log(r.ExpectMatch("the stress figures", regexp.MustCompile(`^smpstress: [0-9]+ CPUs, [0-9]+ workers`).MatchString))
	r.ExpectMatch("the stress verdict", regexp.MustCompile(`^smpstress: (pass|FAIL)`).MatchString)
	if fails := r.Find("smpstress: FAIL"); len(fails) > 0 {
		r.Wait()
		t.Fatalf("stress run failed: %q", fails)
	}
	r.ExpectExit(0)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	checkEveryCPURan(t, r, all)
}

// A short stress run on two CPUs (make test-slow runs a long one on four).
func TestSMPStress(t *testing.T) {
	t.Parallel()
	stressRun(t, 2, 15)
}

// The manifest's "pin" binds a VM's vCPUs to host CPUs: both VMs run on
// cpu 1 of two, stay there (no move is counted), and run to their ends;
// a VM pinned to a CPU the machine lacks is refused by name, the others
// run.
func TestSMPPinnedVMs(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M", CPUs: 2},
		launch.VMSpec{Name: "spin", Pin: []int{1}},
		launch.VMSpec{Name: "timer", Pin: []int{1}},
		launch.VMSpec{Name: "hello", Pin: []int{5}})
	r.ExpectNext("smp: 2 of 2 CPUs online")
	r.Expect("juice: vm hello: pin: host cpu 5 does not run guests here (cpus running guests: [0 1])")
	r.Expect(GuestLine("timer", "timer: done"))
	r.Expect(GuestLine("spin", "spin done"))
	r.Expect(VMEnd("spin") + "exited with status 0")
	r.ExpectExit(0)
	for _, vm := range []string{"spin", "timer"} {
		if got := r.Find("juice: vm " + vm + ": vCPU 0 runs on cpu 1 (pinned)"); len(got) != 1 {
			t.Errorf("vm %s: placement lines %q", vm, got)
		}
		if moves := r.Find(VMEnd(vm) + "its vCPUs changed host CPU "); len(moves) > 1 || len(moves) == 1 && !strings.HasSuffix(moves[0], " 0 times") {
			t.Errorf("vm %s moved though pinned: %q", vm, moves)
		}
		noFailLines(t, r, vm)
	}
}
