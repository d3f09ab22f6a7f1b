package vmm

import (
	"runtime"
)

// The vCPU run loop and exit dispatch.
//
// Per iteration: raise the hypercall timer's vector if due, deliver a
// pending interrupt (or ask for an interrupt window), mark the cached
// system state stale, enter the guest (backend.Run), count the exit and
// dispatch it. Nothing on this path allocates (no fmt, no errors.New, no
// boxing, no closures; the MMIO decoder allocates only on a decode-cache
// miss), no lock is held across backend.Run, and every handler does
// bounded work: string instructions move at most maxStringPerExit
// elements, page walks are at most five levels, instruction fetches at
// most 15 bytes. Only stopping the VM allocates (its message), and the VM
// is over then.
//
// Instruction completion: an emulated instruction advances RIP by its
// length, v.Exit.InstrLen when the backend knows it, else decoded from
// the bytes at RIP, which must be the instruction the exit reports. If
// they are not (another vCPU rewrote them between the exit and the
// fetch), nothing is emulated and the guest re-executes what is there.
// Single-stepping (RFLAGS.TF) over an emulated instruction does not raise
// #DB yet.

// RunVCPU runs v until the VM stops and returns why it stopped. It is
// what StartVCPU's goroutine runs; call it directly only for a vCPU that
// was not started.
func (vm *VM) RunVCPU(v *VCPU) StopReason {
	for !vm.stopped() {
		if v.c.mp.Load() != 0 {
			vm.mpWait(v) // an INIT, a STARTUP, or waiting for one
			continue
		}
		vm.step(v)
	}
	return StopReason(vm.state.Load())
}

// step runs one guest entry and handles its exit.
func (vm *VM) step(v *VCPU) {
	if v.c.dump.Load() != nil {
		vm.takeDump(v, false)
	}
	vm.checkTimer(v)
	vm.pollPlatform(v)
	// Guest mode from before deliver's look at the pending interrupts:
	// an interrupt made pending after that look gets the CPU kicked
	// (core.go, kickGuest).
	v.c.enterGuest()
	vm.deliver(v)
	v.SRegsValid = false
	t0 := vm.hostTSC()
	err := v.backend.Run(v)
	v.c.leaveGuest()
	if err != nil {
		vm.stopf(Error, -1, "vCPU %d: guest entry failed: %v", v.ID, err)
		return
	}
	t1 := vm.hostTSC()
	vm.dispatch(v)
	v.RunTicks += t1 - t0
	if r := v.Exit.Reason; int(r) < len(v.HandleTicks) {
		v.HandleTicks[r] += vm.hostTSC() - t1
	}
	now := vm.clock()
	if v.c.sliceEnd == 0 {
		// The loop has just got the CPU back (after a halt or a wait):
		// a new slice starts.
		v.c.sliceEnd = now + timeSlice
	}
	if v.c.yield || now >= v.c.sliceEnd {
		// After the accounting: the time other goroutines run is not
		// this exit's. A vCPU whose guest exits often (port I/O in a
		// loop) never blocks and would otherwise keep the host CPU
		// until the runtime preempts it, which a goroutine that was
		// just made runnable (another VM starting) may wait seconds
		// for: the loop gives the CPU up at least every timeSlice. The
		// next slice starts when it has the CPU again, not now: a slice
		// that had already run out would give the loop a single exit's
		// worth of guest time per turn.
		v.c.yield = false
		v.c.yields++
		runtime.Gosched()
		v.c.sliceEnd = vm.clock() + timeSlice
	}
}

// timeSlice is the longest a vCPU loop keeps the host CPU without
// offering it to other runnable goroutines (other vCPUs, VMs, device
// work), in nanoseconds. A guest that never exits by itself still
// leaves on the host's timer interrupts, which end its entries; the Go
// runtime's monitor wakes the host about every 10 ms while a goroutine
// runs, so a shorter slice would only shorten the turns of the guests
// that exit often, not those of a spinning one.
const timeSlice = 10_000_000

// dispatch handles the exit in v.Exit.
func (vm *VM) dispatch(v *VCPU) {
	e := &v.Exit
	r := e.Reason
	if int(r) < len(v.Exits) {
		v.Exits[r]++
	}
	switch r {
	case ExitNone, ExitIntrWindow, ExitExtIntr:
		// Nothing to emulate: the next iteration delivers interrupts
		// and the host's interrupt was taken when the backend re-enabled
		// interrupts.
	case ExitIO:
		vm.handleIO(v)
	case ExitMMIO:
		vm.handleMMIO(v)
	case ExitCPUID:
		if n, ok := vm.instrLen(v); ok {
			a, b, c, d := vm.cpuid.Lookup(uint32(v.ID), uint32(v.Regs.RAX), uint32(v.Regs.RCX))
			v.Regs.RAX, v.Regs.RBX, v.Regs.RCX, v.Regs.RDX = uint64(a), uint64(b), uint64(c), uint64(d)
			vm.advance(v, n)
		}
	case ExitRDMSR:
		if n, ok := vm.instrLen(v); ok {
			val, ok := vm.rdmsr(v, uint32(v.Regs.RCX))
			if !ok {
				v.InjectException(VectorGP, 0)
				return
			}
			v.Regs.RAX, v.Regs.RDX = val&0xffffffff, val>>32
			vm.advance(v, n)
		}
	case ExitWRMSR:
		if n, ok := vm.instrLen(v); ok {
			val := v.Regs.RDX<<32 | v.Regs.RAX&0xffffffff
			if !vm.wrmsr(v, uint32(v.Regs.RCX), val) {
				v.InjectException(VectorGP, 0)
				return
			}
			vm.advance(v, n)
		}
	case ExitHLT:
		if n, ok := vm.instrLen(v); ok {
			rip := v.Regs.RIP
			vm.advance(v, n)
			vm.halt(v, rip)
		}
	case ExitHypercall:
		if n, ok := vm.instrLen(v); ok {
			vm.hypercall(v)
			vm.advance(v, n)
		}
	case ExitPause:
		if n, ok := vm.instrLen(v); ok {
			vm.advance(v, n)
		}
		v.Yield() // a spinning guest: let other goroutines run
	case ExitException:
		// Intercepted guest exceptions (#AC, #DB: intercepted so that a
		// guest cannot loop the CPU in microcode delivering them) go back
		// to the guest. #PF intercepts carry the address in Info2. A
		// machine check is the host's, never the guest's: the VM stops.
		switch {
		case e.Vector == VectorMC:
			vm.stopf(Error, -1, "vCPU %d: machine check (#MC) while the guest ran at RIP %#x", v.ID, v.Regs.RIP)
		case e.Vector == VectorPF:
			v.InjectPageFault(e.Info2, e.ErrCode)
		case e.Vector == VectorUD && vm.otherVendorHypercall(v):
			// VMCALL on AMD or VMMCALL on Intel: a guest built for the
			// other vendor; serve the hypercall as the right one would be.
			vm.hypercall(v)
			vm.advance(v, 3)
		case e.Vector < 32:
			v.InjectException(e.Vector, e.ErrCode)
		default:
			vm.stopf(Error, -1, "vCPU %d: backend reported exception vector %d", v.ID, e.Vector)
		}
	case ExitShutdown:
		vm.stopf(Shutdown, -1, "vCPU %d shut down (triple fault) at RIP %#x (exit code %#x, info %#x/%#x)",
			v.ID, v.Regs.RIP, e.Raw, e.Info1, e.Info2)
	case ExitInvalid:
		n := min(int(e.DetailLen), len(e.Detail))
		vm.stopf(Error, -1, "vCPU %d: guest entry failed at RIP %#x: %s", v.ID, v.Regs.RIP, string(e.Detail[:n]))
	default:
		vm.stopf(Fault, -1, "vCPU %d: unhandled exit %s (backend code %#x, info %#x/%#x) at RIP %#x",
			v.ID, r, e.Raw, e.Info1, e.Info2, v.Regs.RIP)
	}
}

// Yield asks v's loop to give up the host CPU to other goroutines (other
// vCPUs, device work) once the current exit is handled, as it does after
// a PAUSE exit. The platform calls it on v's goroutine, from the exit
// path (an IPI v sent to another vCPU). Allocation-free.
func (v *VCPU) Yield() { v.c.yield = true }

// otherVendorHypercall reports whether the #UD in v.Exit came from VMCALL
// (0F 01 C1) or VMMCALL (0F 01 D9) at RIP: the hypercall instruction of
// the vendor this CPU is not. juice's guests may use either on both, as
// they can under KVM. Exit path: no allocation (the fetch buffer is the
// vCPU's).
func (vm *VM) otherVendorHypercall(v *VCPU) bool {
	v.syncSRegs()
	mode := modeOf(&v.SRegs, v.Regs.RFLAGS)
	n, _ := vm.fetchInstr(v, mode, cplOf(&v.SRegs, v.Regs.RFLAGS))
	if n < 3 {
		return false
	}
	b := v.c.fetch[:3]
	return b[0] == 0x0f && b[1] == 0x01 && (b[2] == 0xc1 || b[2] == 0xd9)
}

// handleIO handles ExitIO.
func (vm *VM) handleIO(v *VCPU) {
	e := &v.Exit
	if e.String {
		vm.stringIO(v)
		return
	}
	if e.Size != 1 && e.Size != 2 && e.Size != 4 {
		vm.stopf(Error, -1, "vCPU %d: backend reported a %d-byte port access", v.ID, e.Size)
		return
	}
	n, ok := vm.instrLen(v)
	if !ok {
		return
	}
	if e.In {
		val := uint64(vm.io.In(e.Port, e.Size))
		switch e.Size {
		case 1:
			v.Regs.RAX = v.Regs.RAX&^0xff | val
		case 2:
			v.Regs.RAX = v.Regs.RAX&^0xffff | val
		default:
			v.Regs.RAX = val // a 32-bit destination zero-extends
		}
	} else {
		vm.io.Out(e.Port, e.Size, uint32(v.Regs.RAX))
	}
	vm.advance(v, n)
}

// advance moves RIP past an emulated instruction of n bytes, wrapping IP
// or EIP outside 64-bit mode (the mode is looked up only when the
// addition crosses 64 KiB or 4 GiB).
func (vm *VM) advance(v *VCPU, n uint64) {
	old := v.Regs.RIP
	rip := old + n
	if old <= 0xffffffff && (rip > 0xffffffff || old <= 0xffff && rip > 0xffff) {
		switch v.Mode() {
		case 16:
			rip &= 0xffff
		case 32:
			rip &= 0xffffffff
		}
	}
	v.Regs.RIP = rip
}

// instrLen returns the length of the instruction whose exit is in v.Exit:
// the backend's InstrLen, else decoded from the bytes at RIP. ok is false
// when those bytes are not such an instruction (nothing must be emulated;
// a fetch fault has been queued or the VM stopped if that was the cause).
func (vm *VM) instrLen(v *VCPU) (uint64, bool) {
	if n := v.Exit.InstrLen; n != 0 && n <= 15 {
		return uint64(n), true
	}
	v.syncSRegs()
	mode := modeOf(&v.SRegs, v.Regs.RFLAGS)
	n, ff := vm.fetchInstr(v, mode, cplOf(&v.SRegs, v.Regs.RFLAGS))
	l, st := matchFixed(v.c.fetch[:n], mode, &v.Exit, uint16(v.Regs.RDX))
	switch st {
	case strOK:
		return uint64(l), true
	case strTruncated:
		if ff.st != xlOK {
			vm.raiseFault(v, &ff, "instruction fetch")
		}
	}
	return 0, false
}

// matchFixed checks that b starts with the instruction exit e reports
// (CPUID, RDMSR, WRMSR, HLT, VMCALL/VMMCALL, PAUSE, IN/OUT; port is DX for
// the IN/OUT forms that use it), possibly with prefixes, and returns its
// length.
func matchFixed(b []byte, mode int, e *Exit, port uint16) (int, int) {
	i, rep, opSize16 := 0, false, mode == 16
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == 0x26 || c == 0x2e || c == 0x36 || c == 0x3e || c == 0x64 || c == 0x65 || c == 0x67 || c == 0xf0 || c == 0xf2:
		case c == 0x66:
			opSize16 = mode != 16
		case c == 0xf3:
			rep = true
		case mode == 64 && c&0xf0 == 0x40:
		default:
			goto opcode
		}
	}
	if len(b) >= 15 {
		return 0, strOther
	}
	return 0, strTruncated
opcode:
	rest := b[i:]
	full := len(b) >= 15
	switch e.Reason {
	case ExitCPUID:
		return matchOp(rest, i, full, 0x0f, 0xa2)
	case ExitRDMSR:
		return matchOp(rest, i, full, 0x0f, 0x32)
	case ExitWRMSR:
		return matchOp(rest, i, full, 0x0f, 0x30)
	case ExitHLT:
		return matchOp(rest, i, full, 0xf4)
	case ExitHypercall:
		if len(rest) >= 3 && rest[2] == 0xd9 {
			return matchOp(rest, i, full, 0x0f, 0x01, 0xd9) // VMMCALL
		}
		return matchOp(rest, i, full, 0x0f, 0x01, 0xc1) // VMCALL
	case ExitPause:
		if !rep {
			return 0, strOther
		}
		return matchOp(rest, i, full, 0x90)
	case ExitIO:
		size := uint8(4)
		if opSize16 {
			size = 2
		}
		c := rest[0]
		if c&1 == 0 {
			size = 1
		}
		in := c&2 == 0
		switch {
		case c >= 0xe4 && c <= 0xe7:
			if len(rest) < 2 {
				if full {
					return 0, strOther
				}
				return 0, strTruncated
			}
			if in != e.In || size != e.Size || uint16(rest[1]) != e.Port {
				return 0, strOther
			}
			return i + 2, strOK
		case c >= 0xec && c <= 0xef:
			if in != e.In || size != e.Size || port != e.Port {
				return 0, strOther
			}
			return i + 1, strOK
		}
	}
	return 0, strOther
}

// matchOp matches opcode bytes want at the start of rest (which starts at
// offset i of the fetched bytes; full: all 15 bytes were fetched).
func matchOp(rest []byte, i int, full bool, want ...byte) (int, int) {
	if len(rest) < len(want) {
		if bytesPrefix(rest, want) && !full {
			return 0, strTruncated
		}
		return 0, strOther
	}
	if !bytesPrefix(want, rest) {
		return 0, strOther
	}
	return i + len(want), strOK
}

// bytesPrefix reports whether p is a prefix of b.
func bytesPrefix(p, b []byte) bool {
	if len(p) > len(b) {
		return false
	}
	for i := range p {
		if p[i] != b[i] {
			return false
		}
	}
	return true
}
