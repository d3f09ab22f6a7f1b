package pci

import (
	"errors"

	"juice/drivers/portio"
	"juice/mm/phys"
)

// Regs is the seam to a block of device registers: a BAR, or part of one.
// Offsets are from the block's start; accesses are of the named width and
// naturally aligned. An access outside the block, or misaligned, reads
// all ones and is dropped.
type Regs interface {
	Read8(off uint32) uint8
	Read16(off uint32) uint16
	Read32(off uint32) uint32
	Write8(off uint32, v uint8)
	Write16(off uint32, v uint16)
	Write32(off uint32, v uint32)
}

// inBlock reports whether an access of width w at off lies inside a block
// of n bytes and is naturally aligned.
func inBlock(off, w, n uint32) bool {
	return off&(w-1) == 0 && off < n && w <= n-off
}

// MMIO is a Regs over memory-mapped registers. The range must be mapped
// uncached: juice's direct map maps firmware-reserved ranges so, and
// device ranges it does not list need the kernel to map them first.
// Every access is one load or store of its width, never merged, split
// or elided (see mmio_unsafe.go).
type MMIO struct {
	win []byte
}

// ErrNotMapped is returned when a register range lies outside the
// physical-memory window.
var ErrNotMapped = errors.New("pci: register range outside the physical-memory window")

// NewMMIO returns the registers at physical [pa, pa+n) of mem.
func NewMMIO(mem *phys.Mem, pa, n uint64) (*MMIO, error) {
	if n == 0 || n > 1<<32 {
		return nil, errors.New("pci: bad register block size")
	}
	b, ok := mem.Bytes(pa, n)
	if !ok {
		return nil, ErrNotMapped
	}
	return &MMIO{win: b}, nil
}

// Size is the block's length.
func (m *MMIO) Size() uint32 { return uint32(len(m.win)) }

// Read8 implements Regs.
func (m *MMIO) Read8(off uint32) uint8 {
	if !inBlock(off, 1, m.Size()) {
		return 0xFF
	}
	return mmioLoad8(m.win, off)
}

// Read16 implements Regs.
func (m *MMIO) Read16(off uint32) uint16 {
	if !inBlock(off, 2, m.Size()) {
		return 0xFFFF
	}
	return mmioLoad16(m.win, off)
}

// Read32 implements Regs.
func (m *MMIO) Read32(off uint32) uint32 {
	if !inBlock(off, 4, m.Size()) {
		return Absent
	}
	return mmioLoad32(m.win, off)
}

// Write8 implements Regs.
func (m *MMIO) Write8(off uint32, v uint8) {
	if inBlock(off, 1, m.Size()) {
		mmioStore8(m.win, off, v)
	}
}

// Write16 implements Regs.
func (m *MMIO) Write16(off uint32, v uint16) {
	if inBlock(off, 2, m.Size()) {
		mmioStore16(m.win, off, v)
	}
}

// Write32 implements Regs.
func (m *MMIO) Write32(off uint32, v uint32) {
	if inBlock(off, 4, m.Size()) {
		mmioStore32(m.win, off, v)
	}
}

// PortRegs is a Regs over an I/O BAR: ports [Base, Base+Size).
type PortRegs struct {
	Ports *portio.Ports
	Base  uint16
	Size  uint32
}

// ok reports whether the access fits and the port primitives exist.
func (p *PortRegs) ok(off, w uint32) bool {
	return p.Ports != nil && inBlock(off, w, p.Size) && uint32(p.Base)+off+w <= 0x10000
}

// Read8 implements Regs.
func (p *PortRegs) Read8(off uint32) uint8 {
	if !p.ok(off, 1) || !p.Ports.Has8() {
		return 0xFF
	}
	return p.Ports.In8(p.Base + uint16(off))
}

// Read16 implements Regs.
func (p *PortRegs) Read16(off uint32) uint16 {
	if !p.ok(off, 2) || !p.Ports.Has16() {
		return 0xFFFF
	}
	return p.Ports.In16(p.Base + uint16(off))
}

// Read32 implements Regs.
func (p *PortRegs) Read32(off uint32) uint32 {
	if !p.ok(off, 4) || !p.Ports.Has32() {
		return Absent
	}
	return p.Ports.In32(p.Base + uint16(off))
}

// Write8 implements Regs.
func (p *PortRegs) Write8(off uint32, v uint8) {
	if p.ok(off, 1) && p.Ports.Has8() {
		p.Ports.Out8(p.Base+uint16(off), v)
	}
}

// Write16 implements Regs.
func (p *PortRegs) Write16(off uint32, v uint16) {
	if p.ok(off, 2) && p.Ports.Has16() {
		p.Ports.Out16(p.Base+uint16(off), v)
	}
}

// Write32 implements Regs.
func (p *PortRegs) Write32(off uint32, v uint32) {
	if p.ok(off, 4) && p.Ports.Has32() {
		p.Ports.Out32(p.Base+uint16(off), v)
	}
}
