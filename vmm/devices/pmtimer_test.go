package devices

import (
	"testing"

	"juice/vmm"
)

var (
	_ vmm.PortDevice = (*PMTimer)(nil)
	_ vmm.PortDevice = (*PM1Event)(nil)
	_ vmm.PortDevice = (*PM1Control)(nil)
)

// fakeClock is a settable ns clock.
type fakeClock struct{ t int64 }

func (c *fakeClock) now() int64 { return c.t }

func TestPMTimer(t *testing.T) {
	clk := &fakeClock{t: 5e9}
	p := NewPMTimer(clk.now)
	cases := []struct {
		ns   int64
		want uint32
	}{
		{0, 0},
		{279, 0},             // less than one tick (279.4 ns)
		{280, 1},             // one tick
		{1e9, PMTimerHz},     // one second
		{2e9, 2 * PMTimerHz}, // two seconds
		{4686968874, 0xffffff},
		{4686968875, 0}, // wrapped: 2^24 ticks is 4.68697 s
		{5e9, (5 * PMTimerHz) & 0xffffff},
		{3600e9, (3600 * PMTimerHz) & 0xffffff},
		{-1e9, 0}, // clock before construction
	}
	for _, c := range cases {
		clk.t = 5e9 + c.ns
		if got := p.In(0, 4); got != c.want {
			t.Errorf("after %d ns: count %#x, want %#x", c.ns, got, c.want)
		}
		if got := p.In(1, 2); got != (c.want>>8)&0xffff {
			t.Errorf("after %d ns: 2-byte read at 1 %#x", c.ns, got)
		}
	}
	p.Out(0, 4, 0) // read-only
	clk.t = 6e9
	if got := p.Count(); got != PMTimerHz {
		t.Errorf("write changed the timer: %#x", got)
	}
}

func TestPMTimerAllocs(t *testing.T) {
	clk := &fakeClock{}
	p := NewPMTimer(clk.now)
	if n := testing.AllocsPerRun(1000, func() { clk.t += 1000; p.In(0, 4) }); n != 0 {
		t.Errorf("PM timer read allocates %v", n)
	}
}

func TestPM1(t *testing.T) {
	cases := []struct {
		name  string
		off   uint16
		size  uint8
		v     uint32
		off5  int
		cntRd uint32
	}{
		{"S5 word", 0, 2, 5<<10 | 1<<13, 1, 5<<10 | 1},
		{"S5 high byte", 1, 1, (5<<10 | 1<<13) >> 8, 1, 5<<10 | 1},
		{"S5 type without SLP_EN", 0, 2, 5 << 10, 0, 5<<10 | 1},
		{"S3 ignored", 0, 2, 1<<10 | 1<<13, 0, 1<<10 | 1},
		{"low byte cannot clear SCI_EN", 0, 1, 0, 0, 1},
		{"BM_RLD kept", 0, 2, 2, 0, 3},
	}
	for _, c := range cases {
		n := 0
		p := NewPM1(5, func() { n++ })
		if got := p.Control().In(0, 2); got != 1 {
			t.Fatalf("%s: PM1_CNT at reset %#x, want SCI_EN", c.name, got)
		}
		p.Control().Out(c.off, c.size, c.v)
		if n != c.off5 {
			t.Errorf("%s: poweroff called %d times, want %d", c.name, n, c.off5)
		}
		if got := p.Control().In(0, 2); got != c.cntRd {
			t.Errorf("%s: PM1_CNT reads %#x, want %#x", c.name, got, c.cntRd)
		}
	}
}

func TestPM1Event(t *testing.T) {
	p := NewPM1(0, nil)
	e := p.Event()
	p.sts = 0x8101
	e.Out(0, 2, 0x0001) // write one to clear TMR_STS
	if got := e.In(0, 2); got != 0x8100 {
		t.Errorf("PM1_STS %#x after clearing bit 0, want 0x8100", got)
	}
	e.Out(2, 2, 0xffff)
	if got := e.In(2, 2); got != pm1EnableMask {
		t.Errorf("PM1_EN %#x, want %#x", got, pm1EnableMask)
	}
	if got := e.In(0, 4); got != 0x8100|pm1EnableMask<<16 {
		t.Errorf("PM1 event block %#x", got)
	}
	e.Out(0, 4, 0xffffffff) // clears all status, enables kept
	if got := e.In(0, 4); got != pm1EnableMask<<16 {
		t.Errorf("PM1 event block %#x after dword write", got)
	}
	p.Control().Out(0, 2, 0)
	if got := p.Control().In(0, 2); got != 1 {
		t.Errorf("SCI_EN cleared: %#x", got)
	}
	p.Control().Out(0, 2, 1<<13) // S0 type 0 == s5 here: nil poweroff must not panic
}
