package vmm

import (
	"sync"
	"testing"
	"time"
)

func TestInterruptDelivery(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	v := tv.VCPU(0)
	f := tv.fake(0)
	f.loop = true
	tv.script(0, fakeStep{exit: Exit{Reason: ExitExtIntr}})
	if tv.Interrupt(0, 31) || tv.Interrupt(2, 0x40) || tv.Interrupt(-1, 0x40) {
		t.Fatal("bad vector or vCPU accepted")
	}
	if !tv.Interrupt(0, 0x40) || !tv.Interrupt(0, 0xfe) || !tv.Interrupt(0, 0x41) || !tv.Interrupt(0, 0x40) {
		t.Fatal("Interrupt refused")
	}
	// Interrupts off: nothing injected, a window requested.
	v.Regs.RFLAGS = rflagsFixed
	tv.step(v)
	if f.nInjected != 0 || !f.window || f.windowOn != 1 {
		t.Fatalf("injected %d window %v", f.nInjected, f.window)
	}
	tv.step(v)
	if f.windowOn != 1 {
		t.Fatal("window requested again without a change")
	}
	// Interrupts on: highest vector first, one per entry.
	v.Regs.RFLAGS |= rflagsIF
	for i, want := range []uint8{0xfe, 0x41, 0x40} {
		tv.step(v)
		ev, ok := f.lastInjected()
		if !ok || f.nInjected != i+1 || ev != (Event{Kind: EventExtInt, Vector: want}) {
			t.Fatalf("injection %d: %+v, want vector %#x", i, ev, want)
		}
	}
	tv.step(v)
	if f.nInjected != 3 || f.window {
		t.Fatalf("after draining: injected %d, window %v", f.nInjected, f.window)
	}
	// A pending exception goes first; the interrupt waits for a window.
	tv.Interrupt(0, 0x50)
	v.InjectException(VectorGP, 0)
	tv.step(v)
	if ev, _ := f.lastInjected(); ev.Kind != EventException || !f.window || !v.PendingInterrupt(0x50) {
		t.Fatalf("exception not first: %+v window %v", ev, f.window)
	}
	tv.step(v)
	if ev, _ := f.lastInjected(); ev.Vector != 0x50 {
		t.Fatalf("%+v", ev)
	}
	// The other vCPU saw none of it.
	if tv.VCPU(1).c.irqPending() {
		t.Fatal("interrupts leaked to vCPU 1")
	}
}

func TestHaltedForever(t *testing.T) {
	for _, c := range []struct {
		name   string
		rflags uint64
		msg    string
	}{
		{"interrupts off", rflagsFixed, "vCPU 0 halted with interrupts disabled (RFLAGS 0x2) at RIP 0x1000: nothing can wake it"},
		{"nothing to wake it", rflagsFixed | rflagsIF, "halted at RIP 0x1000 with no interrupt pending, no timer armed and no interrupt source"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tv := newTestVM(t, Config{})
			v := tv.VCPU(0)
			v.Regs.RFLAGS = c.rflags
			tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}, rip: 0x1000, setRIP: true})
			if r := tv.RunVCPU(v); r != HaltedForever {
				t.Fatalf("RunVCPU = %v", r)
			}
			tv.wantStop(t, HaltedForever, c.msg)
			if v.Regs.RIP != 0x1001 {
				t.Fatalf("RIP %#x", v.Regs.RIP)
			}
		})
	}
	// Interrupts off with an interrupt pending: still forever.
	tv := newTestVM(t, Config{})
	tv.Interrupt(0, 0x30)
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	tv.step(tv.VCPU(0))
	tv.wantStop(t, HaltedForever, "interrupts disabled")
}

// haltBlocked scripts an HLT exit for v (vCPU 0), runs one step on another
// goroutine and checks that it blocks with nothing pending; the returned
// channel is closed when the step returns.
func (tv *testVM) haltBlocked(t *testing.T, v *VCPU) <-chan struct{} {
	t.Helper()
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	done := make(chan struct{})
	go func() {
		tv.step(v)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("HLT returned with nothing pending")
	case <-time.After(50 * time.Millisecond):
	}
	return done
}

// TestHaltWokenByInterrupt: a halted vCPU blocks (no spinning) until a
// device goroutine raises an interrupt.
func TestHaltWokenByInterrupt(t *testing.T) {
	tv := newTestVM(t, Config{})
	tv.AddInterruptSource()
	v := tv.VCPU(0)
	v.Regs.RFLAGS = rflagsFixed | rflagsIF
	done := tv.haltBlocked(t, v)
	tv.Interrupt(0, 0x33)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("interrupt did not wake the vCPU")
	}
	if tv.fake(0).runs != 1 {
		t.Fatalf("%d entries while halted: spinning", tv.fake(0).runs)
	}
	tv.script(0, fakeStep{exit: Exit{Reason: ExitNone}})
	tv.step(v)
	if ev, _ := tv.fake(0).lastInjected(); ev.Vector != 0x33 {
		t.Fatalf("injected %+v", ev)
	}
}

// TestHaltWokenByStop: Stop from another goroutine ends a halt.
func TestHaltWokenByStop(t *testing.T) {
	tv := newTestVM(t, Config{})
	tv.AddInterruptSource()
	v := tv.VCPU(0)
	v.Regs.RFLAGS = rflagsFixed | rflagsIF
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	if err := tv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	tv.Stop(Exited, 0, "bye")
	r, _, _ := tv.Wait()
	if r != Exited {
		t.Fatalf("%v", r)
	}
}

// TestTimerHypercall: the one-shot timer wakes a halted vCPU and its
// vector is injected; a bad vector or delay is refused.
func TestTimerHypercall(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	setFlat32(v)
	v.Regs.RFLAGS = rflagsFixed | rflagsIF
	f := tv.fake(0)
	call := func(fn, a1, a2 uint64) fakeStep {
		return fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RBX, v.Regs.RCX = fn, a1, a2 }}
	}
	tv.script(0,
		call(HypercallSetTimer, 0x1f, 10),                    // vector too low
		call(HypercallSetTimer, 0x100, 10),                   // vector too high
		call(HypercallSetTimer, 0x40, MaxTimerDelayMicros+1), // too long
		call(HypercallSetTimer, 0x40, 20000),                 // 20 ms
		fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}},   // blocks until the timer
		fakeStep{exit: Exit{Reason: ExitNone}},               // injection
		fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}},   // nothing armed: forever
	)
	for i := 0; i < 3; i++ {
		tv.step(v)
		if int64(v.Regs.RAX) != HypercallEINVAL {
			t.Fatalf("call %d: RAX %d, want EINVAL", i, int64(v.Regs.RAX))
		}
	}
	start := time.Now()
	tv.step(v)
	if v.Regs.RAX != HypercallOK {
		t.Fatalf("set timer: RAX %d", int64(v.Regs.RAX))
	}
	tv.step(v) // HLT
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("woke after %v, before the timer", el)
	}
	tv.step(v)
	if ev, _ := f.lastInjected(); ev != (Event{Kind: EventExtInt, Vector: 0x40}) {
		t.Fatalf("injected %+v", ev)
	}
	tv.step(v)
	tv.wantStop(t, HaltedForever, "no timer armed")
}

// TestTimerWhileRunning: a timer that expires while the guest runs is
// raised at the next exit.
func TestTimerWhileRunning(t *testing.T) {
	now := int64(0)
	tv := newTestVM(t, Config{Clock: func() int64 { return now }})
	v := tv.VCPU(0)
	setFlat32(v)
	v.Regs.RFLAGS |= rflagsIF
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, pre: func(v *VCPU) {
		v.Regs.RAX, v.Regs.RBX, v.Regs.RCX = HypercallSetTimer, 0x99, 1000
	}})
	tv.step(v)
	f := tv.fake(0)
	f.loop = true
	tv.script(0, fakeStep{exit: Exit{Reason: ExitExtIntr}})
	now = 999_999
	tv.step(v)
	if f.nInjected != 0 {
		t.Fatal("timer fired early")
	}
	now = 1_000_000
	tv.step(v)
	if ev, _ := f.lastInjected(); f.nInjected != 1 || ev.Vector != 0x99 {
		t.Fatalf("timer not delivered: %+v", ev)
	}
	tv.step(v)
	if f.nInjected != 1 {
		t.Fatal("one-shot timer fired twice")
	}
}

// TestInterruptFromManyGoroutines: concurrent raisers lose nothing.
func TestInterruptFromManyGoroutines(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for vec := 32 + g; vec < 256; vec += 8 {
				tv.Interrupt(0, uint8(vec))
			}
		}()
	}
	wg.Wait()
	for vec := 255; vec >= 32; vec-- {
		got, ok := v.c.popIRQ()
		if !ok || int(got) != vec {
			t.Fatalf("pop = %d %v, want %d", got, ok, vec)
		}
	}
	if _, ok := v.c.popIRQ(); ok {
		t.Fatal("extra interrupt")
	}
}

func TestHypercalls(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	setFlat32(v)
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, rip: 0x100, setRIP: true, pre: func(v *VCPU) { v.Regs.RAX = HypercallVersion }},
		fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, rip: 0x100, setRIP: true, pre: func(v *VCPU) { v.Regs.RAX = 77 }},
		fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, rip: 0x100, setRIP: true, pre: func(v *VCPU) {
			v.Regs.RAX, v.Regs.RBX = HypercallExit, 5
			v.backend.(*fakeVCPU).sregs.SS.Attr |= SegDPL3 // user mode
		}},
		fakeStep{exit: Exit{Reason: ExitHypercall, InstrLen: 3}, rip: 0x100, setRIP: true, pre: func(v *VCPU) {
			v.Regs.RAX, v.Regs.RBX = HypercallExit, 0xffff_ffff_0000_0007
			v.backend.(*fakeVCPU).sregs.SS.Attr &^= SegDPL3
		}},
	)
	tv.step(v)
	if v.Regs.RAX != HypercallABIVersion || v.Regs.RIP != 0x103 {
		t.Fatalf("version: RAX %d RIP %#x", v.Regs.RAX, v.Regs.RIP)
	}
	tv.step(v)
	if int64(v.Regs.RAX) != HypercallENOSYS {
		t.Fatalf("unknown: RAX %d", int64(v.Regs.RAX))
	}
	tv.step(v)
	if int64(v.Regs.RAX) != HypercallEPERM {
		t.Fatalf("CPL 3 exit: RAX %d", int64(v.Regs.RAX))
	}
	tv.wantRunning(t)
	tv.step(v)
	r, st, msg := tv.Stopped()
	if r != Exited || st != 7 || msg != `vm "test": vCPU 0: guest exited with status 7 (exit hypercall)` {
		t.Fatalf("%v %d %q", r, st, msg)
	}
}
