package tests

import (
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
)

// BochsTimeout bounds one Bochs boot of juice. Bochs emulates an Intel
// CPU with VT-x far slower than QEMU TCG: the self-test boot takes 12 s
// (64 MiB) to 30-65 s (256 MiB) wall on the build machines, longer with
// several CPUs or when other emulators share the host's.
const BochsTimeout = 300 * time.Second

// The self-test under Bochs's corei7_skylake_x model: juice boots from the
// GRUB ISO, finds VT-x with EPT and the TSC-deadline timer, passes every
// check, and powers off through ACPI with status 0 (Bochs itself exits with
// 1 after the power-off; the status comes from juice's line). 64 MiB keeps
// it short: with 256 MiB the same boot takes about 2.5 times as long
// (bochs_slow_test.go runs that).
func TestSelftestBochs(t *testing.T) {
	t.Parallel()
	selftestBochs(t, "64M", 1)
}

// selftestBochs runs the self-test under Bochs with mem of RAM and cpus
// processors and checks the protocol, the CPU lines and the ending.
func selftestBochs(t *testing.T, mem string, cpus int) {
	r := Boot(t, launch.Config{Emulator: launch.EmulatorBochs, Mem: mem, CPUs: cpus, Append: launch.SelftestArgs, Timeout: BochsTimeout})
	start := time.Now()
	r.ExpectNext("juice: booted by multiboot2")
	r.ExpectNext("boot: entry to main ")
	if banner := r.ExpectNext("juice "); !strings.Contains(banner, "GenuineIntel") {
		t.Errorf("banner %q does not name an Intel CPU", banner)
	}
	vmx := r.ExpectNext("cpu: VMX")
	if !strings.Contains(vmx, "EPT") {
		t.Errorf("VMX line %q does not mention EPT", vmx)
	}
	timer := r.ExpectNext("cpu: TSC ")
	if !strings.Contains(timer, "timer TSC-deadline") {
		t.Errorf("TSC line %q: want the TSC-deadline timer", timer)
	}
	memory := r.ExpectNext("memory: ")
	done := r.ExpectNext("selftest: done in ")
	r.ExpectNext("mem: footprint ")
	r.ExpectNext("juice: power off, status 0")
	res := r.ExpectExit(0)
	if res.Outcome != launch.PowerOff {
		t.Errorf("ended by %v, want an ACPI power-off", res.Outcome)
	}
	if !strings.Contains(res.Reason, "soft power off") {
		t.Errorf("Bochs stopped for %q, want the ACPI soft power-off", res.Reason)
	}
	checkSelftestLines(t, r.Texts(), done)
	if f := r.Find("juice: fatal: "); len(f) > 0 {
		t.Errorf("fatal error: %q", f)
	}
	t.Logf("Bochs self-test boot (%s, %d CPU): %v wall; %s; %s", mem, cpus, time.Since(start).Round(time.Second), memory, done)
}
