package svm

import "juice/vmm"

// EXITCODE values (APM Vol. 2, Appendix C). Intercepts of the word at
// OffInterceptMisc1 exit with 0x60 + bit, those of OffInterceptMisc2 with
// 0x80 + bit.
const (
	ExitReadCR0    = 0x000 // 0x000-0x00F: MOV from CRn
	ExitWriteCR0   = 0x010 // 0x010-0x01F: MOV to CRn
	ExitReadDR0    = 0x020 // 0x020-0x02F: MOV from DRn
	ExitWriteDR0   = 0x030 // 0x030-0x03F: MOV to DRn
	ExitExcpBase   = 0x040 // 0x040-0x05F: exception vector code-0x40
	ExitExcpLast   = 0x05F
	ExitIntr       = 0x060
	ExitNMI        = 0x061
	ExitSMI        = 0x062
	ExitInit       = 0x063
	ExitVIntr      = 0x064
	ExitCR0SelWr   = 0x065
	ExitIDTRRead   = 0x066
	ExitGDTRRead   = 0x067
	ExitLDTRRead   = 0x068
	ExitTRRead     = 0x069
	ExitIDTRWrite  = 0x06A
	ExitGDTRWrite  = 0x06B
	ExitLDTRWrite  = 0x06C
	ExitTRWrite    = 0x06D
	ExitRDTSC      = 0x06E
	ExitRDPMC      = 0x06F
	ExitPUSHF      = 0x070
	ExitPOPF       = 0x071
	ExitCPUID      = 0x072
	ExitRSM        = 0x073
	ExitIRET       = 0x074
	ExitSWInt      = 0x075
	ExitINVD       = 0x076
	ExitPause      = 0x077
	ExitHLT        = 0x078
	ExitINVLPG     = 0x079
	ExitINVLPGA    = 0x07A
	ExitIOIO       = 0x07B
	ExitMSR        = 0x07C
	ExitTaskSwitch = 0x07D
	ExitFERRFreeze = 0x07E
	ExitShutdown   = 0x07F
	ExitVMRUN      = 0x080
	ExitVMMCALL    = 0x081
	ExitVMLOAD     = 0x082
	ExitVMSAVE     = 0x083
	ExitSTGI       = 0x084
	ExitCLGI       = 0x085
	ExitSKINIT     = 0x086
	ExitRDTSCP     = 0x087
	ExitICEBP      = 0x088
	ExitWBINVD     = 0x089
	ExitMONITOR    = 0x08A
	ExitMWAIT      = 0x08B
	ExitMWAITCond  = 0x08C
	ExitXSETBV     = 0x08D
	ExitRDPRU      = 0x08E
	ExitEFERWrTrap = 0x08F
	ExitINVLPGB    = 0x0A0
	ExitINVPCID    = 0x0A2
	ExitNPF        = 0x400
	// ExitInvalid is VMEXIT_INVALID (-1): VMRUN refused the VMCB. QEMU
	// stores it as the 32-bit 0xffffffff, so compare the low 32 bits.
	ExitInvalid = 0xffff_ffff_ffff_ffff
	// ExitBusy is VMEXIT_BUSY (-2): the VMCB's guest was already running.
	ExitBusy = 0xffff_ffff_ffff_fffe

	exitInvalid32 = 0xffff_ffff // low 32 bits of ExitInvalid
	exitBusy32    = 0xffff_fffe // low 32 bits of ExitBusy
)

// EXITINFO1 of an IOIO exit (APM 15.10.2).
const (
	IOIOIn        = 1 << 0 // TYPE: 1 = IN, 0 = OUT
	IOIOStr       = 1 << 2 // INS/OUTS
	IOIORep       = 1 << 3 // REP prefix
	IOIOSz8       = 1 << 4
	IOIOSz16      = 1 << 5
	IOIOSz32      = 1 << 6
	IOIOA16       = 1 << 7
	IOIOA32       = 1 << 8
	IOIOA64       = 1 << 9
	IOIOSegShift  = 10 // bits 10-12: effective segment of a string instruction
	IOIOPortShift = 16 // bits 16-31: port
)

// EXITINFO1 of a nested page fault (APM 15.25.6): a #PF-style error code
// plus where the fault happened.
const (
	NPFPresent   = 1 << 0  // the nested entry was present (protection fault)
	NPFWrite     = 1 << 1  // the access was a write
	NPFUser      = 1 << 2  // always set: nested walks are user accesses
	NPFReserved  = 1 << 3  // a reserved bit was set in a nested entry
	NPFFetch     = 1 << 4  // instruction fetch
	NPFFinalAddr = 1 << 32 // the fault was on the final guest-physical address
	NPFTableWalk = 1 << 33 // the fault was on a guest page-table access
)

// Fixed lengths of the intercepted instructions without prefixes, for
// when the CPU has no NRIP save (QEMU TCG). A prefixed form (say a
// segment-override byte before CPUID) is longer: the next RIP is then
// wrong by the prefix bytes. Guests do not emit such forms in practice;
// with NRIP save the exact length is used instead.
const (
	lenCPUID   = 2 // 0F A2
	lenHLT     = 1 // F4
	lenVMMCALL = 3 // 0F 01 D9
	lenMSR     = 2 // 0F 32 (RDMSR), 0F 30 (WRMSR)
	lenPAUSE   = 2 // F3 90
	maxInsnLen = 15
)

// Vectors whose exceptions push an error code (in EXITINFO1 on an
// exception intercept): #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.
const errCodeVectors = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// Messages for ExitInvalid (copied into vmm.Exit.Detail).
const (
	detailInvalid = "VMRUN failed: VMEXIT_INVALID (illegal guest state or VMCB control field)"
	detailBusy    = "VMRUN failed: VMEXIT_BUSY (this VMCB is in use on another CPU)"
)

// RawExit is what the hardware reports at #VMEXIT, as read from the VMCB.
type RawExit struct {
	Code     uint64 // EXITCODE
	Info1    uint64 // EXITINFO1
	Info2    uint64 // EXITINFO2
	IntInfo  uint64 // EXITINTINFO: an event whose delivery the exit interrupted
	NRIP     uint64 // nRIP (meaningful only with NRIPSave)
	RIP      uint64 // the guest's RIP at the exit
	NRIPSave bool   // the CPU has NRIP save (Caps.NRIPSave)
}

// TranslateExit fills out with the neutral form of the exit r (out is
// reset first). It is pure and allocation-free:
//
//   - IOIO (0x07B) → ExitIO: port, size, direction, string and REP from
//     EXITINFO1; InstrLen from EXITINFO2 (the next RIP), which the CPU
//     saves for IOIO even without NRIP save.
//   - NPF (0x400) → ExitMMIO with GPA (EXITINFO2), Write and Fetch, and
//     InstrLen 0 (the core decodes the instruction). A fault on a guest
//     page-table access (EXITINFO1 bit 33) or during event delivery
//     (EXITINTINFO valid) is no instruction's data access and cannot be
//     emulated: it becomes ExitUnhandled.
//   - CPUID, RDMSR/WRMSR (EXITINFO1 0/1), HLT, VMMCALL, PAUSE → their
//     reasons; InstrLen from nRIP-RIP with NRIP save, else the fixed
//     length of the unprefixed instruction.
//   - SHUTDOWN → ExitShutdown; INTR, NMI, SMI, INIT → ExitExtIntr (the
//     host's event is taken after STGI); VINTR → ExitIntrWindow.
//   - 0x040-0x05F → ExitException: Vector, ErrCode from EXITINFO1 for the
//     vectors that push one; for #PF the address is in Info2.
//   - VMEXIT_INVALID and VMEXIT_BUSY (low 32 bits compared) → ExitInvalid
//     with a Detail message.
//   - anything else → ExitUnhandled.
//
// Raw, Info1 and Info2 always carry the hardware's values.
func TranslateExit(r *RawExit, out *vmm.Exit) {
	*out = vmm.Exit{Raw: r.Code, Info1: r.Info1, Info2: r.Info2}
	switch r.Code {
	case ExitIOIO:
		translateIO(r, out)
	case ExitNPF:
		if r.Info1&NPFTableWalk != 0 || r.IntInfo&EventValid != 0 {
			out.Reason = vmm.ExitUnhandled
			out.GPA = r.Info2
			return
		}
		out.Reason = vmm.ExitMMIO
		out.GPA = r.Info2
		out.Write = r.Info1&NPFWrite != 0
		out.Fetch = r.Info1&NPFFetch != 0
	case ExitCPUID:
		out.Reason = vmm.ExitCPUID
		out.InstrLen = instrLen(r, lenCPUID)
	case ExitMSR:
		switch r.Info1 {
		case 0:
			out.Reason = vmm.ExitRDMSR
		case 1:
			out.Reason = vmm.ExitWRMSR
		default:
			out.Reason = vmm.ExitUnhandled
			return
		}
		out.InstrLen = instrLen(r, lenMSR)
	case ExitHLT:
		out.Reason = vmm.ExitHLT
		out.InstrLen = instrLen(r, lenHLT)
	case ExitVMMCALL:
		out.Reason = vmm.ExitHypercall
		out.InstrLen = instrLen(r, lenVMMCALL)
	case ExitPause:
		out.Reason = vmm.ExitPause
		out.InstrLen = instrLen(r, lenPAUSE)
	case ExitShutdown:
		out.Reason = vmm.ExitShutdown
	case ExitIntr, ExitNMI, ExitSMI, ExitInit:
		out.Reason = vmm.ExitExtIntr
	case ExitVIntr:
		out.Reason = vmm.ExitIntrWindow
	default:
		switch {
		case r.Code >= ExitExcpBase && r.Code <= ExitExcpLast:
			v := uint8(r.Code - ExitExcpBase)
			out.Reason = vmm.ExitException
			out.Vector = v
			if errCodeVectors&(1<<v) != 0 {
				out.HasErr, out.ErrCode = true, uint32(r.Info1)
			}
		case uint32(r.Code) == exitInvalid32:
			setDetail(out, detailInvalid)
		case uint32(r.Code) == exitBusy32:
			setDetail(out, detailBusy)
		default:
			out.Reason = vmm.ExitUnhandled
		}
	}
}

// translateIO decodes an IOIO exit.
func translateIO(r *RawExit, out *vmm.Exit) {
	i := r.Info1
	switch i & (IOIOSz8 | IOIOSz16 | IOIOSz32) {
	case IOIOSz8:
		out.Size = 1
	case IOIOSz16:
		out.Size = 2
	case IOIOSz32:
		out.Size = 4
	default: // no or several size bits: not something hardware reports
		out.Reason = vmm.ExitUnhandled
		return
	}
	out.Reason = vmm.ExitIO
	out.Port = uint16(i >> IOIOPortShift)
	out.In = i&IOIOIn != 0
	out.String = i&IOIOStr != 0
	out.Rep = i&IOIORep != 0
	out.InstrLen = lenBetween(r.RIP, r.Info2)
}

// instrLen is the exiting instruction's length: nRIP-RIP with NRIP save
// (when plausible), else fixed.
func instrLen(r *RawExit, fixed uint8) uint8 {
	if r.NRIPSave {
		if n := lenBetween(r.RIP, r.NRIP); n != 0 {
			return n
		}
	}
	return fixed
}

// lenBetween is next-rip as an instruction length, or 0 when that is not
// 1..15 (a wrapped IP, a bogus value).
func lenBetween(rip, next uint64) uint8 {
	d := next - rip
	if d == 0 || d > maxInsnLen {
		return 0
	}
	return uint8(d)
}

// setDetail makes out an ExitInvalid with message msg.
func setDetail(out *vmm.Exit, msg string) {
	out.Reason = vmm.ExitInvalid
	out.DetailLen = uint8(copy(out.Detail[:], msg))
}
