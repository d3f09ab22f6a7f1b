package vmm

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/arch/x86/x86asm"
)

// The MMIO instruction emulator. On an ExitMMIO the core fetches the
// instruction at CS:RIP by walking the guest's page tables (pagewalk.go),
// decodes it with golang.org/x/arch/x86/x86asm in the vCPU's mode, and
// emulates only the MOV class a device access needs:
//
//   - MOV r/m,reg and MOV reg,r/m (8A/8B/88/89, A0-A3 moffs), MOV r/m,imm
//     (C6/C7), with 66, 67, REX and segment prefixes, high-byte registers;
//   - MOVZX and MOVSX from memory (0F B6/B7/BE/BF), MOVSXD (63);
//   - STOS, LODS and MOVS (one element; with REP at most maxStringPerExit
//     elements per exit, RIP left on the instruction until RCX is 0, so
//     the guest re-executes it and interrupts are taken in between).
//
// The effective address is recomputed from the registers and translated;
// it must land on the page of the faulting guest-physical address, or the
// VM stops: the instruction in memory is not the one that faulted (another
// vCPU rewrote it, a TOCTOU attack) or juice has a bug. An access that
// straddles a page, or does not fit in one device, also stops the VM, as
// does any other instruction ("cannot emulate <instruction> at RIP").
// LOCK-prefixed forms raise #UD, as the CPU would have.
//
// Decoding allocates (x86asm boxes memory operands in interfaces), so
// each vCPU keeps a small cache of decoded instructions keyed by mode and
// the instruction's bytes (re-fetched and compared on every exit): a
// driver's MMIO accessors hit it, and a hit allocates nothing.

// maxStringPerExit bounds the elements a REP string instruction moves per
// exit (string I/O and MMIO).
const maxStringPerExit = 1024

// Segment register numbers (the x86 encoding order).
const (
	segES uint8 = iota
	segCS
	segSS
	segDS
	segFS
	segGS
)

// regRIP is the base register of RIP-relative operands.
const regRIP = 16

// opKind is what an emulated instruction does.
type opKind uint8

const (
	opLoad     opKind = iota + 1 // register := memory (with extension)
	opStore                      // memory := register
	opStoreImm                   // memory := immediate
	opStos                       // ES:[rDI] := rAX; rDI += step
	opLods                       // rAX := seg:[rSI]; rSI += step
	opMovs                       // ES:[rDI] := seg:[rSI]; both += step
)

// Extensions for loads.
const (
	extNone uint8 = iota
	extZero
	extSign
)

// memOperand is a decoded memory operand.
type memOperand struct {
	seg      uint8
	base     int8 // GPR number, regRIP, or -1
	index    int8 // GPR number or -1
	scale    uint8
	addrSize uint8 // 16, 32 or 64
	disp     int64
}

// regOperand is a general-purpose register operand.
type regOperand struct {
	num  uint8 // 0-15 (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15)
	size uint8 // 1, 2, 4, 8
	high bool  // AH, CH, DH, BH
}

// mmioOp is a decoded instruction, pointer-free so that it can be cached.
type mmioOp struct {
	kind opKind
	size uint8 // bytes per memory access
	ext  uint8
	rep  bool
	len  uint8
	reg  regOperand
	imm  uint64
	mem  memOperand // the memory operand; for MOVS the destination
	src  memOperand // MOVS source
}

// decodeEntry is one cached decoded instruction.
type decodeEntry struct {
	valid bool
	mode  uint8
	len   uint8
	bytes [15]byte
	op    mmioOp
}

// fault describes why an access could not be translated.
type fault struct {
	st   xlate
	seg  uint8
	pfec uint32
	la   uint64
	gpa  uint64
}

// xlNotRAM: the linear address maps a guest-physical address that is not
// RAM where RAM is required (instruction fetch, string I/O).
const xlNotRAM xlate = 100

// handleMMIO handles ExitMMIO.
func (vm *VM) handleMMIO(v *VCPU) {
	e := &v.Exit
	switch {
	case vm.Mem.In(e.GPA, 1):
		vm.stopf(Error, -1, "vCPU %d: nested page fault on guest-physical %#x, which is RAM (RIP %#x): backend bug",
			v.ID, e.GPA, v.Regs.RIP)
	case !vm.mmio.Has(e.GPA) && !vm.inLocalWindow(v, e.GPA):
		vm.stopf(Fault, -1, "vCPU %d: guest-physical address %#x is not RAM or a device (%s at RIP %#x)",
			v.ID, e.GPA, accessName(e), v.Regs.RIP)
	case e.Fetch:
		vm.stopf(Fault, -1, "vCPU %d: instruction fetch from device memory at guest-physical %#x (RIP %#x)",
			v.ID, e.GPA, v.Regs.RIP)
	default:
		vm.emulateMMIO(v)
	}
}

func accessName(e *Exit) string {
	switch {
	case e.Fetch:
		return "instruction fetch"
	case e.Write:
		return "write"
	}
	return "read"
}

// emulateMMIO decodes and emulates the instruction that faulted on an
// MMIO address.
func (vm *VM) emulateMMIO(v *VCPU) {
	v.syncSRegs()
	mode := modeOf(&v.SRegs, v.Regs.RFLAGS)
	cpl := cplOf(&v.SRegs, v.Regs.RFLAGS)
	n, ff := vm.fetchInstr(v, mode, cpl)
	if n == 0 {
		vm.raiseFault(v, &ff, "instruction fetch")
		return
	}
	op, hit := v.c.lookupDecode(mode, n)
	if !hit {
		var ok bool
		if op, ok = vm.decodeMMIO(v, mode, n, &ff); !ok {
			return
		}
	}
	vm.execMMIO(v, op, mode, cpl)
}

// decodeMMIO decodes the fetched bytes (cache miss) and caches the result.
// ok is false when it has stopped the VM or queued an exception.
func (vm *VM) decodeMMIO(v *VCPU, mode, n int, ff *fault) (*mmioOp, bool) {
	inst, err := x86asm.Decode(v.c.fetch[:n], mode)
	// x86asm reports a truncated instruction as a one-byte pseudo
	// instruction with Op 0 (objdump's "(bad)"), like an unrecognized one.
	bad := err != nil || inst.Op == 0
	if bad && n < len(v.c.fetch) && ff.st != xlOK {
		// Fewer than 15 bytes could be fetched. If the instruction
		// needs more, the fetch fault is the guest's exception.
		var pad [15]byte
		copy(pad[:], v.c.fetch[:n])
		if full, err := x86asm.Decode(pad[:], mode); err == nil && full.Op != 0 && full.Len > n {
			vm.raiseFault(v, ff, "instruction fetch")
			return nil, false
		}
	}
	if bad {
		vm.stopf(Fault, -1, "vCPU %d: cannot emulate the instruction at RIP %#x (bytes % x): not a valid instruction",
			v.ID, v.Regs.RIP, v.c.fetch[:n])
		return nil, false
	}
	op, verdict := planFromInst(&inst)
	switch verdict {
	case planUD:
		v.InjectException(VectorUD, 0)
		return nil, false
	case planUnsupported:
		vm.stopf(Fault, -1, "vCPU %d: cannot emulate %s at RIP %#x (MMIO access to guest-physical %#x)",
			v.ID, inst.String(), v.Regs.RIP, v.Exit.GPA)
		return nil, false
	}
	return v.c.storeDecode(mode, n, v.c.fetch[:op.len], op), true
}

// decodeSet picks the cache set for the n fetched bytes: a hash of the
// first decodeHashBytes of them (fewer when fewer were fetched). Bytes
// past a short instruction take part, so one instruction may sit in
// several sets, once per site that follows it with different bytes;
// lookups stay exact because entries compare the instruction's own bytes.
func (c *vcpuCore) decodeSet(n int) int {
	h := uint32(2166136261)
	for i := 0; i < n && i < decodeHashBytes; i++ {
		h = (h ^ uint32(c.fetch[i])) * 16777619
	}
	return int(h>>16) % decodeSets
}

// lookupDecode finds a cached decode of the n fetched bytes in mode.
func (c *vcpuCore) lookupDecode(mode, n int) (*mmioOp, bool) {
	set := c.decodeSet(n) * decodeWays
	for i := set; i < set+decodeWays; i++ {
		e := &c.decode[i]
		if e.valid && int(e.mode) == mode && int(e.len) <= n && bytes.Equal(e.bytes[:e.len], c.fetch[:e.len]) {
			return &e.op, true
		}
	}
	return nil, false
}

// storeDecode caches op, decoded in mode from b, the first bytes of the n
// fetched (round-robin replacement within the set).
func (c *vcpuCore) storeDecode(mode, n int, b []byte, op mmioOp) *mmioOp {
	s := c.decodeSet(n)
	e := &c.decode[s*decodeWays+int(c.decodeWay[s]%decodeWays)]
	c.decodeWay[s]++
	c.decodeNext++
	*e = decodeEntry{valid: true, mode: uint8(mode), len: uint8(len(b)), op: op}
	copy(e.bytes[:], b)
	return &e.op
}

// Plan verdicts.
const (
	planOK = iota
	planUnsupported
	planUD
)

// planFromInst turns a decoded instruction into an mmioOp, if it is one
// the emulator handles.
func planFromInst(inst *x86asm.Inst) (mmioOp, int) {
	op := mmioOp{len: uint8(inst.Len), size: uint8(inst.MemBytes)}
	if inst.Len < 1 || inst.Len > 15 {
		return op, planUnsupported
	}
	locked := false
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p&x86asm.PrefixInvalid != 0 {
			return op, planUD
		}
		switch p & 0xff {
		case 0xf0:
			locked = true
		case 0xf2, 0xf3:
			op.rep = true
		}
		if p.IsVEX() || p.IsEVEX() {
			return op, planUnsupported
		}
	}
	a0, a1 := inst.Args[0], inst.Args[1]
	var ok bool
	switch inst.Op {
	case x86asm.MOV:
		op.rep = false
		m0, isMem0 := a0.(x86asm.Mem)
		m1, isMem1 := a1.(x86asm.Mem)
		switch {
		case isMem0 && !isMem1:
			if op.mem, ok = memFrom(m0, inst); !ok {
				return op, planUnsupported
			}
			switch x := a1.(type) {
			case x86asm.Reg:
				op.kind = opStore
				if op.reg, ok = gprFrom(x); !ok || op.reg.size != op.size {
					return op, planUnsupported
				}
			case x86asm.Imm:
				op.kind = opStoreImm
				op.imm = uint64(x) & sizeMask64(op.size)
			default:
				return op, planUnsupported
			}
		case isMem1 && !isMem0:
			r, isReg := a0.(x86asm.Reg)
			if !isReg {
				return op, planUnsupported
			}
			if op.reg, ok = gprFrom(r); !ok || op.reg.size != op.size {
				return op, planUnsupported
			}
			if op.mem, ok = memFrom(m1, inst); !ok {
				return op, planUnsupported
			}
			op.kind = opLoad
		default:
			return op, planUnsupported
		}
	case x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		op.rep = false
		r, isReg := a0.(x86asm.Reg)
		m, isMem := a1.(x86asm.Mem)
		if !isReg || !isMem {
			return op, planUnsupported
		}
		if op.reg, ok = gprFrom(r); !ok || op.reg.size < op.size {
			return op, planUnsupported
		}
		if op.mem, ok = memFrom(m, inst); !ok {
			return op, planUnsupported
		}
		op.kind = opLoad
		switch {
		case op.reg.size == op.size:
			op.ext = extNone
		case inst.Op == x86asm.MOVZX:
			op.ext = extZero
		default:
			op.ext = extSign
		}
	case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ:
		m, isMem := a0.(x86asm.Mem)
		if !isMem {
			return op, planUnsupported
		}
		if op.mem, ok = memFrom(m, inst); !ok {
			return op, planUnsupported
		}
		op.kind, op.size = opStos, stringSize(inst.Op)
	case x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ:
		m, isMem := a1.(x86asm.Mem)
		if !isMem {
			return op, planUnsupported
		}
		if op.mem, ok = memFrom(m, inst); !ok {
			return op, planUnsupported
		}
		op.kind, op.size = opLods, stringSize(inst.Op)
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ:
		d, isMem0 := a0.(x86asm.Mem)
		s, isMem1 := a1.(x86asm.Mem)
		if !isMem0 || !isMem1 {
			return op, planUnsupported
		}
		var ok2 bool
		op.mem, ok = memFrom(d, inst)
		op.src, ok2 = memFrom(s, inst)
		if !ok || !ok2 {
			return op, planUnsupported
		}
		op.kind, op.size = opMovs, stringSize(inst.Op)
	default:
		return op, planUnsupported
	}
	switch op.size {
	case 1, 2, 4, 8:
	default:
		return op, planUnsupported
	}
	if locked { // LOCK is #UD on every instruction emulated here
		return op, planUD
	}
	return op, planOK
}

// stringSize is the element size of a string instruction (0 if not one).
func stringSize(o x86asm.Op) uint8 {
	switch o {
	case x86asm.STOSB, x86asm.LODSB, x86asm.MOVSB:
		return 1
	case x86asm.STOSW, x86asm.LODSW, x86asm.MOVSW:
		return 2
	case x86asm.STOSD, x86asm.LODSD, x86asm.MOVSD:
		return 4
	case x86asm.STOSQ, x86asm.LODSQ, x86asm.MOVSQ:
		return 8
	}
	return 0
}

// gprFrom maps an x86asm general-purpose register.
func gprFrom(r x86asm.Reg) (regOperand, bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return regOperand{num: uint8(r - x86asm.AL), size: 1}, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return regOperand{num: uint8(r - x86asm.AH), size: 1, high: true}, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return regOperand{num: uint8(r-x86asm.SPB) + 4, size: 1}, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return regOperand{num: uint8(r - x86asm.AX), size: 2}, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return regOperand{num: uint8(r - x86asm.EAX), size: 4}, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return regOperand{num: uint8(r - x86asm.RAX), size: 8}, true
	}
	return regOperand{}, false
}

// addrReg maps an address register (base or index) to a GPR number, or
// regRIP; ok is false for anything else.
func addrReg(r x86asm.Reg) (int8, bool) {
	switch {
	case r == 0:
		return -1, true
	case r == x86asm.IP || r == x86asm.EIP || r == x86asm.RIP:
		return regRIP, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return int8(r - x86asm.AX), true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int8(r - x86asm.EAX), true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int8(r - x86asm.RAX), true
	}
	return 0, false
}

// memFrom converts an x86asm memory operand, applying the default
// segment (SS for rSP/rBP-based addresses, else DS).
func memFrom(m x86asm.Mem, inst *x86asm.Inst) (memOperand, bool) {
	base, ok1 := addrReg(m.Base)
	index, ok2 := addrReg(m.Index)
	if !ok1 || !ok2 || index == regRIP {
		return memOperand{}, false
	}
	op := memOperand{base: base, index: index, scale: m.Scale, disp: m.Disp, addrSize: uint8(inst.AddrSize)}
	switch op.addrSize {
	case 16, 32, 64:
	default:
		return memOperand{}, false
	}
	if op.index >= 0 && op.scale == 0 {
		op.scale = 1
	}
	switch m.Segment {
	case 0:
		op.seg = segDS
		if base == 4 || base == 5 { // rSP, rBP
			op.seg = segSS
		}
	case x86asm.ES:
		op.seg = segES
	case x86asm.CS:
		op.seg = segCS
	case x86asm.SS:
		op.seg = segSS
	case x86asm.DS:
		op.seg = segDS
	case x86asm.FS:
		op.seg = segFS
	case x86asm.GS:
		op.seg = segGS
	default:
		return memOperand{}, false
	}
	return op, true
}

// GPR returns a pointer to the general register numbered n in the
// instruction encoding (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI,
// 7 RDI, 8-15 R8-R15). Exit path: no allocation.
func (r *Regs) GPR(n uint8) *uint64 {
	switch n & 15 {
	case 0:
		return &r.RAX
	case 1:
		return &r.RCX
	case 2:
		return &r.RDX
	case 3:
		return &r.RBX
	case 4:
		return &r.RSP
	case 5:
		return &r.RBP
	case 6:
		return &r.RSI
	case 7:
		return &r.RDI
	case 8:
		return &r.R8
	case 9:
		return &r.R9
	case 10:
		return &r.R10
	case 11:
		return &r.R11
	case 12:
		return &r.R12
	case 13:
		return &r.R13
	case 14:
		return &r.R14
	}
	return &r.R15
}

// getReg reads a register operand.
func (r *Regs) getReg(o regOperand) uint64 {
	v := *r.GPR(o.num)
	if o.high {
		return v >> 8 & 0xff
	}
	return v & sizeMask64(o.size)
}

// setReg writes a register operand with x86 semantics: 8- and 16-bit
// writes keep the other bits, 32-bit writes zero-extend.
func (r *Regs) setReg(o regOperand, val uint64) {
	p := r.GPR(o.num)
	switch {
	case o.high:
		*p = *p&^0xff00 | (val&0xff)<<8
	case o.size == 1:
		*p = *p&^0xff | val&0xff
	case o.size == 2:
		*p = *p&^0xffff | val&0xffff
	case o.size == 4:
		*p = val & 0xffffffff
	default:
		*p = val
	}
}

// addAddrReg adds delta to register n as an address-size-wide register
// (rSI, rDI, rCX of string instructions).
func (r *Regs) addAddrReg(n uint8, delta uint64, addrSize uint8) {
	p := r.GPR(n)
	switch addrSize {
	case 16:
		*p = *p&^0xffff | (*p+delta)&0xffff
	case 32:
		*p = (*p + delta) & 0xffffffff
	default:
		*p += delta
	}
}

func addrMask(addrSize uint8) uint64 {
	switch addrSize {
	case 16:
		return 0xffff
	case 32:
		return 0xffffffff
	}
	return ^uint64(0)
}

// effAddr computes a memory operand's effective address (offset in its
// segment); instLen is the instruction's length (RIP-relative operands).
func (v *VCPU) effAddr(m *memOperand, instLen uint8) uint64 {
	ea := uint64(m.disp)
	switch {
	case m.base == regRIP:
		ea += v.Regs.RIP + uint64(instLen)
	case m.base >= 0:
		ea += *v.Regs.GPR(uint8(m.base))
	}
	if m.index >= 0 {
		ea += *v.Regs.GPR(uint8(m.index)) * uint64(m.scale)
	}
	return ea & addrMask(m.addrSize)
}

// segBase is the base of segment seg in mode: in 64-bit mode only FS and
// GS have one.
func (v *VCPU) segBase(seg uint8, mode int) uint64 {
	s := &v.SRegs
	switch seg {
	case segFS:
		return s.FS.Base
	case segGS:
		return s.GS.Base
	}
	if mode == 64 {
		return 0
	}
	switch seg {
	case segES:
		return s.ES.Base
	case segCS:
		return s.CS.Base
	case segSS:
		return s.SS.Base
	}
	return s.DS.Base
}

// linear forms the linear address of offset ea in segment seg.
func (v *VCPU) linear(seg uint8, ea uint64, mode int) uint64 {
	la := v.segBase(seg, mode) + ea
	if mode != 64 {
		la &= 0xffffffff
	}
	return la
}

// span is a translated guest access of up to 8 bytes: gpa for the first
// split bytes and gpa2 for the rest when it straddles a page (split <
// size), else gpa for all of it (split == size).
type span struct {
	gpa, gpa2   uint64
	split, size uint8
}

// xlateSpan translates the access [la, la+size).
func (v *VCPU) xlateSpan(la uint64, size uint8, acc access, cpl uint8, seg uint8, mode int) (span, fault, bool) {
	gpa, pfec, st := v.translate(la, acc, cpl)
	if st != xlOK {
		return span{}, fault{st: st, seg: seg, pfec: pfec, la: la, gpa: gpa}, false
	}
	sp := span{gpa: gpa, split: size, size: size}
	if off := la & 0xfff; off+uint64(size) > 0x1000 {
		sp.split = uint8(0x1000 - off)
		la2 := la + uint64(sp.split)
		if mode != 64 {
			la2 &= 0xffffffff
		}
		gpa2, pfec, st := v.translate(la2, acc, cpl)
		if st != xlOK {
			return span{}, fault{st: st, seg: seg, pfec: pfec, la: la2, gpa: gpa2}, false
		}
		sp.gpa2 = gpa2
	}
	return sp, fault{}, true
}

// physRead reads a translated access from RAM or a device. Only RAM
// accesses may straddle pages.
func (vm *VM) physRead(v *VCPU, sp span) (uint64, bool) {
	if sp.split == sp.size {
		if val, ok := vm.Mem.Read(sp.gpa, sp.size); ok {
			return val, true
		}
		if vm.Mem.In(sp.gpa, 1) { // runs off the end of RAM
			return 0, false
		}
		return vm.devRead(v, sp.gpa, sp.size)
	}
	var b [8]byte
	p1, ok1 := vm.Mem.Slice(sp.gpa, uint64(sp.split))
	p2, ok2 := vm.Mem.Slice(sp.gpa2, uint64(sp.size-sp.split))
	if !ok1 || !ok2 {
		return 0, false
	}
	copy(b[:], p1)
	copy(b[sp.split:], p2)
	return binary.LittleEndian.Uint64(b[:]) & sizeMask64(sp.size), true
}

// physWrite writes a translated access to RAM or a device.
func (vm *VM) physWrite(v *VCPU, sp span, val uint64) bool {
	if sp.split == sp.size {
		if vm.Mem.Write(sp.gpa, sp.size, val) {
			return true
		}
		if vm.Mem.In(sp.gpa, 1) {
			return false
		}
		return vm.devWrite(v, sp.gpa, sp.size, val)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], val)
	p1, ok1 := vm.Mem.Slice(sp.gpa, uint64(sp.split))
	p2, ok2 := vm.Mem.Slice(sp.gpa2, uint64(sp.size-sp.split))
	if !ok1 || !ok2 {
		return false
	}
	copy(p1, b[:sp.split])
	copy(p2, b[sp.split:sp.size])
	return true
}

// onFaultPage reports whether the access lies wholly on the page of the
// exit's faulting guest-physical address.
func (v *VCPU) onFaultPage(sp span) bool {
	return sp.split == sp.size && sp.gpa>>12 == v.Exit.GPA>>12
}

// execMMIO emulates op.
func (vm *VM) execMMIO(v *VCPU, op *mmioOp, mode int, cpl uint8) {
	switch op.kind {
	case opLoad, opStore, opStoreImm:
		vm.execMov(v, op, mode, cpl)
	default:
		vm.execString(v, op, mode, cpl)
	}
}

// execMov emulates a MOV-class instruction with one memory operand.
func (vm *VM) execMov(v *VCPU, op *mmioOp, mode int, cpl uint8) {
	acc := accRead
	if op.kind != opLoad {
		acc = accWrite
	}
	la := v.linear(op.mem.seg, v.effAddr(&op.mem, op.len), mode)
	sp, f, ok := v.xlateSpan(la, op.size, acc, cpl, op.mem.seg, mode)
	if !ok {
		vm.raiseFault(v, &f, "memory operand")
		return
	}
	if !v.onFaultPage(sp) {
		vm.mismatch(v, sp)
		return
	}
	switch op.kind {
	case opLoad:
		val, ok := vm.devRead(v, sp.gpa, op.size)
		if !ok {
			vm.badDeviceAccess(v, sp)
			return
		}
		if op.ext == extSign {
			val = signExtend(val, op.size)
		}
		v.Regs.setReg(op.reg, val)
	case opStore:
		if !vm.devWrite(v, sp.gpa, op.size, v.Regs.getReg(op.reg)) {
			vm.badDeviceAccess(v, sp)
			return
		}
	case opStoreImm:
		if !vm.devWrite(v, sp.gpa, op.size, op.imm) {
			vm.badDeviceAccess(v, sp)
			return
		}
	}
	vm.advance(v, uint64(op.len))
}

// execString emulates STOS, LODS and MOVS with an MMIO operand.
func (vm *VM) execString(v *VCPU, op *mmioOp, mode int, cpl uint8) {
	r := &v.Regs
	as := op.mem.addrSize
	count := uint64(1)
	if op.rep {
		count = r.RCX & addrMask(as)
		if count == 0 {
			vm.advance(v, uint64(op.len))
			return
		}
	}
	step := uint64(op.size)
	if r.RFLAGS&rflagsDF != 0 {
		step = -step
	}
	// The first element must touch the faulting page; later ones are
	// emulated while they stay on the pages the first one used.
	var page1, page2 uint64
	for done := 0; count > 0 && done < maxStringPerExit; done++ {
		var dst, src span
		var f fault
		var ok bool
		switch op.kind {
		case opStos:
			dst, f, ok = v.xlateSpan(v.linear(segES, r.RDI&addrMask(as), mode), op.size, accWrite, cpl, segES, mode)
		case opLods:
			src, f, ok = v.xlateSpan(v.linear(op.mem.seg, r.RSI&addrMask(as), mode), op.size, accRead, cpl, op.mem.seg, mode)
		case opMovs:
			src, f, ok = v.xlateSpan(v.linear(op.src.seg, r.RSI&addrMask(as), mode), op.size, accRead, cpl, op.src.seg, mode)
			if ok {
				dst, f, ok = v.xlateSpan(v.linear(segES, r.RDI&addrMask(as), mode), op.size, accWrite, cpl, segES, mode)
			}
		}
		if !ok {
			vm.raiseFault(v, &f, "string operand")
			return
		}
		if done == 0 {
			if !v.onFaultPage(dst) && !v.onFaultPage(src) {
				if op.kind == opLods {
					vm.mismatch(v, src)
				} else {
					vm.mismatch(v, dst)
				}
				return
			}
			page1, page2 = src.gpa>>12, dst.gpa>>12
		} else if src.gpa>>12 != page1 || dst.gpa>>12 != page2 || src.split != src.size || dst.split != dst.size {
			return // leave the rest to re-execution
		}
		switch op.kind {
		case opStos:
			if !vm.physWrite(v, dst, r.RAX) {
				vm.badDeviceAccess(v, dst)
				return
			}
			r.addAddrReg(7, step, as)
		case opLods:
			val, ok := vm.physRead(v, src)
			if !ok {
				vm.badDeviceAccess(v, src)
				return
			}
			r.setReg(regOperand{num: 0, size: op.size}, val)
			r.addAddrReg(6, step, as)
		case opMovs:
			val, ok := vm.physRead(v, src)
			if !ok {
				vm.badDeviceAccess(v, src)
				return
			}
			if !vm.physWrite(v, dst, val) {
				vm.badDeviceAccess(v, dst)
				return
			}
			r.addAddrReg(6, step, as)
			r.addAddrReg(7, step, as)
		}
		count--
		if op.rep {
			r.addAddrReg(1, ^uint64(0), as)
		}
	}
	if count == 0 {
		vm.advance(v, uint64(op.len))
	}
}

func signExtend(v uint64, size uint8) uint64 {
	switch size {
	case 1:
		return uint64(int64(int8(v)))
	case 2:
		return uint64(int64(int16(v)))
	case 4:
		return uint64(int64(int32(v)))
	}
	return v
}

// mismatch stops the VM: the instruction at RIP does not access the page
// that faulted.
func (vm *VM) mismatch(v *VCPU, sp span) {
	vm.stopf(Fault, -1, "vCPU %d: the instruction at RIP %#x accesses guest-physical %#x (%d bytes), but the MMIO fault was at %#x: the instruction changed or juice mis-emulates it",
		v.ID, v.Regs.RIP, sp.gpa, sp.size, v.Exit.GPA)
}

// badDeviceAccess stops the VM: a translated access hits neither RAM nor
// wholly one device.
func (vm *VM) badDeviceAccess(v *VCPU, sp span) {
	if sp.split != sp.size {
		vm.stopf(Fault, -1, "vCPU %d: cannot emulate a page-straddling access to device memory at guest-physical %#x (RIP %#x)",
			v.ID, sp.gpa, v.Regs.RIP)
		return
	}
	vm.stopf(Fault, -1, "vCPU %d: guest-physical address %#x (%d bytes) is not RAM or a device (RIP %#x)",
		v.ID, sp.gpa, sp.size, v.Regs.RIP)
}

// raiseFault turns a failed translation into the guest exception (#PF,
// #GP, #SS) or, when juice refuses the access, a VM stop.
func (vm *VM) raiseFault(v *VCPU, f *fault, what string) {
	switch f.st {
	case xlPF:
		v.InjectPageFault(f.la, f.pfec)
	case xlGP:
		if f.seg == segSS {
			v.InjectException(VectorSS, 0)
		} else {
			v.InjectException(VectorGP, 0)
		}
	case xlBadTable:
		vm.stopf(Fault, -1, "vCPU %d: %s at linear %#x: the guest page-table entry at guest-physical %#x is not RAM (RIP %#x)",
			v.ID, what, f.la, f.gpa, v.Regs.RIP)
	case xlNotRAM:
		vm.stopf(Fault, -1, "vCPU %d: %s at linear %#x: guest-physical %#x is not RAM (RIP %#x)",
			v.ID, what, f.la, f.gpa, v.Regs.RIP)
	default:
		vm.stopf(Error, -1, "vCPU %d: %s at linear %#x failed (%d)", v.ID, what, f.la, f.st)
	}
}

// fetchInstr reads up to 15 instruction bytes at CS:RIP into v.c.fetch.
// It returns how many it got; when that is fewer than 15, the fault says
// why the next byte could not be read.
func (vm *VM) fetchInstr(v *VCPU, mode int, cpl uint8) (int, fault) {
	rip := v.Regs.RIP
	switch mode {
	case 32:
		rip &= 0xffffffff
	case 16:
		rip &= 0xffff
	}
	la := v.linear(segCS, rip, mode)
	n := 0
	for n < len(v.c.fetch) {
		a := la + uint64(n)
		if mode != 64 {
			a &= 0xffffffff
		}
		gpa, pfec, st := v.translate(a, accFetch, cpl)
		if st != xlOK {
			return n, fault{st: st, seg: segCS, pfec: pfec, la: a, gpa: gpa}
		}
		chunk := min(uint64(len(v.c.fetch)-n), 0x1000-a&0xfff)
		if size := vm.Mem.Size(); gpa < size && chunk > size-gpa {
			chunk = size - gpa
		}
		src, ok := vm.Mem.Slice(gpa, chunk)
		if !ok || chunk == 0 {
			return n, fault{st: xlNotRAM, seg: segCS, la: a, gpa: gpa}
		}
		n += copy(v.c.fetch[n:], src)
	}
	return n, fault{}
}
