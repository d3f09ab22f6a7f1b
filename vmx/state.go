package vmx

import "juice/vmm"

// Guest-state checks before VM entry (SDM Vol. 3C 27.3.1 "Checks on the
// Guest State Area"). A VM entry that fails them exits with reason 33 and
// says nothing about which field was wrong; juice runs the common checks
// itself, first to refuse a state up front and then to name the field
// after the hardware refused one.

// Control-register and EFER bits used by the checks.
const (
	CR4PAE   = 1 << 5
	CR4VMXE  = 1 << 13
	CR4PCIDE = 1 << 17

	EFERSCE = 1 << 0
	EFERLME = 1 << 8
	EFERNXE = 1 << 11

	// eferAllowed are the EFER bits VM entry accepts with "load
	// IA32_EFER" (SDM 27.3.1.1: the others are reserved).
	eferAllowed = EFERSCE | EFERLME | EFERLMA | EFERNXE

	rflagsVM        = 1 << 17
	rflagsIF        = 1 << 9
	rflagsFixed1    = 1 << 1
	rflagsReserved  = ^uint64(0x3f_ffff) | 1<<15 | 1<<5 | 1<<3 // 63:22, 15, 5, 3
	interruptResvd  = ^uint32(0x1f)                            // bits 31:5
	dr7HighReserved = 0xffff_ffff_0000_0000
)

// GuestExtra is the part of the guest state the checks need that
// vmm.SRegs does not hold. A nil *GuestExtra stands for RIP 0, RFLAGS 2
// (its fixed bit), DR7 0, the PAT 0 (all UC), active, nothing blocked.
type GuestExtra struct {
	RIP, RFLAGS, DR7, PAT uint64
	Activity              uint32 // ActivityActive, ActivityHLT, ...
	Interruptibility      uint32 // Interruptibility* bits
}

// GuestStateError says which guest-state field VM entry would refuse and
// why.
type GuestStateError struct {
	Field  Encoding // the VMCS field that is wrong
	Reason string
}

// Error reads "vmx: invalid guest state: <field>: <reason>".
func (e *GuestStateError) Error() string {
	return "vmx: invalid guest state: " + e.Field.Name() + ": " + e.Reason
}

// CheckGuestState checks the guest state s (and x, which may be nil) that
// the backend would load with controls c against the VM-entry checks:
//
//   - CR0 PE and PG must be 1 without unrestricted guest (real mode and
//     paging-off protected mode need it); PG requires PE; no bit
//     IA32_VMX_CR0_FIXED1 or IA32_VMX_CR4_FIXED1 forbids (the bits FIXED0
//     forces on, such as CR0.NE and CR4.VMXE, are the backend's to set,
//     behind the read shadows); CR3 bits 63:52 clear;
//   - EFER: only SCE, LME, LMA and NXE; LMA (which decides "IA-32e mode
//     guest", EntryFor) requires CR0.PG and CR4.PAE, and with paging LME
//     must equal LMA; CR4.PCIDE only in IA-32e mode;
//   - DR7 bits 63:32 clear; every PAT entry a valid memory type;
//   - segments: TR and LDTR selectors' TI flag; SS.RPL = CS.RPL without
//     unrestricted guest; canonical TR, FS, GS and LDTR bases and 32-bit
//     CS, SS, DS, ES bases; in virtual-8086 mode base = selector × 16,
//     limit FFFF and access rights F3; otherwise the type, S, DPL and
//     granularity rules of every usable segment (usable = present), CS
//     usable and of an allowed type, CS.L with CS.D clear, TR a busy TSS
//     (64-bit in IA-32e mode), LDTR an LDT;
//   - GDTR and IDTR bases canonical;
//   - RIP: bits 63:32 clear outside 64-bit mode, canonical in it; RFLAGS
//     reserved bits clear, bit 1 set, VM only in protected non-IA-32e
//     mode;
//   - activity state 0-3, HLT only with SS.DPL 0; interruptibility bits
//     31:5 clear, not STI and MOV-SS blocking together, STI blocking only
//     with IF, no STI or MOV-SS blocking when not active.
//
// It returns a *GuestStateError naming the first wrong field, or nil.
// Not checked: the fields the backend fills itself (VMCS link pointer,
// PDPTEs, SYSENTER MSRs, IA32_DEBUGCTL, pending debug exceptions) and
// CR3 against the CPU's real physical-address width.
func CheckGuestState(s *vmm.SRegs, x *GuestExtra, c *Controls) error {
	if f, msg := checkGuestState(s, x, c); msg != "" {
		return &GuestStateError{Field: f, Reason: msg}
	}
	return nil
}

// SetGuestStateDetail appends ": <field>: <reason>" for the first wrong
// field of the guest state to out's Detail (after TranslateExit's "VM
// entry failed: invalid guest state"), and reports whether it found one.
// Allocation-free.
func SetGuestStateDetail(out *vmm.Exit, s *vmm.SRegs, x *GuestExtra, c *Controls) bool {
	f, msg := checkGuestState(s, x, c)
	if msg == "" {
		return false
	}
	detailPut(out, ": ")
	detailPut(out, f.Name())
	detailPut(out, ": ")
	detailPut(out, msg)
	return true
}

// Reasons (constants, so checkGuestState allocates nothing).
const (
	msgCR0PENoUG     = "PE must be 1 without unrestricted guest (real mode needs it)"
	msgCR0PGNoUG     = "PG must be 1 without unrestricted guest (paging off needs it)"
	msgCR0PGNoPE     = "PG is set while PE is clear"
	msgCR0Fixed1     = "sets a bit IA32_VMX_CR0_FIXED1 requires clear"
	msgCR4Fixed1     = "sets a bit IA32_VMX_CR4_FIXED1 requires clear (a feature the CPU lacks)"
	msgCR3High       = "bits 63:52 are set"
	msgCR4PCIDE      = "PCIDE is set outside IA-32e mode"
	msgEFERReserved  = "reserved bits are set (only SCE, LME, LMA, NXE allowed)"
	msgLMANoPG       = "LMA (IA-32e mode guest) is set while CR0.PG is clear"
	msgLMANoPAE      = "LMA (IA-32e mode guest) is set while CR4.PAE is clear"
	msgLMEvsLMA      = "LME differs from LMA while paging is on"
	msgDR7High       = "bits 63:32 are set"
	msgPAT           = "an entry is not a valid memory type (0, 1, 4, 5, 6, 7)"
	msgTI            = "TI flag (bit 2) is set"
	msgSSRPL         = "SS.RPL differs from CS.RPL"
	msgBaseCanonical = "base is not canonical"
	msgBase32        = "base bits 63:32 are set"
	msgV86Base       = "virtual-8086 mode needs base = selector << 4"
	msgV86Limit      = "virtual-8086 mode needs limit FFFF"
	msgV86AR         = "virtual-8086 mode needs access rights F3"
	msgCSUnusable    = "CS is unusable (not present)"
	msgCSType        = "CS type must be accessed code (9, 11, 13, 15; 3 with unrestricted guest)"
	msgCSType3DPL    = "CS type 3 needs DPL 0"
	msgCSDPLNonConf  = "non-conforming CS DPL differs from SS.DPL"
	msgCSDPLConf     = "conforming CS DPL is above SS.DPL"
	msgCSLD          = "CS.L and CS.D are both set in IA-32e mode"
	msgSSType        = "SS type must be read/write accessed data (3 or 7)"
	msgSSDPLRPL      = "SS.DPL differs from SS.RPL"
	msgSSDPL0        = "SS.DPL must be 0 in real mode or with CS type 3"
	msgDataType      = "type must be accessed, and readable if code"
	msgDataDPL       = "DPL is below the selector's RPL"
	msgS             = "S (code/data) must be 1"
	msgGLimitLow     = "limit bits 11:0 are not all 1 while G is set"
	msgGLimitHigh    = "limit above 1 MiB while G is clear"
	msgTRUnusable    = "TR is unusable (not present)"
	msgTRType64      = "TR must be a busy 64-bit TSS (type 11) in IA-32e mode"
	msgTRType        = "TR must be a busy TSS (type 3 or 11)"
	msgSysS          = "S must be 0 for a system segment"
	msgLDTRType      = "LDTR must be an LDT (type 2)"
	msgRIPHigh       = "bits 63:32 are set outside 64-bit mode"
	msgRIPCanonical  = "RIP is not canonical in 64-bit mode"
	msgRFLAGSResvd   = "reserved bits are set or bit 1 is clear"
	msgRFLAGSVM      = "VM is set in IA-32e mode or real mode"
	msgActivity      = "activity state is not 0-3"
	msgActivityHLT   = "HLT activity state needs SS.DPL 0"
	msgIntrReserved  = "reserved bits 31:5 are set"
	msgIntrBoth      = "blocking by STI and by MOV SS both set"
	msgIntrSTIIF     = "blocking by STI while RFLAGS.IF is clear"
	msgIntrNotActive = "blocking by STI or MOV SS while not active"
)

// canonical reports whether a is a canonical 48-bit address.
func canonical(a uint64) bool { return a < 1<<47 || a >= 0xffff_8000_0000_0000 }

// segField names the VMCS fields of one segment register.
type segField struct {
	sel, base, limit, ar Encoding
}

var (
	fieldsES   = segField{GuestESSelector, GuestESBase, GuestESLimit, GuestESAccessRights}
	fieldsCS   = segField{GuestCSSelector, GuestCSBase, GuestCSLimit, GuestCSAccessRights}
	fieldsSS   = segField{GuestSSSelector, GuestSSBase, GuestSSLimit, GuestSSAccessRights}
	fieldsDS   = segField{GuestDSSelector, GuestDSBase, GuestDSLimit, GuestDSAccessRights}
	fieldsFS   = segField{GuestFSSelector, GuestFSBase, GuestFSLimit, GuestFSAccessRights}
	fieldsGS   = segField{GuestGSSelector, GuestGSBase, GuestGSLimit, GuestGSAccessRights}
	fieldsLDTR = segField{GuestLDTRSelector, GuestLDTRBase, GuestLDTRLimit, GuestLDTRAccessRights}
	fieldsTR   = segField{GuestTRSelector, GuestTRBase, GuestTRLimit, GuestTRAccessRights}
)

// checkGuestState returns the first wrong field and why, or msg "".
func checkGuestState(s *vmm.SRegs, x *GuestExtra, c *Controls) (Encoding, string) {
	extra := GuestExtra{RFLAGS: rflagsFixed1}
	if x != nil {
		extra = *x
	}
	ug := c.UnrestrictedGuest()
	cr0, cr4, efer := s.CR0, s.CR4, s.EFER
	ia32e := efer&EFERLMA != 0

	// Control registers.
	switch {
	case !ug && cr0&CR0PE == 0:
		return GuestCR0, msgCR0PENoUG
	case !ug && cr0&CR0PG == 0:
		return GuestCR0, msgCR0PGNoUG
	case cr0&CR0PG != 0 && cr0&CR0PE == 0:
		return GuestCR0, msgCR0PGNoPE
	case cr0&^c.CR0Fixed1 != 0:
		return GuestCR0, msgCR0Fixed1
	case cr4&^c.CR4Fixed1&^CR4VMXE != 0:
		return GuestCR4, msgCR4Fixed1
	case s.CR3>>52 != 0:
		return GuestCR3, msgCR3High
	case !ia32e && cr4&CR4PCIDE != 0:
		return GuestCR4, msgCR4PCIDE
	}
	if c.Entry&EntryCtlLoadDebugControls != 0 && extra.DR7&dr7HighReserved != 0 {
		return GuestDR7, msgDR7High
	}
	if c.Entry&EntryCtlLoadPAT != 0 && !validPAT(extra.PAT) {
		return GuestIA32PAT, msgPAT
	}
	if c.Entry&EntryCtlLoadEFER != 0 {
		switch {
		case efer&^eferAllowed != 0:
			return GuestIA32EFER, msgEFERReserved
		case cr0&CR0PG != 0 && (efer&EFERLME != 0) != ia32e:
			return GuestIA32EFER, msgLMEvsLMA
		}
	}
	switch {
	case ia32e && cr0&CR0PG == 0:
		return GuestIA32EFER, msgLMANoPG
	case ia32e && cr4&CR4PAE == 0:
		return GuestIA32EFER, msgLMANoPAE
	}

	// Segment registers.
	v86 := extra.RFLAGS&rflagsVM != 0
	if s.TR.Selector&4 != 0 {
		return GuestTRSelector, msgTI
	}
	ldtrUsable := s.LDTR.Attr&vmm.SegP != 0
	if ldtrUsable && s.LDTR.Selector&4 != 0 {
		return GuestLDTRSelector, msgTI
	}
	if !v86 && !ug && s.SS.Selector&3 != s.CS.Selector&3 {
		return GuestSSSelector, msgSSRPL
	}
	if v86 {
		for _, sg := range [...]struct {
			seg *vmm.Segment
			f   segField
		}{{&s.CS, fieldsCS}, {&s.SS, fieldsSS}, {&s.DS, fieldsDS}, {&s.ES, fieldsES}, {&s.FS, fieldsFS}, {&s.GS, fieldsGS}} {
			switch {
			case sg.seg.Base != uint64(sg.seg.Selector)<<4:
				return sg.f.base, msgV86Base
			case sg.seg.Limit != 0xffff:
				return sg.f.limit, msgV86Limit
			case AccessRights(sg.seg.Attr) != 0xf3:
				return sg.f.ar, msgV86AR
			}
		}
	}
	// Bases (every mode).
	switch {
	case !canonical(s.TR.Base):
		return GuestTRBase, msgBaseCanonical
	case !canonical(s.FS.Base):
		return GuestFSBase, msgBaseCanonical
	case !canonical(s.GS.Base):
		return GuestGSBase, msgBaseCanonical
	case ldtrUsable && !canonical(s.LDTR.Base):
		return GuestLDTRBase, msgBaseCanonical
	case s.CS.Base>>32 != 0:
		return GuestCSBase, msgBase32
	}
	for _, sg := range [...]struct {
		seg *vmm.Segment
		f   segField
	}{{&s.SS, fieldsSS}, {&s.DS, fieldsDS}, {&s.ES, fieldsES}} {
		if sg.seg.Attr&vmm.SegP != 0 && sg.seg.Base>>32 != 0 {
			return sg.f.base, msgBase32
		}
	}
	if !v86 {
		if f, msg := checkSegments(s, ug, ia32e); msg != "" {
			return f, msg
		}
	}
	if f, msg := checkSystemSegments(s, ia32e, ldtrUsable); msg != "" {
		return f, msg
	}
	if !canonical(s.GDTR.Base) {
		return GuestGDTRBase, msgBaseCanonical
	}
	if !canonical(s.IDTR.Base) {
		return GuestIDTRBase, msgBaseCanonical
	}

	// RIP and RFLAGS.
	long := ia32e && s.CS.Attr&vmm.SegL != 0
	switch {
	case !long && extra.RIP>>32 != 0:
		return GuestRIP, msgRIPHigh
	case long && !canonical(extra.RIP):
		return GuestRIP, msgRIPCanonical
	case extra.RFLAGS&rflagsReserved != 0 || extra.RFLAGS&rflagsFixed1 == 0:
		return GuestRFLAGS, msgRFLAGSResvd
	case v86 && (ia32e || cr0&CR0PE == 0):
		return GuestRFLAGS, msgRFLAGSVM
	}

	// Non-register state.
	ib := extra.Interruptibility
	switch {
	case extra.Activity > ActivityWaitSIPI:
		return GuestActivityState, msgActivity
	case extra.Activity == ActivityHLT && s.SS.Attr&vmm.SegDPL3 != 0:
		return GuestActivityState, msgActivityHLT
	case ib&interruptResvd != 0:
		return GuestInterruptibility, msgIntrReserved
	case ib&InterruptibilitySTI != 0 && ib&InterruptibilityMOVSS != 0:
		return GuestInterruptibility, msgIntrBoth
	case ib&InterruptibilitySTI != 0 && extra.RFLAGS&rflagsIF == 0:
		return GuestInterruptibility, msgIntrSTIIF
	case extra.Activity != ActivityActive && ib&(InterruptibilitySTI|InterruptibilityMOVSS) != 0:
		return GuestInterruptibility, msgIntrNotActive
	}
	return 0, ""
}

// validPAT reports whether every byte of pat is a memory type PAT accepts.
func validPAT(pat uint64) bool {
	for i := 0; i < 8; i++ {
		switch byte(pat >> (8 * i)) {
		case 0, 1, 4, 5, 6, 7:
		default:
			return false
		}
	}
	return true
}

// checkLimitG checks the granularity rule of a usable segment: when any of
// limit bits 11:0 is clear G must be 0, when any of bits 31:20 is set G
// must be 1.
func checkLimitG(limit uint32, ar uint32) string {
	switch {
	case limit&0xfff != 0xfff && ar&ARG != 0:
		return msgGLimitLow
	case limit>>20 != 0 && ar&ARG == 0:
		return msgGLimitHigh
	}
	return ""
}

// checkSegments checks CS, SS, DS, ES, FS and GS outside virtual-8086
// mode (SDM 27.3.1.2, access-rights fields).
func checkSegments(s *vmm.SRegs, ug, ia32e bool) (Encoding, string) {
	cs := AccessRights(s.CS.Attr)
	ss := AccessRights(s.SS.Attr)
	csType, ssDPL := cs&ARTypeMask, (ss&ARDPLMask)>>ARDPLShift
	csDPL := (cs & ARDPLMask) >> ARDPLShift

	// CS.
	switch {
	case cs&ARUnusable != 0:
		return GuestCSAccessRights, msgCSUnusable
	case !(csType == 9 || csType == 11 || csType == 13 || csType == 15 || (ug && csType == 3)):
		return GuestCSAccessRights, msgCSType
	case cs&ARS == 0:
		return GuestCSAccessRights, msgS
	case csType == 3 && csDPL != 0:
		return GuestCSAccessRights, msgCSType3DPL
	case (csType == 9 || csType == 11) && csDPL != ssDPL:
		return GuestCSAccessRights, msgCSDPLNonConf
	case (csType == 13 || csType == 15) && csDPL > ssDPL:
		return GuestCSAccessRights, msgCSDPLConf
	case ia32e && cs&ARL != 0 && cs&ARDB != 0:
		return GuestCSAccessRights, msgCSLD
	}
	if m := checkLimitG(s.CS.Limit, cs); m != "" {
		return GuestCSAccessRights, m
	}

	// SS.
	if !ug && ssDPL != uint32(s.SS.Selector&3) {
		return GuestSSAccessRights, msgSSDPLRPL
	}
	if (csType == 3 || s.CR0&CR0PE == 0) && ssDPL != 0 {
		return GuestSSAccessRights, msgSSDPL0
	}
	if ss&ARUnusable == 0 {
		switch t := ss & ARTypeMask; {
		case t != 3 && t != 7:
			return GuestSSAccessRights, msgSSType
		case ss&ARS == 0:
			return GuestSSAccessRights, msgS
		}
		if m := checkLimitG(s.SS.Limit, ss); m != "" {
			return GuestSSAccessRights, m
		}
	}

	// DS, ES, FS, GS.
	for _, sg := range [...]struct {
		seg *vmm.Segment
		f   segField
	}{{&s.DS, fieldsDS}, {&s.ES, fieldsES}, {&s.FS, fieldsFS}, {&s.GS, fieldsGS}} {
		ar := AccessRights(sg.seg.Attr)
		if ar&ARUnusable != 0 {
			continue
		}
		t := ar & ARTypeMask
		switch {
		case t&1 == 0 || (t&8 != 0 && t&2 == 0):
			return sg.f.ar, msgDataType
		case ar&ARS == 0:
			return sg.f.ar, msgS
		case !ug && t <= 11 && (ar&ARDPLMask)>>ARDPLShift < uint32(sg.seg.Selector&3):
			return sg.f.ar, msgDataDPL
		}
		if m := checkLimitG(sg.seg.Limit, ar); m != "" {
			return sg.f.ar, m
		}
	}
	return 0, ""
}

// checkSystemSegments checks TR and LDTR (every mode).
func checkSystemSegments(s *vmm.SRegs, ia32e, ldtrUsable bool) (Encoding, string) {
	tr := AccessRights(s.TR.Attr)
	t := tr & ARTypeMask
	switch {
	case tr&ARUnusable != 0:
		return GuestTRAccessRights, msgTRUnusable
	case ia32e && t != 11:
		return GuestTRAccessRights, msgTRType64
	case !ia32e && t != 3 && t != 11:
		return GuestTRAccessRights, msgTRType
	case tr&ARS != 0:
		return GuestTRAccessRights, msgSysS
	}
	if m := checkLimitG(s.TR.Limit, tr); m != "" {
		return GuestTRAccessRights, m
	}
	if !ldtrUsable {
		return 0, ""
	}
	ldtr := AccessRights(s.LDTR.Attr)
	switch {
	case ldtr&ARTypeMask != 2:
		return GuestLDTRAccessRights, msgLDTRType
	case ldtr&ARS != 0:
		return GuestLDTRAccessRights, msgSysS
	}
	if m := checkLimitG(s.LDTR.Limit, ldtr); m != "" {
		return GuestLDTRAccessRights, m
	}
	return 0, ""
}
