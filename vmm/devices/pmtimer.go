package devices

import (
	"math/bits"
	"sync"
)

// Suggested ACPI fixed-hardware port layout (the one QEMU's ICH9 model
// uses). The FADT's PM1a_EVT_BLK, PM1a_CNT_BLK and PM_TMR_BLK must name
// whatever ports the devices are registered at.
const (
	// PM1EventPort is a suggested PM1a_EVT_BLK base (PM1EventPorts long).
	PM1EventPort = 0x600
	// PM1ControlPort is a suggested PM1a_CNT_BLK base (PM1ControlPorts long).
	PM1ControlPort = 0x604
	// PMTimerPort is a suggested PM_TMR_BLK base (PMTimerPorts long).
	PMTimerPort = 0x608

	// PM1EventPorts is PM1a_EVT_BLK's length: status (2) and enable (2).
	PM1EventPorts = 4
	// PM1ControlPorts is PM1a_CNT_BLK's length.
	PM1ControlPorts = 2
	// PMTimerPorts is PM_TMR_BLK's length.
	PMTimerPorts = 4
)

// PMTimerHz is the ACPI power-management timer's frequency.
const PMTimerHz = 3579545

// pmTimerMask keeps the 24 bits a timer without TMR_VAL_EXT has.
const pmTimerMask = 0xffffff

// PMTimer is the ACPI power-management timer: a free-running 24-bit
// counter at PMTimerHz (the FADT must leave TMR_VAL_EXT clear), computed
// from the clock on every read, so it never stops and needs no goroutine.
// It counts from 0 at construction and wraps every 2^24 ticks (about
// 4.69 s). Its 4-byte register reads the count; narrower reads see their
// byte lanes; writes are ignored. It keeps no mutable state. Register it
// on the I/O bus with PMTimerPorts ports.
type PMTimer struct {
	now   func() int64
	epoch int64
}

// NewPMTimer returns a PM timer driven by now (monotonic nanoseconds).
func NewPMTimer(now func() int64) *PMTimer {
	return &PMTimer{now: now, epoch: now()}
}

// Count is the timer's 24-bit value now.
func (p *PMTimer) Count() uint32 {
	return uint32(nsToTicks(p.now()-p.epoch, PMTimerHz)) & pmTimerMask
}

// In reads the bytes of the counter at [off, off+size).
func (p *PMTimer) In(off uint16, size uint8) uint32 {
	if off >= 4 {
		return 0
	}
	return p.Count() >> (8 * off)
}

// Out ignores the write: the timer is read-only.
func (p *PMTimer) Out(off uint16, size uint8, value uint32) {}

// nsToTicks converts a duration in ns to whole ticks of a hz clock
// (rounding down), without overflow for any int64 duration; negative
// durations give 0.
func nsToTicks(ns int64, hz uint64) uint64 {
	if ns <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(ns), hz)
	if hi >= 1e9 { // cannot happen for hz < 1e9; keeps Div64 from panicking
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, 1e9)
	return q
}

// ticksToNs converts a tick count of a hz clock to the smallest duration
// in ns that holds that many ticks (rounding up), saturating at MaxInt64.
func ticksToNs(ticks, hz uint64) int64 {
	hi, lo := bits.Mul64(ticks, 1e9)
	lo, c := bits.Add64(lo, hz-1, 0)
	hi += c
	if hi >= hz {
		return 1<<63 - 1
	}
	q, _ := bits.Div64(hi, lo, hz)
	if q > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(q)
}

// PM1 status and control bits (ACPI spec, "PM1 Event Grouping" and
// "PM1 Control Grouping").
const (
	pm1StatusMask  = 0x8f31 // TMR, BM, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE, WAK
	pm1EnableMask  = 0x4721 // TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE_DIS
	pm1SCIEn       = 0x0001
	pm1CntKeep     = 0x1c02 // bits that read back: BM_RLD, SLP_TYP
	pm1SlpEn       = 0x2000
	pm1SlpTypShift = 10
)

// PM1 is the ACPI PM1a event and control blocks of a machine without SMM:
// SCI_EN (PM1_CNT bit 0) reads 1 from reset and cannot be cleared (the
// FADT's SMI_CMD is 0, so the OS finds ACPI mode already on). PM1_STS
// bits are write-one-to-clear and nothing sets them; PM1_EN reads back
// what was written. Writing PM1_CNT with SLP_EN (bit 13) set and SLP_TYP
// (bits 12:10) equal to the S5 value given at construction — which must
// match the first value of the DSDT's \_S5 package — calls poweroff;
// other sleep types are ignored (the guest resumes at once, as if woken).
//
// Register Event() with PM1EventPorts ports and Control() with
// PM1ControlPorts ports, at the FADT's PM1a_EVT_BLK and PM1a_CNT_BLK.
type PM1 struct {
	mu       sync.Mutex
	s5       uint16
	poweroff func()
	sts, en  uint16
	cnt      uint16
	evt      PM1Event
	ctl      PM1Control
}

// NewPM1 returns the PM1 blocks; poweroff is called (on the exit path: it
// must not block) when the guest enters S5, whose SLP_TYP is s5Type
// (0-7).
func NewPM1(s5Type uint8, poweroff func()) *PM1 {
	p := &PM1{s5: uint16(s5Type & 7), poweroff: poweroff, cnt: pm1SCIEn}
	p.evt.p, p.ctl.p = p, p
	return p
}

// Event is the PM1a_EVT_BLK device.
func (p *PM1) Event() *PM1Event { return &p.evt }

// Control is the PM1a_CNT_BLK device.
func (p *PM1) Control() *PM1Control { return &p.ctl }

// PM1Event is PM1a_EVT_BLK: PM1_STS at offset 0, PM1_EN at offset 2.
type PM1Event struct {
	p *PM1
}

// In reads the bytes of PM1_STS:PM1_EN at [off, off+size).
func (e *PM1Event) In(off uint16, size uint8) uint32 {
	if off >= PM1EventPorts {
		return 0
	}
	e.p.mu.Lock()
	v := uint32(e.p.sts) | uint32(e.p.en)<<16
	e.p.mu.Unlock()
	return v >> (8 * off)
}

// Out writes the bytes at [off, off+size): ones in PM1_STS clear status
// bits; PM1_EN takes the written enable bits.
func (e *PM1Event) Out(off uint16, size uint8, value uint32) {
	if off >= PM1EventPorts {
		return
	}
	lanes := sizeLanes(size) << (8 * off)
	v := value << (8 * off)
	e.p.mu.Lock()
	e.p.sts &^= uint16(v & lanes)
	enLanes := uint16(lanes >> 16)
	e.p.en = (e.p.en &^ enLanes) | (uint16(v>>16) & enLanes & pm1EnableMask)
	e.p.mu.Unlock()
}

// PM1Control is PM1a_CNT_BLK.
type PM1Control struct {
	p *PM1
}

// In reads PM1_CNT (SLP_EN reads 0).
func (c *PM1Control) In(off uint16, size uint8) uint32 {
	if off >= PM1ControlPorts {
		return 0
	}
	c.p.mu.Lock()
	v := uint32(c.p.cnt)
	c.p.mu.Unlock()
	return v >> (8 * off)
}

// Out writes the bytes of PM1_CNT at [off, off+size); a write of the high
// byte with SLP_EN set and SLP_TYP equal to the S5 type calls poweroff.
func (c *PM1Control) Out(off uint16, size uint8, value uint32) {
	if off >= PM1ControlPorts {
		return
	}
	lanes := uint16(sizeLanes(size) << (8 * off))
	v := uint16(value << (8 * off))
	p := c.p
	p.mu.Lock()
	n := (p.cnt &^ lanes) | (v & lanes)
	p.cnt = (n & pm1CntKeep) | pm1SCIEn
	off5 := lanes&pm1SlpEn != 0 && n&pm1SlpEn != 0 && (n>>pm1SlpTypShift)&7 == p.s5
	p.mu.Unlock()
	if off5 && p.poweroff != nil {
		p.poweroff()
	}
}

// sizeLanes is the byte-lane mask of a size-byte access at offset 0.
func sizeLanes(size uint8) uint32 {
	switch size {
	case 1:
		return 0xff
	case 2:
		return 0xffff
	case 4:
		return 0xffffffff
	}
	return 0
}
