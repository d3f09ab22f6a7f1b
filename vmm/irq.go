package vmm

import (
	"math/bits"
	"time"
)

// External interrupts. Until an APIC model exists, juice delivers
// interrupts like a "virtual wire": a device (or the hypercall timer)
// raises a vector 32-255 on a vCPU; the vector stays pending until the
// guest can take an interrupt (backend.CanInjectInterrupt), then the
// highest pending vector is injected as an external interrupt. Raising a
// vector that is already pending does nothing (edge semantics, like the
// APIC's IRR). There is no in-service tracking or EOI yet.

// MinIRQVector is the lowest vector Interrupt accepts (0-31 are exceptions).
const MinIRQVector = 32

// MaxTimerDelayMicros bounds the hypercall timer's delay (10 s).
const MaxTimerDelayMicros = 10_000_000

// Interrupt raises external-interrupt vector (32-255) on vCPU vcpu and
// wakes it if it is halted. It may be called from any goroutine (device
// models); it is allocation-free and never blocks. It reports false for a
// bad vCPU index or vector. A vCPU running guest code takes the interrupt
// at its next exit. A device that raises interrupts on its own must also
// call AddInterruptSource once at setup.
func (vm *VM) Interrupt(vcpu int, vector uint8) bool {
	if vcpu < 0 || vcpu >= len(vm.vcpus) || vector < MinIRQVector {
		return false
	}
	vm.vcpus[vcpu].c.raise(vector)
	return true
}

// raise marks vector pending and wakes the vCPU.
func (c *vcpuCore) raise(vector uint8) {
	c.irr[vector>>6].Or(1 << (vector & 63))
	c.kick()
}

// irqPending reports whether any vector is pending.
func (c *vcpuCore) irqPending() bool {
	return c.irr[0].Load()|c.irr[1].Load()|c.irr[2].Load()|c.irr[3].Load() != 0
}

// popIRQ removes and returns the highest pending vector (the APIC's
// priority order: higher vector, higher priority).
func (c *vcpuCore) popIRQ() (uint8, bool) {
	for i := len(c.irr) - 1; i >= 0; i-- {
		if w := c.irr[i].Load(); w != 0 {
			b := 63 - bits.LeadingZeros64(w)
			c.irr[i].And(^(uint64(1) << b))
			return uint8(i*64 + b), true
		}
	}
	return 0, false
}

// PendingInterrupt reports whether vector is pending on the vCPU (tests,
// debugging).
func (v *VCPU) PendingInterrupt(vector uint8) bool {
	return v.c.irr[vector>>6].Load()&(1<<(vector&63)) != 0
}

// checkTimer raises the hypercall timer's vector once its deadline has
// passed (one clock read per exit, only while armed).
func (vm *VM) checkTimer(v *VCPU) {
	c := &v.c
	if c.timerArmed && vm.clock() >= c.timerDeadline {
		c.timerArmed = false
		c.raise(c.timerVector)
	}
}

// armTimer arms the vCPU's one-shot timer: vector is raised after delay
// (replacing any earlier arming). The loop raises the vector when the
// VM's clock says so; a halted vCPU sleeps on a runtime timer until then.
func (vm *VM) armTimer(v *VCPU, vector uint8, delay time.Duration) {
	c := &v.c
	c.timerVector = vector
	c.timerDeadline = vm.clock() + int64(delay)
	c.timerArmed = true
}

// deliver injects the highest pending interrupt if the guest can take one
// now, else asks the backend for an interrupt window. It calls
// RequestInterruptWindow only when its wish changes; the backend keeps the
// window request armed (re-arming after each ExitIntrWindow) until told off.
func (vm *VM) deliver(v *VCPU) {
	c := &v.c
	want := false
	if c.irqPending() {
		if !v.HasPending && v.backend.CanInjectInterrupt(v) {
			vec, _ := c.popIRQ()
			v.Pending = Event{Kind: EventExtInt, Vector: vec}
			v.HasPending = true
		}
		want = c.irqPending()
	}
	if vm.plat != nil {
		if vec, ok := vm.plat.Pending(v); ok {
			if !v.HasPending && v.backend.CanInjectInterrupt(v) {
				vm.plat.Ack(v, vec)
				v.Pending = Event{Kind: EventExtInt, Vector: vec}
				v.HasPending = true
				_, ok = vm.plat.Pending(v)
			}
			want = want || ok
		}
	}
	if want != c.windowOn {
		c.windowOn = want
		v.backend.RequestInterruptWindow(want)
	}
}

// platPending reports whether the platform has an interrupt v may take.
func (vm *VM) platPending(v *VCPU) bool {
	if vm.plat == nil {
		return false
	}
	_, ok := vm.plat.Pending(v)
	return ok
}

// halt handles HLT at rip (RIP already past it): returns at once if an
// event or interrupt is pending and can be taken, blocks the vCPU
// goroutine until an interrupt is raised, the timer is due or the VM
// stops, and stops the VM with HaltedForever when nothing can ever wake
// the vCPU. Blocking allocates nothing: a channel receive, or a select on
// it and the vCPU's one runtime timer.
func (vm *VM) halt(v *VCPU, rip uint64) {
	c := &v.c
	if v.HasPending {
		return // an event (re-queued by the backend) is delivered at entry
	}
	if v.Regs.RFLAGS&rflagsIF == 0 {
		vm.haltNoIntr(v, rip)
		return
	}
	for !vm.stopped() {
		if c.dump.Load() != nil {
			vm.takeDump(v, true)
		}
		if c.mp.Load() != 0 {
			return // an INIT: the run loop applies it
		}
		vm.checkTimer(v)
		vm.pollPlatform(v)
		if c.irqPending() || vm.platPending(v) {
			return
		}
		armed, deadline := c.timerArmed, c.timerDeadline
		if c.platArmed && (!armed || c.platNext < deadline) {
			armed, deadline = true, c.platNext
		}
		if !armed && vm.irqSources.Load() == 0 {
			vm.stopf(HaltedForever, -1, "vCPU %d halted at RIP %#x with no interrupt pending, no timer armed and no interrupt source: nothing can wake it",
				v.ID, rip)
			return
		}
		c.haltPolls++
		if !armed {
			c.haltSleep, c.haltAt = -1, vm.clock()
			<-c.wake
			continue
		}
		// Sleep until the deadline by the VM's clock, or a wake-up. (The
		// runtime timer may fire a little early by that clock: the loop
		// then sleeps again for the rest.)
		now := vm.clock()
		rem := deadline - now
		if rem <= 0 {
			continue
		}
		c.haltSleep, c.haltAt = rem, now
		c.timer.Reset(time.Duration(rem))
		select {
		case <-c.wake:
			c.timer.Stop()
		case <-c.timer.C:
		}
	}
}

// haltNoIntr handles HLT with interrupts disabled: only NMI, SMI, INIT or
// reset end such a halt, and of those juice delivers INIT alone (another
// vCPU's IPI: how Linux restarts a CPU it offlined, which waits this
// way). The vCPU is parked until an INIT arrives; when every vCPU is
// parked nothing can wake any of them and the VM stops with
// HaltedForever.
func (vm *VM) haltNoIntr(v *VCPU, rip uint64) {
	c := &v.c
	for !vm.stopped() {
		if c.dump.Load() != nil {
			vm.takeDump(v, true)
		}
		if c.mp.Load() != 0 {
			vm.unpark(v)
			return // the run loop applies the INIT
		}
		if vm.park(v) {
			if len(vm.vcpus) == 1 {
				vm.stopf(HaltedForever, -1, "vCPU %d halted with interrupts disabled (RFLAGS %#x) at RIP %#x: nothing can wake it",
					v.ID, v.Regs.RFLAGS, rip)
			} else {
				vm.stopf(HaltedForever, -1, "vCPU %d halted with interrupts disabled (RFLAGS %#x) at RIP %#x and every other vCPU is halted the same way or waiting for a STARTUP IPI: nothing can wake them",
					v.ID, v.Regs.RFLAGS, rip)
			}
			return
		}
		c.haltPolls++
		c.haltSleep, c.haltAt = -1, vm.clock()
		<-c.wake
	}
}
