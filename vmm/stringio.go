package vmm

// String port I/O (INS, OUTS, with or without REP). The neutral exit
// record has the port, size and direction but not the address size or
// segment, so the core decodes the instruction at RIP itself (prefixes
// and opcode only: a small, allocation-free decoder) and moves the data
// through the guest's page tables: INS writes ES:[rDI], OUTS reads
// seg:[rSI] (DS unless overridden), rSI/rDI step by the element size,
// backwards when RFLAGS.DF is set. A REP instruction moves at most
// maxStringPerExit elements per exit and leaves RIP on the instruction
// until rCX reaches 0. The guest buffer must be RAM: string I/O to or
// from device memory stops the VM.

// strIO is a decoded INS/OUTS instruction.
type strIO struct {
	in       bool
	rep      bool
	size     uint8
	seg      uint8
	addrSize uint8
	len      uint8
}

// Outcomes of decodeStringIO.
const (
	strOK        = iota
	strOther     // not INS/OUTS
	strTruncated // the bytes end before the opcode
)

// decodeStringIO decodes INS/OUTS (6C-6F) with their prefixes in mode.
func decodeStringIO(b []byte, mode int) (d strIO, st int) {
	opSize16 := mode == 16
	addr := uint8(mode)
	seg := segDS
	var has66, has67 bool
	for i := 0; i < len(b) && i < 15; i++ {
		c := b[i]
		switch c {
		case 0x66:
			has66 = true
			continue
		case 0x67:
			has67 = true
			continue
		case 0xf2, 0xf3:
			d.rep = true
			continue
		case 0x26:
			seg = segES
			continue
		case 0x2e:
			seg = segCS
			continue
		case 0x36:
			seg = segSS
			continue
		case 0x3e:
			seg = segDS
			continue
		case 0x64:
			seg = segFS
			continue
		case 0x65:
			seg = segGS
			continue
		case 0xf0: // LOCK INS/OUTS is #UD: never exits as string I/O
			return strIO{}, strOther
		}
		if mode == 64 && c&0xf0 == 0x40 { // REX: no effect on INS/OUTS
			continue
		}
		if has66 {
			opSize16 = !opSize16
		}
		if has67 {
			switch mode {
			case 64:
				addr = 32
			case 32:
				addr = 16
			default:
				addr = 32
			}
		}
		d.size = 4
		if opSize16 {
			d.size = 2
		}
		switch c {
		case 0x6c:
			d.in, d.size = true, 1
		case 0x6d:
			d.in = true
		case 0x6e:
			d.size = 1
		case 0x6f:
		default:
			return strIO{}, strOther
		}
		d.seg, d.addrSize, d.len = seg, addr, uint8(i+1)
		if d.in {
			d.seg = segES // INS always writes ES:[rDI]
		}
		return d, strOK
	}
	if len(b) >= 15 {
		return strIO{}, strOther // 15 prefixes: #GP on hardware
	}
	return strIO{}, strTruncated
}

// stringIO handles an ExitIO with String set.
func (vm *VM) stringIO(v *VCPU) {
	e := &v.Exit
	v.syncSRegs()
	mode := modeOf(&v.SRegs, v.Regs.RFLAGS)
	cpl := cplOf(&v.SRegs, v.Regs.RFLAGS)
	n, ff := vm.fetchInstr(v, mode, cpl)
	d, st := decodeStringIO(v.c.fetch[:n], mode)
	if st != strOK || d.in != e.In || d.size != e.Size || e.InstrLen != 0 && e.InstrLen != d.len || uint16(v.Regs.RDX) != e.Port {
		if st == strTruncated && ff.st != xlOK {
			vm.raiseFault(v, &ff, "instruction fetch")
		}
		// Otherwise the instruction changed since it exited (another
		// vCPU rewrote it): let the guest execute what is there now.
		return
	}
	r := &v.Regs
	count := uint64(1)
	if d.rep {
		count = r.RCX & addrMask(d.addrSize)
		if count == 0 {
			vm.advance(v, uint64(d.len))
			return
		}
	}
	step := uint64(d.size)
	if r.RFLAGS&rflagsDF != 0 {
		step = -step
	}
	reg := uint8(6) // rSI
	acc := accRead
	if d.in {
		reg, acc = 7, accWrite // rDI
	}
	for done := 0; count > 0 && done < maxStringPerExit; done++ {
		off := *r.GPR(reg) & addrMask(d.addrSize)
		sp, f, ok := v.xlateSpan(v.linear(d.seg, off, mode), d.size, acc, cpl, d.seg, mode)
		if !ok {
			vm.raiseFault(v, &f, "string I/O buffer")
			return
		}
		if d.in {
			val := vm.io.In(e.Port, d.size)
			if !vm.ramWrite(sp, uint64(val)) {
				vm.stringIONotRAM(v, sp)
				return
			}
		} else {
			val, ok := vm.ramRead(sp)
			if !ok {
				vm.stringIONotRAM(v, sp)
				return
			}
			vm.io.Out(e.Port, d.size, uint32(val))
		}
		r.addAddrReg(reg, step, d.addrSize)
		count--
		if d.rep {
			r.addAddrReg(1, ^uint64(0), d.addrSize)
		}
		if vm.stopped() { // a device stopped the VM (exit port)
			return
		}
	}
	if count == 0 {
		vm.advance(v, uint64(d.len))
	}
}

// ramRead reads a translated access that must be in RAM.
func (vm *VM) ramRead(sp span) (uint64, bool) {
	if !vm.Mem.In(sp.gpa, uint64(sp.split)) || sp.split != sp.size && !vm.Mem.In(sp.gpa2, uint64(sp.size-sp.split)) {
		return 0, false
	}
	return vm.physRead(nil, sp)
}

// ramWrite writes a translated access that must be in RAM.
func (vm *VM) ramWrite(sp span, val uint64) bool {
	if !vm.Mem.In(sp.gpa, uint64(sp.split)) || sp.split != sp.size && !vm.Mem.In(sp.gpa2, uint64(sp.size-sp.split)) {
		return false
	}
	return vm.physWrite(nil, sp, val)
}

func (vm *VM) stringIONotRAM(v *VCPU, sp span) {
	vm.stopf(Fault, -1, "vCPU %d: string I/O on port %#x with a buffer at guest-physical %#x, which is not RAM (RIP %#x)",
		v.ID, v.Exit.Port, sp.gpa, v.Regs.RIP)
}
