package lapic

import (
	"encoding/binary"
	"testing"

	"juice/mm/phys"
)

// fakeCPU models the MSRs a local APIC driver touches, with the #GP rules
// that matter: illegal IA32_APIC_BASE transitions, x2APIC MSRs used while
// not in x2APIC mode, missing or read-only x2APIC registers, and nonzero
// ESR/EOI writes.
type fakeCPU struct {
	t        *testing.T
	msr      map[uint32]uint64
	baseLog  []uint64 // every value written to IA32_APIC_BASE
	writes   []uint32 // every MSR written, in order
	maxLVT   uint32
	noTSCDL  bool // IA32_TSC_DEADLINE absent
	gp       int  // would-be #GP count
	curCount func() uint32
}

func newCPU(t *testing.T, apicBase uint64, maxLVT uint32) *fakeCPU {
	c := &fakeCPU{t: t, msr: map[uint32]uint64{MSRAPICBase: apicBase}, maxLVT: maxLVT}
	c.msr[MSRx2APICBase+RegVersion>>4] = uint64(maxLVT<<16 | 0x14)
	c.msr[MSRx2APICBase+RegID>>4] = 0x1234
	return c
}

func (c *fakeCPU) fault(format string, args ...any) {
	c.gp++
	c.t.Errorf("#GP: "+format, args...)
}

func (c *fakeCPU) x2() bool { return c.msr[MSRAPICBase]&BaseEXTD != 0 }

// x2Exists reports whether x2APIC register MSR m exists on this CPU.
func (c *fakeCPU) x2Exists(m uint32) bool {
	reg := (m - MSRx2APICBase) << 4
	switch reg {
	case RegID, RegVersion, RegTPR, RegEOI, RegSVR, RegESR, RegICRLow, RegLVTTimer,
		RegLVTLINT0, RegLVTLINT1, RegLVTError, RegInitCnt, RegCurCnt, RegDivide, 0x0D0:
		return true
	case RegLVTPerf:
		return c.maxLVT >= 4
	case RegLVTTherm:
		return c.maxLVT >= 5
	case RegLVTCMCI:
		return c.maxLVT >= 6
	}
	return false
}

func (c *fakeCPU) seam() *MSR {
	return &MSR{Read: c.read, Write: c.write}
}

func (c *fakeCPU) read(m uint32) uint64 {
	if m >= MSRx2APICBase && m < MSRx2APICBase+0x100 {
		if !c.x2() || !c.x2Exists(m) || m == MSRx2APICBase+RegEOI>>4 {
			c.fault("rdmsr %#x (x2APIC %v)", m, c.x2())
		}
		if m == MSRx2APICBase+RegCurCnt>>4 && c.curCount != nil {
			return uint64(c.curCount())
		}
	}
	return c.msr[m]
}

func (c *fakeCPU) write(m uint32, v uint64) {
	c.writes = append(c.writes, m)
	switch {
	case m == MSRAPICBase:
		old := c.msr[m]
		c.baseLog = append(c.baseLog, v)
		oldMode, newMode := old&(BaseEN|BaseEXTD), v&(BaseEN|BaseEXTD)
		switch {
		case newMode == BaseEXTD:
			c.fault("IA32_APIC_BASE EXTD without EN")
		case oldMode == BaseEN|BaseEXTD && newMode == BaseEN:
			c.fault("x2APIC to xAPIC")
		case oldMode == 0 && newMode == BaseEN|BaseEXTD:
			c.fault("disabled to x2APIC")
		}
		if old&BaseEN != 0 && v&BaseEN == 0 {
			c.t.Errorf("IA32_APIC_BASE enable bit cleared (%#x -> %#x)", old, v)
		}
	case m == MSRTSCDeadline:
		if c.noTSCDL {
			c.fault("wrmsr IA32_TSC_DEADLINE on a CPU without it")
		}
	case m >= MSRx2APICBase && m < MSRx2APICBase+0x100:
		reg := (m - MSRx2APICBase) << 4
		if !c.x2() || !c.x2Exists(m) || reg == RegID || reg == RegVersion || reg == RegCurCnt || reg == 0x0D0 {
			c.fault("wrmsr %#x (x2APIC %v)", m, c.x2())
		}
		if (reg == RegEOI || reg == RegESR) && v != 0 {
			c.fault("nonzero write %#x to %#x", v, m)
		}
	}
	c.msr[m] = v
}

// reg reads an x2APIC register from the fake's MSR map by xAPIC offset.
func (c *fakeCPU) reg(off uint32) uint32 { return uint32(c.msr[MSRx2APICBase+off>>4]) }

const pageBase = 0x20000 // where the tests put the xAPIC page

func xapicWindow(maxLVT uint32) ([]byte, phys.Mem) {
	buf := make([]byte, 0x40000)
	mem := phys.FromSlice(buf)
	mem.Store32(pageBase+RegID, 3<<24)
	mem.Store32(pageBase+RegVersion, maxLVT<<16|0x14)
	// Reset state: LVTs masked.
	for _, r := range []uint32{RegLVTTimer, RegLVTTherm, RegLVTPerf, RegLVTLINT0, RegLVTLINT1, RegLVTError, RegLVTCMCI} {
		mem.Store32(pageBase+uint64(r), lvtMasked)
	}
	mem.Store32(pageBase+RegSVR, 0xFF)
	mem.Store32(pageBase+RegTPR, 0x20)
	return buf, mem
}

func le32(b []byte, off uint32) uint32 { return binary.LittleEndian.Uint32(b[pageBase+off:]) }

func TestInitXAPIC(t *testing.T) {
	for _, tc := range []struct {
		name     string
		base     uint64
		cfg      Config
		maxLVT   uint32
		timerLVT uint32
	}{
		{"one-shot, firmware enabled", pageBase | BaseEN | BaseBSP, Config{SpuriousVector: 0xFF, TimerVector: 0x40, LINT1NMI: true}, 5, 0x40},
		{"deadline, firmware disabled", pageBase, Config{SpuriousVector: 0xEF, TimerVector: 0x41, TSCDeadline: true, ErrorVector: 0xFE}, 6, 0x41 | 2<<17},
		{"x2APIC asked but absent", pageBase | BaseEN, Config{SpuriousVector: 0xFF, TimerVector: 0x40, UseX2APIC: true}, 3, 0x40},
	} {
		buf, mem := xapicWindow(tc.maxLVT)
		c := newCPU(t, tc.base, tc.maxLVT)
		var l LAPIC
		if st := l.Init(&mem, c.seam(), tc.cfg); st != StatusOK {
			t.Fatalf("%s: Init = %v", tc.name, st)
		}
		if l.X2APIC() || l.Base() != pageBase || !l.Ready() {
			t.Fatalf("%s: x2=%v base=%#x ready=%v", tc.name, l.X2APIC(), l.Base(), l.Ready())
		}
		if got := c.msr[MSRAPICBase]; got != tc.base|BaseEN {
			t.Errorf("%s: IA32_APIC_BASE = %#x, want %#x", tc.name, got, tc.base|BaseEN)
		}
		if tc.base&BaseEN != 0 && len(c.baseLog) != 0 {
			t.Errorf("%s: IA32_APIC_BASE rewritten though already enabled: %#x", tc.name, c.baseLog)
		}
		want := map[uint32]uint32{
			RegSVR:      0x100 | uint32(tc.cfg.SpuriousVector),
			RegTPR:      0,
			RegLVTLINT0: lvtMasked,
			RegLVTLINT1: lvtMasked,
			RegLVTError: lvtMasked,
			RegLVTTimer: tc.timerLVT,
			RegInitCnt:  0,
		}
		if tc.cfg.LINT1NMI {
			want[RegLVTLINT1] = 0x400
		}
		if tc.cfg.ErrorVector != 0 {
			want[RegLVTError] = uint32(tc.cfg.ErrorVector)
		}
		if !tc.cfg.TSCDeadline {
			want[RegDivide] = 0xB
		}
		for r, v := range want {
			if got := le32(buf, r); got != v {
				t.Errorf("%s: register %#x = %#x, want %#x", tc.name, r, got, v)
			}
		}
		if tc.cfg.TSCDeadline {
			if v, ok := c.msr[MSRTSCDeadline]; !ok || v != 0 {
				t.Errorf("%s: TSC deadline not disarmed (%#x, %v)", tc.name, v, ok)
			}
		}
		if l.ID() != 3 {
			t.Errorf("%s: ID = %d, want 3 (bits 31:24)", tc.name, l.ID())
		}
		l.EOI()
		if le32(buf, RegEOI) != 0 {
			t.Errorf("%s: EOI register = %#x", tc.name, le32(buf, RegEOI))
		}
	}
}

func TestEOIWritesZero(t *testing.T) {
	buf, mem := xapicWindow(5)
	c := newCPU(t, pageBase|BaseEN, 5)
	var l LAPIC
	l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40})
	binary.LittleEndian.PutUint32(buf[pageBase+RegEOI:], 0xDEADBEEF)
	l.EOI()
	if got := le32(buf, RegEOI); got != 0 {
		t.Fatalf("EOI wrote %#x to 0xB0, want 0", got)
	}
}

func TestInitX2APIC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   uint64
		cfg    Config
		maxLVT uint32
	}{
		{"switch from xAPIC", 0xFEE00000 | BaseEN | BaseBSP, Config{SpuriousVector: 0xFF, TimerVector: 0x40, UseX2APIC: true, X2APIC: true, TSCDeadline: true}, 6},
		{"switch from disabled", 0xFEE00000, Config{SpuriousVector: 0xFF, TimerVector: 0x40, UseX2APIC: true, X2APIC: true}, 3},
		{"firmware x2APIC kept", 0xFEE00000 | BaseEN | BaseEXTD, Config{SpuriousVector: 0xFF, TimerVector: 0x40}, 4},
	} {
		c := newCPU(t, tc.base, tc.maxLVT)
		var l LAPIC
		// No memory window: x2APIC must not need one.
		if st := l.Init(nil, c.seam(), tc.cfg); st != StatusOK {
			t.Fatalf("%s: Init = %v", tc.name, st)
		}
		if !l.X2APIC() || c.msr[MSRAPICBase]&(BaseEN|BaseEXTD) != BaseEN|BaseEXTD {
			t.Fatalf("%s: not in x2APIC mode (base %#x)", tc.name, c.msr[MSRAPICBase])
		}
		if c.reg(RegSVR) != 0x1FF || c.reg(RegLVTLINT0) != lvtMasked || c.reg(RegTPR) != 0 {
			t.Errorf("%s: SVR %#x LINT0 %#x TPR %#x", tc.name, c.reg(RegSVR), c.reg(RegLVTLINT0), c.reg(RegTPR))
		}
		wantTimer := uint32(0x40)
		if tc.cfg.TSCDeadline {
			wantTimer |= 2 << 17
		}
		if c.reg(RegLVTTimer) != wantTimer {
			t.Errorf("%s: timer LVT %#x, want %#x", tc.name, c.reg(RegLVTTimer), wantTimer)
		}
		if l.ID() != 0x1234 {
			t.Errorf("%s: ID = %#x, want the full 32-bit x2APIC ID", tc.name, l.ID())
		}
		// Register mapping: EOI is MSR 0x80B, the TSC deadline 0x6E0, ICR 0x830.
		c.writes = nil
		l.EOI()
		l.ArmTSCDeadline(1000)
		l.ArmOneShot(77)
		if st := l.SendIPI(0x10203, 0x50); st != StatusOK {
			t.Errorf("%s: SendIPI = %v", tc.name, st)
		}
		var wantWrites []uint32
		if tc.cfg.TSCDeadline {
			wantWrites = []uint32{0x80B, 0x6E0, 0x830}
		} else {
			wantWrites = []uint32{0x80B, 0x838, 0x830}
		}
		if len(c.writes) != 3 || c.writes[0] != wantWrites[0] || c.writes[1] != wantWrites[1] || c.writes[2] != wantWrites[2] {
			t.Errorf("%s: MSR writes %#x, want %#x", tc.name, c.writes, wantWrites)
		}
		if got := c.msr[0x830]; got != 0x10203<<32|ICRAssert|0x50 {
			t.Errorf("%s: ICR = %#x", tc.name, got)
		}
		if l.ICRBusy() {
			t.Errorf("%s: x2APIC ICR reported busy", tc.name)
		}
	}
}

func TestNeverClearsEnable(t *testing.T) {
	// Whatever the config, every IA32_APIC_BASE write keeps EN set, and a
	// firmware-enabled x2APIC is never asked to go back to xAPIC.
	for _, base := range []uint64{0, BaseEN, BaseEN | BaseEXTD, pageBase, pageBase | BaseEN} {
		for _, cfg := range []Config{
			{SpuriousVector: 0xFF, TimerVector: 0x40},
			{SpuriousVector: 0xFF, TimerVector: 0x40, UseX2APIC: true, X2APIC: true},
			{SpuriousVector: 0xFF, TimerVector: 0x40, UseX2APIC: true},
		} {
			_, mem := xapicWindow(5)
			c := newCPU(t, base, 5)
			var l LAPIC
			l.Init(&mem, c.seam(), cfg)
			for _, v := range c.baseLog {
				if v&BaseEN == 0 {
					t.Errorf("base %#x cfg %+v: wrote %#x without EN", base, cfg, v)
				}
			}
			if c.gp != 0 {
				t.Errorf("base %#x cfg %+v: %d faults", base, cfg, c.gp)
			}
		}
	}
}

func TestInitErrors(t *testing.T) {
	_, mem := xapicWindow(5)
	c := newCPU(t, pageBase|BaseEN, 5)
	var l LAPIC
	if st := l.Init(&mem, nil, Config{SpuriousVector: 0xFF, TimerVector: 0x40}); st != StatusNoMSR {
		t.Errorf("nil MSR: %v", st)
	}
	for _, cfg := range []Config{
		{SpuriousVector: 0x0F, TimerVector: 0x40},
		{SpuriousVector: 0xFF, TimerVector: 0x02},
		{SpuriousVector: 0xFF, TimerVector: 0x40, ErrorVector: 0x1F},
	} {
		if st := l.Init(&mem, c.seam(), cfg); st != StatusBadVector {
			t.Errorf("%+v: %v, want %v", cfg, st, StatusBadVector)
		}
	}
	// The xAPIC page outside the window.
	c = newCPU(t, 0xFEE00000|BaseEN, 5)
	if st := l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40}); st != StatusNoMMIO {
		t.Errorf("page outside window: %v", st)
	}
	if st := l.Init(nil, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40}); st != StatusNoMMIO {
		t.Errorf("nil window in xAPIC mode: %v", st)
	}
	// A failed Init leaves a LAPIC whose methods are harmless.
	l.EOI()
	l.ArmOneShot(5)
	l.ArmTSCDeadline(5)
	if l.Ready() || l.ID() != 0 || l.SendIPI(1, 0x40) != StatusNotReady || l.CalibrateOneShot(func() uint64 { return 0 }, 1e9) != 0 {
		t.Error("uninitialised LAPIC did something")
	}
	var zero LAPIC
	zero.EOI()
	if zero.ICRBusy() || !zero.WaitICRIdle() {
		t.Error("zero LAPIC reports a busy ICR")
	}
}

func TestMissingLVTsNotWritten(t *testing.T) {
	// maxLVT 3: no perf, thermal or CMCI LVT; in x2APIC mode writing them
	// would fault (the fake counts that as an error).
	c := newCPU(t, BaseEN|BaseEXTD, 3)
	var l LAPIC
	if st := l.Init(nil, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40}); st != StatusOK {
		t.Fatal(st)
	}
	// maxLVT 6: all masked.
	c = newCPU(t, BaseEN|BaseEXTD, 6)
	l.Init(nil, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40})
	for _, r := range []uint32{RegLVTPerf, RegLVTTherm, RegLVTCMCI} {
		if c.reg(r) != lvtMasked {
			t.Errorf("LVT %#x = %#x, want masked", r, c.reg(r))
		}
	}
}

func TestArmModes(t *testing.T) {
	// One-shot mode: ArmTSCDeadline must not touch the MSR (it may not
	// exist); ArmOneShot writes the initial count.
	buf, mem := xapicWindow(5)
	c := newCPU(t, pageBase|BaseEN, 5)
	c.noTSCDL = true
	var l LAPIC
	l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40})
	l.ArmTSCDeadline(12345)
	l.ArmOneShot(0x1000)
	if le32(buf, RegInitCnt) != 0x1000 {
		t.Errorf("initial count %#x", le32(buf, RegInitCnt))
	}
	// Deadline mode: ArmOneShot is ignored, ArmTSCDeadline writes 0x6E0.
	buf, mem = xapicWindow(5)
	c = newCPU(t, pageBase|BaseEN, 5)
	l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40, TSCDeadline: true})
	l.ArmOneShot(0x1000)
	l.ArmTSCDeadline(999)
	if le32(buf, RegInitCnt) != 0 || c.msr[MSRTSCDeadline] != 999 {
		t.Errorf("deadline mode: initial count %#x, deadline %d", le32(buf, RegInitCnt), c.msr[MSRTSCDeadline])
	}
	l.ArmTSCDeadline(0)
	if c.msr[MSRTSCDeadline] != 0 {
		t.Error("ArmTSCDeadline(0) did not disarm")
	}
}

func TestSendIPIXAPIC(t *testing.T) {
	buf, mem := xapicWindow(5)
	c := newCPU(t, pageBase|BaseEN, 5)
	var l LAPIC
	l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40})
	if st := l.SendIPI(7, 0x60); st != StatusOK {
		t.Fatal(st)
	}
	if le32(buf, RegICRHigh) != 7<<24 || le32(buf, RegICRLow) != ICRAssert|0x60 {
		t.Errorf("ICR = %#x:%#x", le32(buf, RegICRHigh), le32(buf, RegICRLow))
	}
	if st := l.SendInit(2); st != StatusOK || le32(buf, RegICRLow) != 0xC500 {
		t.Errorf("INIT: %v, ICR low %#x", st, le32(buf, RegICRLow))
	}
	if st := l.SendStartup(2, 0x08); st != StatusOK || le32(buf, RegICRLow) != 0x4608 {
		t.Errorf("SIPI: %v, ICR low %#x", st, le32(buf, RegICRLow))
	}
	if st := l.SendIPI(0x100, 0x60); st != StatusBadDest {
		t.Errorf("dest 0x100 in xAPIC: %v", st)
	}
	if st := l.SendIPI(1, 0x10); st != StatusBadVector {
		t.Errorf("vector 0x10: %v", st)
	}
	// A dead APIC (Bochs after EN was cleared) reads all ones: the busy
	// wait gives up instead of hanging.
	for i := 0; i < 0x400; i += 4 {
		binary.LittleEndian.PutUint32(buf[pageBase+i:], 0xFFFFFFFF)
	}
	if !l.ICRBusy() {
		t.Fatal("all-ones ICR not busy")
	}
	binary.LittleEndian.PutUint32(buf[pageBase+RegICRHigh:], 0)
	if st := l.SendIPI(1, 0x60); st != StatusBusy {
		t.Fatalf("dead APIC: %v, want %v", st, StatusBusy)
	}
	if le32(buf, RegICRHigh) != 0 {
		t.Fatal("ICR written while busy")
	}
}

// timerModel simulates a TSC and an APIC timer counting at apicHz.
type timerModel struct {
	tsc, tscHz, apicHz float64
	start              float64 // TSC when the count was loaded
	initial            uint32
	step               float64 // TSC ticks per rdtsc call
}

func (m *timerModel) rdtsc() uint64 { m.tsc += m.step; return uint64(m.tsc) }

func (m *timerModel) current() uint32 {
	ticks := (m.tsc - m.start) / m.tscHz * m.apicHz
	if ticks >= float64(m.initial) {
		return 0
	}
	return m.initial - uint32(ticks)
}

func TestCalibrateOneShot(t *testing.T) {
	// xAPIC: the rdtsc hook keeps the page's current-count register up to date.
	for _, apicHz := range []float64{25e6, 100e6, 1e9} {
		buf, mem := xapicWindow(5)
		c := newCPU(t, pageBase|BaseEN, 5)
		var l LAPIC
		l.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40})
		m := &timerModel{tscHz: 3e9, apicHz: apicHz, step: 300, initial: maxCount}
		rdtsc := func() uint64 {
			v := m.rdtsc()
			if le32(buf, RegInitCnt) == maxCount && m.start == 0 {
				m.start = m.tsc
			}
			binary.LittleEndian.PutUint32(buf[pageBase+RegCurCnt:], m.current())
			return v
		}
		hz := l.CalibrateOneShot(rdtsc, 3e9)
		if d := float64(hz) - apicHz; d > apicHz*1e-3 || d < -apicHz*1e-3 {
			t.Errorf("APIC %.3g Hz: calibrated %d", apicHz, hz)
		}
		if le32(buf, RegInitCnt) != 0 || le32(buf, RegLVTTimer) != 0x40 || le32(buf, RegDivide) != 0xB {
			t.Errorf("not restored: init %#x LVT %#x divide %#x", le32(buf, RegInitCnt), le32(buf, RegLVTTimer), le32(buf, RegDivide))
		}
	}
	// x2APIC with TSC deadline: restored to deadline mode and disarmed.
	c := newCPU(t, BaseEN|BaseEXTD, 5)
	var l LAPIC
	l.Init(nil, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40, TSCDeadline: true})
	l.ArmTSCDeadline(5000)
	m := &timerModel{tscHz: 2e9, apicHz: 200e6, step: 1000, initial: maxCount, start: 1000}
	c.curCount = m.current
	if hz := l.CalibrateOneShot(m.rdtsc, 2e9); hz < 199.8e6 || hz > 200.2e6 {
		t.Errorf("x2APIC: calibrated %d, want 200e6", hz)
	}
	if c.reg(RegLVTTimer) != 0x40|2<<17 || c.msr[MSRTSCDeadline] != 0 {
		t.Errorf("x2APIC: LVT %#x deadline %d after calibration", c.reg(RegLVTTimer), c.msr[MSRTSCDeadline])
	}
	// A timer that does not count, and one that runs out, give 0.
	c.curCount = func() uint32 { return maxCount }
	if hz := l.CalibrateOneShot(m.rdtsc, 2e9); hz != 0 {
		t.Errorf("stopped timer: %d", hz)
	}
	c.curCount = func() uint32 { return 0 }
	if hz := l.CalibrateOneShot(m.rdtsc, 2e9); hz != 0 {
		t.Errorf("expired timer: %d", hz)
	}
	// A frozen TSC: bounded, 0.
	c.curCount = m.current
	if hz := l.CalibrateOneShot(func() uint64 { return 7 }, 2e9); hz != 0 {
		t.Errorf("frozen TSC: %d", hz)
	}
}

func TestNoAllocs(t *testing.T) {
	_, mem := xapicWindow(5)
	c := newCPU(t, pageBase|BaseEN, 5)
	var xl LAPIC
	xl.Init(&mem, c.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40, TSCDeadline: true})
	c2 := newCPU(t, BaseEN|BaseEXTD, 5)
	var x2 LAPIC
	x2.Init(nil, c2.seam(), Config{SpuriousVector: 0xFF, TimerVector: 0x40, TSCDeadline: true})
	c.writes = make([]uint32, 0, 1<<16)
	c2.writes = make([]uint32, 0, 1<<16)
	if n := testing.AllocsPerRun(1000, func() {
		xl.EOI()
		xl.ArmTSCDeadline(42)
		x2.EOI()
		x2.ArmTSCDeadline(42)
	}); n != 0 {
		t.Fatalf("EOI/ArmTSCDeadline allocate %v times", n)
	}
}

func TestStatusString(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusBadDest; s++ {
		str := s.String()
		if seen[str] || str == Status(200).String() {
			t.Errorf("status %d: bad or duplicate name %q", s, str)
		}
		seen[str] = true
	}
}
