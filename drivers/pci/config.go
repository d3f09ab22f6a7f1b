package pci

import (
	"sync"

	"juice/drivers/portio"
	"juice/mm/phys"
)

// ECAM reaches configuration space through the enhanced configuration
// access mechanism (PCI Express 4.0 section 7.2.2): function bus:dev.fn's
// 4 KiB space is memory at Base + bus<<20 | dev<<15 | fn<<12. Base is the
// MCFG allocation's base address, which corresponds to bus 0 even when
// StartBus is not 0 (PCI Firmware Specification 3.2, table 4-3).
//
// The window must be mapped uncached (juice's direct map maps the
// firmware-reserved range that holds it so). Reads and writes are single
// aligned dword accesses.
type ECAM struct {
	Mem              *phys.Mem
	Base             uint64
	StartBus, EndBus uint8
}

// addr returns the physical address of a's register off, or false when a
// is outside the window's bus range.
func (e *ECAM) addr(a Addr, off uint16) (uint64, bool) {
	if e == nil || e.Mem == nil || !a.valid() || a.Bus < e.StartBus || a.Bus > e.EndBus || off >= 0x1000 {
		return 0, false
	}
	return e.Base + uint64(a.Bus)<<20 | uint64(a.Dev)<<15 | uint64(a.Fn)<<12 | uint64(off&^3), true
}

// Read32 implements ConfigSpace.
func (e *ECAM) Read32(a Addr, off uint16) uint32 {
	pa, ok := e.addr(a, off)
	if !ok {
		return Absent
	}
	v, ok := e.Mem.Load32(pa)
	if !ok {
		return Absent
	}
	return v
}

// Write32 implements ConfigSpace.
func (e *ECAM) Write32(a Addr, off uint16, v uint32) {
	if pa, ok := e.addr(a, off); ok {
		e.Mem.Store32(pa, v)
	}
}

// Configuration mechanism #1 ports (PCI Local Bus 3.0 section 3.2.2.3.2).
const (
	PortConfigAddress uint16 = 0xCF8
	PortConfigData    uint16 = 0xCFC
	configEnable             = 1 << 31
)

// Legacy reaches the first 256 bytes of configuration space through
// configuration mechanism #1: a dword written to 0xCF8 selects the
// register, 0xCFC reads or writes it. The address-then-data pair is not
// atomic, so a mutex serializes accesses (juice is the only user of the
// ports).
type Legacy struct {
	Ports *portio.Ports
	mu    sync.Mutex
}

// address returns the 0xCF8 value selecting a's register off.
func legacyAddress(a Addr, off uint16) uint32 {
	return configEnable | uint32(a.Bus)<<16 | uint32(a.Dev)<<11 | uint32(a.Fn)<<8 | uint32(off&0xFC)
}

// Read32 implements ConfigSpace.
func (l *Legacy) Read32(a Addr, off uint16) uint32 {
	if l == nil || !l.Ports.Has32() || !a.valid() || off >= 0x100 {
		return Absent
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Ports.Out32(PortConfigAddress, legacyAddress(a, off))
	return l.Ports.In32(PortConfigData)
}

// Write32 implements ConfigSpace.
func (l *Legacy) Write32(a Addr, off uint16, v uint32) {
	if l == nil || !l.Ports.Has32() || !a.valid() || off >= 0x100 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Ports.Out32(PortConfigAddress, legacyAddress(a, off))
	l.Ports.Out32(PortConfigData, v)
}
