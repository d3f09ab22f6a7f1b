package devices

import "sync"

// 8259 ports.
const (
	// PICMasterPort is the master 8259's base (command, data).
	PICMasterPort = 0x20
	// PICSlavePort is the slave 8259's base (command, data).
	PICSlavePort = 0xa0
	// PICPorts is the number of ports each 8259 decodes.
	PICPorts = 2
	// ELCRPort is the edge/level control registers' base (master, slave).
	ELCRPort = 0x4d0
	// ELCRPorts is the number of ELCR ports.
	ELCRPorts = 2
)

// elcrMask holds the ELCR bits that may be set: IRQ 0, 1, 2, 8 and 13
// are always edge-triggered.
var elcrMask = [2]uint8{0xf8, 0xde}

// pic8259 is one 8259A.
type pic8259 struct {
	irr, isr, imr uint8
	level         uint8 // input lines now high
	elcr          uint8 // 1 = level-triggered
	base          uint8 // vector base (ICW2 & 0xf8)
	prio          uint8 // IRQ with the highest priority
	step          uint8 // next ICW expected: 2, 3, 4, or 0 when done
	icw4, single  bool
	autoEOI       bool
	rotateAEOI    bool
	readISR       bool
	poll          bool
	specialMask   bool
	icw3          uint8
}

// requests is the set of active requests (edge latches and high level
// lines); cascade is the slave's request on the master's IRQ 2.
func (c *pic8259) requests(cascade bool) uint8 {
	r := c.irr&^c.elcr | c.level&c.elcr
	if cascade {
		r |= 1 << 2
	}
	return r
}

// highest returns the highest-priority IRQ in set, or -1.
func (c *pic8259) highest(set uint8) int {
	if set == 0 {
		return -1
	}
	for k := uint8(0); k < 8; k++ {
		i := (c.prio + k) & 7
		if set&(1<<i) != 0 {
			return int(i)
		}
	}
	return -1
}

// pending returns the IRQ the chip would interrupt for, or -1.
func (c *pic8259) pending(cascade bool) int {
	if c.step != 0 { // mid-initialisation
		return -1
	}
	irq := c.highest(c.requests(cascade) &^ c.imr)
	if irq < 0 {
		return -1
	}
	isr := c.isr
	if c.specialMask {
		isr &^= c.imr
	}
	if s := c.highest(isr); s >= 0 && (uint8(s)-c.prio)&7 <= (uint8(irq)-c.prio)&7 {
		return -1
	}
	return irq
}

// ack performs an interrupt acknowledge for irq.
func (c *pic8259) ack(irq int) {
	bit := uint8(1) << (irq & 7)
	c.irr &^= bit
	if c.autoEOI {
		if c.rotateAEOI {
			c.prio = uint8(irq+1) & 7
		}
		return
	}
	c.isr |= bit
}

// ocw2 runs an OCW2 command.
func (c *pic8259) ocw2(v uint8) {
	l := v & 7
	switch v >> 5 {
	case 0: // clear rotate in auto-EOI
		c.rotateAEOI = false
	case 4: // set rotate in auto-EOI
		c.rotateAEOI = true
	case 1, 5: // non-specific EOI (and rotate)
		if s := c.highest(c.isr); s >= 0 {
			c.isr &^= 1 << s
			if v>>5 == 5 {
				c.prio = uint8(s+1) & 7
			}
		}
	case 3: // specific EOI
		c.isr &^= 1 << l
	case 7: // rotate on specific EOI
		c.isr &^= 1 << l
		c.prio = (l + 1) & 7
	case 6: // set priority: l becomes the lowest
		c.prio = (l + 1) & 7
	}
}

func (c *pic8259) icw1(v uint8) {
	*c = pic8259{elcr: c.elcr, level: c.level, step: 2}
	c.icw4 = v&0x01 != 0
	c.single = v&0x02 != 0
	if v&0x08 != 0 { // LTIM: every input level-triggered
		c.elcr = 0xff
	}
}

// PIC is the PC/AT pair of 8259A interrupt controllers: the slave's
// output cascades into the master's IRQ 2. It implements the ICW1-ICW4
// initialisation sequence (vector base from ICW2, single mode, auto-EOI
// from ICW4; ICW3 and the microprocessor mode bit are accepted and
// ignored), OCW1 (the mask register IMR), OCW2 (specific and
// non-specific EOI, rotation, set priority), OCW3 (read IRR or ISR, poll,
// special mask mode), and the ELCR edge/level registers at 0x4d0-0x4d1.
// Before the guest initialises it every IRQ is masked (IMR 0xff): no
// firmware ran to program it.
//
// Devices drive input lines with Raise and Lower (or Pulse). There is no
// INTA cycle: when an unmasked request outranks everything in service,
// the PIC acknowledges it itself (sets ISR, clears the edge latch) and
// calls deliver with its vector, which should inject it into the boot
// vCPU. At most one vector is delivered per call; the next one goes out
// when the guest's EOI (or another input change) lets it. An edge
// request is latched on the rising edge and stays latched (until
// acknowledged or the chip is reinitialised) even if the line falls
// first; a level request lasts as long as its line is high.
//
// Register Master() at PICMasterPort and Slave() at PICSlavePort, each
// with PICPorts ports, and ELCR() at ELCRPort with ELCRPorts ports.
type PIC struct {
	deliver func(vector uint8)

	mu    sync.Mutex
	chip  [2]pic8259
	ports [2]PICPort
	elcr  ELCRDevice
}

// NewPIC returns a PIC pair that calls deliver (on the caller's
// goroutine, outside the PIC's lock) with each vector it delivers.
func NewPIC(deliver func(vector uint8)) *PIC {
	p := &PIC{deliver: deliver}
	for i := range p.chip {
		p.chip[i].imr = 0xff
		p.ports[i] = PICPort{p: p, chip: uint8(i)}
	}
	p.elcr.p = p
	return p
}

// Master is the master 8259's port device (0x20-0x21).
func (p *PIC) Master() *PICPort { return &p.ports[0] }

// Slave is the slave 8259's port device (0xa0-0xa1).
func (p *PIC) Slave() *PICPort { return &p.ports[1] }

// ELCR is the edge/level control register device (0x4d0-0x4d1).
func (p *PIC) ELCR() *ELCRDevice { return &p.elcr }

// Raise drives input irq (0-15) high; out-of-range IRQs are ignored.
func (p *PIC) Raise(irq uint8) { p.setLine(irq, true, false) }

// Lower drives input irq (0-15) low.
func (p *PIC) Lower(irq uint8) { p.setLine(irq, false, false) }

// Pulse drives input irq high and low again: an edge request.
func (p *PIC) Pulse(irq uint8) { p.setLine(irq, true, true) }

func (p *PIC) setLine(irq uint8, high, pulse bool) {
	if irq > 15 {
		return
	}
	p.mu.Lock()
	c := &p.chip[irq>>3]
	bit := uint8(1) << (irq & 7)
	if high {
		if c.level&bit == 0 {
			c.irr |= bit
		}
		c.level |= bit
	}
	if !high || pulse {
		c.level &^= bit
	}
	v, ok := p.update()
	p.mu.Unlock()
	p.send(v, ok)
}

// update finds the vector to deliver, if any, and acknowledges it.
func (p *PIC) update() (uint8, bool) {
	m, s := &p.chip[0], &p.chip[1]
	sp := s.pending(false)
	cascade := sp >= 0 && !m.single
	mp := m.pending(cascade)
	if mp < 0 {
		return 0, false
	}
	if mp == 2 && cascade {
		s.ack(sp)
		m.ack(2)
		return s.base + uint8(sp), true
	}
	m.ack(mp)
	return m.base + uint8(mp), true
}

func (p *PIC) send(v uint8, ok bool) {
	if ok && p.deliver != nil {
		p.deliver(v)
	}
}

// IMR returns the master's (low byte) and slave's (high byte) masks.
func (p *PIC) IMR() uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint16(p.chip[0].imr) | uint16(p.chip[1].imr)<<8
}

// PICPort is one 8259's command (offset 0) and data (offset 1) ports.
type PICPort struct {
	p    *PIC
	chip uint8
}

// In reads size bytes at offset off, one port per byte.
func (d *PICPort) In(off uint16, size uint8) uint32 {
	p := d.p
	p.mu.Lock()
	var v uint32
	var vec uint8
	var ok bool
	for k := uint8(0); k < size && k < 4; k++ {
		b, bv, bok := d.read(off + uint16(k))
		if bok {
			vec, ok = bv, true
		}
		v |= uint32(b) << (8 * k)
	}
	p.mu.Unlock()
	p.send(vec, ok)
	return v
}

// Out writes size bytes at offset off, one port per byte.
func (d *PICPort) Out(off uint16, size uint8, value uint32) {
	p := d.p
	p.mu.Lock()
	for k := uint8(0); k < size && k < 4; k++ {
		d.write(off+uint16(k), uint8(value>>(8*k)))
	}
	vec, ok := p.update()
	p.mu.Unlock()
	p.send(vec, ok)
}

func (d *PICPort) read(off uint16) (b, vec uint8, ok bool) {
	c := &d.p.chip[d.chip&1]
	switch off {
	case 0:
		if c.poll {
			c.poll = false
			var cascade bool
			if d.chip == 0 {
				cascade = d.p.chip[1].pending(false) >= 0 && !c.single
			}
			irq := c.pending(cascade)
			if irq < 0 {
				return 0, 0, false
			}
			c.ack(irq)
			vec, ok = d.p.update()
			return 0x80 | uint8(irq), vec, ok
		}
		if c.readISR {
			return c.isr, 0, false
		}
		return c.requests(d.chip == 0 && d.p.chip[1].pending(false) >= 0 && !c.single), 0, false
	case 1:
		return c.imr, 0, false
	}
	return 0xff, 0, false
}

func (d *PICPort) write(off uint16, v uint8) {
	c := &d.p.chip[d.chip&1]
	switch off {
	case 0:
		switch {
		case v&0x10 != 0:
			c.icw1(v)
		case v&0x08 != 0: // OCW3
			if v&0x02 != 0 {
				c.readISR = v&0x01 != 0
			}
			c.poll = v&0x04 != 0
			if v&0x40 != 0 {
				c.specialMask = v&0x20 != 0
			}
		default:
			c.ocw2(v)
		}
	case 1:
		switch c.step {
		case 2:
			c.base = v & 0xf8
			switch {
			case !c.single:
				c.step = 3
			case c.icw4:
				c.step = 4
			default:
				c.step = 0
			}
		case 3:
			c.icw3 = v
			c.step = 0
			if c.icw4 {
				c.step = 4
			}
		case 4:
			c.autoEOI = v&0x02 != 0
			c.step = 0
		default:
			c.imr = v
		}
	}
}

// ELCRDevice is the pair of edge/level control registers: bit n of the
// byte at offset k set makes IRQ 8k+n level-triggered.
type ELCRDevice struct {
	p *PIC
}

// In reads the ELCR bytes at [off, off+size).
func (e *ELCRDevice) In(off uint16, size uint8) uint32 {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		if i := off + uint16(k); i < 2 {
			v |= uint32(p.chip[i].elcr) << (8 * k)
		}
	}
	return v
}

// Out writes the ELCR bytes at [off, off+size).
func (e *ELCRDevice) Out(off uint16, size uint8, value uint32) {
	p := e.p
	p.mu.Lock()
	for k := uint8(0); k < size && k < 4; k++ {
		if i := off + uint16(k); i < 2 {
			p.chip[i].elcr = uint8(value>>(8*k)) & elcrMask[i]
		}
	}
	vec, ok := p.update()
	p.mu.Unlock()
	p.send(vec, ok)
}
