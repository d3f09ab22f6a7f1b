package apic

import "sync"

// I/O APIC constants.
const (
	// IOAPICBase is the I/O APIC's conventional guest-physical base.
	IOAPICBase = 0xFEC00000
	// IOAPICSize is the length of its MMIO window.
	IOAPICSize = 0x1000
	// IOAPICPins is the number of redirection entries (GSIs 0-23).
	IOAPICPins = 24
	// IOAPICVersion is the version register: version 0x20 (which has the
	// EOI register), max redirection entry 23.
	IOAPICVersion = (IOAPICPins-1)<<16 | 0x20

	// MMIO offsets.
	IORegSel = 0x00 // IOREGSEL: register index (bits 7:0)
	IOWin    = 0x10 // IOWIN: the selected register's data
	IOEOI    = 0x40 // EOI register (version 0x20): write a vector to end it

	// Register indices (IOREGSEL values).
	IOAPICID    = 0x00
	IOAPICVer   = 0x01
	IOAPICArb   = 0x02
	IORedirBase = 0x10 // entry n: low dword 0x10+2n, high dword 0x11+2n

	// Redirection entry bits.
	RedirDestLogical = 1 << 11
	RedirPending     = 1 << 12 // delivery status (read-only, always 0: delivery is immediate)
	RedirActiveLow   = 1 << 13
	RedirRemoteIRR   = 1 << 14 // read-only
	RedirLevel       = 1 << 15
	RedirMasked      = 1 << 16
	redirWritableLow = 0x0001AFFF                        // vector, mode, dest mode, polarity, trigger, mask
	redirWritable    = 0xFF000000<<32 | redirWritableLow // plus destination 63:56
)

// Route is an interrupt an I/O APIC pin sends: the VM delivers it to the
// local APICs matching Dest (MatchDest(uint32(Dest), Logical)), Fixed and
// LowestPriority by AcceptLevel(Vector, Level).
type Route struct {
	GSI     uint8        // the pin
	Dest    uint8        // destination (entry bits 63:56)
	Vector  uint8        // vector
	Mode    DeliveryMode // delivery mode (bits 10:8)
	Logical bool         // logical destination mode
	Level   bool         // level-triggered: the LAPIC must set TMR and broadcast the EOI
}

// IOAPIC is an I/O APIC with 24 pins. Create it with NewIOAPIC and
// register it on the MMIO bus at IOAPICBase (IOAPICSize bytes).
//
// Pin state given to SetIRQ is the logical assertion: the polarity bit is
// stored for the guest but does not invert it (the device model says
// "asserted", whatever the wire's electrical level).
type IOAPIC struct {
	mu    sync.Mutex
	id    uint32 // ID register (bits 27:24)
	sel   uint8
	redir [IOAPICPins]uint64
	line  [IOAPICPins]bool
	route func(Route)
}

// NewIOAPIC returns an I/O APIC with ID id (4 bits) in the reset state:
// every entry masked. route is called, without locks held, for each
// interrupt a pin sends; nil drops them.
func NewIOAPIC(id uint8, route func(Route)) *IOAPIC {
	io := &IOAPIC{id: uint32(id&0xF) << 24, route: route}
	for i := range io.redir {
		io.redir[i] = RedirMasked
	}
	return io
}

// fire records the interrupt entry i sends, setting remote IRR for a
// level-triggered entry. The lock is held.
func (io *IOAPIC) fire(i int) Route {
	e := io.redir[i]
	if e&RedirLevel != 0 {
		io.redir[i] |= RedirRemoteIRR
	}
	return Route{
		GSI:     uint8(i),
		Dest:    uint8(e >> 56),
		Vector:  uint8(e),
		Mode:    DeliveryMode(e >> 8 & 7),
		Logical: e&RedirDestLogical != 0,
		Level:   e&RedirLevel != 0,
	}
}

// levelDue reports whether level-triggered entry i must send now: its
// line is asserted, it is unmasked and no earlier interrupt awaits EOI.
func (io *IOAPIC) levelDue(i int) bool {
	e := io.redir[i]
	return e&RedirLevel != 0 && e&(RedirMasked|RedirRemoteIRR) == 0 && io.line[i]
}

// SetIRQ sets pin gsi's line (true: asserted). An edge-triggered pin
// sends on a rising edge if unmasked (an edge while masked is lost); a
// level-triggered pin sends while asserted and unmasked, sets remote IRR
// and sends again only after EOI (or unmasking) finds it still asserted.
// A gsi outside 0-23 is ignored.
func (io *IOAPIC) SetIRQ(gsi int, level bool) {
	if gsi < 0 || gsi >= IOAPICPins {
		return
	}
	var r Route
	send := false
	io.mu.Lock()
	prev := io.line[gsi]
	io.line[gsi] = level
	e := io.redir[gsi]
	switch {
	case e&RedirLevel != 0:
		if io.levelDue(gsi) {
			r, send = io.fire(gsi), true
		}
	case level && !prev && e&RedirMasked == 0:
		r, send = io.fire(gsi), true
	}
	io.mu.Unlock()
	if send && io.route != nil {
		io.route(r)
	}
}

// EOI ends level-triggered interrupt vector: every level-triggered entry
// with that vector and remote IRR set has it cleared, and sends again if
// its line is still asserted. The VM calls it from the local APICs' EOI
// broadcast; the guest may also write the EOI register.
func (io *IOAPIC) EOI(vector uint8) {
	var rs [IOAPICPins]Route
	n := 0
	io.mu.Lock()
	for i := range io.redir {
		e := io.redir[i]
		if e&RedirLevel == 0 || e&RedirRemoteIRR == 0 || uint8(e) != vector {
			continue
		}
		io.redir[i] &^= RedirRemoteIRR
		if io.levelDue(i) {
			rs[n] = io.fire(i)
			n++
		}
	}
	io.mu.Unlock()
	io.send(rs[:n])
}

func (io *IOAPIC) send(rs []Route) {
	if io.route == nil {
		return
	}
	for _, r := range rs {
		io.route(r)
	}
}

// Read is the MMIO read (offsets from the base): IOREGSEL, IOWIN (the
// selected register), anything else 0.
func (io *IOAPIC) Read(off uint64, size uint8) uint64 {
	io.mu.Lock()
	defer io.mu.Unlock()
	switch off {
	case IORegSel:
		return uint64(io.sel)
	case IOWin:
		return uint64(io.readReg(io.sel))
	}
	return 0
}

// readReg reads indirect register idx; undefined ones read 0.
func (io *IOAPIC) readReg(idx uint8) uint32 {
	switch idx {
	case IOAPICID, IOAPICArb:
		return io.id
	case IOAPICVer:
		return IOAPICVersion
	}
	if idx >= IORedirBase && idx < IORedirBase+2*IOAPICPins {
		e := io.redir[(idx-IORedirBase)/2]
		if idx&1 != 0 {
			return uint32(e >> 32)
		}
		return uint32(e)
	}
	return 0
}

// Write is the MMIO write: IOREGSEL (any size), IOWIN (32 or 64 bits;
// writes the selected register), the EOI register; other offsets and
// narrower IOWIN writes are ignored.
func (io *IOAPIC) Write(off uint64, size uint8, value uint64) {
	switch off {
	case IORegSel:
		io.mu.Lock()
		io.sel = uint8(value)
		io.mu.Unlock()
	case IOWin:
		if size < 4 {
			return
		}
		var r Route
		send := false
		io.mu.Lock()
		r, send = io.writeReg(io.sel, uint32(value))
		io.mu.Unlock()
		if send && io.route != nil {
			io.route(r)
		}
	case IOEOI:
		io.EOI(uint8(value))
	}
}

// writeReg writes indirect register idx. Unmasking an asserted
// level-triggered entry (or making an asserted unmasked entry
// level-triggered) sends it; switching an entry to edge clears remote
// IRR.
func (io *IOAPIC) writeReg(idx uint8, v uint32) (Route, bool) {
	if idx == IOAPICID {
		io.id = v & 0x0F000000
		return Route{}, false
	}
	if idx < IORedirBase || idx >= IORedirBase+2*IOAPICPins {
		return Route{}, false // version, arbitration, undefined: read-only
	}
	i := int(idx-IORedirBase) / 2
	e := io.redir[i]
	if idx&1 != 0 {
		e = e&0xFFFFFFFF | uint64(v)<<32
	} else {
		e = e&^0xFFFFFFFF | uint64(v)
	}
	e = e&redirWritable | io.redir[i]&RedirRemoteIRR
	if e&RedirLevel == 0 {
		e &^= RedirRemoteIRR
	}
	io.redir[i] = e
	if io.levelDue(i) {
		return io.fire(i), true
	}
	return Route{}, false
}

// Entry returns redirection entry gsi (0 if out of range), for the VM
// and tests.
func (io *IOAPIC) Entry(gsi int) uint64 {
	if gsi < 0 || gsi >= IOAPICPins {
		return 0
	}
	io.mu.Lock()
	defer io.mu.Unlock()
	return io.redir[gsi]
}
