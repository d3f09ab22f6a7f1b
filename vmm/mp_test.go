package vmm

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond (every millisecond, at most 5 s).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// exitWith makes v's exit the exit hypercall with status.
func exitWith(v *VCPU, status uint64) {
	v.Exit = Exit{Reason: ExitHypercall, InstrLen: 3}
	v.Regs.RAX, v.Regs.RBX = HypercallExit, status
}

// TestAPStartsAtSIPIVector: an application processor is created waiting
// for a STARTUP IPI and enters the guest only after one, in real mode at
// VV00:0000 (base VV000); a second STARTUP, and one to the boot vCPU, are
// ignored.
func TestAPStartsAtSIPIVector(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 3})
	tv.AddInterruptSource()
	bsp := tv.VCPU(0)
	bsp.Regs.RFLAGS = rflagsFixed | rflagsIF
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}}) // halts until the VM stops
	if bsp.WaitingForSIPI() || !tv.VCPU(1).WaitingForSIPI() || !tv.VCPU(2).WaitingForSIPI() {
		t.Fatal("wait-for-SIPI: want the APs only")
	}
	type seen struct {
		sregs SRegs
		regs  Regs
	}
	var mu sync.Mutex
	var at seen
	tv.script(1, fakeStep{exit: Exit{Reason: ExitHypercall}, pre: func(v *VCPU) {
		mu.Lock()
		at = seen{sregs: tv.fake(1).sregs, regs: v.Regs}
		mu.Unlock()
		exitWith(v, 7)
	}})
	if err := tv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if tv.fake(1).runs != 0 || tv.fake(2).runs != 0 {
		t.Fatal("an AP entered the guest before its STARTUP IPI")
	}
	if tv.StartupVCPU(0, 0x10) || tv.StartupVCPU(3, 0x10) {
		t.Fatal("STARTUP to the boot vCPU or to no vCPU accepted")
	}
	if !tv.StartupVCPU(1, 0x9a) {
		t.Fatal("STARTUP refused")
	}
	tv.StartupVCPU(1, 0x9b) // the second SIPI: ignored
	r, st, msg := tv.Wait()
	if r != Exited || st != 7 {
		t.Fatalf("stopped %v %d %q", r, st, msg)
	}
	mu.Lock()
	defer mu.Unlock()
	cs := at.sregs.CS
	if cs.Selector != 0x9a00 || cs.Base != 0x9a000 || cs.Limit != 0xffff || at.regs.RIP != 0 {
		t.Fatalf("AP started at CS %+v IP %#x, want 9a00:0000 base 0x9a000", cs, at.regs.RIP)
	}
	if at.sregs.CR0 != 0x60000010 || at.sregs.EFER != 0 || at.regs.RFLAGS != rflagsFixed {
		t.Fatalf("AP not in the INIT state: CR0 %#x EFER %#x RFLAGS %#x", at.sregs.CR0, at.sregs.EFER, at.regs.RFLAGS)
	}
	if a, _, _, _ := tv.CPUID().Lookup(1, 1, 0); at.regs.RDX != uint64(a) {
		t.Fatalf("AP's EDX %#x, want the signature %#x", at.regs.RDX, a)
	}
	if tv.fake(2).runs != 0 || !tv.VCPU(2).WaitingForSIPI() {
		t.Fatal("vCPU 2 ran without a STARTUP IPI")
	}
}

// TestINITRestartsAP: an INIT stops an AP whatever it does (running,
// halted, halted with interrupts off), puts it in the INIT state (keeping
// the TSC offset and PAT) waiting for a STARTUP IPI, and a STARTUP starts
// it again at the new vector.
func TestINITRestartsAP(t *testing.T) {
	for _, c := range []struct {
		name string
		exit Exit
		flag uint64
	}{
		{"running", Exit{Reason: ExitPause, InstrLen: 2}, rflagsIF},
		{"halted", Exit{Reason: ExitHLT, InstrLen: 1}, rflagsIF},
		{"halted with interrupts off", Exit{Reason: ExitHLT, InstrLen: 1}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tv := newTestVM(t, Config{VCPUs: 2})
			tv.AddInterruptSource()
			tv.VCPU(0).Regs.RFLAGS = rflagsFixed | rflagsIF
			tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
			ap := tv.VCPU(1)
			var mu sync.Mutex
			var firstRuns, restartRIP uint64
			var restart Segment
			var restartMSR MSRState
			var restartRAX uint64
			tv.fake(1).loop = true
			tv.script(1, fakeStep{pre: func(v *VCPU) {
				f := tv.fake(1)
				if f.sregs.CS.Selector == 0x2000 { // the second start
					mu.Lock()
					restart, restartRIP, restartMSR, restartRAX = f.sregs.CS, v.Regs.RIP, f.msr, v.Regs.RAX
					mu.Unlock()
					exitWith(v, 5)
					return
				}
				mu.Lock()
				firstRuns++
				mu.Unlock()
				v.Regs.RAX = 0x1234
				v.Regs.RFLAGS = rflagsFixed | c.flag
				v.MSR.TSCOffset, v.MSR.PAT = 777, 0x0606060606060606
				v.Exit = c.exit
			}})
			if err := tv.Start(); err != nil {
				t.Fatal(err)
			}
			tv.StartupVCPU(1, 0x10)
			waitFor(t, "the AP ran", func() bool { mu.Lock(); defer mu.Unlock(); return firstRuns > 0 })
			time.Sleep(5 * time.Millisecond)
			if !tv.InitVCPU(1) {
				t.Fatal("INIT refused")
			}
			waitFor(t, "the AP waits for a STARTUP again", func() bool { return ap.WaitingForSIPI() && ap.c.parked.Load() })
			tv.wantRunning(t)
			mu.Lock()
			n := firstRuns
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			if firstRuns != n {
				t.Fatal("the AP ran after the INIT")
			}
			mu.Unlock()
			if !tv.StartupVCPU(1, 0x20) {
				t.Fatal("STARTUP refused after INIT")
			}
			r, st, msg := tv.Wait()
			if r != Exited || st != 5 {
				t.Fatalf("stopped %v %d %q", r, st, msg)
			}
			if restart.Selector != 0x2000 || restart.Base != 0x20000 || restartRIP != 0 {
				t.Fatalf("restarted at %+v IP %#x", restart, restartRIP)
			}
			if restartRAX != 0 || restartMSR.TSCOffset != 777 || restartMSR.PAT != 0x0606060606060606 {
				t.Fatalf("INIT state: RAX %#x, MSRs %+v (want RAX 0, TSC offset and PAT kept)", restartRAX, restartMSR)
			}
		})
	}
}

// TestINITThenSIPIAtOnce: a STARTUP sent right after an INIT, before the
// target applied the INIT, still starts it (from the INIT state).
func TestINITThenSIPIAtOnce(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	ap := tv.VCPU(1)
	ap.Regs.RAX = 99
	tv.InitVCPU(1)
	if !tv.StartupVCPU(1, 0x30) {
		t.Fatal("STARTUP refused while the INIT is pending")
	}
	tv.mpWait(ap) // applies both, returns at once
	if ap.WaitingForSIPI() || ap.SRegs.CS.Selector != 0x3000 || ap.Regs.RAX != 0 || ap.Regs.RIP != 0 {
		t.Fatalf("after INIT+SIPI: waiting %v CS %+v RAX %#x", ap.WaitingForSIPI(), ap.SRegs.CS, ap.Regs.RAX)
	}
	if tv.StartupVCPU(1, 0x40) {
		t.Fatal("STARTUP to a running vCPU accepted")
	}
	if tv.InitVCPU(2) || tv.InitVCPU(-1) {
		t.Fatal("INIT to no vCPU accepted")
	}
}

// TestAllParkedIsHaltedForever: a VM whose every vCPU is halted with
// interrupts off or waiting for a STARTUP stops (nothing can wake it); one
// whose AP halted so while the boot vCPU runs does not.
func TestAllParkedIsHaltedForever(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	tv.VCPU(0).Regs.RFLAGS = rflagsFixed
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}, rip: 0x1000, setRIP: true})
	r, _, msg := tv.Run()
	if r != HaltedForever || !strings.Contains(msg, "vCPU 0 halted with interrupts disabled (RFLAGS 0x2) at RIP 0x1000 and every other vCPU is halted the same way or waiting for a STARTUP IPI") {
		t.Fatalf("%v %q", r, msg)
	}

	// The AP halts with interrupts off while the boot vCPU still runs:
	// the VM goes on; the boot vCPU then halts the same way: it stops.
	tv = newTestVM(t, Config{VCPUs: 2})
	bspGo := make(chan struct{})
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitNone}, pre: func(v *VCPU) { <-bspGo }},
		fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}, pre: func(v *VCPU) { v.Regs.RFLAGS = rflagsFixed }})
	tv.script(1, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}, pre: func(v *VCPU) { v.Regs.RFLAGS = rflagsFixed }})
	if err := tv.Start(); err != nil {
		t.Fatal(err)
	}
	tv.StartupVCPU(1, 0x10)
	ap := tv.VCPU(1)
	waitFor(t, "the AP halted", func() bool { return ap.c.parked.Load() && !ap.WaitingForSIPI() })
	tv.wantRunning(t)
	close(bspGo)
	r, _, msg = tv.Wait()
	if r != HaltedForever || !strings.Contains(msg, "vCPU 0 halted with interrupts disabled") {
		t.Fatalf("%v %q", r, msg)
	}
}

// TestStopEndsWaitingAPs: stopping a VM ends the goroutines of APs that
// never started (Wait returns).
func TestStopEndsWaitingAPs(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 4})
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHypercall}, pre: func(v *VCPU) { exitWith(v, 3) }})
	done := make(chan struct{})
	go func() {
		tv.Run()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return: APs waiting for SIPI kept the VM")
	}
	tv.wantStop(t, Exited, "")
	for i := 1; i < 4; i++ {
		if tv.fake(i).runs != 0 {
			t.Fatalf("vCPU %d ran", i)
		}
	}
}

// TestMPPathAllocationFree: INIT and STARTUP, sent and applied, allocate
// nothing.
func TestMPPathAllocationFree(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	ap := tv.VCPU(1)
	allocs := testing.AllocsPerRun(1000, func() {
		tv.InitVCPU(1)
		tv.StartupVCPU(1, 0x9a)
		tv.mpWait(ap)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per INIT-SIPI", allocs)
	}
}

// TestAPTripleFaultStopsVM: an AP's shutdown stops the whole VM, the
// halted boot vCPU included, with a message naming the AP.
func TestAPTripleFaultStopsVM(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	tv.AddInterruptSource()
	tv.VCPU(0).Regs.RFLAGS = rflagsFixed | rflagsIF
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	tv.script(1, fakeStep{exit: Exit{Reason: ExitShutdown, Raw: 0x7f}, rip: 0x5678, setRIP: true})
	if err := tv.Start(); err != nil {
		t.Fatal(err)
	}
	tv.StartupVCPU(1, 0x10)
	done := make(chan struct{})
	go func() { tv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the VM did not stop")
	}
	tv.wantStop(t, Shutdown, "vCPU 1 shut down (triple fault) at RIP 0x5678")
}
