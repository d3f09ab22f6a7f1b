package devices

import "sync"

// PIT ports.
const (
	// PITPort is the 8254's base port: counters 0-2 at +0..+2, the control
	// word at +3.
	PITPort = 0x40
	// PITPorts is the number of ports the 8254 decodes.
	PITPorts = 4
	// Port61 is system control port B (Port61Device, 1 port).
	Port61 = 0x61
)

// PITHz is the 8254's input clock.
const PITHz = 1193182

// pitChannel is one 8254 counter. Counting is modelled as a tick count
// derived from the clock: ticks = base + elapsed(now - start) while the
// counter runs, frozen at base while it is paused (gate low).
type pitChannel struct {
	mode    uint8 // 0-5 (6 and 7 fold to 2 and 3)
	access  uint8 // 1 lobyte, 2 hibyte, 3 lobyte then hibyte
	bcd     bool  // kept for the status byte; counting is binary
	gate    bool
	reload  uint32 // count N, 1..65536; 0 before a count is written
	armed   bool   // a count is loaded (and, in modes 1 and 5, triggered)
	running bool   // counting (armed and not paused by the gate)
	start   int64  // ns when the current run began
	base    uint64 // ticks counted before start
	null    bool   // a count was written but not yet loaded

	wlo      uint8 // first byte of a lobyte/hibyte write
	whi      bool  // next write is the high byte
	rhi      bool  // next live read is the high byte
	latched  uint8 // latched count bytes left to read (0, 1, 2)
	latch    uint16
	latchHi  bool // next latched byte is the high byte
	stLatch  bool
	status   uint8
	irqAt    int64 // channel 0: ns of the next OUT rising edge to report
	irqArmed bool
}

// PIT is an Intel 8254 programmable interval timer with its three
// counters, plus system control port B (port 0x61: bit 0 counter 2's
// gate, bit 1 speaker enable, bits 2-3 read back, bit 4 the refresh
// toggle (flips every 15.085 µs), bit 5 counter 2's OUT). Counts are not
// stored and decremented: each read computes the count from the clock
// (now, in ns) at PITHz, so the PIT needs no goroutine.
//
// Modes 0 (interrupt on terminal count), 1 (hardware one-shot, triggered
// by a rising gate), 2 (rate generator), 3 (square wave), 4 and 5
// (software and hardware strobes) are modelled; 6 and 7 are 2 and 3. A
// written count takes effect at once (the real part waits for the next
// clock, or, in modes 2 and 3, for the current period to end). The
// latch command, the read-back command (count and status), and lobyte,
// hibyte and lobyte/hibyte access work as on the 8254; the BCD bit is
// kept and read back in the status byte but counting is always binary
// (no guest uses BCD counting). Counters 0 and 1 have their gates tied
// high; counter 2's gate is port 0x61 bit 0 (low at reset).
//
// Counter 0's OUT is IRQ 0. The PIT calls irq (from Tick) once for each
// rising edge of OUT0, coalescing edges the core was late for. It does
// not arm timers itself: after every guest access to the PIT's ports
// (and after each Tick), the core should read NextDeadline and, when it
// reports ok, arrange for Tick to be called at (or after) that clock
// time; a deadline already past means Tick should be called now.
//
// Register the PIT at PITPort with PITPorts ports and Port61() at Port61
// with 1 port.
type PIT struct {
	now func() int64
	irq func()

	mu  sync.Mutex
	ch  [3]pitChannel
	spk uint8 // port 0x61 bits 1-3
	p61 Port61Device
}

// NewPIT returns a PIT driven by now (monotonic ns) that calls irq for
// each IRQ 0 edge (see Tick); irq may be nil.
func NewPIT(now func() int64, irq func()) *PIT {
	p := &PIT{now: now, irq: irq}
	p.p61.p = p
	for i := range p.ch {
		c := &p.ch[i]
		c.gate = i != 2
		c.mode = 3 // an arbitrary but harmless reset mode
		c.access = 3
	}
	return p
}

// Port61 is the system control port B device.
func (p *PIT) Port61() *Port61Device { return &p.p61 }

// ticks is the channel's tick count at now.
func (c *pitChannel) ticks(now int64) uint64 {
	if !c.running {
		return c.base
	}
	return c.base + nsToTicks(now-c.start, PITHz)
}

// state returns the count and OUT at now.
func (c *pitChannel) state(now int64) (count uint16, out bool) {
	n := uint64(c.reload)
	if !c.armed || n == 0 {
		// No count yet, or mode 1/5 waiting for a trigger.
		return uint16(n), c.mode != 0
	}
	t := c.ticks(now)
	switch c.mode {
	case 0, 1:
		return uint16(n - t), t >= n
	case 4, 5:
		return uint16(n - t), t != n
	case 2:
		p := t % n
		if !c.gate {
			return uint16(n - p), true
		}
		return uint16(n - p), n-p != 1
	default: // 3
		p := t % n
		half := (n + 1) / 2
		if p < half {
			return uint16(n - 2*p), true
		}
		return uint16(n - n&1 - 2*(p-half)), !c.gate
	}
}

// run starts counting from tick 0 at now.
func (c *pitChannel) run(now int64) {
	c.armed = true
	c.running = c.gate
	c.start = now
	c.base = 0
	c.null = false
}

// load takes a newly written count.
func (c *pitChannel) load(v uint16, now int64) {
	c.reload = uint32(v)
	if v == 0 {
		c.reload = 65536
	}
	c.null = true
	if c.mode == 1 || c.mode == 5 {
		c.armed = false // waits for a gate trigger
		return
	}
	c.run(now)
}

// setGate drives the channel's gate input.
func (c *pitChannel) setGate(g bool, now int64) {
	if g == c.gate {
		return
	}
	c.gate = g
	switch c.mode {
	case 1, 5:
		if g && c.reload != 0 {
			c.run(now)
		}
	case 2, 3:
		if g && c.reload != 0 {
			c.run(now)
		} else if !g && c.armed {
			c.base = c.ticks(now)
			c.running = false
		}
	default: // 0, 4: the gate pauses counting
		if !c.armed {
			return
		}
		if g {
			c.start = now
			c.running = true
		} else {
			c.base = c.ticks(now)
			c.running = false
		}
	}
}

// nextEdge is the tick count of OUT's next rising edge after tick t, or
// false when none will come.
func (c *pitChannel) nextEdge(t uint64) (uint64, bool) {
	n := uint64(c.reload)
	if !c.armed || n == 0 {
		return 0, false
	}
	switch c.mode {
	case 0, 1:
		if t < n {
			return n, true
		}
	case 4, 5:
		if t <= n {
			return n + 1, true
		}
	default: // 2, 3: edges at every multiple of n
		return (t/n + 1) * n, true
	}
	return 0, false
}

// armIRQ computes counter 0's next IRQ deadline from tick t.
func (p *PIT) armIRQ(t uint64) {
	c := &p.ch[0]
	e, ok := c.nextEdge(t)
	c.irqArmed = ok && c.running
	if c.irqArmed {
		c.irqAt = c.start + ticksToNs(e-c.base, PITHz)
	}
}

// NextDeadline returns the clock time (ns) at which counter 0's OUT next
// rises, i.e. when Tick should next be called; ok is false when no IRQ 0
// edge is due (no count loaded, or a one-shot already fired).
func (p *PIT) NextDeadline() (ns int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch[0].irqAt, p.ch[0].irqArmed
}

// Tick reports counter 0's OUT edges that are due: when the deadline has
// passed it calls irq once (however many edges passed) and moves the
// deadline past now. It reports whether it called irq.
func (p *PIT) Tick() bool {
	p.mu.Lock()
	now := p.now()
	c := &p.ch[0]
	fire := c.irqArmed && now >= c.irqAt
	if fire {
		p.armIRQ(c.ticks(now))
	}
	p.mu.Unlock()
	if fire && p.irq != nil {
		p.irq()
	}
	return fire
}

// In reads size bytes at offset off, one port per byte.
func (p *PIT) In(off uint16, size uint8) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		v |= uint32(p.read(off+uint16(k), now)) << (8 * k)
	}
	return v
}

// Out writes size bytes at offset off, one port per byte.
func (p *PIT) Out(off uint16, size uint8, value uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k := uint8(0); k < size && k < 4; k++ {
		p.write(off+uint16(k), uint8(value>>(8*k)), now)
	}
}

func (p *PIT) read(off uint16, now int64) uint8 {
	if off > 2 {
		return 0xff // the control word is write-only
	}
	c := &p.ch[off]
	if c.stLatch {
		c.stLatch = false
		return c.status
	}
	if c.latched > 0 {
		c.latched--
		var b uint8
		if c.latchHi {
			b = uint8(c.latch >> 8)
		} else {
			b = uint8(c.latch)
		}
		c.latchHi = !c.latchHi
		return b
	}
	cnt, _ := c.state(now)
	switch c.access {
	case 1:
		return uint8(cnt)
	case 2:
		return uint8(cnt >> 8)
	}
	hi := c.rhi
	c.rhi = !c.rhi
	if hi {
		return uint8(cnt >> 8)
	}
	return uint8(cnt)
}

func (p *PIT) latchCount(c *pitChannel, now int64) {
	if c.latched > 0 {
		return // a latched count stays until it has been read
	}
	c.latch, _ = c.state(now)
	c.latchHi = c.access == 2
	c.latched = 1
	if c.access == 3 {
		c.latched = 2
	}
}

func (p *PIT) write(off uint16, v uint8, now int64) {
	switch {
	case off < 3:
		c := &p.ch[off]
		switch c.access {
		case 1:
			c.load(uint16(v), now)
		case 2:
			c.load(uint16(v)<<8, now)
		default:
			if !c.whi {
				c.wlo = v
				c.whi = true
				if c.mode == 0 { // the first byte stops a mode 0 count
					c.base = c.ticks(now)
					c.armed = false
					c.running = false
					if off == 0 {
						c.irqArmed = false
					}
				}
				return
			}
			c.whi = false
			c.load(uint16(c.wlo)|uint16(v)<<8, now)
		}
		if off == 0 {
			p.armIRQ(0)
		}
	case off == 3:
		p.control(v, now)
	}
}

// control executes a control word.
func (p *PIT) control(v uint8, now int64) {
	sc := v >> 6
	if sc == 3 { // read-back
		for i := range p.ch {
			if v&(2<<i) == 0 {
				continue
			}
			c := &p.ch[i]
			if v&0x20 == 0 {
				p.latchCount(c, now)
			}
			if v&0x10 == 0 && !c.stLatch {
				_, out := c.state(now)
				c.status = c.mode<<1 | c.access<<4
				if c.bcd {
					c.status |= 1
				}
				if c.null {
					c.status |= 0x40
				}
				if out {
					c.status |= 0x80
				}
				c.stLatch = true
			}
		}
		return
	}
	c := &p.ch[sc]
	rw := (v >> 4) & 3
	if rw == 0 {
		p.latchCount(c, now)
		return
	}
	mode := (v >> 1) & 7
	if mode >= 6 {
		mode -= 4
	}
	c.mode = mode
	c.access = rw
	c.bcd = v&1 != 0
	c.armed, c.running = false, false
	c.base = 0
	c.reload = 0
	c.null = true
	c.whi, c.rhi = false, false
	c.latched, c.stLatch = 0, false
	if sc == 0 {
		c.irqArmed = false
	}
}

// Port61Device is system control port B (see PIT).
type Port61Device struct {
	p *PIT
}

// In reads port 0x61: gate 2, speaker and check-enable bits as written,
// the refresh toggle, and counter 2's OUT.
func (d *Port61Device) In(off uint16, size uint8) uint32 {
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	c := &p.ch[2]
	v := p.spk
	if c.gate {
		v |= 0x01
	}
	if (now/15085)&1 != 0 {
		v |= 0x10
	}
	if _, out := c.state(now); out {
		v |= 0x20
	}
	return uint32(v)
}

// Out writes port 0x61: bit 0 drives counter 2's gate; bits 1-3 are kept.
func (d *Port61Device) Out(off uint16, size uint8, value uint32) {
	if off != 0 {
		return
	}
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spk = uint8(value) & 0x0e
	p.ch[2].setGate(value&1 != 0, p.now())
}
