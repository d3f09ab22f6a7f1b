package vmx

import "juice/vmm"

// The vCPU's exit path: VMCS access, Run, CR-access emulation, the
// interrupt window. Nothing here allocates.

// maxCRExits bounds the CR-access exits Run emulates in a row before it
// returns to the core (with ExitNone), so that a guest rewriting CR0 in a
// loop still lets the core see a stop request.
const maxCRExits = 16

// Messages for ExitInvalid that Run produces itself.
const (
	detailBadEvent    = "pending event cannot be injected (bad kind, vector or error code)"
	detailBadState    = "invalid guest state: "
	detailFailInvalid = " failed: VMfailInvalid (no current VMCS)"
)

// load makes c's VMCS the one current on its CPU (c.cpu, where the
// caller runs), unless it already is. The caller has interrupts off
// (hw.irqOff) from before load until after the VMX instruction that
// follows it, in one nosplit function, so no other thread or goroutine
// can make another VMCS current on this CPU in between. Before the vCPU
// is bound to a CPU (bind) there is no VMCS to use: load fails.
//
//go:nosplit
func (c *VCPU) load() bool {
	n := c.cpu
	if n < 0 || n >= MaxCPUs {
		c.failed(badLoad, 0, FailInvalid)
		return false
	}
	cur := &c.b.current[n]
	if *cur == c.vmcsPA {
		return true
	}
	if st := hw.vmptrld(c.vmcsPA); st != Succeeded {
		*cur = 0
		c.failed(badLoad, 0, st)
		return false
	}
	*cur = c.vmcsPA
	return true
}

// read is VMREAD of field e of c's VMCS (0 when it fails).
//
//go:nosplit
func (c *VCPU) read(e Encoding) uint64 {
	f := hw.irqOff()
	if !c.load() {
		hw.irqRestore(f)
		return 0
	}
	v, st := hw.vmread(uint64(e))
	hw.irqRestore(f)
	if st != Succeeded {
		c.failed(badRead, e, st)
		return 0
	}
	return v
}

// write is VMWRITE of v to field e of c's VMCS (staged for commit while
// NewVCPU sets the VMCS up).
//
//go:nosplit
func (c *VCPU) write(e Encoding, v uint64) {
	if c.staged != nil {
		c.stage(e, v)
		return
	}
	f := hw.irqOff()
	if !c.load() {
		hw.irqRestore(f)
		return
	}
	st := hw.vmwrite(uint64(e), v)
	hw.irqRestore(f)
	if st != Succeeded {
		c.failed(badWrite, e, st)
	}
}

// stage records a VMWRITE for commit.
func (c *VCPU) stage(e Encoding, v uint64) {
	c.staged = append(c.staged, stagedWrite{e, v})
}

// enter runs the guest (VMLAUNCH or VMRESUME) from c's VMCS. Interrupts
// stay off from the VMPTRLD to the VM exit (vmenter restores the flags it
// found); a host interrupt that ended the guest's run is taken at
// irqRestore.
//
//go:nosplit
func (c *VCPU) enter(v *vmm.VCPU) Status {
	f := hw.irqOff()
	if !c.load() {
		hw.irqRestore(f)
		return FailInvalid
	}
	st := hw.vmenter(&v.Regs, c.launched, c.guestFX, c.hostFX, &c.cr2)
	hw.irqRestore(f)
	return st
}

// failed records the first failed VMX instruction since the last report.
//
//go:nosplit
func (c *VCPU) failed(op uint8, e Encoding, st Status) {
	if !c.bad.set {
		c.bad.set, c.bad.op, c.bad.enc, c.bad.stat = true, op, e, st
	}
}

// vcpuFields is c as a Fields (VMREAD/VMWRITE of its VMCS) for
// WriteGuestSRegs and ReadGuestSRegs.
type vcpuFields VCPU

// Read implements Fields.
func (f *vcpuFields) Read(e Encoding) uint64 { return (*VCPU)(f).read(e) }

// Write implements Fields.
func (f *vcpuFields) Write(e Encoding, v uint64) { (*VCPU)(f).write(e, v) }

func (c *VCPU) fields() Fields { return (*vcpuFields)(c) }

// loadSRegs writes v.SRegs into the VMCS (WriteGuestSRegs), CR2 for
// vmenter, CR8 into the virtual-APIC page's TPR, the PDPTEs for PAE paging
// and flushes the VPID's translations (CR3 or paging may have changed).
func (c *VCPU) loadSRegs(v *vmm.VCPU) {
	s := &v.SRegs
	WriteGuestSRegs(c.fields(), s, &c.b.Controls)
	c.cr2 = s.CR2
	binaryPut32(c.vapic[vapicTPR:], uint32(s.CR8&0xf)<<4)
	if paePaging(s.CR0, s.CR4, s.EFER) {
		c.loadPDPTEs(s.CR3)
	}
	c.flushVPID()
}

// paePaging reports PAE paging outside IA-32e mode, where VM entry loads
// the PDPTEs from the VMCS (with EPT) rather than from guest memory.
func paePaging(cr0, cr4, efer uint64) bool {
	return cr0&CR0PG != 0 && cr4&CR4PAE != 0 && efer&EFERLMA == 0
}

// loadPDPTEs writes the four PDPTEs at guest-physical cr3 (bits 31:5) into
// the guest PDPTE fields, zero where they are outside guest RAM.
func (c *VCPU) loadPDPTEs(cr3 uint64) {
	b, ok := c.vm.Mem.Slice(cr3&0xffff_ffe0, 32)
	for i := 0; i < 4; i++ {
		var e uint64
		if ok {
			e = binaryGet64(b[8*i:])
		}
		c.write(GuestPDPTE0+Encoding(2*i), e)
	}
}

// loadMSRs writes the core's MSR state: the SYSCALL MSRs and
// KERNEL_GS_BASE into the VM-entry MSR-load list, SYSENTER, PAT and the
// TSC offset into their VMCS fields.
func (c *VCPU) loadMSRs(m *vmm.MSRState) {
	vals := [len(listMSRs)]uint64{m.KernelGSBase, m.STAR, m.LSTAR, m.CSTAR, m.SFMASK}
	for i := range vals {
		binaryPut64(c.misc[guestMSRs+i*msrEntry+8:], vals[i])
	}
	c.write(GuestIA32SysenterCS, m.SysenterCS&0xffffffff)
	c.write(GuestIA32SysenterESP, m.SysenterESP)
	c.write(GuestIA32SysenterEIP, m.SysenterEIP)
	c.write(GuestIA32PAT, m.PAT)
	c.write(TSCOffset, m.TSCOffset)
}

// flushVPID drops the translations tagged with the vCPU's VPID on its
// CPU (nothing without VPIDs: VPID 0's are flushed at every entry and
// exit; nothing before bind, which flushes).
func (c *VCPU) flushVPID() {
	if c.vpid == 0 || c.cpu < 0 {
		return
	}
	c.desc = [2]uint64{uint64(c.vpid), 0}
	typ := uint64(invvpidAll)
	if c.b.invvpidSingle {
		typ = invvpidSingle
	}
	if st := hw.invvpid(typ, &c.desc); st != Succeeded {
		c.failed(badWrite, VirtualProcessorID, st)
	}
}

// Run enters the guest and returns at its next exit, with v.Regs and
// v.Exit filled. v.SRegs is loaded first when v.SRegsDirty (after the
// guest-state checks: an illegal state gives ExitInvalid without
// entering), v.MSR when v.MSRDirty, and v.Pending is injected when
// v.HasPending (an exception's error code is dropped in real mode). After
// the exit:
//
//   - v.SRegsValid is cleared, and v.MSR.KernelGSBase refreshed from the
//     VM-exit MSR-store list (SWAPGS changes it without an exit);
//   - v.HasPending is cleared once the event was delivered; an event
//     whose delivery the exit interrupted (IDT-vectoring information) is
//     put back into v.Pending, except INTn, INT1, INT3 and INTO, which
//     the guest re-executes; after a failed entry the event stays pending;
//   - an intercepted ICEBP (INT1) or software exception has RIP moved past
//     the instruction, so that the core's reflected #DB returns after it;
//   - CR0/CR4 writes that exit (they touch a bit VMX fixes, such as
//     CR0.NE or CR4.VMXE, or a CR4 bit the CPU lacks) are emulated here
//     and the guest re-entered, at most maxCRExits times in a row (then
//     Run returns ExitNone); a write the CPU would refuse gets #GP;
//   - an entry failure gives ExitInvalid with a readable Detail: the
//     VM-instruction error (and for invalid controls the control bit),
//     or for an invalid guest state the field the checks blame;
//   - a host NMI that arrived in the guest exits as ExitExtIntr and is
//     otherwise dropped: juice sends no NMIs and has no NMI watchdog;
//   - after an ExitIntrWindow the window request stays armed until
//     RequestInterruptWindow(false).
//
// The first Run binds the vCPU to the host CPU it runs on (bind); a Run
// on any other CPU returns a *WrongCPUError and changes nothing. Run
// returns an error only for a closed vCPU, a wrong CPU, or a first Run
// that cannot bind.
func (c *VCPU) Run(v *vmm.VCPU) error {
	if c.closed {
		return ErrClosed
	}
	if err := c.bind(); err != nil {
		return err
	}
	if v.SRegsDirty {
		x := GuestExtra{RIP: v.Regs.RIP, RFLAGS: v.Regs.RFLAGS | rflagsFixed1, DR7: defaultDR7,
			PAT: c.read(GuestIA32PAT), Interruptibility: c.shadow(v)}
		if v.MSRDirty {
			x.PAT = v.MSR.PAT
		}
		if f, msg := checkGuestState(&v.SRegs, &x, &c.b.Controls); msg != "" {
			v.Exit = vmm.Exit{Reason: vmm.ExitInvalid}
			detailPut(&v.Exit, detailBadState)
			detailPut(&v.Exit, f.Name())
			detailPut(&v.Exit, ": ")
			detailPut(&v.Exit, msg)
			return nil
		}
		c.loadSRegs(v)
		v.SRegsDirty = false
	}
	if v.MSRDirty {
		c.loadMSRs(&v.MSR)
		v.MSRDirty = false
	}
	for i := 0; i < maxCRExits; i++ {
		if c.runOnce(v) {
			break
		}
	}
	return nil
}

// shadow is the interruptibility state for the next entry: the one at the
// last exit, without blocking by STI or MOV SS once RIP has moved (the
// core completed the instruction that exited, and the shadow covered only
// that one).
func (c *VCPU) shadow(v *vmm.VCPU) uint32 {
	if v.Regs.RIP != c.exitRIP {
		return c.intr &^ (InterruptibilitySTI | InterruptibilityMOVSS)
	}
	return c.intr
}

// runOnce enters the guest once and handles the exit; it reports whether
// v.Exit is for the core (false: a CR access was emulated, enter again).
func (c *VCPU) runOnce(v *vmm.VCPU) bool {
	c.write(GuestRIP, v.Regs.RIP)
	c.write(GuestRSP, v.Regs.RSP)
	c.write(GuestRFLAGS, v.Regs.RFLAGS|rflagsFixed1)
	if sh := c.shadow(v); sh != c.intr {
		c.intr = sh
		c.write(GuestInterruptibility, uint64(sh))
	}
	var info uint32
	if v.HasPending {
		var ok bool
		if info, ok = c.writeEvent(v); !ok {
			v.Exit = vmm.Exit{Reason: vmm.ExitInvalid}
			detailPut(&v.Exit, detailBadEvent)
			return true
		}
	}
	c.write(EntryIntrInfo, uint64(info))
	if c.reportBad(v) {
		return true
	}

	if st := c.enter(v); st != Succeeded {
		c.entryFailed(v, st)
		return true
	}

	var r RawExit
	r.Reason = uint32(c.read(ExitReason))
	basic := r.Reason & ReasonBasicMask
	entryFailed := r.Reason&ReasonEntryFailure != 0
	if !entryFailed {
		c.launched = true
		v.HasPending = false
	}
	r.Qual = c.read(ExitQualification)
	r.InstrLen = uint32(c.read(ExitInstrLen))
	r.IntrInfo = uint32(c.read(ExitIntrInfo))
	if r.IntrInfo&(IntrValid|IntrErrValid) == IntrValid|IntrErrValid {
		r.IntrError = uint32(c.read(ExitIntrErrorCode))
	}
	r.IDTInfo = uint32(c.read(IDTVectoringInfo))
	if r.IDTInfo&(IntrValid|IntrErrValid) == IntrValid|IntrErrValid {
		r.IDTError = uint32(c.read(IDTVectoringError))
	}
	if basic == ReasonEPTViolation || basic == ReasonEPTMisconfig {
		r.GPA = c.read(GuestPhysicalAddr)
		if basic == ReasonEPTViolation && r.Qual&EPTQualGLAValid != 0 {
			r.GLA = c.read(GuestLinearAddr)
		}
	}
	v.Regs.RIP = c.read(GuestRIP)
	v.Regs.RSP = c.read(GuestRSP)
	v.Regs.RFLAGS = c.read(GuestRFLAGS)
	c.intr = uint32(c.read(GuestInterruptibility))
	c.exitRIP = v.Regs.RIP
	v.SRegsValid = false
	v.MSR.KernelGSBase = binaryGet64(c.misc[guestMSRs+8:])

	TranslateExit(&r, &v.Exit)
	if entryFailed {
		if basic == ReasonInvalidGuestState {
			c.explainGuestState(v)
		}
		return true
	}
	if e, soft, ok := DecodeEvent(r.IDTInfo, r.IDTError); ok && !soft {
		v.Pending, v.HasPending = e, true
	}
	switch basic {
	case ReasonCRAccess:
		return c.emulateCR(v, r.Qual, r.InstrLen)
	case ReasonExceptionNMI:
		if t := (r.IntrInfo & IntrTypeMask) >> IntrTypeShift; v.Exit.Reason == vmm.ExitException &&
			(t == IntrTypePrivSoftEx || t == IntrTypeSoftExcept) && v.Exit.InstrLen != 0 {
			c.advance(v, uint64(v.Exit.InstrLen))
		}
	}
	return true
}

// reportBad turns a failed VMREAD, VMWRITE or VMPTRLD since the last
// report into ExitInvalid naming it; false when there was none.
func (c *VCPU) reportBad(v *vmm.VCPU) bool {
	if !c.bad.set {
		return false
	}
	v.Exit = vmm.Exit{Reason: vmm.ExitInvalid, Raw: uint64(c.bad.enc)}
	switch c.bad.op {
	case badLoad:
		detailPut(&v.Exit, "VMPTRLD of the vCPU's VMCS failed")
	case badRead:
		detailPut(&v.Exit, "VMREAD of ")
		detailPut(&v.Exit, c.bad.enc.Name())
		detailPut(&v.Exit, " failed")
	default:
		detailPut(&v.Exit, "VMWRITE of ")
		detailPut(&v.Exit, c.bad.enc.Name())
		detailPut(&v.Exit, " failed")
	}
	c.bad.set = false
	return true
}

// writeEvent writes v.Pending into the VM-entry event fields and returns
// the interruption information; ok is false for an event VM entry would
// refuse. A software interrupt or exception is injected with instruction
// length 0, since the core has already moved RIP past the instruction;
// on a CPU that cannot do that, INT3/INTO become hardware exceptions
// (same return address) and INTn is re-aimed at its two-byte instruction.
func (c *VCPU) writeEvent(v *vmm.VCPU) (uint32, bool) {
	info, code, ok := EncodeEvent(v.Pending, c.guestCR0()&CR0PE != 0)
	if !ok {
		return 0, false
	}
	switch (info & IntrTypeMask) >> IntrTypeShift {
	case IntrTypeSoftInt, IntrTypeSoftExcept, IntrTypePrivSoftEx:
		switch {
		case c.b.zeroLenInjection:
			c.write(EntryInstrLen, 0)
		case (info&IntrTypeMask)>>IntrTypeShift == IntrTypeSoftExcept:
			info = info&^IntrTypeMask | IntrTypeHWExcept<<IntrTypeShift
		default:
			c.write(GuestRIP, v.Regs.RIP-2)
			c.write(EntryInstrLen, 2)
		}
	}
	if info&IntrErrValid != 0 {
		c.write(EntryExceptionError, uint64(code))
	}
	return info, true
}

// guestCR0 is CR0 as the guest sees it.
func (c *VCPU) guestCR0() uint64 {
	return c.read(GuestCR0)&^c.cr0Mask | c.read(CR0ReadShadow)&c.cr0Mask
}

// guestCR4 is CR4 as the guest sees it.
func (c *VCPU) guestCR4() uint64 {
	return c.read(GuestCR4)&^c.cr4Mask | c.read(CR4ReadShadow)&c.cr4Mask
}

// entryFailed fills v.Exit for a VMLAUNCH or VMRESUME that failed (the
// guest never ran; v.Pending stays pending).
func (c *VCPU) entryFailed(v *vmm.VCPU, st Status) {
	if st != FailValid {
		v.Exit = vmm.Exit{Reason: vmm.ExitInvalid}
		if c.launched {
			detailPut(&v.Exit, "VMRESUME")
		} else {
			detailPut(&v.Exit, "VMLAUNCH")
		}
		detailPut(&v.Exit, detailFailInvalid)
		c.bad.set = false
		return
	}
	e := InstructionError(c.read(VMInstructionError))
	if e == ErrEntryInvalidControl {
		// The SDM's text for error 7 fills most of Detail: name the bit
		// instead when the capability MSRs show which one it is.
		v.Exit = vmm.Exit{Reason: vmm.ExitInvalid, Raw: uint64(e)}
		if c.launched {
			detailPut(&v.Exit, "VMRESUME")
		} else {
			detailPut(&v.Exit, "VMLAUNCH")
		}
		detailPut(&v.Exit, " failed: invalid controls: ")
		if c.explainControls(&v.Exit) {
			c.bad.set = false
			return
		}
	}
	SetEntryErrorDetail(&v.Exit, !c.launched, e)
	c.bad.set = false
}

// explainControls appends the first control bit the CPU's capability MSRs
// do not allow ("secondary processor-based bit 22 must be 0 (mode-based
// execute control for EPT)"); false when every word is allowed.
func (c *VCPU) explainControls(out *vmm.Exit) bool {
	m := &c.b.MSRs
	words := [numControls]Encoding{PinControls, ProcControls, Proc2Controls, ExitControls, EntryControls}
	for k := Control(0); k < numControls; k++ {
		w := uint32(c.read(words[k]))
		cm := m.capMSR(k)
		if k == CtlProc2 && uint32(c.read(ProcControls))&ProcActivateSecondary == 0 {
			continue
		}
		allowed0, allowed1 := uint32(cm), uint32(cm>>32)
		bad := w&^allowed1 | allowed0&^w
		if bad == 0 {
			continue
		}
		b := 0
		for bad&1 == 0 {
			bad >>= 1
			b++
		}
		detailPut(out, k.String())
		detailPut(out, " bit ")
		detailDec(out, uint64(b))
		if w&(1<<b) != 0 {
			detailPut(out, " must be 0")
		} else {
			detailPut(out, " must be 1")
		}
		if name := controlBitNames[k][b]; name != "" {
			detailPut(out, " (")
			detailPut(out, name)
			detailPut(out, ")")
		}
		return true
	}
	return false
}

// explainGuestState appends the guest-state field the checks blame to an
// invalid-guest-state entry failure's Detail.
func (c *VCPU) explainGuestState(v *vmm.VCPU) {
	var s vmm.SRegs
	ReadGuestSRegs(c.fields(), &s)
	x := GuestExtra{RIP: v.Regs.RIP, RFLAGS: v.Regs.RFLAGS, DR7: c.read(GuestDR7), PAT: c.read(GuestIA32PAT),
		Activity: uint32(c.read(GuestActivityState)), Interruptibility: c.intr}
	ctl := c.b.Controls
	ctl.Entry = uint32(c.read(EntryControls))
	SetGuestStateDetail(&v.Exit, &s, &x, &ctl)
}

// advance moves RIP past an instruction of n bytes (wrapping at 4 GiB
// outside 64-bit mode).
func (c *VCPU) advance(v *vmm.VCPU, n uint64) {
	rip := v.Regs.RIP + n
	if !c.longMode() {
		rip &= 0xffff_ffff
	}
	v.Regs.RIP = rip
}

// longMode reports whether the guest runs 64-bit code (IA-32e mode and
// CS.L).
func (c *VCPU) longMode() bool {
	return c.read(GuestIA32EFER)&EFERLMA != 0 && c.read(GuestCSAccessRights)&ARL != 0
}

// CR0 bits the emulation checks.
const (
	cr0MP = 1 << 1
	cr0EM = 1 << 2
	cr0TS = 1 << 3
	cr0WP = 1 << 16
)

// Outcomes of a CR-access emulation.
const (
	crDone        = iota // emulated: RIP moves past the instruction
	crFault              // the CPU would refuse it: #GP(0) queued, RIP stays
	crUnsupported        // not emulated: the exit goes to the core as unhandled
)

// emulateCR emulates the CR-access exit with qualification q of an
// instruction of ilen bytes: MOV to CR0 or CR4, LMSW, CLTS. It reports
// whether v.Exit is for the core: false after an emulation (v.Exit is
// ExitNone, in case Run stops looping), true with ExitUnhandled for an
// access it does not emulate.
func (c *VCPU) emulateCR(v *vmm.VCPU, q uint64, ilen uint32) bool {
	a := DecodeCRAccess(q)
	res := crUnsupported
	if ilen != 0 && ilen <= maxInsnLen {
		switch {
		case a.Type == CRAccessMovTo && (a.CR == 0 || a.CR == 4):
			val := *v.Regs.GPR(a.GPR)
			if !c.longMode() {
				val &= 0xffff_ffff
			}
			if a.CR == 0 {
				res = c.setCR0(val)
			} else {
				res = c.setCR4(val)
			}
		case a.Type == CRAccessLMSW:
			// LMSW writes PE, MP, EM and TS, and cannot clear PE.
			cr0 := c.guestCR0()
			res = c.setCR0(cr0&^(cr0MP|cr0EM|cr0TS) | uint64(a.LMSWData)&(CR0PE|cr0MP|cr0EM|cr0TS))
		case a.Type == CRAccessCLTS:
			res = c.setCR0(c.guestCR0() &^ cr0TS)
		}
	}
	switch res {
	case crUnsupported:
		v.Exit.Reason = vmm.ExitUnhandled
		return true
	case crFault:
		v.InjectException(vmm.VectorGP, 0)
	default:
		c.advance(v, uint64(ilen))
	}
	v.Exit = vmm.Exit{Reason: vmm.ExitNone, Raw: v.Exit.Raw, Info1: q}
	return false
}

// setCR0 emulates a guest write of val to CR0: crFault for what the CPU
// refuses, crUnsupported for what VMX cannot run (real mode or paging off
// without unrestricted guest); else the read shadow gets val, the CR0
// field val with the fixed bits, EFER.LMA and "IA-32e mode guest" follow a
// paging switch under EFER.LME, the PDPTEs are reloaded for PAE paging and
// the VPID's translations are flushed.
func (c *VCPU) setCR0(val uint64) int {
	ctl := &c.b.Controls
	switch {
	case val>>32 != 0, val&CR0PG != 0 && val&CR0PE == 0, val&CR0NW != 0 && val&CR0CD == 0:
		return crFault
	case !ctl.UnrestrictedGuest() && val&(CR0PE|CR0PG) != CR0PE|CR0PG:
		return crUnsupported
	}
	old := c.guestCR0()
	cr4 := c.guestCR4()
	efer := c.read(GuestIA32EFER)
	switch {
	case old&CR0PG == 0 && val&CR0PG != 0 && efer&EFERLME != 0:
		if cr4&CR4PAE == 0 || c.read(GuestCSAccessRights)&ARL != 0 {
			return crFault
		}
		efer |= EFERLMA
	case old&CR0PG != 0 && val&CR0PG == 0 && efer&EFERLMA != 0:
		if c.read(GuestCSAccessRights)&ARL != 0 {
			return crFault // paging cannot go off in 64-bit mode
		}
		efer &^= EFERLMA
	}
	c.write(CR0ReadShadow, val)
	c.write(GuestCR0, ctl.GuestCR0(val))
	c.write(GuestIA32EFER, efer)
	c.write(EntryControls, uint64(ctl.EntryFor(efer)))
	if paePaging(val, cr4, efer) {
		c.loadPDPTEs(c.read(GuestCR3))
	}
	if (old^val)&(CR0PG|cr0WP|CR0CD|CR0NW) != 0 {
		c.flushVPID()
	}
	return crDone
}

// setCR4 emulates a guest write of val to CR4: crFault for a bit the CPU
// lacks (or VMXE: juice offers no nested VMX), for clearing PAE in IA-32e
// mode and for PCIDE outside it; else the read shadow gets val and the CR4
// field val with the fixed bits, the PDPTEs are reloaded for PAE paging
// and the VPID's translations are flushed.
func (c *VCPU) setCR4(val uint64) int {
	ctl := &c.b.Controls
	efer := c.read(GuestIA32EFER)
	switch {
	case val&^ctl.CR4Fixed1 != 0, val&CR4VMXE != 0:
		return crFault
	case efer&EFERLMA != 0 && val&CR4PAE == 0, efer&EFERLMA == 0 && val&CR4PCIDE != 0:
		return crFault
	}
	c.write(CR4ReadShadow, val)
	c.write(GuestCR4, ctl.GuestCR4(val))
	if paePaging(c.guestCR0(), val, efer) {
		c.loadPDPTEs(c.read(GuestCR3))
	}
	c.flushVPID()
	return crDone
}

// GetSRegs copies the guest's system state from the VMCS into s
// (ReadGuestSRegs: CR0 and CR4 as the guest sees them), with CR2 from the
// last exit and CR8 from the virtual-APIC page's TPR.
// Off the vCPU's CPU it leaves s as it is.
func (c *VCPU) GetSRegs(s *vmm.SRegs) {
	if c.closed || c.bind() != nil {
		return
	}
	ReadGuestSRegs(c.fields(), s)
	s.CR2 = c.cr2
	s.CR8 = uint64(c.vapic[vapicTPR]>>4) & 0xf
}

// CanInjectInterrupt reports whether the guest would take an external
// interrupt now: RFLAGS.IF set, no blocking by STI or MOV SS (which ends
// once the core has completed the exiting instruction), and no event
// already pending.
func (c *VCPU) CanInjectInterrupt(v *vmm.VCPU) bool {
	return v.Regs.RFLAGS&rflagsIF != 0 && !v.HasPending &&
		c.shadow(v)&(InterruptibilitySTI|InterruptibilityMOVSS) == 0
}

// RequestInterruptWindow sets (on) or clears "interrupt-window exiting":
// with it set, the CPU exits (ExitIntrWindow) as soon as the guest can
// take an interrupt, at every entry until it is cleared. Off the vCPU's
// CPU it does nothing (Run fails there anyway).
func (c *VCPU) RequestInterruptWindow(on bool) {
	if c.closed || c.bind() != nil {
		return
	}
	if on {
		c.proc |= ProcInterruptWindowExiting
	} else {
		c.proc &^= ProcInterruptWindowExiting
	}
	c.write(ProcControls, uint64(c.proc))
}
