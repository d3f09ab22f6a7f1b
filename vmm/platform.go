package vmm

import "fmt"

// The platform hook: how a VM's chipset (local APICs, I/O APIC, legacy
// PIC and timers, built by juice/vmm/platform) plugs into the exit path.
//
// A VM without a platform (the test guests of tests/guests) gets the
// "virtual wire" of irq.go: devices raise vectors with Interrupt and the
// core injects the highest. A VM with a platform keeps the virtual wire
// (the legacy PIC delivers through it: an ExtINT is not subject to the
// local APIC's priorities) and adds, per exit:
//
//   - Poll(v, now) before entry: the platform runs v's due timers (APIC
//     timer, PIT) and says when the next one is due, so a halted vCPU
//     sleeps no longer than that;
//   - Pending(v) / Ack(v, vector) when the guest can take an interrupt:
//     the local APIC's highest-priority requested vector is injected and
//     moved to in-service;
//   - ReadMSR / WriteMSR before the core's own MSR policy: the APIC MSRs
//     (IA32_APIC_BASE, IA32_TSC_DEADLINE, x2APIC 0x800-0x8FF) and the
//     paravirtual clock's;
//   - a per-vCPU MMIO window (LocalMMIO: the xAPIC register page), which
//     the core routes to the platform with the vCPU that made the access,
//     before the VM's MMIO bus.
//
// All of it runs on the exit path: implementations must not allocate or
// block, and must do bounded work. Devices that raise interrupts from
// other goroutines wake the vCPU with VM.Kick.

// Platform is a VM's chipset, as seen from the exit path.
type Platform interface {
	// Poll runs v's timers that are due at now (the VM's clock) and
	// returns the earliest deadline still armed (ok false: none).
	Poll(v *VCPU, now int64) (next int64, ok bool)
	// Pending returns the highest-priority interrupt v may take now.
	Pending(v *VCPU) (vector uint8, ok bool)
	// Ack records that vector (from Pending) is being injected into v.
	Ack(v *VCPU, vector uint8)
	// ReadMSR reads msr for v; handled false leaves the MSR to the core,
	// ok false (when handled) raises #GP.
	ReadMSR(v *VCPU, msr uint32) (val uint64, handled, ok bool)
	// WriteMSR writes msr for v; same results as ReadMSR.
	WriteMSR(v *VCPU, msr uint32, val uint64) (handled, ok bool)
	// LocalMMIO returns v's own MMIO window [base, base+size) (size 0:
	// none); accesses inside it go to LocalRead and LocalWrite with the
	// offset from base.
	LocalMMIO(v *VCPU) (base, size uint64)
	// LocalRead reads size bytes at offset off of v's window.
	LocalRead(v *VCPU, off uint64, size uint8) uint64
	// LocalWrite writes size bytes at offset off of v's window.
	LocalWrite(v *VCPU, off uint64, size uint8, val uint64)
}

// SetPlatform attaches the VM's chipset. It must be called before Start
// and at most once; the platform then counts as an interrupt source.
func (vm *VM) SetPlatform(p Platform) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	switch {
	case vm.started:
		return fmt.Errorf("vm %q: platform set after start", vm.Name)
	case vm.plat != nil:
		return fmt.Errorf("vm %q: platform already set", vm.Name)
	case p == nil:
		return fmt.Errorf("vm %q: nil platform", vm.Name)
	}
	vm.plat = p
	vm.irqSources.Add(1)
	return nil
}

// Platform returns the VM's chipset, or nil.
func (vm *VM) Platform() Platform { return vm.plat }

// Kick wakes vCPU id if it is halted (so it re-evaluates its pending
// interrupts); a vCPU running guest code notices at its next exit, at
// once when it runs on another host CPU and the VM has Config.HostCPUs
// (its CPU is kicked). Allocation-free, never blocks, any goroutine.
func (vm *VM) Kick(id int) {
	if id >= 0 && id < len(vm.vcpus) {
		vm.vcpus[id].c.kick()
	}
}

// pollPlatform runs the platform's due timers for v and records the next
// deadline in the vCPU core (the halt loop sleeps until it).
func (vm *VM) pollPlatform(v *VCPU) {
	if vm.plat == nil {
		return
	}
	v.c.platNext, v.c.platArmed = vm.plat.Poll(v, vm.clock())
}

// localWindow reports whether [gpa, gpa+size) lies in v's local MMIO
// window and returns the offset.
func (vm *VM) localWindow(v *VCPU, gpa uint64, size uint8) (uint64, bool) {
	if vm.plat == nil || v == nil {
		return 0, false
	}
	base, n := vm.plat.LocalMMIO(v)
	if n == 0 || gpa < base || gpa-base >= n || uint64(size) > n-(gpa-base) {
		return 0, false
	}
	return gpa - base, true
}

// devRead reads size bytes at gpa from v's local window or the MMIO bus.
func (vm *VM) devRead(v *VCPU, gpa uint64, size uint8) (uint64, bool) {
	if off, ok := vm.localWindow(v, gpa, size); ok {
		return vm.plat.LocalRead(v, off, size) & sizeMask64(size), true
	}
	return vm.mmio.Read(gpa, size)
}

// devWrite writes size bytes at gpa to v's local window or the MMIO bus.
func (vm *VM) devWrite(v *VCPU, gpa uint64, size uint8, val uint64) bool {
	if off, ok := vm.localWindow(v, gpa, size); ok {
		vm.plat.LocalWrite(v, off, size, val&sizeMask64(size))
		return true
	}
	return vm.mmio.Write(gpa, size, val)
}

// inLocalWindow reports whether gpa is in v's local MMIO window.
func (vm *VM) inLocalWindow(v *VCPU, gpa uint64) bool {
	_, ok := vm.localWindow(v, gpa, 1)
	return ok
}
