package vmx

import "juice/vmm"

// Basic exit reasons (SDM Vol. 3D Appendix C, Table C-1): bits 15:0 of the
// exit-reason field.
const (
	ReasonExceptionNMI      = 0
	ReasonExternalInterrupt = 1
	ReasonTripleFault       = 2
	ReasonINIT              = 3
	ReasonSIPI              = 4
	ReasonIOSMI             = 5
	ReasonOtherSMI          = 6
	ReasonInterruptWindow   = 7
	ReasonNMIWindow         = 8
	ReasonTaskSwitch        = 9
	ReasonCPUID             = 10
	ReasonGETSEC            = 11
	ReasonHLT               = 12
	ReasonINVD              = 13
	ReasonINVLPG            = 14
	ReasonRDPMC             = 15
	ReasonRDTSC             = 16
	ReasonRSM               = 17
	ReasonVMCALL            = 18
	ReasonVMCLEAR           = 19
	ReasonVMLAUNCH          = 20
	ReasonVMPTRLD           = 21
	ReasonVMPTRST           = 22
	ReasonVMREAD            = 23
	ReasonVMRESUME          = 24
	ReasonVMWRITE           = 25
	ReasonVMXOFF            = 26
	ReasonVMXON             = 27
	ReasonCRAccess          = 28
	ReasonDRAccess          = 29
	ReasonIO                = 30
	ReasonRDMSR             = 31
	ReasonWRMSR             = 32
	ReasonInvalidGuestState = 33 // VM-entry failure
	ReasonMSRLoading        = 34 // VM-entry failure
	ReasonMWAIT             = 36
	ReasonMonitorTrapFlag   = 37
	ReasonMONITOR           = 39
	ReasonPAUSE             = 40
	ReasonMachineCheck      = 41 // VM-entry failure
	ReasonTPRBelowThreshold = 43
	ReasonAPICAccess        = 44
	ReasonVirtualizedEOI    = 45
	ReasonGDTRIDTRAccess    = 46
	ReasonLDTRTRAccess      = 47
	ReasonEPTViolation      = 48
	ReasonEPTMisconfig      = 49
	ReasonINVEPT            = 50
	ReasonRDTSCP            = 51
	ReasonPreemptionTimer   = 52
	ReasonINVVPID           = 53
	ReasonWBINVD            = 54
	ReasonXSETBV            = 55
	ReasonAPICWrite         = 56
	ReasonRDRAND            = 57
	ReasonINVPCID           = 58
	ReasonVMFUNC            = 59
	ReasonENCLS             = 60
	ReasonRDSEED            = 61
	ReasonPMLFull           = 62
	ReasonXSAVES            = 63
	ReasonXRSTORS           = 64
)

// Exit-reason field bits above the basic reason (SDM 28.2.1, "Basic VM-Exit
// Information").
const (
	ReasonBasicMask    = 0xffff
	ReasonEntryFailure = 1 << 31 // VM-entry failure (reasons 33, 34, 41)
)

// Interruption-information format, shared by the VM-entry
// interruption-information field, the VM-exit interruption information
// and the IDT-vectoring information (SDM 25.8.3, 28.2.2, 28.2.4).
const (
	IntrVectorMask = 0xff    // bits 7:0 vector
	IntrTypeShift  = 8       // bits 10:8 type
	IntrTypeMask   = 7 << 8  //
	IntrErrValid   = 1 << 11 // an error code is delivered (in the matching error-code field)
	IntrNMIUnblock = 1 << 12 // exit info: NMI unblocking due to IRET
	IntrValid      = 1 << 31
)

// Interruption types (bits 10:8).
const (
	IntrTypeExtInt     = 0 // external interrupt
	IntrTypeNMI        = 2
	IntrTypeHWExcept   = 3 // hardware exception (#PF, #GP, ...)
	IntrTypeSoftInt    = 4 // software interrupt (INT n)
	IntrTypePrivSoftEx = 5 // privileged software exception (INT1/ICEBP)
	IntrTypeSoftExcept = 6 // software exception (INT3, INTO)
	IntrTypeOther      = 7 // other event (MTF)
)

// Guest interruptibility-state bits (SDM 25.4.2, Table 25-3).
const (
	InterruptibilitySTI   = 1 << 0 // blocking by STI
	InterruptibilityMOVSS = 1 << 1 // blocking by MOV SS / POP SS
	InterruptibilitySMI   = 1 << 2
	InterruptibilityNMI   = 1 << 3
	InterruptibilityEncl  = 1 << 4
)

// Guest activity states (SDM 25.4.2).
const (
	ActivityActive   = 0
	ActivityHLT      = 1
	ActivityShutdown = 2
	ActivityWaitSIPI = 3
)

// Exit qualification of an I/O instruction (SDM 28.2.1, Table 28-5).
const (
	IOQualSizeMask  = 7      // bits 2:0: size minus 1 (0, 1 or 3)
	IOQualIn        = 1 << 3 // direction: 1 = IN
	IOQualString    = 1 << 4 // INS/OUTS
	IOQualRep       = 1 << 5 // REP prefix
	IOQualImmediate = 1 << 6 // operand encoding: 1 = immediate port
	IOQualPortShift = 16     // bits 31:16 port
)

// Exit qualification of an EPT violation (SDM 28.2.1, Table 28-7).
const (
	EPTQualRead       = 1 << 0 // the access was a data read
	EPTQualWrite      = 1 << 1 // the access was a data write
	EPTQualFetch      = 1 << 2 // the access was an instruction fetch
	EPTQualReadable   = 1 << 3 // the guest-physical address was readable
	EPTQualWritable   = 1 << 4
	EPTQualExecutable = 1 << 5
	EPTQualGLAValid   = 1 << 7 // the guest-linear-address field is valid
	EPTQualFinal      = 1 << 8 // with GLAValid: the access was to the final translation, not a paging structure
	EPTQualNMIUnblock = 1 << 12
)

// Exit qualifications of an invalid-guest-state entry failure (SDM 28.8).
const (
	EntryQualPDPTE   = 2 // loading the PDPTEs failed
	EntryQualNMI     = 3 // NMI injection while blocked by STI
	EntryQualLinkPtr = 4 // invalid VMCS link pointer
)

// Vectors whose hardware exceptions push an error code.
const errCodeVectors = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// maxInsnLen is the longest x86 instruction.
const maxInsnLen = 15

// RawExit is what the hardware reports at a VM exit, as read from the
// VMCS.
type RawExit struct {
	Reason    uint32 // exit reason (basic reason in bits 15:0, entry failure in bit 31)
	Qual      uint64 // exit qualification
	GPA       uint64 // guest-physical address (EPT violations and misconfigurations)
	GLA       uint64 // guest-linear address
	InstrLen  uint32 // VM-exit instruction length
	IntrInfo  uint32 // VM-exit interruption information
	IntrError uint32 // VM-exit interruption error code
	IDTInfo   uint32 // IDT-vectoring information: an event whose delivery the exit interrupted
	IDTError  uint32 // IDT-vectoring error code
}

// TranslateExit fills out with the neutral form of the exit r (out is reset
// first). It is pure and allocation-free:
//
//   - I/O instruction (30) → ExitIO: port, size (qualification bits 2:0 =
//     0, 1, 3 for 1, 2, 4 bytes; anything else is ExitUnhandled),
//     direction, string and REP.
//   - EPT violation (48) → ExitMMIO with GPA, Write and Fetch, and InstrLen
//     0 (the exit-instruction-length field is not defined for EPT
//     violations: the core decodes). A violation on a guest paging-
//     structure access (guest-linear address valid but not the final
//     translation) or during event delivery (IDT-vectoring information
//     valid) is no instruction's data access and becomes ExitUnhandled.
//   - EPT misconfiguration (49) → ExitInvalid naming the address: juice's
//     EPT never has one, so the tables are corrupt.
//   - CPUID (10), HLT (12), VMCALL (18), RDMSR (31), WRMSR (32), PAUSE (40,
//     also PAUSE-loop exiting) → their reasons.
//   - Triple fault (2) → ExitShutdown. External interrupt (1; Vector when
//     the interrupt was acknowledged on exit), INIT (3), SIPI (4), SMIs (5,
//     6), VMX-preemption timer (52), and an NMI (0 with type NMI) →
//     ExitExtIntr: a host event, nothing to emulate. Interrupt window (7) →
//     ExitIntrWindow.
//   - Exception (0) → ExitException with Vector, and HasErr/ErrCode when
//     an error code was delivered; for #PF, Info2 is the faulting linear
//     address (the exit qualification), as the core expects.
//   - VM-entry failures (bit 31; reasons 33 invalid guest state, 34 MSR
//     loading, 41 machine check) → ExitInvalid with a readable Detail.
//   - anything else → ExitUnhandled.
//
// InstrLen is the exit-instruction-length field for the exits caused by
// an instruction (and for software exceptions); Raw is the full exit
// reason, Info1 the qualification, Info2 the guest-physical address for
// EPT exits and the guest-linear address otherwise (#PF: see above).
func TranslateExit(r *RawExit, out *vmm.Exit) {
	*out = vmm.Exit{Raw: uint64(r.Reason), Info1: r.Qual, Info2: r.GLA}
	basic := r.Reason & ReasonBasicMask
	if r.Reason&ReasonEntryFailure != 0 || basic == ReasonInvalidGuestState ||
		basic == ReasonMSRLoading || basic == ReasonMachineCheck {
		entryFailure(r, out)
		return
	}
	switch basic {
	case ReasonIO:
		translateIO(r, out)
	case ReasonEPTViolation:
		out.Info2 = r.GPA
		out.GPA = r.GPA
		if r.Qual&(EPTQualGLAValid|EPTQualFinal) == EPTQualGLAValid || r.IDTInfo&IntrValid != 0 {
			out.Reason = vmm.ExitUnhandled
			return
		}
		out.Reason = vmm.ExitMMIO
		out.Write = r.Qual&EPTQualWrite != 0
		out.Fetch = r.Qual&EPTQualFetch != 0
	case ReasonEPTMisconfig:
		out.Info2 = r.GPA
		out.GPA = r.GPA
		out.Reason = vmm.ExitInvalid
		detailPut(out, "EPT misconfiguration at guest-physical ")
		detailHex(out, r.GPA)
	case ReasonCPUID:
		instrExit(r, out, vmm.ExitCPUID)
	case ReasonHLT:
		instrExit(r, out, vmm.ExitHLT)
	case ReasonVMCALL:
		instrExit(r, out, vmm.ExitHypercall)
	case ReasonRDMSR:
		instrExit(r, out, vmm.ExitRDMSR)
	case ReasonWRMSR:
		instrExit(r, out, vmm.ExitWRMSR)
	case ReasonPAUSE:
		instrExit(r, out, vmm.ExitPause)
	case ReasonTripleFault:
		out.Reason = vmm.ExitShutdown
	case ReasonExternalInterrupt:
		out.Reason = vmm.ExitExtIntr
		if r.IntrInfo&IntrValid != 0 {
			out.Vector = uint8(r.IntrInfo & IntrVectorMask)
		}
	case ReasonINIT, ReasonSIPI, ReasonIOSMI, ReasonOtherSMI, ReasonPreemptionTimer:
		out.Reason = vmm.ExitExtIntr
	case ReasonInterruptWindow:
		out.Reason = vmm.ExitIntrWindow
	case ReasonExceptionNMI:
		translateException(r, out)
	default:
		out.Reason = vmm.ExitUnhandled
	}
}

// instrExit makes out an exit of reason for an intercepted instruction.
func instrExit(r *RawExit, out *vmm.Exit, reason vmm.ExitReason) {
	out.Reason = reason
	out.InstrLen = instrLen(r.InstrLen)
}

// instrLen is the exit-instruction-length field as a length, or 0 when it
// is not 1..15.
func instrLen(n uint32) uint8 {
	if n == 0 || n > maxInsnLen {
		return 0
	}
	return uint8(n)
}

// translateIO decodes an I/O-instruction exit.
func translateIO(r *RawExit, out *vmm.Exit) {
	q := r.Qual
	switch q & IOQualSizeMask {
	case 0:
		out.Size = 1
	case 1:
		out.Size = 2
	case 3:
		out.Size = 4
	default: // not something hardware reports
		out.Reason = vmm.ExitUnhandled
		return
	}
	out.Reason = vmm.ExitIO
	out.Port = uint16(q >> IOQualPortShift)
	out.In = q&IOQualIn != 0
	out.String = q&IOQualString != 0
	out.Rep = q&IOQualRep != 0
	out.InstrLen = instrLen(r.InstrLen)
}

// translateException decodes an exception-or-NMI exit.
func translateException(r *RawExit, out *vmm.Exit) {
	info := r.IntrInfo
	if info&IntrValid == 0 {
		out.Reason = vmm.ExitUnhandled
		return
	}
	switch (info & IntrTypeMask) >> IntrTypeShift {
	case IntrTypeNMI:
		out.Reason = vmm.ExitExtIntr
		out.Vector = 2
		return
	case IntrTypeHWExcept:
	case IntrTypePrivSoftEx, IntrTypeSoftExcept:
		out.InstrLen = instrLen(r.InstrLen)
	default:
		out.Reason = vmm.ExitUnhandled
		return
	}
	v := uint8(info & IntrVectorMask)
	if v >= 32 {
		out.Reason = vmm.ExitUnhandled
		return
	}
	out.Reason = vmm.ExitException
	out.Vector = v
	if info&IntrErrValid != 0 {
		out.HasErr, out.ErrCode = true, r.IntrError
	}
	if v == 14 { // #PF: the exit qualification is the faulting address
		out.Info2 = r.Qual
	}
}

// entryFailure makes out an ExitInvalid for a VM-entry failure.
func entryFailure(r *RawExit, out *vmm.Exit) {
	out.Reason = vmm.ExitInvalid
	switch r.Reason & ReasonBasicMask {
	case ReasonInvalidGuestState:
		detailPut(out, "VM entry failed: invalid guest state")
		switch r.Qual {
		case EntryQualPDPTE:
			detailPut(out, " (loading the PDPTEs)")
		case EntryQualNMI:
			detailPut(out, " (NMI injection while blocked by STI)")
		case EntryQualLinkPtr:
			detailPut(out, " (invalid VMCS link pointer)")
		}
	case ReasonMSRLoading:
		detailPut(out, "VM entry failed: entry ")
		detailDec(out, r.Qual)
		detailPut(out, " of the VM-entry MSR-load area is invalid")
	case ReasonMachineCheck:
		detailPut(out, "VM entry failed: machine-check event")
	default:
		detailPut(out, "VM entry failed: exit reason ")
		detailDec(out, uint64(r.Reason&ReasonBasicMask))
	}
}

// detailPut appends s to out's Detail (cut to fit).
func detailPut(out *vmm.Exit, s string) {
	n := int(out.DetailLen)
	if n > len(out.Detail) {
		n = len(out.Detail)
	}
	n += copy(out.Detail[n:], s)
	out.DetailLen = uint8(n)
}

// detailDec appends v in decimal.
func detailDec(out *vmm.Exit, v uint64) {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	detailBytes(out, buf[i:])
}

// detailHex appends v as 0x-prefixed hexadecimal.
func detailHex(out *vmm.Exit, v uint64) {
	const digits = "0123456789abcdef"
	var buf [18]byte
	i := len(buf)
	for {
		i--
		buf[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	i--
	buf[i] = 'x'
	i--
	buf[i] = '0'
	detailBytes(out, buf[i:])
}

// detailBytes appends b.
func detailBytes(out *vmm.Exit, b []byte) {
	n := int(out.DetailLen)
	if n > len(out.Detail) {
		n = len(out.Detail)
	}
	n += copy(out.Detail[n:], b)
	out.DetailLen = uint8(n)
}

// InstructionError is a VM-instruction error number (the VMCS field
// VMInstructionError after a VMX instruction fails with VMfailValid; SDM
// Vol. 3C 31.4, Table 31-1).
type InstructionError uint32

// VM-instruction error numbers.
const (
	ErrVMCALLInRoot            InstructionError = 1
	ErrVMCLEARInvalidAddr      InstructionError = 2
	ErrVMCLEARVMXONPtr         InstructionError = 3
	ErrVMLAUNCHNonClear        InstructionError = 4
	ErrVMRESUMENonLaunched     InstructionError = 5
	ErrVMRESUMEAfterVMXOFF     InstructionError = 6
	ErrEntryInvalidControl     InstructionError = 7
	ErrEntryInvalidHostState   InstructionError = 8
	ErrVMPTRLDInvalidAddr      InstructionError = 9
	ErrVMPTRLDVMXONPtr         InstructionError = 10
	ErrVMPTRLDBadRevision      InstructionError = 11
	ErrUnsupportedComponent    InstructionError = 12
	ErrVMWRITEReadOnly         InstructionError = 13
	ErrVMXONInRoot             InstructionError = 15
	ErrEntryInvalidExecVMCS    InstructionError = 16
	ErrEntryNonLaunchedExec    InstructionError = 17
	ErrEntryExecNotVMXON       InstructionError = 18
	ErrVMCALLNonClear          InstructionError = 19
	ErrVMCALLInvalidExitCtl    InstructionError = 20
	ErrVMCALLBadMSEGRevision   InstructionError = 22
	ErrVMXOFFDualMonitor       InstructionError = 23
	ErrVMCALLInvalidSMMMonitor InstructionError = 24
	ErrEntryInvalidExecCtlSMM  InstructionError = 25
	ErrEntryBlockedByMOVSS     InstructionError = 26
	ErrInvalidINVEPTINVVPID    InstructionError = 28
)

var instructionErrors = [...]string{
	ErrVMCALLInRoot:            "VMCALL executed in VMX root operation",
	ErrVMCLEARInvalidAddr:      "VMCLEAR with invalid physical address",
	ErrVMCLEARVMXONPtr:         "VMCLEAR with VMXON pointer",
	ErrVMLAUNCHNonClear:        "VMLAUNCH with non-clear VMCS",
	ErrVMRESUMENonLaunched:     "VMRESUME with non-launched VMCS",
	ErrVMRESUMEAfterVMXOFF:     "VMRESUME after VMXOFF",
	ErrEntryInvalidControl:     "VM entry with invalid control field(s)",
	ErrEntryInvalidHostState:   "VM entry with invalid host-state field(s)",
	ErrVMPTRLDInvalidAddr:      "VMPTRLD with invalid physical address",
	ErrVMPTRLDVMXONPtr:         "VMPTRLD with VMXON pointer",
	ErrVMPTRLDBadRevision:      "VMPTRLD with incorrect VMCS revision identifier",
	ErrUnsupportedComponent:    "VMREAD/VMWRITE from/to unsupported VMCS component",
	ErrVMWRITEReadOnly:         "VMWRITE to read-only VMCS component",
	ErrVMXONInRoot:             "VMXON executed in VMX root operation",
	ErrEntryInvalidExecVMCS:    "VM entry with invalid executive-VMCS pointer",
	ErrEntryNonLaunchedExec:    "VM entry with non-launched executive VMCS",
	ErrEntryExecNotVMXON:       "VM entry with executive-VMCS pointer not VMXON pointer",
	ErrVMCALLNonClear:          "VMCALL with non-clear VMCS",
	ErrVMCALLInvalidExitCtl:    "VMCALL with invalid VM-exit control fields",
	ErrVMCALLBadMSEGRevision:   "VMCALL with incorrect MSEG revision identifier",
	ErrVMXOFFDualMonitor:       "VMXOFF under dual-monitor treatment of SMIs and SMM",
	ErrVMCALLInvalidSMMMonitor: "VMCALL with invalid SMM-monitor features",
	ErrEntryInvalidExecCtlSMM:  "VM entry with invalid VM-execution control fields in executive VMCS",
	ErrEntryBlockedByMOVSS:     "VM entry with events blocked by MOV SS",
	ErrInvalidINVEPTINVVPID:    "invalid operand to INVEPT/INVVPID",
}

// String is the SDM's description of the error, or "reserved" for the
// numbers it does not define (0, 14, 21, 27, above 28).
func (e InstructionError) String() string {
	if int(e) < len(instructionErrors) && instructionErrors[e] != "" {
		return instructionErrors[e]
	}
	return "reserved"
}

// SetEntryErrorDetail makes out an ExitInvalid for a VMLAUNCH or VMRESUME
// that failed with VMfailValid, e.g. "VMLAUNCH failed: VM-instruction
// error 7 (VM entry with invalid control field(s))" (cut to Detail's
// size). launch says which instruction it was. Allocation-free.
func SetEntryErrorDetail(out *vmm.Exit, launch bool, e InstructionError) {
	*out = vmm.Exit{Reason: vmm.ExitInvalid, Raw: uint64(e)}
	if launch {
		detailPut(out, "VMLAUNCH")
	} else {
		detailPut(out, "VMRESUME")
	}
	detailPut(out, " failed: VM-instruction error ")
	detailDec(out, uint64(e))
	detailPut(out, " (")
	detailPut(out, e.String())
	detailPut(out, ")")
}

// DecodeEvent converts an interruption-information word (IDT-vectoring or
// VM-entry format) and its error code into a vmm.Event: the backend uses it
// on the IDT-vectoring information after an exit that interrupted an
// event's delivery, which must be injected again. ok is false when
// the word is not valid or its type has no vmm.EventKind (type 7). INT1
// (privileged software exception) becomes an exception #DB and INT3/INTO
// (software exceptions) exceptions of their vector; softInt reports that
// the event came from an instruction (types 4, 5 and 6), whose injection
// needs the instruction length.
func DecodeEvent(info, errCode uint32) (e vmm.Event, softInt, ok bool) {
	if info&IntrValid == 0 {
		return vmm.Event{}, false, false
	}
	e.Vector = uint8(info & IntrVectorMask)
	switch (info & IntrTypeMask) >> IntrTypeShift {
	case IntrTypeExtInt:
		e.Kind = vmm.EventExtInt
	case IntrTypeNMI:
		e.Kind = vmm.EventNMI
	case IntrTypeHWExcept:
		e.Kind = vmm.EventException
	case IntrTypeSoftInt:
		e.Kind, softInt = vmm.EventSoftInt, true
	case IntrTypePrivSoftEx, IntrTypeSoftExcept:
		e.Kind, softInt = vmm.EventException, true
	default:
		return vmm.Event{}, false, false
	}
	if info&IntrErrValid != 0 {
		e.HasErr, e.ErrCode = true, errCode
	}
	return e, softInt, true
}

// EncodeEvent converts e into a VM-entry interruption-information word
// (valid bit set) and the error code for EntryExceptionError. ok is false
// for events VM entry would refuse: an exception vector above 31, an NMI
// whose vector is not 2, an error code on anything but a hardware
// exception that pushes one. INT3 and INTO (vectors 3 and 4) are injected
// as software exceptions and EventSoftInt as a software interrupt: both
// need the VM-entry instruction length of the instruction that raised
// them. A real-mode guest takes no error code (protected is false): it is
// dropped.
func EncodeEvent(e vmm.Event, protected bool) (info, errCode uint32, ok bool) {
	info = IntrValid | uint32(e.Vector)
	switch e.Kind {
	case vmm.EventExtInt:
		if e.HasErr {
			return 0, 0, false
		}
		info |= IntrTypeExtInt << IntrTypeShift
	case vmm.EventNMI:
		if e.Vector != 2 || e.HasErr {
			return 0, 0, false
		}
		info |= IntrTypeNMI << IntrTypeShift
	case vmm.EventException:
		if e.Vector > 31 {
			return 0, 0, false
		}
		if e.Vector == 3 || e.Vector == 4 {
			info |= IntrTypeSoftExcept << IntrTypeShift
		} else {
			info |= IntrTypeHWExcept << IntrTypeShift
		}
		if e.HasErr && protected {
			if errCodeVectors&(1<<e.Vector) == 0 {
				return 0, 0, false
			}
			info |= IntrErrValid
			errCode = e.ErrCode
		}
	case vmm.EventSoftInt:
		if e.HasErr {
			return 0, 0, false
		}
		info |= IntrTypeSoftInt << IntrTypeShift
	default:
		return 0, 0, false
	}
	return info, errCode, true
}

// CRAccess is a decoded control-register-access exit qualification (exit
// reason 28; SDM 28.2.1, Table 28-3).
type CRAccess struct {
	CR   uint8 // control register number (0, 3, 4 or 8)
	Type uint8 // CRAccessMovTo, CRAccessMovFrom, CRAccessCLTS or CRAccessLMSW
	GPR  uint8 // general-purpose register of MOV CR (0 = RAX ... 15 = R15)
	// LMSWMemory: LMSW's operand was in memory; LMSWData is its value.
	LMSWMemory bool
	LMSWData   uint16
}

// Access types of a CR-access exit (qualification bits 5:4).
const (
	CRAccessMovTo   = 0
	CRAccessMovFrom = 1
	CRAccessCLTS    = 2
	CRAccessLMSW    = 3
)

// DecodeCRAccess decodes a control-register-access exit qualification.
func DecodeCRAccess(q uint64) CRAccess {
	return CRAccess{
		CR:         uint8(q & 0xf),
		Type:       uint8(q>>4) & 3,
		LMSWMemory: q&(1<<6) != 0,
		GPR:        uint8(q>>8) & 0xf,
		LMSWData:   uint16(q >> 16),
	}
}
