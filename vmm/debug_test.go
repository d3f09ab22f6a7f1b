package vmm

import (
	"testing"
	"time"
)

// TestDumpWhileHalted: a dump request wakes a halted vCPU, which reports
// itself halted with its RIP and pending interrupt, and halts again (the
// HLT does not complete without an interrupt).
func TestDumpWhileHalted(t *testing.T) {
	tv := newTestVM(t, Config{})
	tv.AddInterruptSource()
	v := tv.VCPU(0)
	v.Regs.RFLAGS = rflagsFixed | rflagsIF
	v.Regs.RIP = 0x1000
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	done := make(chan struct{})
	go func() {
		tv.step(v)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	got := make(chan VCPUDump, 1)
	tv.RequestDump(func(_ *VCPU, d VCPUDump) { got <- d })
	var d VCPUDump
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("a halted vCPU did not answer the dump")
	}
	if !d.Halted || d.RIP != 0x1001 || d.LastExit != ExitHLT || d.Exits != 1 {
		t.Fatalf("dump %+v: want halted at RIP 0x1001 after one HLT exit", d)
	}
	select {
	case <-done:
		t.Fatal("the dump ended the halt")
	case <-time.After(30 * time.Millisecond):
	}
	tv.Interrupt(0, 0x40)
	<-done
	// A running vCPU answers at its next entry, with the interrupt the
	// core holds.
	tv.Interrupt(0, 0x41)
	tv.RequestDump(func(_ *VCPU, d VCPUDump) { got <- d })
	tv.script(0, fakeStep{exit: Exit{Reason: ExitNone}})
	v.HasPending = true // keep 0x41 in the core's IRR
	tv.step(v)
	d = <-got
	if d.Halted || d.CoreIRR[1]&(1<<1) == 0 {
		t.Fatalf("dump %+v: want a running vCPU with vector 0x41 pending", d)
	}
}
