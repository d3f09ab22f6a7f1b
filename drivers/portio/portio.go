// Package portio is the seam between juice's drivers and x86 port I/O.
//
// The IN and OUT instructions fault outside ring 0, so a driver never
// issues them itself: it calls through a Ports value. On bare metal the
// kernel fills one Ports, once, early in boot, with juice/cpu's Inb/Outb/
// Inw/Outw/Inl/Outl (func values of top-level functions, which point at
// static data, never at the heap). Host tests fill it with closures that
// model a device (a 16550, a CMOS, an 8254), so the drivers' logic runs
// under plain `go test`.
//
// The package is kernel-context: its helpers are //go:nosplit and
// allocation-free.
package portio

// Ports holds the six port I/O primitives. A nil field means the width is
// unavailable; drivers check the fields they need before use (see Has8,
// Has16, Has32) and report a status instead of calling a nil func.
type Ports struct {
	In8   func(port uint16) uint8     // IN AL, DX
	Out8  func(port uint16, v uint8)  // OUT DX, AL
	In16  func(port uint16) uint16    // IN AX, DX
	Out16 func(port uint16, v uint16) // OUT DX, AX
	In32  func(port uint16) uint32    // IN EAX, DX
	Out32 func(port uint16, v uint32) // OUT DX, EAX
}

// Has8 reports whether p is non-nil and has both byte-wide primitives.
//
//go:nosplit
func (p *Ports) Has8() bool { return p != nil && p.In8 != nil && p.Out8 != nil }

// Has16 reports whether p is non-nil and has both word-wide primitives.
//
//go:nosplit
func (p *Ports) Has16() bool { return p != nil && p.In16 != nil && p.Out16 != nil }

// Has32 reports whether p is non-nil and has both dword-wide primitives.
//
//go:nosplit
func (p *Ports) Has32() bool { return p != nil && p.In32 != nil && p.Out32 != nil }
