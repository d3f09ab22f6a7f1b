package pci

import (
	"fmt"
	"strings"
)

// BARKind is what a base address register decodes.
type BARKind uint8

// BAR kinds.
const (
	BARUnused BARKind = iota // not implemented, or the upper half of a 64-bit BAR
	BARIO                    // I/O space
	BARMem32                 // 32-bit memory space (also the legacy below-1-MiB type)
	BARMem64                 // 64-bit memory space (takes this slot and the next)
)

// BAR is one sized base address register.
type BAR struct {
	Kind         BARKind
	Prefetchable bool
	// Base is the address the firmware (or juice) assigned; 0 means
	// unassigned.
	Base uint64
	// Size is the register's decode size, a power of two.
	Size uint64
}

// String formats the BAR as "io 0xc000+0x80", "mem 0xfea71000+0x1000" or
// "mem64 pref 0xfe200000+0x4000".
func (b BAR) String() string {
	var s string
	switch b.Kind {
	case BARUnused:
		return "unused"
	case BARIO:
		s = "io"
	case BARMem32:
		s = "mem"
	case BARMem64:
		s = "mem64"
	}
	if b.Prefetchable {
		s += " pref"
	}
	return fmt.Sprintf("%s %#x+%#x", s, b.Base, b.Size)
}

// IsMem reports whether the BAR decodes memory space.
func (b BAR) IsMem() bool { return b.Kind == BARMem32 || b.Kind == BARMem64 }

// Cap is one entry of a function's capability list.
type Cap struct {
	ID  uint8
	Off uint16 // offset of the capability in configuration space
}

// Function describes one function found by Scan.
type Function struct {
	Addr
	VendorID, DeviceID uint16
	// Class is base class<<16 | subclass<<8 | programming interface.
	Class    uint32
	Revision uint8
	// Header is the header layout (HeaderNormal, HeaderBridge,
	// HeaderCardBus); Multi is the multi-function bit of the header type.
	Header uint8
	Multi  bool
	// SubVendorID and SubsystemID (type 0 headers only).
	SubVendorID, SubsystemID uint16
	// IntPin is 0 (none) or 1-4 (INTA-INTD); IntLine is what the firmware
	// wrote to the interrupt line register.
	IntPin, IntLine uint8
	// BARs are the six base address registers (two on a bridge, none on
	// a CardBus bridge); a 64-bit BAR's upper slot is BARUnused.
	BARs [6]BAR
	// Caps is the capability list in list order.
	Caps []Cap
	// SecondaryBus and SubordinateBus are a bridge's bus numbers (type 1).
	SecondaryBus, SubordinateBus uint8
}

// Cap returns the offset of the first capability with ID id, or 0.
func (f *Function) Cap(id uint8) uint16 {
	for _, c := range f.Caps {
		if c.ID == id {
			return c.Off
		}
	}
	return 0
}

// Describe formats f on one line: address, IDs, name, BARs, MSI/MSI-X
// and, for a bridge, its buses. cs supplies the MSI and MSI-X details.
func (f *Function) Describe(cs ConfigSpace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %04x:%04x %s", f.Addr, f.VendorID, f.DeviceID, Name(f))
	for i, bar := range f.BARs {
		if bar.Kind != BARUnused {
			fmt.Fprintf(&b, " BAR%d %v", i, bar)
		}
	}
	if m, ok := FindMSIX(cs, f); ok {
		fmt.Fprintf(&b, " msix %d", m.TableSize)
	}
	if m, ok := FindMSI(cs, f); ok {
		fmt.Fprintf(&b, " msi %d", m.Vectors)
	}
	if f.Header == HeaderBridge {
		fmt.Fprintf(&b, " buses %02x-%02x", f.SecondaryBus, f.SubordinateBus)
	}
	return b.String()
}

// Scan enumerates the functions on bus first and, through PCI-to-PCI
// bridges, on the buses behind it, up to bus last (an ECAM window's bus
// range; 255 for the legacy mechanism). It sizes every BAR (each
// function's decoding is turned off while its BARs are probed, except on
// host bridges) and reads each capability list. Buses are scanned
// depth-first in bridge order, each at most once; bridges whose secondary
// bus is not above their own bus, or beyond last, are listed but not
// followed. At most MaxFunctions are returned.
//
// Scan writes the BARs, so it must run before drivers use the functions.
// Root buses other than first (further host bridges, which only the ACPI
// namespace describes) are not found.
func Scan(cs ConfigSpace, first, last uint8) []Function {
	s := scanner{cs: cs, last: last}
	s.bus(first)
	return s.out
}

type scanner struct {
	cs      ConfigSpace
	last    uint8
	visited [256]bool
	out     []Function
}

// bus scans one bus, then the buses behind its bridges.
func (s *scanner) bus(n uint8) {
	if s.visited[n] {
		return
	}
	s.visited[n] = true
	start := len(s.out)
	for dev := uint8(0); dev < 32 && len(s.out) < MaxFunctions; dev++ {
		f0, ok := probe(s.cs, Addr{n, dev, 0})
		if !ok {
			continue
		}
		s.out = append(s.out, f0)
		if !f0.Multi {
			continue
		}
		for fn := uint8(1); fn < 8 && len(s.out) < MaxFunctions; fn++ {
			if f, ok := probe(s.cs, Addr{n, dev, fn}); ok {
				s.out = append(s.out, f)
			}
		}
	}
	end := len(s.out)
	for i := start; i < end; i++ {
		f := &s.out[i]
		if f.Header == HeaderBridge && f.SecondaryBus > n && f.SecondaryBus <= s.last {
			s.bus(f.SecondaryBus)
		}
	}
}

// probe reads the function at a; ok is false when nothing answers.
func probe(cs ConfigSpace, a Addr) (Function, bool) {
	id := cs.Read32(a, RegVendorID)
	if id == Absent || uint16(id) == 0xFFFF || uint16(id) == 0 {
		return Function{}, false
	}
	f := Function{Addr: a, VendorID: uint16(id), DeviceID: uint16(id >> 16)}
	cr := cs.Read32(a, RegRevision)
	f.Revision, f.Class = uint8(cr), cr>>8
	ht := Read8(cs, a, RegHeaderType)
	f.Header, f.Multi = ht&headerTypeMask, ht&headerMulti != 0
	irq := cs.Read32(a, RegInterrupt)
	f.IntLine, f.IntPin = uint8(irq), uint8(irq>>8)
	nbars := 0
	capPtr := uint16(RegCapPtr)
	switch f.Header {
	case HeaderNormal:
		nbars = 6
		ss := cs.Read32(a, RegSubsystem)
		f.SubVendorID, f.SubsystemID = uint16(ss), uint16(ss>>16)
	case HeaderBridge:
		nbars = 2
		bn := cs.Read32(a, RegBusNumbers)
		f.SecondaryBus, f.SubordinateBus = uint8(bn>>8), uint8(bn>>16)
	case HeaderCardBus:
		capPtr = 0x14
	default:
		// An unknown layout: identify it, touch nothing else.
		return f, true
	}
	sizeBARs(cs, &f, nbars)
	f.Caps = walkCaps(cs, a, capPtr)
	return f, true
}

// isHostBridge reports whether f is a host bridge, whose decoding must
// never be switched off (it routes the CPU's own memory accesses).
func isHostBridge(f *Function) bool { return f.Class>>8 == 0x0600 }

// sizeBARs sizes the first n BARs of f (PCI Local Bus 3.0 section
// 6.2.5.1: write all ones, read back the writable bits, restore).
func sizeBARs(cs ConfigSpace, f *Function, n int) {
	if n == 0 {
		return
	}
	cmd := Command(cs, f.Addr)
	decode := cmd & (CmdIO | CmdMemory)
	off := decode != 0 && !isHostBridge(f)
	if off {
		SetCommand(cs, f.Addr, cmd&^decode)
	}
	for i := 0; i < n; i++ {
		if sizeBAR(cs, f, i, n) {
			i++ // the upper half of a 64-bit BAR
		}
	}
	if off {
		SetCommand(cs, f.Addr, cmd)
	}
}

// lowestBit returns the lowest set bit of mask: the decode size of a BAR
// whose writable address bits are mask.
func lowestBit(mask uint64) uint64 { return mask & -mask }

// sizeBAR sizes BAR i of n; it reports whether the BAR is 64-bit (and so
// used slot i+1).
func sizeBAR(cs ConfigSpace, f *Function, i, n int) (is64 bool) {
	a := f.Addr
	reg := uint16(RegBAR0 + 4*i)
	orig := cs.Read32(a, reg)
	if orig&1 != 0 { // I/O space
		cs.Write32(a, reg, 0xFFFF_FFFF)
		r := cs.Read32(a, reg)
		cs.Write32(a, reg, orig)
		mask := r &^ 3
		if mask == 0 {
			return false
		}
		if mask&0xFFFF_0000 == 0 {
			mask |= 0xFFFF_0000 // a 16-bit decoder: upper bits read 0
		}
		f.BARs[i] = BAR{Kind: BARIO, Base: uint64(orig &^ 3), Size: lowestBit(uint64(mask))}
		return false
	}
	typ := orig >> 1 & 3
	pref := orig&(1<<3) != 0
	switch {
	case typ == 3:
		return false // reserved encoding
	case typ == 2 && i+1 >= n:
		return false // a 64-bit BAR cannot start in the last slot
	}
	cs.Write32(a, reg, 0xFFFF_FFFF)
	lo := cs.Read32(a, reg)
	cs.Write32(a, reg, orig)
	base := uint64(orig &^ 0xF)
	kind := BARMem32
	var mask uint64
	if typ == 2 {
		kind = BARMem64
		origHi := cs.Read32(a, reg+4)
		cs.Write32(a, reg+4, 0xFFFF_FFFF)
		hi := cs.Read32(a, reg+4)
		cs.Write32(a, reg+4, origHi)
		mask = uint64(hi)<<32 | uint64(lo&^0xF)
		base |= uint64(origHi) << 32
	} else if lo&^0xF != 0 {
		mask = 0xFFFF_FFFF_0000_0000 | uint64(lo&^0xF)
	}
	size := lowestBit(mask)
	if size == 0 {
		return typ == 2 // not implemented
	}
	f.BARs[i] = BAR{Kind: kind, Prefetchable: pref, Base: base, Size: size}
	return typ == 2
}

// walkCaps reads the capability list whose pointer register is at ptrReg.
func walkCaps(cs ConfigSpace, a Addr, ptrReg uint16) []Cap {
	if Read16(cs, a, RegStatus)&statusCapList == 0 {
		return nil
	}
	var caps []Cap
	p := uint16(Read8(cs, a, ptrReg)) &^ 3
	for n := 0; p >= 0x40 && p < 0x100 && n < MaxCaps; n++ {
		h := Read16(cs, a, p)
		caps = append(caps, Cap{ID: uint8(h), Off: p})
		p = uint16(h>>8) &^ 3
	}
	return caps
}
