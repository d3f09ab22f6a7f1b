// Package apic models the x86 interrupt controllers a guest programs: the
// per-vCPU local APIC (xAPIC register page and x2APIC MSRs, interrupt
// acceptance and priority, the APIC timer, IPIs through the ICR) and the
// I/O APIC (redirection table, edge and level pins, remote IRR).
//
// The models are register-level and deterministic: time comes from a
// clock function given at construction, nothing runs on its own (no
// goroutines, no host timers). The VM core drives them: it routes MMIO
// accesses and MSRs to them, asks NextDeadline when a vCPU halts, calls
// Tick when that deadline passes, and injects what Pending reports
// (calling Ack as it injects). Register accesses, Pending, Ack and Tick
// allocate nothing. Every method is safe for concurrent use (other vCPUs
// and device models call Accept and SetIRQ); callbacks are always called
// with no lock held, so they may call back into the models.
package apic

import (
	"math/bits"
	"sync"
)

// Fixed addresses and sizes.
const (
	// DefaultBase is the local APIC's guest-physical base (IA32_APIC_BASE).
	DefaultBase = 0xFEE00000
	// Size is the length of the xAPIC register page.
	Size = 0x1000
	// BusHz is the APIC timer's input clock: 1 GHz (one count per
	// nanosecond at divide-by-1), as QEMU models it. Guests calibrate
	// the timer against another clock, so any rate works; 1 GHz makes
	// the arithmetic exact.
	BusHz = 1_000_000_000
	// Version is the value of the version register: version 0x14, max
	// LVT entry 5 (timer, thermal, performance, LINT0, LINT1, error: no
	// CMCI), no directed-EOI support.
	Version = 0x00050014
)

// MSR indices the local APIC serves.
const (
	MSRAPICBase    = 0x1B  // IA32_APIC_BASE
	MSRTSCDeadline = 0x6E0 // IA32_TSC_DEADLINE
	MSRX2APICFirst = 0x800 // first x2APIC register MSR
	MSRX2APICLast  = 0x8FF // last x2APIC register MSR
	MSRX2APICICR   = 0x830 // the 64-bit x2APIC ICR
	MSRSelfIPI     = 0x83F // x2APIC SELF IPI
)

// IA32_APIC_BASE bits.
const (
	BaseBSP    = 1 << 8  // bootstrap processor (read-only)
	BaseEXTD   = 1 << 10 // x2APIC mode
	BaseEnable = 1 << 11 // global enable
)

// xAPIC register offsets (x2APIC MSR = 0x800 + offset>>4).
const (
	RegID         = 0x020
	RegVersion    = 0x030
	RegTPR        = 0x080
	RegAPR        = 0x090
	RegPPR        = 0x0A0
	RegEOI        = 0x0B0
	RegRRD        = 0x0C0
	RegLDR        = 0x0D0
	RegDFR        = 0x0E0
	RegSVR        = 0x0F0
	RegISR        = 0x100 // 8 registers, 0x100-0x170
	RegTMR        = 0x180 // 8 registers, 0x180-0x1F0
	RegIRR        = 0x200 // 8 registers, 0x200-0x270
	RegESR        = 0x280
	RegCMCI       = 0x2F0 // not implemented (max LVT 5)
	RegICRLow     = 0x300
	RegICRHigh    = 0x310
	RegLVTTimer   = 0x320
	RegLVTThermal = 0x330
	RegLVTPerf    = 0x340
	RegLVTLINT0   = 0x350
	RegLVTLINT1   = 0x360
	RegLVTError   = 0x370
	RegTimerInit  = 0x380
	RegTimerCur   = 0x390
	RegTimerDiv   = 0x3E0
	RegSelfIPI    = 0x3F0 // x2APIC only
)

// Register bits.
const (
	SVREnable   = 1 << 8  // SVR: APIC software enable
	SVRFocusOff = 1 << 9  // SVR: focus processor checking disabled
	LVTMasked   = 1 << 16 // LVT: mask
	// LVT timer modes (bits 18:17).
	TimerOneShot  = 0 << 17
	TimerPeriodic = 1 << 17
	TimerDeadline = 2 << 17
	timerModeMask = 3 << 17
	// ESR bits.
	ESRSendIllegal = 1 << 5 // an IPI with an illegal vector (0-15) was sent
	ESRRecvIllegal = 1 << 6 // an interrupt with an illegal vector was received
	ESRIllegalReg  = 1 << 7 // illegal register address
)

// DeliveryMode is an ICR, LVT or redirection-entry delivery mode (bits 10:8).
type DeliveryMode uint8

// Delivery modes.
const (
	Fixed          DeliveryMode = 0
	LowestPriority DeliveryMode = 1
	SMI            DeliveryMode = 2
	NMI            DeliveryMode = 4
	INIT           DeliveryMode = 5
	StartUp        DeliveryMode = 6
	ExtINT         DeliveryMode = 7
)

// Shorthand is an ICR destination shorthand (bits 19:18).
type Shorthand uint8

// Destination shorthands.
const (
	NoShorthand  Shorthand = 0 // use the destination field
	ToSelf       Shorthand = 1
	ToAll        Shorthand = 2 // all including self
	ToAllButSelf Shorthand = 3
)

// IPI is an interprocessor interrupt the guest sent by writing the ICR.
// The VM routes it: for NoShorthand it finds the target local APICs with
// MatchDest(Dest, Logical); Fixed and LowestPriority targets get
// Accept(Vector) (AcceptLevel when LevelTrigger); INIT and StartUp start
// application processors (StartUp's vector is the start page number).
type IPI struct {
	Source       uint32       // the sender's APIC ID
	Dest         uint32       // destination: 8 bits (ICR[63:56]) in xAPIC mode, 32 in x2APIC mode
	Shorthand    Shorthand    // destination shorthand
	Mode         DeliveryMode // delivery mode
	Vector       uint8        // vector (StartUp: start page)
	Logical      bool         // logical destination mode (ICR bit 11)
	Assert       bool         // level bit (ICR bit 14): false for INIT level de-assert
	LevelTrigger bool         // trigger mode (ICR bit 15)
	X2APIC       bool         // sent in x2APIC mode (Dest is 32-bit; 0xFFFFFFFF is broadcast)
}

// LVT indices in LAPIC.lvt.
const (
	lvtTimer = iota
	lvtThermal
	lvtPerf
	lvtLINT0
	lvtLINT1
	lvtError
	numLVT
)

// lvtWritable is the writable-bit mask of each LVT register.
var lvtWritable = [numLVT]uint32{
	lvtTimer:   0x000700FF, // vector, mask, mode
	lvtThermal: 0x000107FF, // vector, delivery mode, mask
	lvtPerf:    0x000107FF,
	lvtLINT0:   0x0001A7FF, // vector, delivery mode, polarity, trigger, mask
	lvtLINT1:   0x0001A7FF,
	lvtError:   0x000100FF, // vector, mask
}

// LAPIC is one vCPU's local APIC. Create it with New.
type LAPIC struct {
	mu       sync.Mutex
	id       uint32
	now      func() int64
	tscHz    uint64
	guestTSC func() uint64
	deliver  func(vector uint8)
	sendIPI  func(IPI)
	eoiBcast func(vector uint8)

	base             uint64 // IA32_APIC_BASE
	tpr              uint32
	ldr, dfr, svr    uint32
	isr, tmr, irr    [8]uint32
	esr, esrPending  uint32
	icrLow, icrHigh  uint32
	lvt              [numLVT]uint32
	initCount, divCf uint32
	divShift         uint   // log2 of the timer divisor
	start            int64  // when the count was (re)loaded, ns
	armed            bool   // deadline is the next expiry
	deadline         int64  // ns by now()
	tscDeadline      uint64 // IA32_TSC_DEADLINE
}

// New returns the local APIC with ID id, in the power-on state: globally
// enabled in xAPIC mode at DefaultBase (BSP when id is 0), software
// disabled, every LVT masked. now returns monotonic nanoseconds (the VM's
// clock); tscHz is the guest TSC's rate, used for TSC-deadline mode (0
// means 1 GHz). deliver is called (without locks held) each time a vector
// is accepted into the IRR, so the core can wake a halted vCPU or kick a
// running one; sendIPI is called for each IPI the guest sends. Either may
// be nil (the event is dropped).
func New(id uint32, now func() int64, tscHz uint64, deliver func(vector uint8), sendIPI func(IPI)) *LAPIC {
	if tscHz == 0 {
		tscHz = 1_000_000_000
	}
	a := &LAPIC{id: id, now: now, tscHz: tscHz, deliver: deliver, sendIPI: sendIPI}
	a.base = DefaultBase | BaseEnable
	if id == 0 {
		a.base |= BaseBSP
	}
	a.resetRegs()
	return a
}

// SetGuestTSC sets the function that reads the guest's TSC (host TSC plus
// the guest's offset), against which TSC-deadline values are compared.
// Without it the guest TSC is taken to be now()*tscHz/1e9. Call it before
// the vCPU runs.
func (a *LAPIC) SetGuestTSC(tsc func() uint64) {
	a.mu.Lock()
	a.guestTSC = tsc
	a.mu.Unlock()
}

// SetEOIBroadcast sets the function called with the vector when the guest
// EOIs a level-triggered interrupt (one accepted with AcceptLevel); the VM
// passes it on to the I/O APICs (IOAPIC.EOI). Call it before the vCPU runs.
func (a *LAPIC) SetEOIBroadcast(eoi func(vector uint8)) {
	a.mu.Lock()
	a.eoiBcast = eoi
	a.mu.Unlock()
}

// resetRegs puts every register but the ID and IA32_APIC_BASE in its
// power-on / INIT state and stops the timer.
func (a *LAPIC) resetRegs() {
	a.tpr, a.ldr, a.dfr, a.svr = 0, 0, 0xFFFFFFFF, 0xFF
	a.isr, a.tmr, a.irr = [8]uint32{}, [8]uint32{}, [8]uint32{}
	a.esr, a.esrPending = 0, 0
	a.icrLow, a.icrHigh = 0, 0
	for i := range a.lvt {
		a.lvt[i] = LVTMasked
	}
	a.initCount, a.divCf, a.divShift = 0, 0, 1
	a.start, a.armed, a.deadline, a.tscDeadline = 0, false, 0, 0
}

// Init performs an INIT reset (an INIT IPI): every register returns to
// its power-on state except the APIC ID and IA32_APIC_BASE.
func (a *LAPIC) Init() {
	a.mu.Lock()
	a.resetRegs()
	a.mu.Unlock()
}

// ID is the APIC ID.
func (a *LAPIC) ID() uint32 { return a.id }

// enabled reports global enable; x2 reports x2APIC mode.
func (a *LAPIC) enabled() bool { return a.base&BaseEnable != 0 }
func (a *LAPIC) x2() bool      { return a.base&BaseEXTD != 0 }

// X2APIC reports whether the APIC is in x2APIC mode.
func (a *LAPIC) X2APIC() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.enabled() && a.x2()
}

// APICBase returns IA32_APIC_BASE.
func (a *LAPIC) APICBase() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base
}

// SetAPICBase writes IA32_APIC_BASE; false means #GP. The base address
// cannot move (it must stay DefaultBase); BSP is read-only (the written
// bit is ignored); bits 0-7 and 9 are reserved. Mode transitions follow
// the SDM: disabled <-> xAPIC, xAPIC -> x2APIC, x2APIC -> disabled; the
// invalid state (EXTD without EN) and x2APIC -> xAPIC are refused.
// Disabling resets every register except the ID.
func (a *LAPIC) SetAPICBase(v uint64) bool {
	if v&^uint64(0xFFF) != DefaultBase || v&0x2FF != 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	newEn, newX2 := v&BaseEnable != 0, v&BaseEXTD != 0
	oldEn, oldX2 := a.enabled(), a.x2()
	switch {
	case newX2 && !newEn: // invalid state
		return false
	case oldX2 && newEn && !newX2: // x2APIC -> xAPIC
		return false
	case !oldEn && newX2: // disabled -> x2APIC
		return false
	}
	if oldEn && !newEn {
		a.resetRegs()
	}
	a.base = v&(BaseEnable|BaseEXTD) | a.base&BaseBSP | DefaultBase
	return true
}

// ppr computes the processor priority.
func (a *LAPIC) ppr() uint32 {
	isrv := uint32(0)
	if v, ok := highest(&a.isr); ok {
		isrv = uint32(v)
	}
	if a.tpr&0xF0 >= isrv&0xF0 {
		return a.tpr & 0xFF
	}
	return isrv & 0xF0
}

// highest returns the highest set bit of a 256-bit register.
func highest(r *[8]uint32) (uint8, bool) {
	for i := 7; i >= 0; i-- {
		if w := r[i]; w != 0 {
			return uint8(i*32 + 31 - bits.LeadingZeros32(w)), true
		}
	}
	return 0, false
}

func bitSet(r *[8]uint32, v uint8) bool { return r[v>>5]&(1<<(v&31)) != 0 }
func setBit(r *[8]uint32, v uint8)      { r[v>>5] |= 1 << (v & 31) }
func clearBit(r *[8]uint32, v uint8)    { r[v>>5] &^= 1 << (v & 31) }

// effects are the callbacks a locked operation wants made once the lock
// is released.
type effects struct {
	dlv     [2]uint8 // vectors to report to deliver
	ndlv    int
	ipi     IPI
	sendIPI bool
	eoi     uint8
	doEOI   bool
}

// run makes the callbacks recorded in e; the lock must not be held.
func (a *LAPIC) run(e *effects) {
	if a.deliver != nil {
		for i := 0; i < e.ndlv && i < len(e.dlv); i++ {
			a.deliver(e.dlv[i])
		}
	}
	if e.sendIPI && a.sendIPI != nil {
		a.sendIPI(e.ipi)
	}
	if e.doEOI && a.eoiBcast != nil {
		a.eoiBcast(e.eoi)
	}
}

// accept puts vector in the IRR (lock held). Vectors 0-15 are illegal:
// they set ESR bit 6 and raise the error LVT instead.
func (a *LAPIC) accept(vector uint8, level bool, e *effects) {
	if !a.enabled() {
		return
	}
	if vector < 16 {
		a.errorIntr(ESRRecvIllegal, e)
		return
	}
	setBit(&a.irr, vector)
	if level {
		setBit(&a.tmr, vector)
	} else {
		clearBit(&a.tmr, vector)
	}
	if e.ndlv < len(e.dlv) {
		e.dlv[e.ndlv] = vector
		e.ndlv++
	}
}

// errorIntr records an APIC error and raises the error LVT if unmasked.
func (a *LAPIC) errorIntr(bit uint32, e *effects) {
	a.esrPending |= bit
	l := a.lvt[lvtError]
	if l&LVTMasked == 0 && uint8(l) >= 16 {
		a.accept(uint8(l), false, e)
	}
}

// Accept accepts a fixed, edge-triggered interrupt: vector goes into the
// IRR and deliver is called. Nothing happens while the APIC is globally
// disabled; vectors 0-15 are illegal (ESR bit 6, error LVT).
func (a *LAPIC) Accept(vector uint8) { a.AcceptLevel(vector, false) }

// AcceptLevel is Accept with a trigger mode: when level is true the
// vector's TMR bit is set, and the guest's EOI of it is broadcast (see
// SetEOIBroadcast).
func (a *LAPIC) AcceptLevel(vector uint8, level bool) {
	var e effects
	a.mu.Lock()
	a.accept(vector, level, &e)
	a.mu.Unlock()
	a.run(&e)
}

// Pending returns the highest-priority requested vector the vCPU may take
// now: the highest IRR vector whose priority class (vector>>4) is above
// the processor priority's class. The core injects it when the guest can
// take an interrupt, calling Ack as it does.
func (a *LAPIC) Pending() (vector uint8, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled() {
		return 0, false
	}
	v, ok := highest(&a.irr)
	if !ok || uint32(v)&0xF0 <= a.ppr()&0xF0 {
		return 0, false
	}
	return v, true
}

// Ack moves vector from the IRR to the ISR: the core calls it when it
// injects vector into the guest. It does nothing if vector is not in the
// IRR.
func (a *LAPIC) Ack(vector uint8) {
	a.mu.Lock()
	if bitSet(&a.irr, vector) {
		clearBit(&a.irr, vector)
		setBit(&a.isr, vector)
	}
	a.mu.Unlock()
}

// eoi clears the highest ISR bit (lock held).
func (a *LAPIC) eoi(e *effects) {
	v, ok := highest(&a.isr)
	if !ok {
		return
	}
	clearBit(&a.isr, v)
	if bitSet(&a.tmr, v) {
		clearBit(&a.tmr, v)
		e.eoi, e.doEOI = v, true
	}
}

// MatchDest reports whether this APIC is a target of destination dest in
// physical or logical destination mode, in its current mode: x2APIC
// (32-bit IDs, cluster logical mode, broadcast 0xFFFFFFFF) or xAPIC
// (8-bit IDs, flat or cluster logical mode by the DFR, broadcast 0xFF). A
// globally disabled APIC matches nothing.
func (a *LAPIC) MatchDest(dest uint32, logical bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled() {
		return false
	}
	if a.x2() {
		if dest == 0xFFFFFFFF {
			return true
		}
		if !logical {
			return dest == a.id
		}
		ldr := a.x2LDR()
		return dest>>16 == ldr>>16 && dest&ldr&0xFFFF != 0
	}
	d := dest & 0xFF
	if d == 0xFF {
		return true
	}
	if !logical {
		return d == a.id&0xFF
	}
	l := a.ldr >> 24
	if a.dfr>>28 == 0xF { // flat
		return l&d != 0
	}
	return l>>4 == d>>4 && l&d&0xF != 0 // cluster
}

// x2LDR is the x2APIC logical ID derived from the APIC ID.
func (a *LAPIC) x2LDR() uint32 { return (a.id>>4)<<16 | 1<<(a.id&0xF) }

// Read is the xAPIC register page's MMIO read (offsets from DefaultBase).
// Registers are 32 bits at 16-byte-aligned offsets; a narrower or
// unaligned read returns the addressed bytes of the register, bytes 4-15
// of each slot read 0. In x2APIC mode or when globally disabled the page
// reads 0.
func (a *LAPIC) Read(off uint64, size uint8) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled() || a.x2() || off >= Size {
		return 0
	}
	b := off & 0xF
	if b >= 4 {
		return 0
	}
	v, _ := a.readReg(uint32(off&^0xF), false)
	return uint64(v >> (8 * b))
}

// Write is the xAPIC register page's MMIO write. Only 32-bit (or 64-bit,
// low half used) writes at a register's offset have an effect; others are
// ignored, as are writes in x2APIC mode or when globally disabled.
func (a *LAPIC) Write(off uint64, size uint8, value uint64) {
	if off&0xF != 0 || size < 4 || off >= Size {
		return
	}
	var e effects
	a.mu.Lock()
	if a.enabled() && !a.x2() {
		a.writeReg(uint32(off), uint32(value), false, &e)
	}
	a.mu.Unlock()
	a.run(&e)
}

// ReadMSR reads x2APIC MSR msr (0x800-0x8FF); false means #GP: not in
// x2APIC mode, a reserved or write-only register (EOI, SELF IPI), or an
// MSR outside the range. ICR (0x830) reads as one 64-bit value.
func (a *LAPIC) ReadMSR(msr uint32) (uint64, bool) {
	if msr < MSRX2APICFirst || msr > MSRX2APICLast {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled() || !a.x2() {
		return 0, false
	}
	if msr == MSRX2APICICR {
		return uint64(a.icrHigh)<<32 | uint64(a.icrLow), true
	}
	v, ok := a.readReg((msr-MSRX2APICFirst)<<4, true)
	return uint64(v), ok
}

// WriteMSR writes x2APIC MSR msr; false means #GP: not in x2APIC mode, a
// reserved or read-only register, bits 63:32 set on a 32-bit register, a
// non-zero write to EOI or ESR. A write of the ICR (0x830, 64 bits:
// destination in 63:32) sends the IPI; SELF IPI (0x83F) accepts its
// vector on this APIC.
func (a *LAPIC) WriteMSR(msr uint32, v uint64) bool {
	if msr < MSRX2APICFirst || msr > MSRX2APICLast {
		return false
	}
	var e effects
	ok := true
	a.mu.Lock()
	switch {
	case !a.enabled() || !a.x2():
		ok = false
	case msr == MSRX2APICICR:
		a.icrHigh = uint32(v >> 32)
		a.writeICR(uint32(v), &e)
	case v>>32 != 0:
		ok = false
	default:
		ok = a.writeReg((msr-MSRX2APICFirst)<<4, uint32(v), true, &e)
	}
	a.mu.Unlock()
	a.run(&e)
	return ok
}

// readReg reads register reg (a 16-byte-aligned offset). In x2APIC mode
// (x2) reserved and write-only registers fault (ok false); in xAPIC mode
// they read 0.
func (a *LAPIC) readReg(reg uint32, x2 bool) (uint32, bool) {
	switch {
	case reg >= RegISR && reg < RegISR+0x80:
		return a.isr[(reg-RegISR)>>4], true
	case reg >= RegTMR && reg < RegTMR+0x80:
		return a.tmr[(reg-RegTMR)>>4], true
	case reg >= RegIRR && reg < RegIRR+0x80:
		return a.irr[(reg-RegIRR)>>4], true
	case reg >= RegLVTTimer && reg <= RegLVTError:
		return a.lvt[(reg-RegLVTTimer)>>4], true
	}
	switch reg {
	case RegID:
		if x2 {
			return a.id, true
		}
		return a.id << 24, true
	case RegVersion:
		return Version, true
	case RegTPR:
		return a.tpr, true
	case RegPPR:
		return a.ppr(), true
	case RegLDR:
		if x2 {
			return a.x2LDR(), true
		}
		return a.ldr, true
	case RegSVR:
		return a.svr, true
	case RegESR:
		return a.esr, true
	case RegICRLow:
		return a.icrLow, true
	case RegTimerInit:
		return a.initCount, true
	case RegTimerCur:
		return a.currentCount(a.now()), true
	case RegTimerDiv:
		return a.divCf, true
	}
	if x2 { // APR, EOI, RRD, DFR, CMCI, ICR high, SELF IPI, undefined
		return 0, false
	}
	switch reg {
	case RegDFR:
		return a.dfr, true
	case RegICRHigh:
		return a.icrHigh, true
	}
	return 0, true // APR, EOI, RRD, CMCI, undefined: 0
}

// writeReg writes register reg; in x2APIC mode a write to a read-only or
// reserved register faults (false), in xAPIC mode it is ignored.
func (a *LAPIC) writeReg(reg, v uint32, x2 bool, e *effects) bool {
	if reg >= RegLVTTimer && reg <= RegLVTError {
		a.writeLVT(int((reg-RegLVTTimer)>>4), v)
		return true
	}
	switch reg {
	case RegTPR:
		a.tpr = v & 0xFF
	case RegEOI:
		if x2 && v != 0 {
			return false
		}
		a.eoi(e)
	case RegSVR:
		a.svr = v & 0x3FF
		if a.svr&SVREnable == 0 {
			for i := range a.lvt {
				a.lvt[i] |= LVTMasked
			}
		}
	case RegESR:
		if x2 && v != 0 {
			return false
		}
		a.esr, a.esrPending = a.esrPending, 0
	case RegICRLow:
		a.writeICR(v, e)
	case RegTimerInit:
		a.writeInitCount(v)
	case RegTimerDiv:
		a.writeDivide(v)
	case RegSelfIPI:
		if !x2 {
			return true
		}
		a.accept(uint8(v), false, e)
	case RegLDR:
		if x2 {
			return false
		}
		a.ldr = v & 0xFF000000
	case RegDFR:
		if x2 {
			return false
		}
		a.dfr = v | 0x0FFFFFFF
	case RegICRHigh:
		if x2 {
			return false
		}
		a.icrHigh = v & 0xFF000000
	default: // ID, version, PPR, ISR/TMR/IRR, current count, APR, RRD, CMCI, undefined
		return !x2
	}
	return true
}

// writeICR latches the ICR's low half and sends the IPI it describes.
func (a *LAPIC) writeICR(v uint32, e *effects) {
	a.icrLow = v & 0x000CCFFF // vector, mode, dest mode, level, trigger, shorthand
	ipi := IPI{
		Source:       a.id,
		Shorthand:    Shorthand(v >> 18 & 3),
		Mode:         DeliveryMode(v >> 8 & 7),
		Vector:       uint8(v),
		Logical:      v&(1<<11) != 0,
		Assert:       v&(1<<14) != 0,
		LevelTrigger: v&(1<<15) != 0,
		X2APIC:       a.x2(),
	}
	if ipi.X2APIC {
		ipi.Dest = a.icrHigh
	} else {
		ipi.Dest = a.icrHigh >> 24
	}
	if (ipi.Mode == Fixed || ipi.Mode == LowestPriority) && ipi.Vector < 16 {
		a.errorIntr(ESRSendIllegal, e)
		return
	}
	e.ipi, e.sendIPI = ipi, true
}
