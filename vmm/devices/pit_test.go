package devices

import (
	"testing"

	"juice/vmm"
)

var (
	_ vmm.PortDevice = (*PIT)(nil)
	_ vmm.PortDevice = (*Port61Device)(nil)
)

// pitNs is the clock time of tick k (rounded up to whole ns).
func pitNs(k uint64) int64 { return ticksToNs(k, PITHz) }

func readLoHi(p *PIT, ch uint16) uint16 {
	lo := p.In(ch, 1)
	hi := p.In(ch, 1)
	return uint16(lo | hi<<8)
}

func TestPITCounts(t *testing.T) {
	cases := []struct {
		name    string
		ctl     uint8
		count   uint16
		ticks   uint64
		want    uint16
		wantOut bool
	}{
		{"mode0 start", 0x30, 1000, 0, 1000, false},
		{"mode0 mid", 0x30, 1000, 400, 600, false},
		{"mode0 terminal", 0x30, 1000, 1000, 0, true},
		{"mode0 wraps after terminal", 0x30, 1000, 1001, 0xffff, true},
		{"mode0 count 0 is 65536", 0x30, 0, 1, 0xffff, false},
		{"mode2 start", 0x34, 100, 0, 100, true},
		{"mode2 low pulse", 0x34, 100, 99, 1, false},
		{"mode2 reload", 0x34, 100, 100, 100, true},
		{"mode2 second period", 0x34, 100, 150, 50, true},
		{"mode3 high half", 0x36, 100, 10, 80, true},
		{"mode3 low half", 0x36, 100, 60, 80, false},
		{"mode3 next period", 0x36, 100, 105, 90, true},
		{"mode6 is mode2", 0x3c, 100, 99, 1, false},
		{"mode4 strobe", 0x38, 10, 10, 0, false},
		{"mode4 after strobe", 0x38, 10, 11, 0xffff, true},
	}
	for _, c := range cases {
		clk := &fakeClock{t: 1e9}
		p := NewPIT(clk.now, nil)
		p.Out(3, 1, uint32(c.ctl))
		p.Out(0, 1, uint32(c.count&0xff))
		p.Out(0, 1, uint32(c.count>>8))
		clk.t += pitNs(c.ticks)
		if got := readLoHi(p, 0); got != c.want {
			t.Errorf("%s: count %d, want %d", c.name, got, c.want)
		}
		p.Out(3, 1, 0xe2) // read-back status of counter 0
		st := p.In(0, 1)
		if out := st&0x80 != 0; out != c.wantOut {
			t.Errorf("%s: OUT %v, want %v (status %#x)", c.name, out, c.wantOut, st)
		}
		if mode := uint8(st>>1) & 7; mode != (c.ctl>>1)&7 && mode+4 != (c.ctl>>1)&7 {
			t.Errorf("%s: status mode %d", c.name, mode)
		}
	}
}

func TestPITAccessModesAndLatch(t *testing.T) {
	clk := &fakeClock{}
	p := NewPIT(clk.now, nil)
	// Counter 1, lobyte only, mode 2, count 200.
	p.Out(3, 1, 0x54)
	p.Out(1, 1, 200)
	clk.t += pitNs(50)
	if got := p.In(1, 1); got != 150 {
		t.Errorf("lobyte read %d, want 150", got)
	}
	// Counter 1, hibyte only: count 0x0300.
	p.Out(3, 1, 0x64)
	p.Out(1, 1, 3)
	clk.t += pitNs(0x100)
	if got := p.In(1, 1); got != 2 {
		t.Errorf("hibyte read %d, want 2", got)
	}
	// Counter 0, lo/hi, mode 2, count 1000; latch, let time pass, read.
	p.Out(3, 1, 0x34)
	p.Out(0, 1, 0xe8)
	p.Out(0, 1, 0x03)
	clk.t += pitNs(100)
	p.Out(3, 1, 0x00) // latch counter 0
	clk.t += pitNs(300)
	p.Out(3, 1, 0x00) // a second latch is ignored until read
	if got := readLoHi(p, 0); got != 900 {
		t.Errorf("latched %d, want 900", got)
	}
	if got := readLoHi(p, 0); got != 600 {
		t.Errorf("live %d after latch read, want 600", got)
	}
	// Read-back: latch count and status of counter 0 together.
	p.Out(3, 1, 0xc2)
	clk.t += pitNs(10)
	if st := p.In(0, 1); st != 0xb4 { // OUT high, lo/hi, mode 2
		t.Errorf("status %#x, want 0xb4", st)
	}
	if got := readLoHi(p, 0); got != 600 {
		t.Errorf("read-back count %d, want 600", got)
	}
	// BCD flag is kept but counting is binary.
	p.Out(3, 1, 0x35)
	p.Out(0, 1, 0x10)
	p.Out(0, 1, 0x00)
	clk.t += pitNs(1)
	p.Out(3, 1, 0xe2)
	if st := p.In(0, 1); st&1 != 1 {
		t.Errorf("status %#x lost the BCD bit", st)
	}
	if got := readLoHi(p, 0); got != 15 {
		t.Errorf("bcd count %d, want binary 15", got)
	}
	if got := p.In(3, 1); got != 0xff {
		t.Errorf("control port reads %#x", got)
	}
}

// TestPITChannel2Calibration follows Linux's pit_calibrate_tsc: gate 2
// high via port 0x61, counter 2 mode 0, poll OUT2 in port 0x61 bit 5.
func TestPITChannel2Calibration(t *testing.T) {
	clk := &fakeClock{t: 7}
	p := NewPIT(clk.now, nil)
	p61 := p.Port61()
	p61.Out(0, 1, (p61.In(0, 1)&^0x02)|0x01)
	if got := p61.In(0, 1); got&0x0f != 0x01 {
		t.Fatalf("port 0x61 %#x, want gate set", got)
	}
	p.Out(3, 1, 0xb0)
	p.Out(2, 1, 0x9c) // 11932 = 10 ms
	p.Out(2, 1, 0x2e)
	clk.t += pitNs(11931)
	if p61.In(0, 1)&0x20 != 0 {
		t.Errorf("OUT2 high before terminal count")
	}
	clk.t = 7 + pitNs(11932)
	if p61.In(0, 1)&0x20 == 0 {
		t.Errorf("OUT2 low at terminal count")
	}
	// Gate low pauses mode 0.
	p.Out(3, 1, 0xb0)
	p.Out(2, 1, 0x00)
	p.Out(2, 1, 0x10) // 4096
	clk.t += pitNs(96)
	p61.Out(0, 1, 0)
	clk.t += pitNs(1000)
	if got := readLoHi(p, 2); got != 4000 {
		t.Errorf("paused count %d, want 4000", got)
	}
	p61.Out(0, 1, 1)
	clk.t += pitNs(1000)
	if got := readLoHi(p, 2); got != 3000 {
		t.Errorf("resumed count %d, want 3000", got)
	}
	// Mode 1 waits for a gate edge.
	p61.Out(0, 1, 0)
	p.Out(3, 1, 0xb2)
	p.Out(2, 1, 100)
	p.Out(2, 1, 0)
	clk.t += pitNs(50)
	if p61.In(0, 1)&0x20 == 0 {
		t.Errorf("mode 1 OUT low before trigger")
	}
	p61.Out(0, 1, 1)
	clk.t += pitNs(40)
	if got := readLoHi(p, 2); got != 60 || p61.In(0, 1)&0x20 != 0 {
		t.Errorf("mode 1 after trigger: count %d", got)
	}
}

func TestPITIRQ0(t *testing.T) {
	clk := &fakeClock{t: 1000}
	irqs := 0
	p := NewPIT(clk.now, func() { irqs++ })
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("deadline before programming")
	}
	p.Out(3, 1, 0x34) // mode 2, LATCH = 1193 (~1 ms)
	p.Out(0, 1, 1193&0xff)
	p.Out(0, 1, 1193>>8)
	d, ok := p.NextDeadline()
	if !ok || d != 1000+pitNs(1193) {
		t.Fatalf("deadline %d %v, want %d", d, ok, 1000+pitNs(1193))
	}
	clk.t = d - 1
	if p.Tick() || irqs != 0 {
		t.Fatal("tick before deadline fired")
	}
	clk.t = d
	if !p.Tick() || irqs != 1 {
		t.Fatal("tick at deadline did not fire")
	}
	if d2, _ := p.NextDeadline(); d2 != 1000+pitNs(2*1193) {
		t.Errorf("next deadline %d", d2)
	}
	clk.t = 1000 + pitNs(10*1193) + 5 // late: edges coalesce
	p.Tick()
	if irqs != 2 {
		t.Errorf("irqs %d, want 2", irqs)
	}
	if d3, _ := p.NextDeadline(); d3 != 1000+pitNs(11*1193) {
		t.Errorf("deadline after late tick %d", d3)
	}
	// Mode 0 one-shot: one edge, then none.
	p.Out(3, 1, 0x30)
	p.Out(0, 1, 10)
	p.Out(0, 1, 0)
	clk.t += pitNs(10)
	p.Tick()
	if _, ok := p.NextDeadline(); ok || irqs != 3 {
		t.Errorf("one-shot: irqs %d, deadline armed %v", irqs, ok)
	}
	p.Out(3, 1, 0x30) // reprogramming without a count cancels
	if _, ok := p.NextDeadline(); ok {
		t.Error("deadline after control word")
	}
}

func TestPITAllocs(t *testing.T) {
	clk := &fakeClock{}
	p := NewPIT(clk.now, func() {})
	p.Out(3, 1, 0x34)
	p.Out(0, 1, 0x00)
	p.Out(0, 1, 0x10)
	n := testing.AllocsPerRun(1000, func() {
		clk.t += 1000
		p.Out(3, 1, 0)
		p.In(0, 1)
		p.In(0, 1)
		p.Port61().In(0, 1)
		p.Tick()
	})
	if n != 0 {
		t.Errorf("PIT read allocates %v", n)
	}
}
