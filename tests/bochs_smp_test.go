package tests

import (
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
)

// Intel VT-x on two CPUs (Bochs's corei7_skylake_x with two processors):
// juice turns VMX on on both, places the two VMs' vCPUs round-robin (the
// second VM's on cpu 1), and each VMCS, built on the CPU that built the
// VM and cleared there, runs on its vCPU's own CPU with that CPU's host
// state; both VMs end as they do on one CPU. The timer guest waits for
// timer interrupts while the spin guest exits in a loop on the other CPU.
func TestVMsVTxSMP(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "128M", CPUs: 2, Emulator: launch.EmulatorBochs, Timeout: BochsTimeout},
		launch.VMSpec{Name: "timer"},
		launch.VMSpec{Name: "spin"})
	r.ExpectNext("smp: 2 of 2 CPUs online")
	r.ExpectNext("juice: vmx enabled on cpus [0 1]; vCPUs stay on the CPU they are placed on")
	r.ExpectNext(VMEnd("timer") + "vCPU 0 runs on cpu 0")
	r.ExpectNext(VMEnd("spin") + "vCPU 0 runs on cpu 1")
	r.Expect(GuestLine("timer", "timer: done"))
	r.Expect(VMEnd("timer") + "exited with status 0")
	r.Expect(GuestLine("spin", "spin done"))
	r.Expect(VMEnd("spin") + "exited with status 0")
	r.ExpectExit(0)
	for _, vm := range []string{"timer", "spin"} {
		noFailLines(t, r, vm)
	}
	for _, l := range r.Texts() {
		if strings.Contains(l, "left out of running guests") || strings.Contains(l, "entered on cpu") || strings.HasPrefix(l, "juice: fatal") {
			t.Errorf("juice: %q", l)
		}
	}
	t.Logf("two VMs on two CPUs under Bochs: %v wall", time.Since(start).Round(time.Second))
}
