// Package lapic drives the local APIC of the CPU it runs on: enabling it,
// masking the legacy local interrupt sources, arming its timer (TSC-
// deadline or one-shot), acknowledging interrupts and sending IPIs.
//
// It supports both register interfaces: xAPIC, whose registers are a 4 KiB
// MMIO page at the base in IA32_APIC_BASE (reached through juice's
// identity map, phys.Mem), and x2APIC, whose registers are MSRs
// 0x800 + offset/16. x2APIC is used when firmware already switched to it
// (it cannot be left without disabling the APIC) or when the caller asks
// for it and the CPU has it.
//
// The IA32_APIC_BASE global-enable bit is only ever set, never cleared:
// on Bochs a cleared enable bit kills the APIC until reset.
//
// It is kernel-context code (EOI and timer arming run in interrupt
// handlers): every function is //go:nosplit, allocation-free and bounded.
// MSRs are reached through an MSR seam (juice/cpu's RDMSR/WRMSR on bare
// metal, a map in tests).
package lapic

import (
	"math/bits"
	"sync/atomic"

	"juice/mm/phys"
)

// MSR is the seam to RDMSR/WRMSR. The kernel fills it once with
// juice/cpu.RDMSR and juice/cpu.WRMSR.
type MSR struct {
	Read  func(msr uint32) uint64
	Write func(msr uint32, v uint64)
}

// Model-specific registers.
const (
	MSRAPICBase    uint32 = 0x1B  // IA32_APIC_BASE
	MSRTSCDeadline uint32 = 0x6E0 // IA32_TSC_DEADLINE
	MSRx2APICBase  uint32 = 0x800 // first x2APIC register MSR
)

// IA32_APIC_BASE bits.
const (
	BaseBSP  = 1 << 8  // this processor is the bootstrap processor
	BaseEXTD = 1 << 10 // x2APIC mode
	BaseEN   = 1 << 11 // APIC global enable
	// BaseAddrMask selects the page-aligned base address, bits 12–51.
	BaseAddrMask = 0x000F_FFFF_FFFF_F000
)

// Local APIC register offsets (xAPIC MMIO layout; the x2APIC MSR is
// MSRx2APICBase + offset>>4).
const (
	RegID       = 0x020
	RegVersion  = 0x030
	RegTPR      = 0x080
	RegEOI      = 0x0B0
	RegSVR      = 0x0F0
	RegESR      = 0x280
	RegLVTCMCI  = 0x2F0
	RegICRLow   = 0x300
	RegICRHigh  = 0x310 // xAPIC only; x2APIC's ICR is one 64-bit MSR
	RegLVTTimer = 0x320
	RegLVTTherm = 0x330
	RegLVTPerf  = 0x340
	RegLVTLINT0 = 0x350
	RegLVTLINT1 = 0x360
	RegLVTError = 0x370
	RegInitCnt  = 0x380
	RegCurCnt   = 0x390
	RegDivide   = 0x3E0
)

// Register bits.
const (
	svrEnable      = 1 << 8     // SVR: APIC software enable
	lvtMasked      = 1 << 16    // LVT: masked
	lvtNMI         = 4 << 8     // LVT: delivery mode NMI
	lvtTSCDeadline = 2 << 17    // LVT timer: TSC-deadline mode
	lvtOneShot     = 0 << 17    // LVT timer: one-shot mode
	divideBy1      = 0xB        // divide configuration: divide by 1
	icrBusy        = 1 << 12    // ICR: delivery status (send pending), xAPIC only
	maxCount       = 0xFFFFFFFF // largest initial count
)

// ICR command bits for SendICR.
const (
	ICRFixed            = 0 << 8
	ICRNMI              = 4 << 8
	ICRInit             = 5 << 8
	ICRStartup          = 6 << 8
	ICRAssert           = 1 << 14 // level: assert (required for all but INIT de-assert)
	ICRLevel            = 1 << 15 // trigger mode: level
	ICRSelf             = 1 << 18 // shorthand: self
	ICRAllIncludingSelf = 2 << 18 // shorthand: all including self
	ICRAllExcludingSelf = 3 << 18 // shorthand: all excluding self
)

// Bounds.
const (
	// MaxICRPolls bounds the wait for an xAPIC ICR to go idle. A dead
	// APIC (Bochs after a cleared enable bit reads 0xFFFFFFFF) keeps the
	// busy bit set forever.
	MaxICRPolls = 1 << 20
	// CalibrateMS is how long CalibrateOneShot measures.
	CalibrateMS = 2
	// maxCalibrateIters bounds CalibrateOneShot's TSC loop when the TSC
	// does not advance.
	maxCalibrateIters = 1 << 24
)

// Status reports the outcome of an operation.
type Status uint8

// Status values.
const (
	StatusOK        Status = iota // done
	StatusNoMSR                   // the MSR seam is missing
	StatusNoMMIO                  // xAPIC mode, but the register page is outside the memory window
	StatusBadVector               // a vector below 0x20 (exceptions and reserved vectors)
	StatusNotReady                // Init has not succeeded
	StatusBusy                    // the ICR never went idle
	StatusBadDest                 // an xAPIC destination above 0xFF
)

// String names the status; safe anywhere (it returns constants).
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNoMSR:
		return "no MSR access"
	case StatusNoMMIO:
		return "APIC page outside memory window"
	case StatusBadVector:
		return "bad vector"
	case StatusNotReady:
		return "local APIC not initialised"
	case StatusBusy:
		return "ICR stayed busy"
	case StatusBadDest:
		return "destination out of range for xAPIC"
	}
	return "unknown lapic status"
}

// Config selects how Init programs the local APIC.
type Config struct {
	// SpuriousVector is delivered for spurious interrupts; ≥ 0x20.
	SpuriousVector uint8
	// TimerVector is the timer interrupt's vector; ≥ 0x20.
	TimerVector uint8
	// ErrorVector, when nonzero (≥ 0x20), is the APIC error interrupt's
	// vector; 0 leaves the error LVT masked.
	ErrorVector uint8
	// UseX2APIC asks for x2APIC mode; it is used only when X2APIC is also
	// set. Firmware-enabled x2APIC is kept regardless.
	UseX2APIC bool
	// X2APIC is CPUID.01H:ECX[21], filled in by the caller.
	X2APIC bool
	// TSCDeadline selects the TSC-deadline timer mode; the caller must
	// have checked CPUID.01H:ECX[24]. Otherwise the timer is one-shot with
	// divide-by-1.
	TSCDeadline bool
	// LINT1NMI programs LINT1 for NMI delivery (the PC wiring, wanted on
	// the BSP); otherwise LINT1 is masked like LINT0.
	LINT1NMI bool
}

// LAPIC is the calling CPU's local APIC. Use one per CPU; the zero value
// is uninitialised, and every method on it is a no-op (or reports
// StatusNotReady / 0).
//
// It keeps a copy of the memory window (no pointers) and one pointer, to
// the MSR seam, written only by Init, which runs before the garbage
// collector can; hot paths write no pointers.
type LAPIC struct {
	msr      *MSR
	mem      phys.Mem
	base     uint64 // xAPIC register page
	x2       bool
	deadline bool
	ready    bool
	maxLVT   uint8
	vector   uint8 // timer vector
}

// fenceWord is the target of fence's locked no-op.
var fenceWord uint32

// fence orders earlier stores (including UC MMIO stores to the APIC page)
// before what follows: a locked read-modify-write drains the store buffer.
// The SDM asks for this between the xAPIC LVT write that selects
// TSC-deadline mode and the first WRMSR to IA32_TSC_DEADLINE.
//
//go:nosplit
func fence() { atomic.AddUint32(&fenceWord, 0) }

// Init enables and programs the local APIC of the calling CPU. mem is the
// physical window the xAPIC page is reached through (unused in x2APIC
// mode, and may then be nil).
//
// Order: set IA32_APIC_BASE.EN if clear (never clearing it), switch to
// x2APIC if asked and possible (xAPIC → x2APIC is the only legal way in),
// software-enable through the spurious-vector register (LVT masks cannot
// be cleared before that), TPR 0, LINT0 masked, LINT1 NMI or masked,
// error LVT per cfg, performance/thermal/CMCI masked where the version
// register says they exist, ESR cleared, timer stopped and set to
// TSC-deadline (disarmed) or one-shot/divide-by-1.
//
//go:nosplit
func (l *LAPIC) Init(mem *phys.Mem, msr *MSR, cfg Config) Status {
	l.ready = false
	if msr == nil || msr.Read == nil || msr.Write == nil {
		return StatusNoMSR
	}
	if cfg.SpuriousVector < 0x20 || cfg.TimerVector < 0x20 ||
		(cfg.ErrorVector != 0 && cfg.ErrorVector < 0x20) {
		return StatusBadVector
	}
	l.msr = msr
	base := msr.Read(MSRAPICBase)
	if base&BaseEN == 0 {
		base |= BaseEN
		msr.Write(MSRAPICBase, base)
	}
	l.x2 = base&BaseEXTD != 0
	if !l.x2 && cfg.UseX2APIC && cfg.X2APIC {
		base |= BaseEXTD | BaseEN
		msr.Write(MSRAPICBase, base)
		l.x2 = true
	}
	if !l.x2 {
		l.base = base & BaseAddrMask
		if mem == nil || !mem.In(l.base, 0x1000) {
			return StatusNoMMIO
		}
		l.mem = *mem
	}
	l.deadline = cfg.TSCDeadline
	l.vector = cfg.TimerVector
	l.maxLVT = uint8(l.read(RegVersion) >> 16)

	l.write(RegSVR, svrEnable|uint32(cfg.SpuriousVector))
	l.write(RegTPR, 0)
	l.write(RegLVTLINT0, lvtMasked)
	if cfg.LINT1NMI {
		l.write(RegLVTLINT1, lvtNMI)
	} else {
		l.write(RegLVTLINT1, lvtMasked)
	}
	if cfg.ErrorVector != 0 {
		l.write(RegLVTError, uint32(cfg.ErrorVector))
	} else {
		l.write(RegLVTError, lvtMasked)
	}
	// LVT entries beyond timer, LINT0/1 and error exist only when the
	// version register's Max LVT Entry counts them; in x2APIC mode a
	// write to a missing one faults.
	if l.maxLVT >= 4 {
		l.write(RegLVTPerf, lvtMasked)
	}
	if l.maxLVT >= 5 {
		l.write(RegLVTTherm, lvtMasked)
	}
	if l.maxLVT >= 6 {
		l.write(RegLVTCMCI, lvtMasked)
	}
	l.write(RegESR, 0) // writes re-arm and clear the error status
	l.write(RegESR, 0)

	l.write(RegInitCnt, 0)
	if l.deadline {
		l.write(RegLVTTimer, lvtTSCDeadline|uint32(l.vector))
		l.read(RegLVTTimer)
		fence()
		msr.Write(MSRTSCDeadline, 0)
	} else {
		l.write(RegDivide, divideBy1)
		l.write(RegLVTTimer, lvtOneShot|uint32(l.vector))
	}
	l.ready = true
	return StatusOK
}

// read returns local APIC register reg (an xAPIC offset).
//
//go:nosplit
func (l *LAPIC) read(reg uint32) uint32 {
	if l.x2 {
		return uint32(l.msr.Read(MSRx2APICBase + reg>>4))
	}
	v, _ := l.mem.Load32(l.base + uint64(reg))
	return v
}

// write stores v to local APIC register reg (an xAPIC offset).
//
//go:nosplit
func (l *LAPIC) write(reg uint32, v uint32) {
	if l.x2 {
		l.msr.Write(MSRx2APICBase+reg>>4, uint64(v))
		return
	}
	l.mem.Store32(l.base+uint64(reg), v)
}

// Ready reports whether Init succeeded.
//
//go:nosplit
func (l *LAPIC) Ready() bool { return l.ready }

// X2APIC reports whether the APIC is in x2APIC mode.
//
//go:nosplit
func (l *LAPIC) X2APIC() bool { return l.x2 }

// Base returns the xAPIC register page's physical address (0 in x2APIC
// mode).
//
//go:nosplit
func (l *LAPIC) Base() uint64 {
	if l.x2 {
		return 0
	}
	return l.base
}

// EOI signals end of interrupt for the highest-priority in-service
// interrupt.
//
//go:nosplit
func (l *LAPIC) EOI() {
	if !l.ready {
		return
	}
	if l.x2 {
		l.msr.Write(MSRx2APICBase+RegEOI>>4, 0)
		return
	}
	l.mem.Store32(l.base+RegEOI, 0)
}

// ID returns the local APIC ID: the 32-bit x2APIC ID, or the 8-bit xAPIC
// ID from bits 31:24 of the ID register.
//
//go:nosplit
func (l *LAPIC) ID() uint32 {
	if !l.ready {
		return 0
	}
	if l.x2 {
		return l.read(RegID)
	}
	return l.read(RegID) >> 24
}

// ArmTSCDeadline makes the timer fire when the TSC reaches tsc; 0 disarms
// it. It does nothing unless Init selected TSC-deadline mode.
//
//go:nosplit
func (l *LAPIC) ArmTSCDeadline(tsc uint64) {
	if !l.ready || !l.deadline {
		return
	}
	l.msr.Write(MSRTSCDeadline, tsc)
}

// ArmOneShot starts the one-shot timer counting down from count timer
// ticks; 0 stops it. It does nothing in TSC-deadline mode.
//
//go:nosplit
func (l *LAPIC) ArmOneShot(count uint32) {
	if !l.ready || l.deadline {
		return
	}
	l.write(RegInitCnt, count)
}

// CalibrateOneShot measures the one-shot timer's rate (ticks per second at
// divide-by-1) against the TSC, whose frequency tscHz the caller already
// knows, over CalibrateMS milliseconds. The timer LVT is masked during the
// measurement and restored afterwards, with the timer stopped (in
// TSC-deadline mode the deadline is left disarmed). It returns 0 if it
// cannot measure: not initialised, no TSC, a TSC that does not advance, a
// timer that does not count or that ran out.
//
//go:nosplit
func (l *LAPIC) CalibrateOneShot(rdtsc func() uint64, tscHz uint64) uint64 {
	if !l.ready || rdtsc == nil || tscHz < 1000 {
		return 0
	}
	lvt := l.read(RegLVTTimer)
	div := l.read(RegDivide)
	l.write(RegLVTTimer, lvtMasked|lvtOneShot|uint32(l.vector))
	l.write(RegDivide, divideBy1)
	l.write(RegInitCnt, maxCount)
	target := tscHz / 1000 * CalibrateMS
	t0 := rdtsc()
	t1 := t0
	reached := false
	for i := 0; i < maxCalibrateIters; i++ {
		t1 = rdtsc()
		if t1-t0 >= target {
			reached = true
			break
		}
	}
	cur := l.read(RegCurCnt)
	l.write(RegInitCnt, 0)
	l.write(RegDivide, div)
	l.write(RegLVTTimer, lvt)
	if l.deadline {
		l.read(RegLVTTimer)
		fence()
		l.msr.Write(MSRTSCDeadline, 0)
	}
	if !reached || cur == 0 || cur == maxCount {
		return 0
	}
	hi, lo := bits.Mul64(uint64(maxCount-cur), tscHz)
	delta := t1 - t0
	if hi >= delta {
		return 0
	}
	hz, _ := bits.Div64(hi, lo, delta)
	return hz
}

// ICRBusy reports whether an xAPIC IPI is still being sent. x2APIC has no
// delivery-status bit, so it is never busy.
//
//go:nosplit
func (l *LAPIC) ICRBusy() bool {
	if !l.ready || l.x2 {
		return false
	}
	return l.read(RegICRLow)&icrBusy != 0
}

// WaitICRIdle polls ICRBusy at most MaxICRPolls times; false if the ICR
// stayed busy.
//
//go:nosplit
func (l *LAPIC) WaitICRIdle() bool {
	for i := 0; i < MaxICRPolls; i++ {
		if !l.ICRBusy() {
			return true
		}
	}
	return false
}

// SendICR writes the interrupt command register: cmd is the low 32 bits
// (vector, ICR* delivery mode, level, trigger, shorthand) and dest the
// destination APIC ID (32-bit in x2APIC mode, ≤ 0xFF in xAPIC mode). In
// xAPIC mode it waits (boundedly) for the previous IPI to leave first.
//
//go:nosplit
func (l *LAPIC) SendICR(dest uint32, cmd uint32) Status {
	if !l.ready {
		return StatusNotReady
	}
	if l.x2 {
		l.msr.Write(MSRx2APICBase+RegICRLow>>4, uint64(dest)<<32|uint64(cmd))
		return StatusOK
	}
	if dest > 0xFF {
		return StatusBadDest
	}
	if !l.WaitICRIdle() {
		return StatusBusy
	}
	l.write(RegICRHigh, dest<<24)
	l.write(RegICRLow, cmd) // the low write sends
	return StatusOK
}

// SendIPI sends fixed interrupt vector to the CPU whose APIC ID is dest.
//
//go:nosplit
func (l *LAPIC) SendIPI(dest uint32, vector uint8) Status {
	if vector < 0x20 {
		return StatusBadVector
	}
	return l.SendICR(dest, ICRFixed|ICRAssert|uint32(vector))
}

// SendInit sends an INIT IPI (level assert) to dest, the first step of
// starting an application processor.
//
//go:nosplit
func (l *LAPIC) SendInit(dest uint32) Status {
	return l.SendICR(dest, ICRInit|ICRAssert|ICRLevel)
}

// SendStartup sends a STARTUP IPI to dest: the AP starts in real mode at
// physical address page<<12.
//
//go:nosplit
func (l *LAPIC) SendStartup(dest uint32, page uint8) Status {
	return l.SendICR(dest, ICRStartup|ICRAssert|uint32(page))
}
