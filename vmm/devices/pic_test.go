package devices

import (
	"testing"

	"juice/vmm"
)

var (
	_ vmm.PortDevice = (*PICPort)(nil)
	_ vmm.PortDevice = (*ELCRDevice)(nil)
)

// initPICs runs Linux's init_8259A sequence with bases 0x30 and 0x38.
func initPICs(p *PIC) {
	m, s := p.Master(), p.Slave()
	m.Out(1, 1, 0xff)
	s.Out(1, 1, 0xff)
	m.Out(0, 1, 0x11)
	m.Out(1, 1, 0x30)
	m.Out(1, 1, 0x04)
	m.Out(1, 1, 0x01)
	s.Out(0, 1, 0x11)
	s.Out(1, 1, 0x38)
	s.Out(1, 1, 0x02)
	s.Out(1, 1, 0x01)
	m.Out(1, 1, 0)
	s.Out(1, 1, 0)
}

func TestPIC(t *testing.T) {
	var got []uint8
	p := NewPIC(func(v uint8) { got = append(got, v) })
	m, s := p.Master(), p.Slave()
	p.Pulse(0)
	if len(got) != 0 {
		t.Fatalf("delivered %v before initialisation", got)
	}
	initPICs(p)
	if len(got) != 0 {
		t.Fatalf("stale request delivered: %v", got)
	}
	p.Pulse(1)
	p.Pulse(3)
	if len(got) != 1 || got[0] != 0x31 {
		t.Fatalf("delivered %#x, want [0x31]", got)
	}
	m.Out(0, 1, 0x0b) // OCW3: read ISR
	if isr := m.In(0, 1); isr != 0x02 {
		t.Errorf("ISR %#x, want 0x02", isr)
	}
	m.Out(0, 1, 0x0a) // read IRR
	if irr := m.In(0, 1); irr != 0x08 {
		t.Errorf("IRR %#x, want 0x08", irr)
	}
	m.Out(0, 1, 0x20) // non-specific EOI releases IRQ 3
	if len(got) != 2 || got[1] != 0x33 {
		t.Fatalf("after EOI delivered %#x", got)
	}
	m.Out(0, 1, 0x63) // specific EOI 3
	// Cascade: IRQ 12 goes through IRQ 2.
	p.Pulse(12)
	if len(got) != 3 || got[2] != 0x3c {
		t.Fatalf("slave IRQ delivered %#x", got)
	}
	m.Out(0, 1, 0x0b)
	s.Out(0, 1, 0x0b)
	if mi, si := m.In(0, 1), s.In(0, 1); mi != 0x04 || si != 0x10 {
		t.Errorf("ISRs master %#x slave %#x", mi, si)
	}
	s.Out(0, 1, 0x20)
	m.Out(0, 1, 0x20)
	// Masks: Linux masks everything when it uses the IOAPIC.
	m.Out(1, 1, 0xff)
	s.Out(1, 1, 0xff)
	if p.IMR() != 0xffff {
		t.Errorf("IMR %#x", p.IMR())
	}
	p.Pulse(0)
	p.Pulse(9)
	if len(got) != 3 {
		t.Fatalf("masked IRQs delivered %#x", got[3:])
	}
	m.Out(1, 1, 0xfe) // unmask IRQ 0: the latched edge goes out
	if len(got) != 4 || got[3] != 0x30 {
		t.Fatalf("unmasked IRQ 0 delivered %#x", got)
	}
	m.Out(0, 1, 0x20)
	// Level-triggered IRQ 10 via ELCR: redelivered after EOI while high.
	p.ELCR().Out(0, 2, 0xffff)
	if e := p.ELCR().In(0, 2); e != 0xdef8 {
		t.Errorf("ELCR %#x, want 0xdef8 (IRQ 0-2, 8, 13 stay edge)", e)
	}
	p.ELCR().Out(0, 2, 0x0400)
	m.Out(1, 1, 0xfb)
	s.Out(1, 1, 0xfb)
	p.Raise(10)
	s.Out(0, 1, 0x20)
	m.Out(0, 1, 0x20)
	if len(got) != 6 || got[4] != 0x3a || got[5] != 0x3a {
		t.Fatalf("level IRQ 10 delivered %#x", got)
	}
	p.Lower(10)
	s.Out(0, 1, 0x20)
	m.Out(0, 1, 0x20)
	if len(got) != 6 {
		t.Fatalf("lowered level IRQ redelivered %#x", got)
	}
	// Priority: a higher-priority IRQ preempts, a lower one waits.
	m.Out(1, 1, 0)
	p.Pulse(4)
	p.Pulse(1)
	p.Pulse(6)
	if len(got) != 8 || got[6] != 0x34 || got[7] != 0x31 {
		t.Fatalf("priority order %#x", got)
	}
	m.Out(0, 1, 0x20) // EOI 1: 6 still waits for 4
	m.Out(0, 1, 0x20) // EOI 4: 6 goes
	if len(got) != 9 || got[8] != 0x36 {
		t.Fatalf("after EOIs %#x", got)
	}
	// Poll command.
	m.Out(0, 1, 0x20)
	m.Out(1, 1, 0xff)
	m.Out(0, 1, 0x0c)
	if v := m.In(0, 1); v != 0 {
		t.Errorf("poll with nothing pending %#x", v)
	}
	if v := m.In(1, 1); v != 0xff {
		t.Errorf("IMR read %#x", v)
	}
	p.Raise(16) // ignored
}

func TestPICAutoEOI(t *testing.T) {
	var got []uint8
	p := NewPIC(func(v uint8) { got = append(got, v) })
	m := p.Master()
	m.Out(0, 1, 0x13) // ICW1: single, ICW4
	m.Out(1, 1, 0x08)
	m.Out(1, 1, 0x03) // ICW4: auto-EOI
	m.Out(1, 1, 0x00)
	p.Pulse(5)
	p.Pulse(5)
	if len(got) != 2 || got[0] != 0x0d || got[1] != 0x0d {
		t.Fatalf("auto-EOI delivered %#x", got)
	}
	m.Out(0, 1, 0x0b)
	if isr := m.In(0, 1); isr != 0 {
		t.Errorf("ISR %#x in auto-EOI mode", isr)
	}
}

func TestPICAllocs(t *testing.T) {
	n := 0
	p := NewPIC(func(uint8) { n++ })
	initPICs(p)
	m := p.Master()
	if a := testing.AllocsPerRun(1000, func() {
		p.Pulse(0)
		m.Out(0, 1, 0x20)
		m.In(1, 1)
	}); a != 0 {
		t.Errorf("PIC allocates %v", a)
	}
	if n == 0 {
		t.Error("nothing delivered")
	}
}
