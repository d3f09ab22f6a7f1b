package pit

import (
	"math"
	"testing"

	"juice/drivers/portio"
)

// machine models time passing on a PC: every port access costs ioNs
// nanoseconds and every TSC read costs tscNs; the TSC runs at tscHz.
type machine struct {
	now   float64 // ns since power-on
	ioNs  float64
	tscNs float64
	tscHz float64

	// 8254 channel 2 and port 0x61.
	portB     uint8
	cmd       uint8
	latch     []uint8
	count     uint16
	loadedAt  float64 // when the count was loaded (ns); <0 while not counting
	deadPIT   bool    // OUT2 never rises
	stuckHigh bool    // OUT2 always high
	pitCmds   int

	// ACPI PM timer.
	pmPort  uint16
	pmWidth uint // 24 or 32
	pmStart uint64
	pmDead  bool

	tscFrozen bool
	tscReads  int
}

func newMachine(tscHz float64) *machine {
	return &machine{ioNs: 1000, tscNs: 20, tscHz: tscHz, loadedAt: -1, portB: 0x12, pmPort: 0x608, pmWidth: 24}
}

func (m *machine) rdtsc() uint64 {
	m.now += m.tscNs
	m.tscReads++
	if m.tscFrozen {
		return 12345
	}
	return uint64(m.now * m.tscHz / 1e9)
}

func (m *machine) out2() bool {
	if m.stuckHigh {
		return true
	}
	if m.deadPIT || m.loadedAt < 0 || m.portB&bGate2 == 0 {
		return false
	}
	ticks := (m.now - m.loadedAt) * PITHz / 1e9
	return ticks >= float64(m.count)
}

func (m *machine) ports() *portio.Ports {
	return &portio.Ports{
		In8: func(port uint16) uint8 {
			m.now += m.ioNs
			if port == portB {
				v := m.portB &^ bOut2
				if m.out2() {
					v |= bOut2
				}
				return v
			}
			return 0xFF
		},
		Out8: func(port uint16, v uint8) {
			m.now += m.ioNs
			switch port {
			case portB:
				m.portB = v &^ bOut2
			case portCmd:
				m.pitCmds++
				m.cmd = v
				m.latch = m.latch[:0]
				m.loadedAt = -1
			case portCh2:
				m.latch = append(m.latch, v)
				if len(m.latch) == 2 && m.cmd == cmdCh2Mode0 {
					m.count = uint16(m.latch[0]) | uint16(m.latch[1])<<8
					m.loadedAt = m.now
				}
			}
		},
		In32: func(port uint16) uint32 {
			m.now += m.ioNs
			if port != m.pmPort {
				return 0xFFFFFFFF
			}
			if m.pmDead {
				return 0x1234
			}
			v := m.pmStart + uint64(m.now*PMTimerHz/1e9)
			if m.pmWidth == 24 {
				return uint32(v) & 0xFFFFFF
			}
			return uint32(v)
		},
	}
}

func within(got uint64, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= want*tol
}

func TestCalibrateTSC(t *testing.T) {
	for _, tsc := range []float64{1e9, 2.4e9, 3.7e9} {
		for _, ms := range []uint32{1, 10, 54} {
			m := newMachine(tsc)
			hz, st := CalibrateTSC(m.ports(), m.rdtsc, ms)
			if st != StatusOK {
				t.Fatalf("tsc %.3g ms %d: %v", tsc, ms, st)
			}
			// Each poll costs ~1 µs, so the error is about 1 µs per ms.
			tol := 2.5e-3 / float64(ms)
			if !within(hz, tsc, tol) {
				t.Errorf("tsc %.3g ms %d: measured %d Hz (tolerance %.2g)", tsc, ms, hz, tol)
			}
			if m.portB != 0x12 {
				t.Errorf("port 0x61 left at %#x, want 0x12 restored", m.portB)
			}
			if want := uint16(PITHz * uint64(ms) / 1000); m.count != want {
				t.Errorf("ms %d: loaded count %d, want %d", ms, m.count, want)
			}
		}
	}
}

func TestCalibrateTSCFailures(t *testing.T) {
	m := newMachine(3e9)
	m.deadPIT = true
	hz, st := CalibrateTSC(m.ports(), m.rdtsc, 10)
	if st != StatusTimeout || hz != 0 {
		t.Fatalf("dead PIT: %d, %v", hz, st)
	}
	// Bounded by the TSC budget: no more than a MaxTSCHz TSC's worth of 10 ms.
	if spent := m.now * m.tscHz / 1e9; spent > 1.01*10*MaxTSCHz/1000 {
		t.Fatalf("dead PIT spent %.0f TSC ticks", spent)
	}
	if m.portB != 0x12 {
		t.Fatalf("port 0x61 not restored after timeout: %#x", m.portB)
	}

	// A frozen TSC cannot stop the loop by budget: the iteration cap does.
	m = newMachine(3e9)
	m.deadPIT, m.tscFrozen, m.ioNs = true, true, 0
	if _, st := CalibrateTSC(m.ports(), m.rdtsc, 2); st != StatusTimeout {
		t.Fatalf("dead PIT, frozen TSC: %v", st)
	}
	if m.tscReads > 2*ItersPerMS+2 {
		t.Fatalf("dead PIT, frozen TSC: %d iterations, cap is %d", m.tscReads, 2*ItersPerMS)
	}

	// OUT2 stuck high: fires at once, result implausible.
	m = newMachine(3e9)
	m.stuckHigh = true
	if _, st := CalibrateTSC(m.ports(), m.rdtsc, 10); st != StatusBadResult {
		t.Fatalf("stuck OUT2: %v, want %v", st, StatusBadResult)
	}
	// A TSC that does not advance.
	m = newMachine(3e9)
	m.tscFrozen = true
	if _, st := CalibrateTSC(m.ports(), m.rdtsc, 10); st != StatusBadResult {
		t.Fatalf("frozen TSC: %v, want %v", st, StatusBadResult)
	}
	for _, ms := range []uint32{0, 55, 1000} {
		if _, st := CalibrateTSC(m.ports(), m.rdtsc, ms); st != StatusBadArg {
			t.Errorf("ms %d: %v, want %v", ms, st, StatusBadArg)
		}
	}
	if _, st := CalibrateTSC(m.ports(), nil, 10); st != StatusBadArg {
		t.Errorf("nil rdtsc: %v", st)
	}
	if _, st := CalibrateTSC(nil, m.rdtsc, 10); st != StatusNoPorts {
		t.Errorf("nil ports: %v", st)
	}
}

func TestScale(t *testing.T) {
	if hz, st := scale(3_000_000_000, PITHz, PITHz); st != StatusOK || hz != 3_000_000_000 {
		t.Fatalf("scale one second: %d %v", hz, st)
	}
	if _, st := scale(math.MaxUint64, PITHz, 1); st != StatusBadResult {
		t.Fatalf("overflowing scale: %v", st)
	}
	if _, st := scale(1, PITHz, 0); st != StatusBadResult {
		t.Fatalf("zero ticks: %v", st)
	}
	if _, st := scale(100, PITHz, PITHz); st != StatusBadResult {
		t.Fatalf("100 Hz TSC accepted: %v", st)
	}
}

func TestWait(t *testing.T) {
	for _, us := range []uint32{1, 500, 10_000, 120_000} {
		m := newMachine(1e9)
		start := m.now
		if st := Wait(m.ports(), us); st != StatusOK {
			t.Fatalf("Wait(%d): %v", us, st)
		}
		waited := (m.now - start) / 1000
		if waited < float64(us) || waited > float64(us)*1.02+20 {
			t.Errorf("Wait(%d) took %.1f µs", us, waited)
		}
		if want := int((us + 49_999) / 50_000); m.pitCmds != want {
			t.Errorf("Wait(%d): %d one-shots, want %d", us, m.pitCmds, want)
		}
		if m.portB != 0x12 {
			t.Errorf("port 0x61 not restored: %#x", m.portB)
		}
	}
	m := newMachine(1e9)
	m.deadPIT = true
	if st := Wait(m.ports(), 1000); st != StatusTimeout {
		t.Fatalf("dead PIT Wait: %v", st)
	}
	if Wait(nil, 10) != StatusNoPorts {
		t.Fatal("nil ports accepted")
	}
}

func TestPMTimer(t *testing.T) {
	for _, width := range []uint{24, 32} {
		for _, start := range []uint64{0, 0xFFFF00, 0xFFFFFF00} {
			m := newMachine(2.9e9)
			m.pmWidth, m.pmStart = width, start // starts just before a wrap
			hz, st := CalibrateTSCWithPMTimer(m.ports(), m.pmPort, width == 32, m.rdtsc, 10)
			if st != StatusOK || !within(hz, 2.9e9, 3e-4) {
				t.Errorf("width %d start %#x: %d Hz, %v", width, start, hz, st)
			}
		}
	}
	m := newMachine(2.9e9)
	m.pmDead = true
	if _, st := CalibrateTSCWithPMTimer(m.ports(), m.pmPort, false, m.rdtsc, 10); st != StatusTimeout {
		t.Fatalf("stuck PM timer: %v", st)
	}
	m = newMachine(2.9e9)
	for _, ms := range []uint32{0, MaxPMTimerMS + 1} {
		if _, st := CalibrateTSCWithPMTimer(m.ports(), m.pmPort, false, m.rdtsc, ms); st != StatusBadArg {
			t.Errorf("ms %d: %v", ms, st)
		}
	}
	if _, st := CalibrateTSCWithPMTimer(m.ports(), 0, false, m.rdtsc, 10); st != StatusBadArg {
		t.Errorf("port 0: %v", st)
	}
	if _, st := CalibrateTSCWithPMTimer(&portio.Ports{}, m.pmPort, false, m.rdtsc, 10); st != StatusNoPorts {
		t.Errorf("no In32: %v", st)
	}
	// With very slow I/O the counter overshoots the target; dividing by the
	// ticks actually elapsed keeps the result right.
	m = newMachine(2.9e9)
	m.pmWidth = 32
	m.ioNs = 0.7e6 // each read advances ~2500 PM ticks; 1 ms is 3579
	if hz, st := CalibrateTSCWithPMTimer(m.ports(), m.pmPort, true, m.rdtsc, 1); st != StatusOK || !within(hz, 2.9e9, 1e-3) {
		t.Errorf("slow I/O: %d Hz, %v", hz, st)
	}
}

func TestNoAllocs(t *testing.T) {
	m := newMachine(3e9)
	p := m.ports()
	m.latch = make([]uint8, 0, 8)
	if n := testing.AllocsPerRun(10, func() {
		CalibrateTSC(p, m.rdtsc, 1)
		CalibrateTSCWithPMTimer(p, m.pmPort, false, m.rdtsc, 1)
	}); n != 0 {
		t.Fatalf("calibration allocates %v times", n)
	}
}

func TestStatusString(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusBadResult; s++ {
		str := s.String()
		if seen[str] || str == Status(200).String() {
			t.Errorf("status %d: bad or duplicate name %q", s, str)
		}
		seen[str] = true
	}
}
