package svm

import (
	"encoding/binary"

	"juice/vmm"
)

// VMCBSize is the size of a VMCB: one 4 KiB page, 4 KiB-aligned in host
// physical memory. The control area is bytes 0x000-0x3FF, the state save
// area starts at 0x400 (AMD APM Vol. 2, Appendix B).
const VMCBSize = 4096

// Control-area offsets (APM Vol. 2, Table B-1). Widths are in the accessor
// docs; every offset was checked against the APM's table and against
// Linux's struct vmcb_control_area.
const (
	OffInterceptCRRead    = 0x000 // 16 bits: bit n intercepts reads of CRn
	OffInterceptCRWrite   = 0x002 // 16 bits: bit n intercepts writes of CRn
	OffInterceptDRRead    = 0x004 // 16 bits: bit n intercepts reads of DRn
	OffInterceptDRWrite   = 0x006 // 16 bits: bit n intercepts writes of DRn
	OffInterceptException = 0x008 // 32 bits: bit n intercepts exception vector n
	OffInterceptMisc1     = 0x00C // 32 bits: Intercept* bits (INTR ... SHUTDOWN)
	OffInterceptMisc2     = 0x010 // 32 bits: Intercept2* bits (VMRUN ... CR write traps)
	OffInterceptMisc3     = 0x014 // 32 bits: Intercept3* bits (INVLPGB ... TLBSYNC)
	OffPauseFilterThresh  = 0x03C // 16 bits
	OffPauseFilterCount   = 0x03E // 16 bits
	OffIOPMBase           = 0x040 // 64 bits: physical address of the IOPM
	OffMSRPMBase          = 0x048 // 64 bits: physical address of the MSRPM
	OffTSCOffset          = 0x050 // 64 bits
	OffGuestASID          = 0x058 // 32 bits
	OffTLBControl         = 0x05C // 8 bits: TLBControl* values
	OffVIntr              = 0x060 // 64 bits: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR
	OffInterruptShadow    = 0x068 // 64 bits: bit 0 INTERRUPT_SHADOW, bit 1 GUEST_INTERRUPT_MASK
	OffExitCode           = 0x070 // 64 bits
	OffExitInfo1          = 0x078 // 64 bits
	OffExitInfo2          = 0x080 // 64 bits
	OffExitIntInfo        = 0x088 // 64 bits: event being delivered at #VMEXIT (EVENTINJ format)
	OffNPControl          = 0x090 // 64 bits: bit 0 NP_ENABLE
	OffAVICAPICBar        = 0x098 // 64 bits
	OffGHCB               = 0x0A0 // 64 bits
	OffEventInj           = 0x0A8 // 64 bits: EVENTINJ
	OffNCR3               = 0x0B0 // 64 bits: nested page-table root (N_CR3)
	OffLBRVirt            = 0x0B8 // 64 bits: bit 0 LBR virtualization, bit 1 virtual VMLOAD/VMSAVE
	OffCleanBits          = 0x0C0 // 32 bits: VMCB clean bits
	OffNRIP               = 0x0C8 // 64 bits: next sequential RIP (NRIP save)
	OffInsnLen            = 0x0D0 // 8 bits: number of guest instruction bytes fetched (decode assists)
	OffInsnBytes          = 0x0D1 // 15 bytes: guest instruction bytes
)

// State-save-area offsets (APM Vol. 2, Table B-2), from the start of the
// VMCB (the area begins at 0x400).
const (
	OffSave         = 0x400 // start of the state save area
	OffES           = 0x400 // segments: 16 bytes each (selector, attrib, limit, base)
	OffCS           = 0x410
	OffSS           = 0x420
	OffDS           = 0x430
	OffFS           = 0x440
	OffGS           = 0x450
	OffGDTR         = 0x460 // only limit and base are used
	OffLDTR         = 0x470
	OffIDTR         = 0x480 // only limit and base are used
	OffTR           = 0x490
	OffCPL          = 0x4CB // 8 bits
	OffEFER         = 0x4D0 // 64 bits
	OffCR4          = 0x548 // 64 bits
	OffCR3          = 0x550
	OffCR0          = 0x558
	OffDR7          = 0x560
	OffDR6          = 0x568
	OffRFLAGS       = 0x570
	OffRIP          = 0x578
	OffRSP          = 0x5D8
	OffRAX          = 0x5F8
	OffSTAR         = 0x600
	OffLSTAR        = 0x608
	OffCSTAR        = 0x610
	OffSFMASK       = 0x618
	OffKernelGSBase = 0x620
	OffSysenterCS   = 0x628
	OffSysenterESP  = 0x630
	OffSysenterEIP  = 0x638
	OffCR2          = 0x640
	OffGPAT         = 0x668
	OffDebugCtl     = 0x670
	OffBrFrom       = 0x678
	OffBrTo         = 0x680
	OffLastExcpFrom = 0x688
	OffLastExcpTo   = 0x690
)

// Segment-field offsets inside a 16-byte VMCB segment.
const (
	segSelector = 0  // 16 bits
	segAttrib   = 2  // 16 bits: vmm.Segment.Attr format
	segLimit    = 4  // 32 bits
	segBase     = 8  // 64 bits
	segSize     = 16 // bytes per segment
)

// SegReg names one of the ten segment-like registers of the save area, in
// the VMCB's order.
type SegReg uint8

// Segment registers, in VMCB order (ES at 0x400 ... TR at 0x490).
const (
	SegES SegReg = iota
	SegCS
	SegSS
	SegDS
	SegFS
	SegGS
	SegGDTR
	SegLDTR
	SegIDTR
	SegTR
	numSegRegs
)

// Intercept bits of the word at OffInterceptMisc1 (APM Table B-1, 00Ch).
// Bit n of this word exits with EXITCODE 0x60+n.
const (
	InterceptINTR        = 1 << 0
	InterceptNMI         = 1 << 1
	InterceptSMI         = 1 << 2
	InterceptINIT        = 1 << 3
	InterceptVINTR       = 1 << 4
	InterceptCR0SelWrite = 1 << 5
	InterceptIDTRRead    = 1 << 6
	InterceptGDTRRead    = 1 << 7
	InterceptLDTRRead    = 1 << 8
	InterceptTRRead      = 1 << 9
	InterceptIDTRWrite   = 1 << 10
	InterceptGDTRWrite   = 1 << 11
	InterceptLDTRWrite   = 1 << 12
	InterceptTRWrite     = 1 << 13
	InterceptRDTSC       = 1 << 14
	InterceptRDPMC       = 1 << 15
	InterceptPUSHF       = 1 << 16
	InterceptPOPF        = 1 << 17
	InterceptCPUID       = 1 << 18
	InterceptRSM         = 1 << 19
	InterceptIRET        = 1 << 20
	InterceptINTn        = 1 << 21
	InterceptINVD        = 1 << 22
	InterceptPAUSE       = 1 << 23
	InterceptHLT         = 1 << 24
	InterceptINVLPG      = 1 << 25
	InterceptINVLPGA     = 1 << 26
	InterceptIOIOProt    = 1 << 27
	InterceptMSRProt     = 1 << 28
	InterceptTaskSwitch  = 1 << 29
	InterceptFERRFreeze  = 1 << 30
	InterceptShutdown    = 1 << 31
)

// Intercept bits of the word at OffInterceptMisc2 (APM Table B-1, 010h).
// Bit n of this word exits with EXITCODE 0x80+n. VMRUN must be set, or
// VMRUN fails with VMEXIT_INVALID.
const (
	Intercept2VMRUN     = 1 << 0
	Intercept2VMMCALL   = 1 << 1
	Intercept2VMLOAD    = 1 << 2
	Intercept2VMSAVE    = 1 << 3
	Intercept2STGI      = 1 << 4
	Intercept2CLGI      = 1 << 5
	Intercept2SKINIT    = 1 << 6
	Intercept2RDTSCP    = 1 << 7
	Intercept2ICEBP     = 1 << 8
	Intercept2WBINVD    = 1 << 9 // WBINVD and WBNOINVD
	Intercept2MONITOR   = 1 << 10
	Intercept2MWAIT     = 1 << 11 // unconditionally
	Intercept2MWAITCond = 1 << 12 // only when the monitor is armed
	Intercept2XSETBV    = 1 << 13
	Intercept2RDPRU     = 1 << 14
	Intercept2EFERWrite = 1 << 15 // trap after EFER writes
)

// Intercept bits of the word at OffInterceptMisc3 (APM Table B-1, 014h).
const (
	Intercept3INVLPGB        = 1 << 0
	Intercept3INVLPGBIllegal = 1 << 1
	Intercept3INVPCID        = 1 << 2
	Intercept3MCOMMIT        = 1 << 3
	Intercept3TLBSYNC        = 1 << 4
)

// TLB_CONTROL values (APM 15.16.1).
const (
	TLBControlNone           = 0 // do nothing
	TLBControlFlushAll       = 1 // flush the whole TLB, every ASID (always supported)
	TLBControlFlushASID      = 3 // flush this guest's ASID (needs FlushByASID)
	TLBControlFlushASIDLocal = 7 // flush this ASID's non-global entries (needs FlushByASID)
)

// Bits of the V_INTR word at OffVIntr (APM 15.21).
const (
	VIntrTPRMask     = 0xff       // V_TPR, bits 0-7 (the guest's CR8 is bits 0-3)
	VIntrIRQ         = 1 << 8     // V_IRQ: a virtual interrupt is pending
	VIntrGIF         = 1 << 9     // V_GIF (vGIF)
	VIntrPrioShift   = 16         // V_INTR_PRIO, bits 16-19
	VIntrPrioMask    = 0xf << 16  //
	VIntrIgnTPR      = 1 << 20    // V_IGN_TPR: the virtual interrupt ignores V_TPR
	VIntrMasking     = 1 << 24    // V_INTR_MASKING: guest RFLAGS.IF masks only virtual interrupts
	VIntrGIFEnable   = 1 << 25    // vGIF enable
	VIntrVNMIEnable  = 1 << 26    // vNMI enable
	VIntrAVICEnable  = 1 << 31    // AVIC enable
	VIntrVectorShift = 32         // V_INTR_VECTOR, bits 32-39
	VIntrVectorMask  = 0xff << 32 //
	interruptShadow  = 1 << 0     // bit 0 of the word at OffInterruptShadow
	guestIntrMask    = 1 << 1     // bit 1: the guest's RFLAGS.IF (with V_INTR_MASKING)
	npEnable         = 1 << 0     // bit 0 of the word at OffNPControl
)

// EVENTINJ / EXITINTINFO format (APM 15.20): bits 0-7 vector, 8-10 type,
// 11 error code valid, 31 valid, 32-63 error code.
const (
	EventVectorMask = 0xff
	EventTypeShift  = 8
	EventTypeMask   = 7 << 8
	EventErrValid   = 1 << 11
	EventValid      = 1 << 31
	EventErrShift   = 32

	EventTypeIntr   = 0 // external or virtual interrupt
	EventTypeNMI    = 2 // NMI
	EventTypeExcept = 3 // exception (fault or trap)
	EventTypeSoft   = 4 // software interrupt (INTn)
)

// Default values of the state save area.
const (
	// DefaultGPAT is the guest PAT at reset: WB, WT, UC-, UC repeated.
	DefaultGPAT = 0x0007040600070406
	// DefaultDR6 and DefaultDR7 are the debug registers at reset.
	DefaultDR6 = 0xffff0ff0
	DefaultDR7 = 0x400
)

// VMCB is a view of one 4 KiB VMCB page. The zero VMCB is not usable; get
// one from NewVMCB. Accessors with a fixed offset never fail; the generic
// U8..U64 accessors return 0 (and the setters do nothing) outside the
// page. No accessor allocates.
type VMCB struct {
	p *[VMCBSize]byte
}

// NewVMCB views the first VMCBSize bytes of page as a VMCB; ok is false
// when page is shorter.
func NewVMCB(page []byte) (VMCB, bool) {
	if len(page) < VMCBSize {
		return VMCB{}, false
	}
	return VMCB{p: (*[VMCBSize]byte)(page[:VMCBSize])}, true
}

// Bytes returns the whole page.
func (m VMCB) Bytes() []byte { return m.p[:] }

// Clear zeroes the page.
func (m VMCB) Clear() { clear(m.p[:]) }

// U8 returns the byte at off.
func (m VMCB) U8(off uint) uint8 {
	if off >= VMCBSize {
		return 0
	}
	return m.p[off]
}

// U16 returns the little-endian 16-bit word at off.
func (m VMCB) U16(off uint) uint16 {
	if off > VMCBSize-2 {
		return 0
	}
	return binary.LittleEndian.Uint16(m.p[off:])
}

// U32 returns the little-endian 32-bit word at off.
func (m VMCB) U32(off uint) uint32 {
	if off > VMCBSize-4 {
		return 0
	}
	return binary.LittleEndian.Uint32(m.p[off:])
}

// U64 returns the little-endian 64-bit word at off.
func (m VMCB) U64(off uint) uint64 {
	if off > VMCBSize-8 {
		return 0
	}
	return binary.LittleEndian.Uint64(m.p[off:])
}

// SetU8 stores v at off.
func (m VMCB) SetU8(off uint, v uint8) {
	if off < VMCBSize {
		m.p[off] = v
	}
}

// SetU16 stores v at off.
func (m VMCB) SetU16(off uint, v uint16) {
	if off <= VMCBSize-2 {
		binary.LittleEndian.PutUint16(m.p[off:], v)
	}
}

// SetU32 stores v at off.
func (m VMCB) SetU32(off uint, v uint32) {
	if off <= VMCBSize-4 {
		binary.LittleEndian.PutUint32(m.p[off:], v)
	}
}

// SetU64 stores v at off.
func (m VMCB) SetU64(off uint, v uint64) {
	if off <= VMCBSize-8 {
		binary.LittleEndian.PutUint64(m.p[off:], v)
	}
}

// Fixed-offset helpers: the offsets are constants, so the compiler drops
// the bounds checks.

func (m VMCB) get16(off uint) uint16    { return binary.LittleEndian.Uint16(m.p[off : off+2]) }
func (m VMCB) get32(off uint) uint32    { return binary.LittleEndian.Uint32(m.p[off : off+4]) }
func (m VMCB) get64(off uint) uint64    { return binary.LittleEndian.Uint64(m.p[off : off+8]) }
func (m VMCB) put16(off uint, v uint16) { binary.LittleEndian.PutUint16(m.p[off:off+2], v) }
func (m VMCB) put32(off uint, v uint32) { binary.LittleEndian.PutUint32(m.p[off:off+4], v) }
func (m VMCB) put64(off uint, v uint64) { binary.LittleEndian.PutUint64(m.p[off:off+8], v) }

// InterceptCRRead returns the CR-read intercept bits (bit n: CRn).
func (m VMCB) InterceptCRRead() uint16 { return m.get16(OffInterceptCRRead) }

// SetInterceptCRRead sets the CR-read intercept bits.
func (m VMCB) SetInterceptCRRead(v uint16) { m.put16(OffInterceptCRRead, v) }

// InterceptCRWrite returns the CR-write intercept bits (bit n: CRn).
func (m VMCB) InterceptCRWrite() uint16 { return m.get16(OffInterceptCRWrite) }

// SetInterceptCRWrite sets the CR-write intercept bits.
func (m VMCB) SetInterceptCRWrite(v uint16) { m.put16(OffInterceptCRWrite, v) }

// InterceptDRRead returns the DR-read intercept bits (bit n: DRn).
func (m VMCB) InterceptDRRead() uint16 { return m.get16(OffInterceptDRRead) }

// SetInterceptDRRead sets the DR-read intercept bits.
func (m VMCB) SetInterceptDRRead(v uint16) { m.put16(OffInterceptDRRead, v) }

// InterceptDRWrite returns the DR-write intercept bits (bit n: DRn).
func (m VMCB) InterceptDRWrite() uint16 { return m.get16(OffInterceptDRWrite) }

// SetInterceptDRWrite sets the DR-write intercept bits.
func (m VMCB) SetInterceptDRWrite(v uint16) { m.put16(OffInterceptDRWrite, v) }

// InterceptExceptions returns the exception intercept bits (bit n: vector n).
func (m VMCB) InterceptExceptions() uint32 { return m.get32(OffInterceptException) }

// SetInterceptExceptions sets the exception intercept bits.
func (m VMCB) SetInterceptExceptions(v uint32) { m.put32(OffInterceptException, v) }

// InterceptMisc1 returns the Intercept* word (offset 0x00C).
func (m VMCB) InterceptMisc1() uint32 { return m.get32(OffInterceptMisc1) }

// SetInterceptMisc1 sets the Intercept* word.
func (m VMCB) SetInterceptMisc1(v uint32) { m.put32(OffInterceptMisc1, v) }

// InterceptMisc2 returns the Intercept2* word (offset 0x010).
func (m VMCB) InterceptMisc2() uint32 { return m.get32(OffInterceptMisc2) }

// SetInterceptMisc2 sets the Intercept2* word.
func (m VMCB) SetInterceptMisc2(v uint32) { m.put32(OffInterceptMisc2, v) }

// InterceptMisc3 returns the Intercept3* word (offset 0x014).
func (m VMCB) InterceptMisc3() uint32 { return m.get32(OffInterceptMisc3) }

// SetInterceptMisc3 sets the Intercept3* word.
func (m VMCB) SetInterceptMisc3(v uint32) { m.put32(OffInterceptMisc3, v) }

// PauseFilterThreshold returns the PAUSE filter cycle threshold.
func (m VMCB) PauseFilterThreshold() uint16 { return m.get16(OffPauseFilterThresh) }

// SetPauseFilterThreshold sets the PAUSE filter cycle threshold.
func (m VMCB) SetPauseFilterThreshold(v uint16) { m.put16(OffPauseFilterThresh, v) }

// PauseFilterCount returns the PAUSE filter count.
func (m VMCB) PauseFilterCount() uint16 { return m.get16(OffPauseFilterCount) }

// SetPauseFilterCount sets the PAUSE filter count.
func (m VMCB) SetPauseFilterCount(v uint16) { m.put16(OffPauseFilterCount, v) }

// IOPMBase returns IOPM_BASE_PA.
func (m VMCB) IOPMBase() uint64 { return m.get64(OffIOPMBase) }

// SetIOPMBase sets IOPM_BASE_PA (4 KiB-aligned).
func (m VMCB) SetIOPMBase(v uint64) { m.put64(OffIOPMBase, v) }

// MSRPMBase returns MSRPM_BASE_PA.
func (m VMCB) MSRPMBase() uint64 { return m.get64(OffMSRPMBase) }

// SetMSRPMBase sets MSRPM_BASE_PA (4 KiB-aligned).
func (m VMCB) SetMSRPMBase(v uint64) { m.put64(OffMSRPMBase, v) }

// TSCOffset returns TSC_OFFSET.
func (m VMCB) TSCOffset() uint64 { return m.get64(OffTSCOffset) }

// SetTSCOffset sets TSC_OFFSET.
func (m VMCB) SetTSCOffset(v uint64) { m.put64(OffTSCOffset, v) }

// ASID returns the guest ASID.
func (m VMCB) ASID() uint32 { return m.get32(OffGuestASID) }

// SetASID sets the guest ASID (never 0: VMRUN fails).
func (m VMCB) SetASID(v uint32) { m.put32(OffGuestASID, v) }

// TLBControl returns TLB_CONTROL.
func (m VMCB) TLBControl() uint8 { return m.p[OffTLBControl] }

// SetTLBControl sets TLB_CONTROL (a TLBControl* value).
func (m VMCB) SetTLBControl(v uint8) { m.p[OffTLBControl] = v }

// VIntr returns the V_INTR word (VIntr* bits).
func (m VMCB) VIntr() uint64 { return m.get64(OffVIntr) }

// SetVIntr sets the V_INTR word.
func (m VMCB) SetVIntr(v uint64) { m.put64(OffVIntr, v) }

// InterruptShadow returns the interrupt-shadow word: bit 0 set while the
// guest is in an interrupt shadow (after STI or MOV SS).
func (m VMCB) InterruptShadow() uint64 { return m.get64(OffInterruptShadow) }

// SetInterruptShadow sets the interrupt-shadow word.
func (m VMCB) SetInterruptShadow(v uint64) { m.put64(OffInterruptShadow, v) }

// ExitCode returns EXITCODE.
func (m VMCB) ExitCode() uint64 { return m.get64(OffExitCode) }

// SetExitCode sets EXITCODE (tests and fakes).
func (m VMCB) SetExitCode(v uint64) { m.put64(OffExitCode, v) }

// ExitInfo1 returns EXITINFO1.
func (m VMCB) ExitInfo1() uint64 { return m.get64(OffExitInfo1) }

// SetExitInfo1 sets EXITINFO1.
func (m VMCB) SetExitInfo1(v uint64) { m.put64(OffExitInfo1, v) }

// ExitInfo2 returns EXITINFO2.
func (m VMCB) ExitInfo2() uint64 { return m.get64(OffExitInfo2) }

// SetExitInfo2 sets EXITINFO2.
func (m VMCB) SetExitInfo2(v uint64) { m.put64(OffExitInfo2, v) }

// ExitIntInfo returns EXITINTINFO: the event that was being delivered when
// the exit happened (EVENTINJ format; EventValid when there was one).
func (m VMCB) ExitIntInfo() uint64 { return m.get64(OffExitIntInfo) }

// SetExitIntInfo sets EXITINTINFO.
func (m VMCB) SetExitIntInfo(v uint64) { m.put64(OffExitIntInfo, v) }

// NPControl returns the nested-paging control word (bit 0 NP_ENABLE).
func (m VMCB) NPControl() uint64 { return m.get64(OffNPControl) }

// SetNPControl sets the nested-paging control word.
func (m VMCB) SetNPControl(v uint64) { m.put64(OffNPControl, v) }

// EventInj returns EVENTINJ.
func (m VMCB) EventInj() uint64 { return m.get64(OffEventInj) }

// SetEventInj sets EVENTINJ (see EncodeEvent).
func (m VMCB) SetEventInj(v uint64) { m.put64(OffEventInj, v) }

// NCR3 returns N_CR3, the nested page tables' root.
func (m VMCB) NCR3() uint64 { return m.get64(OffNCR3) }

// SetNCR3 sets N_CR3.
func (m VMCB) SetNCR3(v uint64) { m.put64(OffNCR3, v) }

// LBRVirt returns the LBR-virtualization word.
func (m VMCB) LBRVirt() uint64 { return m.get64(OffLBRVirt) }

// SetLBRVirt sets the LBR-virtualization word.
func (m VMCB) SetLBRVirt(v uint64) { m.put64(OffLBRVirt, v) }

// CleanBits returns the VMCB clean bits.
func (m VMCB) CleanBits() uint32 { return m.get32(OffCleanBits) }

// SetCleanBits sets the VMCB clean bits.
func (m VMCB) SetCleanBits(v uint32) { m.put32(OffCleanBits, v) }

// NRIP returns nRIP, the next sequential RIP saved at #VMEXIT (only with
// NRIP save).
func (m VMCB) NRIP() uint64 { return m.get64(OffNRIP) }

// SetNRIP sets nRIP.
func (m VMCB) SetNRIP(v uint64) { m.put64(OffNRIP, v) }

// InsnLen returns the number of guest instruction bytes the processor
// fetched (decode assists; 0 otherwise).
func (m VMCB) InsnLen() uint8 { return m.p[OffInsnLen] }

// SetInsnLen sets the fetched-byte count.
func (m VMCB) SetInsnLen(v uint8) { m.p[OffInsnLen] = v }

// InsnBytes returns the fetched guest instruction bytes, aliasing the
// VMCB (at most 15).
func (m VMCB) InsnBytes() []byte {
	n := uint(m.p[OffInsnLen])
	if n > 15 {
		n = 15
	}
	return m.p[OffInsnBytes : OffInsnBytes+n : OffInsnBytes+n]
}

// Seg returns segment register r; GDTR and IDTR use only Limit and Base.
// An r outside the ten registers reads as the zero Segment.
func (m VMCB) Seg(r SegReg) vmm.Segment {
	if r >= numSegRegs {
		return vmm.Segment{}
	}
	o := OffSave + uint(r)*segSize
	s := m.p[o : o+segSize]
	return vmm.Segment{
		Selector: binary.LittleEndian.Uint16(s[segSelector:]),
		Attr:     binary.LittleEndian.Uint16(s[segAttrib:]),
		Limit:    binary.LittleEndian.Uint32(s[segLimit:]),
		Base:     binary.LittleEndian.Uint64(s[segBase:]),
	}
}

// SetSeg stores segment register r (ignored for an r outside the ten).
func (m VMCB) SetSeg(r SegReg, v vmm.Segment) {
	if r >= numSegRegs {
		return
	}
	o := OffSave + uint(r)*segSize
	s := m.p[o : o+segSize]
	binary.LittleEndian.PutUint16(s[segSelector:], v.Selector)
	binary.LittleEndian.PutUint16(s[segAttrib:], v.Attr)
	binary.LittleEndian.PutUint32(s[segLimit:], v.Limit)
	binary.LittleEndian.PutUint64(s[segBase:], v.Base)
}

// Table returns GDTR or IDTR (r = SegGDTR or SegIDTR) as a vmm.Table.
func (m VMCB) Table(r SegReg) vmm.Table {
	s := m.Seg(r)
	return vmm.Table{Base: s.Base, Limit: uint16(s.Limit)}
}

// SetTable stores GDTR or IDTR; selector and attributes are zeroed.
func (m VMCB) SetTable(r SegReg, t vmm.Table) {
	m.SetSeg(r, vmm.Segment{Base: t.Base, Limit: uint32(t.Limit)})
}

// CPL returns the guest's current privilege level.
func (m VMCB) CPL() uint8 { return m.p[OffCPL] }

// SetCPL sets the guest's CPL.
func (m VMCB) SetCPL(v uint8) { m.p[OffCPL] = v }

// EFER returns the guest's EFER.
func (m VMCB) EFER() uint64 { return m.get64(OffEFER) }

// SetEFER sets the guest's EFER (SVME must be set for VMRUN).
func (m VMCB) SetEFER(v uint64) { m.put64(OffEFER, v) }

// CR0 returns the guest's CR0.
func (m VMCB) CR0() uint64 { return m.get64(OffCR0) }

// SetCR0 sets the guest's CR0.
func (m VMCB) SetCR0(v uint64) { m.put64(OffCR0, v) }

// CR2 returns the guest's CR2.
func (m VMCB) CR2() uint64 { return m.get64(OffCR2) }

// SetCR2 sets the guest's CR2.
func (m VMCB) SetCR2(v uint64) { m.put64(OffCR2, v) }

// CR3 returns the guest's CR3.
func (m VMCB) CR3() uint64 { return m.get64(OffCR3) }

// SetCR3 sets the guest's CR3.
func (m VMCB) SetCR3(v uint64) { m.put64(OffCR3, v) }

// CR4 returns the guest's CR4.
func (m VMCB) CR4() uint64 { return m.get64(OffCR4) }

// SetCR4 sets the guest's CR4.
func (m VMCB) SetCR4(v uint64) { m.put64(OffCR4, v) }

// DR6 returns the guest's DR6.
func (m VMCB) DR6() uint64 { return m.get64(OffDR6) }

// SetDR6 sets the guest's DR6.
func (m VMCB) SetDR6(v uint64) { m.put64(OffDR6, v) }

// DR7 returns the guest's DR7.
func (m VMCB) DR7() uint64 { return m.get64(OffDR7) }

// SetDR7 sets the guest's DR7.
func (m VMCB) SetDR7(v uint64) { m.put64(OffDR7, v) }

// RFLAGS returns the guest's RFLAGS.
func (m VMCB) RFLAGS() uint64 { return m.get64(OffRFLAGS) }

// SetRFLAGS sets the guest's RFLAGS.
func (m VMCB) SetRFLAGS(v uint64) { m.put64(OffRFLAGS, v) }

// RIP returns the guest's RIP.
func (m VMCB) RIP() uint64 { return m.get64(OffRIP) }

// SetRIP sets the guest's RIP.
func (m VMCB) SetRIP(v uint64) { m.put64(OffRIP, v) }

// RSP returns the guest's RSP.
func (m VMCB) RSP() uint64 { return m.get64(OffRSP) }

// SetRSP sets the guest's RSP.
func (m VMCB) SetRSP(v uint64) { m.put64(OffRSP, v) }

// RAX returns the guest's RAX.
func (m VMCB) RAX() uint64 { return m.get64(OffRAX) }

// SetRAX sets the guest's RAX.
func (m VMCB) SetRAX(v uint64) { m.put64(OffRAX, v) }

// STAR returns the guest's STAR MSR.
func (m VMCB) STAR() uint64 { return m.get64(OffSTAR) }

// SetSTAR sets the guest's STAR MSR.
func (m VMCB) SetSTAR(v uint64) { m.put64(OffSTAR, v) }

// LSTAR returns the guest's LSTAR MSR.
func (m VMCB) LSTAR() uint64 { return m.get64(OffLSTAR) }

// SetLSTAR sets the guest's LSTAR MSR.
func (m VMCB) SetLSTAR(v uint64) { m.put64(OffLSTAR, v) }

// CSTAR returns the guest's CSTAR MSR.
func (m VMCB) CSTAR() uint64 { return m.get64(OffCSTAR) }

// SetCSTAR sets the guest's CSTAR MSR.
func (m VMCB) SetCSTAR(v uint64) { m.put64(OffCSTAR, v) }

// SFMASK returns the guest's SFMASK MSR.
func (m VMCB) SFMASK() uint64 { return m.get64(OffSFMASK) }

// SetSFMASK sets the guest's SFMASK MSR.
func (m VMCB) SetSFMASK(v uint64) { m.put64(OffSFMASK, v) }

// KernelGSBase returns the guest's KernelGSBase MSR.
func (m VMCB) KernelGSBase() uint64 { return m.get64(OffKernelGSBase) }

// SetKernelGSBase sets the guest's KernelGSBase MSR.
func (m VMCB) SetKernelGSBase(v uint64) { m.put64(OffKernelGSBase, v) }

// SysenterCS returns the guest's SYSENTER_CS MSR.
func (m VMCB) SysenterCS() uint64 { return m.get64(OffSysenterCS) }

// SetSysenterCS sets the guest's SYSENTER_CS MSR.
func (m VMCB) SetSysenterCS(v uint64) { m.put64(OffSysenterCS, v) }

// SysenterESP returns the guest's SYSENTER_ESP MSR.
func (m VMCB) SysenterESP() uint64 { return m.get64(OffSysenterESP) }

// SetSysenterESP sets the guest's SYSENTER_ESP MSR.
func (m VMCB) SetSysenterESP(v uint64) { m.put64(OffSysenterESP, v) }

// SysenterEIP returns the guest's SYSENTER_EIP MSR.
func (m VMCB) SysenterEIP() uint64 { return m.get64(OffSysenterEIP) }

// SetSysenterEIP sets the guest's SYSENTER_EIP MSR.
func (m VMCB) SetSysenterEIP(v uint64) { m.put64(OffSysenterEIP, v) }

// GPAT returns the guest PAT (used with nested paging).
func (m VMCB) GPAT() uint64 { return m.get64(OffGPAT) }

// SetGPAT sets the guest PAT.
func (m VMCB) SetGPAT(v uint64) { m.put64(OffGPAT, v) }

// DebugCtl returns the guest's DBGCTL MSR (with LBR virtualization).
func (m VMCB) DebugCtl() uint64 { return m.get64(OffDebugCtl) }

// SetDebugCtl sets the guest's DBGCTL MSR.
func (m VMCB) SetDebugCtl(v uint64) { m.put64(OffDebugCtl, v) }

// EncodeEvent turns e into an EVENTINJ value. ok is false for events
// VMRUN would refuse: an unknown kind, or an exception vector that is 2
// (NMI) or above 31. NMIs always use vector 2; an error code is only
// delivered for exceptions.
func EncodeEvent(e vmm.Event) (v uint64, ok bool) {
	var typ uint64
	vec := uint64(e.Vector)
	switch e.Kind {
	case vmm.EventExtInt:
		typ = EventTypeIntr
	case vmm.EventNMI:
		typ, vec = EventTypeNMI, 2
	case vmm.EventException:
		if vec == 2 || vec > 31 {
			return 0, false
		}
		typ = EventTypeExcept
	case vmm.EventSoftInt:
		typ = EventTypeSoft
	default:
		return 0, false
	}
	v = vec | typ<<EventTypeShift | EventValid
	if e.Kind == vmm.EventException && e.HasErr {
		v |= EventErrValid | uint64(e.ErrCode)<<EventErrShift
	}
	return v, true
}

// DecodeEvent turns an EXITINTINFO (or EVENTINJ) value back into an event;
// ok is false when the valid bit is clear or the type is one vmm has no
// kind for.
func DecodeEvent(v uint64) (e vmm.Event, ok bool) {
	if v&EventValid == 0 {
		return vmm.Event{}, false
	}
	e.Vector = uint8(v & EventVectorMask)
	switch (v & EventTypeMask) >> EventTypeShift {
	case EventTypeIntr:
		e.Kind = vmm.EventExtInt
	case EventTypeNMI:
		e.Kind = vmm.EventNMI
	case EventTypeExcept:
		if e.Vector > 31 {
			// No exception has such a vector: QEMU's TCG records a
			// hardware interrupt it is delivering inside the guest (a
			// V_IRQ taken) with the exception type, so that is what an
			// EXITINTINFO like this is.
			e.Kind = vmm.EventExtInt
			return e, true
		}
		e.Kind = vmm.EventException
		if v&EventErrValid != 0 {
			e.HasErr, e.ErrCode = true, uint32(v>>EventErrShift)
		}
	case EventTypeSoft:
		e.Kind = vmm.EventSoftInt
	default:
		return vmm.Event{}, false
	}
	return e, true
}
