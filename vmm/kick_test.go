package vmm

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCPUs is a Config.HostCPUs for tests: Current reports cur (the test
// moves "the caller" between CPUs by setting it), Kick counts and
// remembers the CPU, allocation-free.
type fakeCPUs struct {
	cur    atomic.Int32
	kicks  atomic.Int32
	last   atomic.Int32
	onKick func(cpu int) // optional, called by Kick
}

func (f *fakeCPUs) Current() int { return int(f.cur.Load()) }

func (f *fakeCPUs) Kick(cpu int) {
	f.kicks.Add(1)
	f.last.Store(int32(cpu))
	if f.onKick != nil {
		f.onKick(cpu)
	}
}

// ifOnRegs lets the guest take interrupts.
func ifOnRegs(v *VCPU) { v.Regs.RFLAGS = rflagsFixed | rflagsIF }

// An interrupt made pending while the vCPU is in guest mode on another
// host CPU kicks that CPU, once per entry; one made pending outside guest
// mode, or from the CPU the vCPU runs on, kicks nothing. The vCPU
// publishes the CPU it enters on and clears it when Run returns, also
// when Run fails; without HostCPUs nothing is published.
func TestKickOnlyInGuestOnOtherCPU(t *testing.T) {
	cpus := &fakeCPUs{}
	tv := newTestVM(t, Config{HostCPUs: cpus})
	v := tv.VCPU(0)
	ifOnRegs(v)
	var inGuest uint32
	wantKicks := func(n int32, cpu int32, when string) {
		t.Helper()
		if got := cpus.kicks.Load(); got != n {
			t.Fatalf("%s: %d kicks, want %d", when, got, n)
		}
		if n > 0 && cpus.last.Load() != cpu {
			t.Fatalf("%s: kicked cpu %d, want %d", when, cpus.last.Load(), cpu)
		}
	}
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: func(v *VCPU) {
			inGuest = v.c.guest.Load()
			cpus.cur.Store(0) // another goroutine, on cpu 0
			tv.Interrupt(0, 0x40)
			wantKicks(1, 3, "first interrupt in guest mode")
			tv.Interrupt(0, 0x41)
			tv.Kick(0)
			wantKicks(1, 3, "more interrupts in the same entry")
		}},
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: func(v *VCPU) {
			cpus.cur.Store(3) // a goroutine on the vCPU's own CPU
			tv.Interrupt(0, 0x43)
			wantKicks(1, 3, "an interrupt from the vCPU's CPU")
			cpus.cur.Store(1)
			tv.Interrupt(0, 0x44)
			wantKicks(2, 3, "an interrupt in the next entry")
		}},
	)
	cpus.cur.Store(3)
	tv.step(v)
	if inGuest != guestIn|3 {
		t.Fatalf("guest mode during Run = %#x, want cpu 3", inGuest)
	}
	if g := v.c.guest.Load(); g != 0 {
		t.Fatalf("guest mode after Run = %#x", g)
	}
	// Between entries: no kick.
	tv.Interrupt(0, 0x42)
	tv.Kick(0)
	wantKicks(1, 3, "an interrupt outside guest mode")
	cpus.cur.Store(3)
	tv.step(v)
	if ev, _ := tv.fake(0).lastInjected(); ev.Vector != 0x42 {
		t.Fatalf("second entry injected %+v, want vector 0x42", ev)
	}
	if v.c.kicks.Load() != 2 || v.Kicks() != 2 {
		t.Fatalf("kick count %d", v.c.kicks.Load())
	}
	// A failed entry leaves guest mode too.
	tv.fake(0).runErr = errors.New("entry failed")
	tv.step(v)
	if g := v.c.guest.Load(); g != 0 {
		t.Fatalf("guest mode after a failed Run = %#x", g)
	}

	// Without HostCPUs nothing is published and nothing kicked.
	plain := newTestVM(t, Config{})
	p := plain.VCPU(0)
	plain.script(0, fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: func(v *VCPU) {
		inGuest = v.c.guest.Load()
		plain.Interrupt(0, 0x40)
	}})
	plain.step(p)
	if inGuest != 0 || p.Kicks() != 0 {
		t.Fatalf("without HostCPUs: guest mode %#x, %d kicks", inGuest, p.Kicks())
	}
}

// A halted vCPU is woken, not kicked: it is not in guest mode.
func TestKickNotForHaltedVCPU(t *testing.T) {
	cpus := &fakeCPUs{}
	tv := newTestVM(t, Config{HostCPUs: cpus})
	tv.AddInterruptSource()
	v := tv.VCPU(0)
	ifOnRegs(v)
	cpus.cur.Store(1)
	done := tv.haltBlocked(t, v)
	cpus.cur.Store(0)
	tv.Interrupt(0, 0x33)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupt did not wake the halted vCPU")
	}
	if n := cpus.kicks.Load(); n != 0 {
		t.Fatalf("a halted vCPU's CPU was kicked %d times", n)
	}
}

// Many goroutines making interrupts pending during one entry send one
// kick between them; the next entry may be kicked again.
func TestKickOncePerEntry(t *testing.T) {
	cpus := &fakeCPUs{}
	tv := newTestVM(t, Config{HostCPUs: cpus})
	v := tv.VCPU(0)
	ifOnRegs(v)
	raiseAll := func(v *VCPU) {
		cpus.cur.Store(9) // the raisers' CPU
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					tv.Interrupt(0, uint8(0x40+g*8+i%8))
				}
			}()
		}
		wg.Wait()
	}
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: raiseAll},
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: raiseAll})
	cpus.cur.Store(2)
	tv.step(v)
	if n := cpus.kicks.Load(); n != 1 {
		t.Fatalf("%d kicks in one entry, want 1", n)
	}
	cpus.cur.Store(5)
	tv.step(v)
	if n, c := cpus.kicks.Load(), cpus.last.Load(); n != 2 || c != 5 {
		t.Fatalf("%d kicks, last to cpu %d; want 2, the last to cpu 5", n, c)
	}
}

// A vCPU "spinning in the guest" on another goroutine (its fake Run
// returns only when its CPU is kicked, or after a tick of 10 s) takes an
// IPI that another vCPU sends it at once: the kick ends the run, the
// vector is injected at the next entry. Stop kicks it out too.
func TestKickEndsGuestRun(t *testing.T) {
	const tick = 10 * time.Second
	cpus := &fakeCPUs{}
	kicked := make(chan int, 4)
	cpus.onKick = func(cpu int) { kicked <- cpu }
	tv := newTestVM(t, Config{VCPUs: 2, HostCPUs: cpus})
	entered := make(chan struct{}, 4)
	var ticks atomic.Int32
	spin := func(v *VCPU) {
		entered <- struct{}{}
		select {
		case <-kicked:
		case <-time.After(tick):
			ticks.Add(1)
		}
	}
	v1 := tv.VCPU(1)
	ifOnRegs(v1)
	tv.script(1,
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: spin},
		fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: spin})
	cpus.cur.Store(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !tv.stopped() && tv.fake(1).pos < 2 {
			tv.step(v1)
		}
	}()
	<-entered
	cpus.cur.Store(0) // vCPU 0, on cpu 0, sends the IPI
	start := time.Now()
	tv.Interrupt(1, 0x40)
	<-entered // the next entry: the run ended
	if d := time.Since(start); d > tick/2 || ticks.Load() != 0 {
		t.Fatalf("the run ended after %v (%d ticks), not on the kick", d, ticks.Load())
	}
	if ev, ok := tv.fake(1).lastInjected(); !ok || ev.Vector != 0x40 {
		t.Fatalf("next entry injected %+v (%v), want vector 0x40", ev, ok)
	}
	cpus.cur.Store(7) // the host, on another cpu
	tv.Stop(Killed, -1, "test over")
	select {
	case <-done:
	case <-time.After(tick / 2):
		t.Fatal("Stop did not end the guest run")
	}
	if n := cpus.kicks.Load(); n != 2 || ticks.Load() != 0 {
		t.Fatalf("%d kicks, %d ticks; want 2 kicks (the IPI, Stop), no tick", n, ticks.Load())
	}
}

// Entering and leaving guest mode and kicking allocate nothing.
func TestKickPathAllocationFree(t *testing.T) {
	cpus := &fakeCPUs{}
	tv := newTestVM(t, Config{VCPUs: 2, HostCPUs: cpus})
	v := tv.VCPU(0)
	ifOnRegs(v)
	// Each entry: vCPU 1 (on cpu 1) raises an interrupt for vCPU 0 (on
	// cpu 0), which kicks, and a second, which does not.
	raise := func(v *VCPU) {
		cpus.cur.Store(1)
		tv.Interrupt(0, 0x40)
		tv.Kick(0)
		cpus.cur.Store(0)
	}
	tv.script(0, fakeStep{exit: Exit{Reason: ExitExtIntr}, pre: raise})
	tv.fake(0).loop = true
	tv.step(v)
	before := cpus.kicks.Load()
	allocs := testing.AllocsPerRun(1000, func() { tv.step(v) })
	if allocs != 0 {
		t.Fatalf("%v allocations per entry with a kick", allocs)
	}
	if n := cpus.kicks.Load() - before; n < 1000 {
		t.Fatalf("%d kicks over 1000+ entries", n)
	}
	tv.wantRunning(t)
}
