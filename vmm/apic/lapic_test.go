package apic

import (
	"testing"
)

// fake is a test harness: a settable clock and recorders for callbacks.
type fake struct {
	t    int64
	dlv  []uint8
	ipis []IPI
	eois []uint8
}

func (f *fake) now() int64 { return f.t }

func newFake(id uint32) (*LAPIC, *fake) {
	f := &fake{t: 1000}
	a := New(id, f.now, 0, func(v uint8) { f.dlv = append(f.dlv, v) }, func(i IPI) { f.ipis = append(f.ipis, i) })
	a.SetEOIBroadcast(func(v uint8) { f.eois = append(f.eois, v) })
	return a, f
}

func rd(a *LAPIC, reg uint32) uint32    { return uint32(a.Read(uint64(reg), 4)) }
func wr(a *LAPIC, reg uint32, v uint32) { a.Write(uint64(reg), 4, uint64(v)) }

func enable(a *LAPIC) { wr(a, RegSVR, SVREnable|0xFF) }

func TestResetState(t *testing.T) {
	a, _ := newFake(3)
	want := map[uint32]uint32{
		RegID: 3 << 24, RegVersion: 0x50014, RegTPR: 0, RegAPR: 0, RegPPR: 0, RegEOI: 0,
		RegLDR: 0, RegDFR: 0xFFFFFFFF, RegSVR: 0xFF, RegESR: 0, RegICRLow: 0, RegICRHigh: 0,
		RegLVTTimer: LVTMasked, RegLVTThermal: LVTMasked, RegLVTPerf: LVTMasked,
		RegLVTLINT0: LVTMasked, RegLVTLINT1: LVTMasked, RegLVTError: LVTMasked,
		RegTimerInit: 0, RegTimerCur: 0, RegTimerDiv: 0,
	}
	for i := uint32(0); i < 8; i++ {
		want[RegISR+i*16], want[RegTMR+i*16], want[RegIRR+i*16] = 0, 0, 0
	}
	for reg, w := range want {
		if got := rd(a, reg); got != w {
			t.Errorf("reg %#x = %#x, want %#x", reg, got, w)
		}
	}
	if got := a.APICBase(); got != DefaultBase|BaseEnable {
		t.Errorf("APIC base %#x", got)
	}
	b, _ := newFake(0)
	if got := b.APICBase(); got != DefaultBase|BaseEnable|BaseBSP {
		t.Errorf("BSP APIC base %#x", got)
	}
}

func TestRegisterWrites(t *testing.T) {
	tests := []struct {
		reg       uint32
		val, want uint32
	}{
		{RegID, 0xFFFFFFFF, 5 << 24}, // read-only
		{RegVersion, 0, Version},
		{RegTPR, 0x1FF, 0xFF},
		{RegPPR, 0xFF, 0},
		{RegLDR, 0x12345678, 0x12000000},
		{RegDFR, 0, 0x0FFFFFFF},
		{RegSVR, 0xFFFFFFFF, 0x3FF},
		{RegISR + 0x10, 0xFFFFFFFF, 0},
		{RegTMR + 0x70, 0xFFFFFFFF, 0},
		{RegIRR + 0x20, 0xFFFFFFFF, 0},
		{RegICRHigh, 0xABCDEF12, 0xAB000000},
		{RegLVTTimer, 0xFFFFFFFF, 0x000700FF},
		{RegLVTThermal, 0xFFFFFFFF, 0x000107FF},
		{RegLVTPerf, 0xFFFFFFFF, 0x000107FF},
		{RegLVTLINT0, 0xFFFFFFFF, 0x0001A7FF},
		{RegLVTLINT1, 0xFFFFFFFF, 0x0001A7FF},
		{RegLVTError, 0xFFFFFFFF, 0x000100FF},
		{RegLVTThermal, 0x000004F0, 0x000004F0}, // unmask with SVR enabled
		{RegTimerInit, 0x12345, 0x12345},
		{RegTimerDiv, 0xFF, 0xB},
		{RegTimerCur, 0x1234, 0},
		{0x3F0, 0xFFFF, 0},
		{0x400, 0xFFFF, 0},
	}
	for _, tc := range tests {
		a, _ := newFake(5)
		enable(a)
		wr(a, tc.reg, tc.val)
		if got := rd(a, tc.reg); got != tc.want {
			t.Errorf("write %#x to %#x: read %#x, want %#x", tc.val, tc.reg, got, tc.want)
		}
	}
}

func TestPartialAccess(t *testing.T) {
	a, _ := newFake(0x7A)
	if got := a.Read(RegID+3, 1); got != 0x7A {
		t.Errorf("byte read of ID[31:24] = %#x", got)
	}
	if got := a.Read(RegSVR+4, 4); got != 0 {
		t.Errorf("read of SVR+4 = %#x", got)
	}
	if got := a.Read(RegSVR, 8); got != 0xFF {
		t.Errorf("8-byte read of SVR = %#x", got)
	}
	a.Write(RegTPR, 1, 0x40) // narrow: ignored
	a.Write(RegTPR+4, 4, 0x40)
	if got := rd(a, RegTPR); got != 0 {
		t.Errorf("TPR after narrow/unaligned writes = %#x", got)
	}
	a.Write(RegTPR, 8, 0x40)
	if got := rd(a, RegTPR); got != 0x40 {
		t.Errorf("TPR after 8-byte write = %#x", got)
	}
}

func TestSoftwareDisableMasksLVT(t *testing.T) {
	a, _ := newFake(1)
	wr(a, RegLVTLINT0, 0x700) // disabled: mask stays
	if got := rd(a, RegLVTLINT0); got != 0x10700 {
		t.Fatalf("LVT written while disabled = %#x", got)
	}
	enable(a)
	wr(a, RegLVTLINT0, 0x700)
	wr(a, RegLVTTimer, 0x40)
	if got := rd(a, RegLVTLINT0); got != 0x700 {
		t.Fatalf("LVT after enable = %#x", got)
	}
	wr(a, RegSVR, 0xFF)
	if rd(a, RegLVTLINT0) != 0x10700 || rd(a, RegLVTTimer) != 0x10040 {
		t.Fatalf("software disable did not mask LVTs")
	}
}

func TestPriorityAndEOI(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	if _, ok := a.Pending(); ok {
		t.Fatal("pending with empty IRR")
	}
	a.Accept(0x31)
	a.Accept(0x45)
	if len(f.dlv) != 2 || f.dlv[0] != 0x31 || f.dlv[1] != 0x45 {
		t.Fatalf("deliver calls %v", f.dlv)
	}
	if rd(a, RegIRR+0x10) != 1<<(0x31-32)|0 || rd(a, RegIRR+0x20) != 1<<(0x45-64) {
		t.Fatalf("IRR %#x %#x", rd(a, RegIRR+0x10), rd(a, RegIRR+0x20))
	}
	if v, ok := a.Pending(); !ok || v != 0x45 {
		t.Fatalf("Pending = %#x %v, want 0x45", v, ok)
	}
	a.Ack(0x45)
	if rd(a, RegISR+0x20) != 1<<(0x45-64) || rd(a, RegIRR+0x20) != 0 {
		t.Fatal("Ack did not move IRR to ISR")
	}
	if got := rd(a, RegPPR); got != 0x40 {
		t.Fatalf("PPR with 0x45 in service = %#x", got)
	}
	if _, ok := a.Pending(); ok {
		t.Fatal("0x31 pending below PPR class 4")
	}
	a.Accept(0x4F) // same class as in-service: blocked
	if _, ok := a.Pending(); ok {
		t.Fatal("0x4F pending at PPR class 4")
	}
	a.Accept(0x50)
	if v, ok := a.Pending(); !ok || v != 0x50 {
		t.Fatalf("Pending = %#x %v, want 0x50 (nesting)", v, ok)
	}
	a.Ack(0x50)
	wr(a, RegEOI, 0) // ends 0x50 (highest ISR)
	if rd(a, RegISR+0x20) != 1<<(0x45-64) {
		t.Fatalf("EOI cleared the wrong ISR bit: %#x", rd(a, RegISR+0x20))
	}
	wr(a, RegEOI, 0)
	if v, ok := a.Pending(); !ok || v != 0x4F {
		t.Fatalf("after EOIs Pending = %#x %v, want 0x4F", v, ok)
	}
	// TPR: class 5 blocks 0x4F and 0x31; PPR follows TPR.
	wr(a, RegTPR, 0x52)
	if got := rd(a, RegPPR); got != 0x52 {
		t.Fatalf("PPR = %#x, want TPR 0x52", got)
	}
	if _, ok := a.Pending(); ok {
		t.Fatal("pending despite TPR")
	}
	a.Accept(0x61)
	if v, ok := a.Pending(); !ok || v != 0x61 {
		t.Fatalf("Pending = %#x %v, want 0x61", v, ok)
	}
	if len(f.eois) != 0 {
		t.Fatalf("edge EOIs broadcast: %v", f.eois)
	}
	// Ack of a vector not requested does nothing.
	a.Ack(0x99)
	if rd(a, RegISR+0x40) != 0 {
		t.Fatal("Ack of non-requested vector set ISR")
	}
}

func TestLevelEOIBroadcast(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	a.AcceptLevel(0x41, true)
	if rd(a, RegTMR+0x20) != 2 {
		t.Fatalf("TMR = %#x", rd(a, RegTMR+0x20))
	}
	a.Ack(0x41)
	wr(a, RegEOI, 0)
	if len(f.eois) != 1 || f.eois[0] != 0x41 || rd(a, RegTMR+0x20) != 0 {
		t.Fatalf("EOI broadcast %v TMR %#x", f.eois, rd(a, RegTMR+0x20))
	}
}

func TestIllegalVectorAndESR(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	wr(a, RegLVTError, 0xFE)
	a.Accept(7)
	if rd(a, RegESR) != 0 {
		t.Fatal("ESR visible before latch write")
	}
	wr(a, RegESR, 0)
	if got := rd(a, RegESR); got != ESRRecvIllegal {
		t.Fatalf("ESR = %#x", got)
	}
	if len(f.dlv) != 1 || f.dlv[0] != 0xFE {
		t.Fatalf("error LVT deliveries %v", f.dlv)
	}
	wr(a, RegICRLow, 0x4005) // fixed, vector 5
	wr(a, RegESR, 0)
	if got := rd(a, RegESR); got != ESRSendIllegal || len(f.ipis) != 0 {
		t.Fatalf("ESR %#x ipis %v", got, f.ipis)
	}
	wr(a, RegESR, 0)
	if rd(a, RegESR) != 0 {
		t.Fatal("ESR not cleared")
	}
}

func TestICR(t *testing.T) {
	tests := []struct {
		name     string
		hi, lo   uint32
		want     IPI
		readBack uint32
	}{
		{"fixed physical", 0x02000000, 0x000040F1, IPI{Source: 9, Dest: 2, Mode: Fixed, Vector: 0xF1, Assert: true}, 0x40F1},
		{"fixed logical", 0x0F000000, 0x00004831, IPI{Source: 9, Dest: 0xF, Mode: Fixed, Vector: 0x31, Logical: true, Assert: true}, 0x4831},
		{"lowest", 0x01000000, 0x00004130, IPI{Source: 9, Dest: 1, Mode: LowestPriority, Vector: 0x30, Assert: true}, 0x4130},
		{"NMI all-but-self", 0, 0x000C4400, IPI{Source: 9, Shorthand: ToAllButSelf, Mode: NMI, Assert: true}, 0xC4400},
		{"INIT assert", 0x03000000, 0x0000C500, IPI{Source: 9, Dest: 3, Mode: INIT, Assert: true, LevelTrigger: true}, 0xC500},
		{"INIT de-assert all", 0, 0x00088500, IPI{Source: 9, Shorthand: ToAll, Mode: INIT, LevelTrigger: true}, 0x88500},
		{"SIPI", 0x03000000, 0x0000069A, IPI{Source: 9, Dest: 3, Mode: StartUp, Vector: 0x9A}, 0x69A},
		{"self", 0, 0x00044050, IPI{Source: 9, Shorthand: ToSelf, Mode: Fixed, Vector: 0x50, Assert: true}, 0x44050},
		{"delivery status ignored", 0, 0x00041050, IPI{Source: 9, Shorthand: ToSelf, Vector: 0x50}, 0x40050},
	}
	for _, tc := range tests {
		a, f := newFake(9)
		wr(a, RegICRHigh, tc.hi)
		wr(a, RegICRLow, tc.lo)
		if len(f.ipis) != 1 || f.ipis[0] != tc.want {
			t.Errorf("%s: IPIs %+v, want %+v", tc.name, f.ipis, tc.want)
		}
		if got := rd(a, RegICRLow); got != tc.readBack {
			t.Errorf("%s: ICR low reads %#x, want %#x", tc.name, got, tc.readBack)
		}
	}
	// x2APIC: one 64-bit MSR with a 32-bit destination.
	a, f := newFake(9)
	if !a.SetAPICBase(DefaultBase | BaseEnable | BaseEXTD) {
		t.Fatal("x2APIC switch refused")
	}
	if !a.WriteMSR(MSRX2APICICR, 0x12345678_000040F1) {
		t.Fatal("ICR MSR write refused")
	}
	want := IPI{Source: 9, Dest: 0x12345678, Mode: Fixed, Vector: 0xF1, Assert: true, X2APIC: true}
	if len(f.ipis) != 1 || f.ipis[0] != want {
		t.Fatalf("x2APIC IPIs %+v", f.ipis)
	}
	if v, ok := a.ReadMSR(MSRX2APICICR); !ok || v != 0x12345678_000040F1 {
		t.Fatalf("ICR MSR reads %#x %v", v, ok)
	}
}

func TestX2APICMSRs(t *testing.T) {
	a, f := newFake(0x25)
	if _, ok := a.ReadMSR(0x802); ok {
		t.Fatal("x2APIC MSR readable in xAPIC mode")
	}
	if a.WriteMSR(0x808, 0) {
		t.Fatal("x2APIC MSR writable in xAPIC mode")
	}
	wr(a, RegTPR, 0x20)
	if !a.SetAPICBase(DefaultBase | BaseEnable | BaseEXTD) {
		t.Fatal("x2APIC switch refused")
	}
	if !a.X2APIC() {
		t.Fatal("not in x2APIC mode")
	}
	if a.Read(RegTPR, 4) != 0 {
		t.Fatal("MMIO page readable in x2APIC mode")
	}
	a.Write(RegTPR, 4, 0x30)
	reads := []struct {
		msr  uint32
		want uint64
		ok   bool
	}{
		{0x802, 0x25, true},
		{0x803, Version, true},
		{0x808, 0x20, true}, // TPR kept across the switch
		{0x80A, 0x20, true},
		{0x80D, 2<<16 | 1<<5, true},
		{0x80F, 0xFF, true},
		{0x810, 0, true},
		{0x828, 0, true},
		{0x832, LVTMasked, true},
		{0x837, LVTMasked, true},
		{0x838, 0, true},
		{0x839, 0, true},
		{0x83E, 0, true},
		{0x809, 0, false}, // APR
		{0x80B, 0, false}, // EOI: write-only
		{0x80C, 0, false}, // RRD
		{0x80E, 0, false}, // DFR
		{0x82F, 0, false}, // CMCI
		{0x831, 0, false}, // ICR high
		{0x83F, 0, false}, // SELF IPI: write-only
		{0x840, 0, false},
		{0x8FF, 0, false},
		{0x7FF, 0, false},
		{0x900, 0, false},
	}
	for _, tc := range reads {
		v, ok := a.ReadMSR(tc.msr)
		if v != tc.want || ok != tc.ok {
			t.Errorf("rdmsr %#x = %#x %v, want %#x %v", tc.msr, v, ok, tc.want, tc.ok)
		}
	}
	writes := []struct {
		msr uint32
		v   uint64
		ok  bool
	}{
		{0x802, 0, false}, {0x803, 0, false}, {0x80A, 0, false}, {0x80D, 0, false},
		{0x80E, 0, false}, {0x809, 0, false}, {0x80C, 0, false}, {0x810, 0, false},
		{0x818, 0, false}, {0x820, 0, false}, {0x839, 0, false}, {0x831, 0, false},
		{0x82F, 0, false}, {0x840, 0, false},
		{0x80B, 1, false},       // EOI must be 0
		{0x828, 1, false},       // ESR must be 0
		{0x808, 1 << 32, false}, // high bits on a 32-bit register
		{0x808, 0x10, true},
		{0x80B, 0, true},
		{0x828, 0, true},
		{0x80F, 0x1FF, true},
		{0x838, 100, true},
		{0x83E, 3, true},
	}
	for _, tc := range writes {
		if ok := a.WriteMSR(tc.msr, tc.v); ok != tc.ok {
			t.Errorf("wrmsr %#x <- %#x = %v, want %v", tc.msr, tc.v, ok, tc.ok)
		}
	}
	if v, _ := a.ReadMSR(0x808); v != 0x10 {
		t.Errorf("TPR = %#x", v)
	}
	// SELF IPI is accepted locally.
	if !a.WriteMSR(MSRSelfIPI, 0x1EE) {
		t.Fatal("SELF IPI refused")
	}
	if v, ok := a.Pending(); !ok || v != 0xEE || len(f.dlv) != 1 {
		t.Fatalf("SELF IPI: pending %#x %v, deliveries %v", v, ok, f.dlv)
	}
	if len(f.ipis) != 0 {
		t.Fatalf("SELF IPI went to sendIPI: %v", f.ipis)
	}
}

func TestAPICBaseTransitions(t *testing.T) {
	const x, en, ext = DefaultBase, BaseEnable, BaseEXTD
	tests := []struct {
		name  string
		steps []uint64
		oks   []bool
		final uint64
	}{
		{"disable", []uint64{x}, []bool{true}, x},
		{"re-enable", []uint64{x, x | en}, []bool{true, true}, x | en},
		{"x2apic", []uint64{x | en | ext}, []bool{true}, x | en | ext},
		{"x2 to xapic", []uint64{x | en | ext, x | en}, []bool{true, false}, x | en | ext},
		{"x2 disable then xapic", []uint64{x | en | ext, x, x | en}, []bool{true, true, true}, x | en},
		{"disabled to x2", []uint64{x, x | en | ext}, []bool{true, false}, x},
		{"invalid state", []uint64{x | ext}, []bool{false}, x | en},
		{"move base", []uint64{0xFEE01000 | en}, []bool{false}, x | en},
		{"reserved bit", []uint64{x | en | 1}, []bool{false}, x | en},
		{"bsp ignored", []uint64{x | en | BaseBSP}, []bool{true}, x | en},
	}
	for _, tc := range tests {
		a, _ := newFake(4)
		for i, s := range tc.steps {
			if ok := a.SetAPICBase(s); ok != tc.oks[i] {
				t.Errorf("%s: step %d (%#x) ok=%v", tc.name, i, s, ok)
			}
		}
		if got := a.APICBase(); got != tc.final {
			t.Errorf("%s: base %#x, want %#x", tc.name, got, tc.final)
		}
	}
	// Disabling resets the registers; a disabled APIC accepts nothing.
	a, _ := newFake(4)
	enable(a)
	wr(a, RegTPR, 0x30)
	a.Accept(0x80)
	a.SetAPICBase(DefaultBase)
	a.Accept(0x81)
	if _, ok := a.Pending(); ok {
		t.Fatal("disabled APIC has a pending vector")
	}
	a.SetAPICBase(DefaultBase | BaseEnable)
	if rd(a, RegTPR) != 0 || rd(a, RegSVR) != 0xFF || rd(a, RegIRR+0x80) != 0 || rd(a, RegID) != 4<<24 {
		t.Fatal("registers not reset by disable")
	}
}

func TestInit(t *testing.T) {
	a, _ := newFake(2)
	enable(a)
	wr(a, RegTPR, 0x30)
	wr(a, RegTimerInit, 100)
	a.Init()
	if rd(a, RegTPR) != 0 || rd(a, RegSVR) != 0xFF || rd(a, RegTimerInit) != 0 || rd(a, RegID) != 2<<24 {
		t.Fatal("INIT did not reset")
	}
	if _, ok := a.NextDeadline(); ok {
		t.Fatal("timer armed after INIT")
	}
}

func TestMatchDest(t *testing.T) {
	tests := []struct {
		name    string
		id      uint32
		x2      bool
		ldr     uint32 // xAPIC LDR
		dfr     uint32
		dest    uint32
		logical bool
		want    bool
	}{
		{"phys match", 3, false, 0, 0xFFFFFFFF, 3, false, true},
		{"phys miss", 3, false, 0, 0xFFFFFFFF, 4, false, false},
		{"phys broadcast", 3, false, 0, 0xFFFFFFFF, 0xFF, false, true},
		{"flat match", 3, false, 0x08000000, 0xFFFFFFFF, 0x0C, true, true},
		{"flat miss", 3, false, 0x08000000, 0xFFFFFFFF, 0x04, true, false},
		{"cluster match", 3, false, 0x21000000, 0x0FFFFFFF, 0x23, true, true},
		{"cluster other cluster", 3, false, 0x21000000, 0x0FFFFFFF, 0x13, true, false},
		{"x2 phys", 0x123, true, 0, 0, 0x123, false, true},
		{"x2 phys miss", 0x123, true, 0, 0, 0x23, false, false},
		{"x2 broadcast", 0x123, true, 0, 0, 0xFFFFFFFF, false, true},
		{"x2 cluster", 0x123, true, 0, 0, 0x00120008, true, true},
		{"x2 cluster miss", 0x123, true, 0, 0, 0x00120004, true, false},
	}
	for _, tc := range tests {
		a, _ := newFake(tc.id)
		wr(a, RegLDR, tc.ldr)
		wr(a, RegDFR, tc.dfr)
		if tc.x2 {
			a.SetAPICBase(DefaultBase | BaseEnable | BaseEXTD)
		}
		if got := a.MatchDest(tc.dest, tc.logical); got != tc.want {
			t.Errorf("%s: MatchDest(%#x, %v) = %v", tc.name, tc.dest, tc.logical, got)
		}
	}
	a, _ := newFake(1)
	a.SetAPICBase(DefaultBase)
	if a.MatchDest(0xFF, false) {
		t.Error("disabled APIC matched broadcast")
	}
}

func TestAllocs(t *testing.T) {
	a, _ := newFake(1)
	a.deliver, a.sendIPI, a.eoiBcast = func(uint8) {}, func(IPI) {}, func(uint8) {}
	enable(a)
	wr(a, RegLVTTimer, TimerPeriodic|0x40)
	wr(a, RegTimerInit, 10)
	n := testing.AllocsPerRun(100, func() {
		_ = a.Read(RegIRR, 4)
		_ = a.Read(RegTimerCur, 4)
		wr(a, RegTPR, 0)
		wr(a, RegICRLow, 0x40F1)
		a.AcceptLevel(0x55, true)
		if v, ok := a.Pending(); ok {
			a.Ack(v)
		}
		wr(a, RegEOI, 0)
		a.Tick()
		_, _ = a.NextDeadline()
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	b, _ := newFake(2)
	b.deliver, b.sendIPI = func(uint8) {}, func(IPI) {}
	b.SetAPICBase(DefaultBase | BaseEnable | BaseEXTD)
	n = testing.AllocsPerRun(100, func() {
		_, _ = b.ReadMSR(0x808)
		b.WriteMSR(0x808, 0)
		b.WriteMSR(MSRX2APICICR, 0x40F1)
		b.WriteMSR(MSRSelfIPI, 0x40)
	})
	if n != 0 {
		t.Fatalf("x2APIC: %v allocations per run", n)
	}
}
