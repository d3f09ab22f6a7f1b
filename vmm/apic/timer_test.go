package apic

import "testing"

func TestTimerOneShot(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	wr(a, RegLVTTimer, 0xEC)
	wr(a, RegTimerDiv, 0xB) // divide by 1: one count per ns
	wr(a, RegTimerInit, 1000)
	start := f.t
	if d, ok := a.NextDeadline(); !ok || d != start+1000 {
		t.Fatalf("NextDeadline = %d %v, want %d", d, ok, start+1000)
	}
	f.t += 250
	if got := rd(a, RegTimerCur); got != 750 {
		t.Fatalf("current count %d, want 750", got)
	}
	a.Tick() // not due
	if len(f.dlv) != 0 {
		t.Fatal("fired early")
	}
	f.t = start + 1000
	if got := rd(a, RegTimerCur); got != 0 {
		t.Fatalf("current count at expiry %d", got)
	}
	a.Tick()
	if len(f.dlv) != 1 || f.dlv[0] != 0xEC {
		t.Fatalf("deliveries %v", f.dlv)
	}
	if v, ok := a.Pending(); !ok || v != 0xEC {
		t.Fatal("timer vector not pending")
	}
	if _, ok := a.NextDeadline(); ok {
		t.Fatal("one-shot still armed")
	}
	f.t += 5000
	a.Tick()
	if len(f.dlv) != 1 || rd(a, RegTimerCur) != 0 {
		t.Fatal("one-shot fired twice or count restarted")
	}
	// Writing 0 stops a running timer.
	wr(a, RegTimerInit, 10)
	wr(a, RegTimerInit, 0)
	if _, ok := a.NextDeadline(); ok {
		t.Fatal("armed after initial count 0")
	}
}

func TestTimerDivide(t *testing.T) {
	tests := []struct {
		cfg uint32
		div int64
	}{{0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xA, 128}, {0xB, 1}, {0xF4, 2}}
	for _, tc := range tests {
		a, f := newFake(0)
		enable(a)
		wr(a, RegLVTTimer, 0x40)
		wr(a, RegTimerDiv, tc.cfg)
		wr(a, RegTimerInit, 100)
		if d, ok := a.NextDeadline(); !ok || d != f.t+100*tc.div {
			t.Errorf("cfg %#x: deadline %d, want %d", tc.cfg, d-f.t, 100*tc.div)
		}
		f.t += 10 * tc.div
		if got := rd(a, RegTimerCur); got != 90 {
			t.Errorf("cfg %#x: count %d, want 90", tc.cfg, got)
		}
	}
	// Changing the divisor mid-count keeps the count.
	a, f := newFake(0)
	enable(a)
	wr(a, RegTimerDiv, 0xB)
	wr(a, RegTimerInit, 100)
	f.t += 40
	wr(a, RegTimerDiv, 0x1) // /4
	if got := rd(a, RegTimerCur); got != 60 {
		t.Fatalf("count after divide change %d, want 60", got)
	}
	if d, _ := a.NextDeadline(); d != f.t+60*4 {
		t.Fatalf("deadline after divide change +%d, want +240", d-f.t)
	}
}

func TestTimerPeriodic(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	wr(a, RegLVTTimer, TimerPeriodic|0x30)
	wr(a, RegTimerDiv, 0xB)
	wr(a, RegTimerInit, 100)
	start := f.t
	for i := int64(1); i <= 3; i++ {
		f.t = start + i*100
		a.Tick()
		if d, ok := a.NextDeadline(); !ok || d != start+(i+1)*100 {
			t.Fatalf("period %d: next deadline %d %v", i, d-start, ok)
		}
	}
	if len(f.dlv) != 3 {
		t.Fatalf("%d interrupts, want 3", len(f.dlv))
	}
	f.t = start + 430
	if got := rd(a, RegTimerCur); got != 70 {
		t.Fatalf("periodic count %d, want 70", got)
	}
	// Late tick: missed periods are dropped, one interrupt.
	f.t = start + 1050
	a.Tick()
	if d, _ := a.NextDeadline(); len(f.dlv) != 4 || d != start+1100 {
		t.Fatalf("late tick: %d interrupts, deadline %d", len(f.dlv), d-start)
	}
	// Masked: re-arms, no interrupt.
	wr(a, RegLVTTimer, TimerPeriodic|LVTMasked|0x30)
	f.t = start + 1100
	a.Tick()
	if d, ok := a.NextDeadline(); len(f.dlv) != 4 || !ok || d != start+1200 {
		t.Fatalf("masked: %d interrupts, deadline %d %v", len(f.dlv), d-start, ok)
	}
	// Switching to one-shot keeps counting to the end of this period.
	wr(a, RegLVTTimer, 0x30)
	f.t = start + 1200
	a.Tick()
	if _, ok := a.NextDeadline(); len(f.dlv) != 5 || ok {
		t.Fatalf("one-shot after periodic: %d interrupts, armed %v", len(f.dlv), ok)
	}
}

func TestTimerMaskedOneShot(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	wr(a, RegLVTTimer, LVTMasked|0x30)
	wr(a, RegTimerInit, 10)
	f.t += 1000
	a.Tick()
	if len(f.dlv) != 0 {
		t.Fatal("masked timer delivered")
	}
	if _, ok := a.Pending(); ok {
		t.Fatal("masked timer pending")
	}
}

func TestTimerTSCDeadline(t *testing.T) {
	f := &fake{t: 1_000_000}
	var dlv []uint8
	// 2 GHz TSC: guest TSC = now*2.
	a := New(0, f.now, 2_000_000_000, func(v uint8) { dlv = append(dlv, v) }, nil)
	enable(a)
	a.SetTSCDeadline(5_000_000) // not in deadline mode: ignored
	if a.TSCDeadline() != 0 {
		t.Fatal("TSC deadline stored outside deadline mode")
	}
	wr(a, RegLVTTimer, TimerDeadline|0xEF)
	wr(a, RegTimerInit, 100) // ignored in deadline mode
	if rd(a, RegTimerInit) != 0 || rd(a, RegTimerCur) != 0 {
		t.Fatal("initial count accepted in deadline mode")
	}
	a.SetTSCDeadline(2_000_001) // TSC now 2_000_000: 1 tick -> ceil(0.5 ns) = 1 ns
	if d, ok := a.NextDeadline(); !ok || d != f.t+1 {
		t.Fatalf("deadline %d %v", d-f.t, ok)
	}
	a.SetTSCDeadline(4_000_000) // 2e6 ticks = 1 ms
	if d, _ := a.NextDeadline(); d != 2_000_000 || a.TSCDeadline() != 4_000_000 {
		t.Fatalf("deadline %d, MSR %d", d, a.TSCDeadline())
	}
	f.t = 1_999_999
	a.Tick()
	if len(dlv) != 0 {
		t.Fatal("fired early")
	}
	f.t = 2_000_000
	a.Tick()
	if len(dlv) != 1 || dlv[0] != 0xEF || a.TSCDeadline() != 0 {
		t.Fatalf("deliveries %v, MSR %d", dlv, a.TSCDeadline())
	}
	if _, ok := a.NextDeadline(); ok {
		t.Fatal("still armed after firing")
	}
	// A deadline in the past fires at the next Tick; 0 disarms.
	a.SetTSCDeadline(1)
	if d, ok := a.NextDeadline(); !ok || d != f.t {
		t.Fatal("past deadline not due now")
	}
	a.SetTSCDeadline(0)
	if _, ok := a.NextDeadline(); ok {
		t.Fatal("0 did not disarm")
	}
	// Huge deadline saturates instead of wrapping.
	a.SetTSCDeadline(^uint64(0))
	if d, ok := a.NextDeadline(); !ok || d < f.t {
		t.Fatalf("huge deadline wrapped: %d", d)
	}
	// Leaving deadline mode disarms and clears the MSR.
	wr(a, RegLVTTimer, 0xEF)
	if _, ok := a.NextDeadline(); ok || a.TSCDeadline() != 0 {
		t.Fatal("mode change did not disarm")
	}
	// A guest TSC source replaces the derived one.
	wr(a, RegLVTTimer, TimerDeadline|0xEF)
	a.SetGuestTSC(func() uint64 { return 10_000_000 })
	a.SetTSCDeadline(10_000_200) // 200 ticks at 2 GHz = 100 ns
	if d, _ := a.NextDeadline(); d != f.t+100 {
		t.Fatalf("with guest TSC: deadline +%d, want +100", d-f.t)
	}
}
