package vmm

// Multiprocessor start-up: INIT and STARTUP (Intel SDM Vol. 3A 9.4 and
// 10.6.1, AMD APM Vol. 2 16.5).
//
// vCPU 0 is the bootstrap processor: Start runs it from the state the
// loader gave it. Every other vCPU is an application processor (AP): it is
// created in wait-for-SIPI, its goroutine started by Start blocks until a
// STARTUP IPI arrives, and it then runs in real mode at CS = VV<<8 (base
// VV<<12), IP 0, where VV is the IPI's vector. An INIT puts a vCPU back
// into wait-for-SIPI with its registers in the INIT state (the power-on
// state, keeping the MSRs INIT leaves alone), whatever it was doing:
// running, halted, or halted with interrupts disabled (how an offlined
// Linux CPU waits). A STARTUP to a vCPU that is not waiting for one is
// ignored, as the second SIPI of the universal start-up algorithm is.
//
// The platform (its local APICs) decides who receives an IPI and calls
// InitVCPU and StartupVCPU from the sending vCPU's goroutine; both only
// change one atomic word of the target and wake it, so the target applies
// them on its own goroutine, where its registers are coherent, at its next
// loop iteration. The running vCPU's loop pays one atomic load per exit.
//
// A vCPU that can only be woken by INIT or STARTUP (halted with interrupts
// disabled, or waiting for SIPI) is parked; when every vCPU of the VM is
// parked nothing can ever run again and the VM stops with HaltedForever.

// vcpuCore.mp bits. Zero: the vCPU runs (the common case, one load).
const (
	mpVector   = 0xff    // the STARTUP vector, with mpSIPI
	mpWaitSIPI = 1 << 8  // in wait-for-SIPI: only a STARTUP moves it on
	mpInit     = 1 << 9  // an INIT the vCPU has not applied to its registers yet
	mpSIPI     = 1 << 10 // a STARTUP the vCPU has not applied yet (vector in mpVector)
)

// InitVCPU delivers an INIT to vCPU id: it drops whatever it was doing,
// takes the INIT state and waits for a STARTUP IPI. It reports false for
// a bad vCPU index. Any goroutine; allocation-free, never blocks. (The
// platform handles an INIT of the boot vCPU itself: on a PC that is a
// processor reset into firmware, which juice's guests do not have.)
func (vm *VM) InitVCPU(id int) bool {
	if id < 0 || id >= len(vm.vcpus) {
		return false
	}
	v := vm.vcpus[id]
	v.c.mp.Store(mpWaitSIPI | mpInit) // drops a STARTUP not yet applied
	vm.unpark(v)
	v.c.kick()
	return true
}

// StartupVCPU delivers a STARTUP IPI with vector to vCPU id: if it is
// waiting for one it starts in real mode at vector<<8:0000 (physical
// vector<<12); otherwise nothing happens. It reports whether the vCPU
// took it. Any goroutine; allocation-free, never blocks.
func (vm *VM) StartupVCPU(id int, vector uint8) bool {
	if id < 0 || id >= len(vm.vcpus) {
		return false
	}
	v := vm.vcpus[id]
	for {
		s := v.c.mp.Load()
		if s&mpWaitSIPI == 0 || s&mpSIPI != 0 {
			return false // running, or a STARTUP already latched
		}
		if v.c.mp.CompareAndSwap(s, s|mpSIPI|uint32(vector)) {
			break
		}
	}
	vm.unpark(v)
	v.c.kick()
	return true
}

// WaitingForSIPI reports whether the vCPU is in wait-for-SIPI (an AP not
// started yet, or one an INIT stopped). Any goroutine.
func (v *VCPU) WaitingForSIPI() bool { return v.c.mp.Load()&mpWaitSIPI != 0 }

// park marks v parked (only INIT or STARTUP can wake it) and reports
// whether that made every vCPU of the VM parked.
func (vm *VM) park(v *VCPU) bool {
	if !v.c.parked.CompareAndSwap(false, true) {
		return false
	}
	return int(vm.parked.Add(1)) == len(vm.vcpus)
}

// unpark clears v's parked mark (v, or the vCPU that sent it an INIT or
// STARTUP). Idempotent.
func (vm *VM) unpark(v *VCPU) {
	if v.c.parked.CompareAndSwap(true, false) {
		vm.parked.Add(-1)
	}
}

// mpWait applies the INIT and STARTUP that other vCPUs sent v and blocks
// while v waits for a STARTUP. It returns when v may run (or the VM
// stopped). v's own goroutine.
func (vm *VM) mpWait(v *VCPU) {
	c := &v.c
	for !vm.stopped() {
		if c.dump.Load() != nil {
			vm.takeDump(v, true)
		}
		s := c.mp.Load()
		switch {
		case s == 0:
			vm.unpark(v)
			return
		case s&mpInit != 0:
			v.initState()
			c.mp.CompareAndSwap(s, s&^mpInit) // a new INIT or a STARTUP: loop again
		case s&mpSIPI != 0:
			if c.mp.CompareAndSwap(s, 0) {
				v.sipiState(uint8(s & mpVector))
				vm.unpark(v)
				return
			}
		default: // waiting for a STARTUP
			if vm.park(v) {
				vm.stopf(HaltedForever, -1, "vCPU %d waits for a STARTUP IPI and every other vCPU is halted with interrupts disabled or waiting too: nothing can wake them",
					v.ID)
				return
			}
			<-c.wake
		}
	}
}

// initState puts v in the state an INIT leaves (Intel SDM Vol. 3A Table
// 10-1, AMD APM Vol. 2 Table 14-1): the power-on state of Reset, except
// that the MSRs INIT does not touch keep their values (the SYSCALL and
// SYSENTER MSRs, PAT, the TSC, the MTRRs, MISC_ENABLE). EFER is cleared
// (real mode).
func (v *VCPU) initState() {
	msr, mtrr, misc := v.MSR, v.c.mtrrDefType, v.c.miscEnable
	v.Reset()
	v.MSR = msr
	v.MSRDirty = true
	v.c.mtrrDefType, v.c.miscEnable = mtrr, misc
}

// sipiState starts v at a STARTUP IPI's vector: real mode, CS selector
// vector<<8, base vector<<12, IP 0 (the rest is the INIT state).
func (v *VCPU) sipiState(vector uint8) {
	v.SRegs.CS.Selector = uint16(vector) << 8
	v.SRegs.CS.Base = uint64(vector) << 12
	v.SRegs.CS.Limit = 0xffff
	v.Regs.RIP = 0
	v.SRegsValid, v.SRegsDirty = true, true
}

// ResetToSIPI puts v in the state an INIT followed by a STARTUP IPI with
// vector leaves (real mode at vector<<8:0000), for tests and for hosts
// that start an application processor themselves. v's own goroutine, or
// before the vCPU runs.
func (v *VCPU) ResetToSIPI(vector uint8) {
	v.initState()
	v.sipiState(vector)
}
