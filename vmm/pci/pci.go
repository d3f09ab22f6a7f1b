// Package pci models the conventional PCI bus 0 juice gives a guest that
// wants PCI devices (virtio-pci): a host bridge at slot 0, up to 31
// single-function devices with type-0 configuration headers (PCI Local
// Bus 3.0 chapter 6, PCI Express 4.0 section 7.5.1), 32- and 64-bit
// memory BARs, MSI-X (PCI 3.0 section 6.8.2) and INTx routed to I/O APIC
// GSIs.
//
// The guest reaches configuration space through configuration mechanism
// #1 (ports 0xCF8/0xCFC) and through ECAM (MMCONFIG, 1 MiB at
// ECAMBase for bus 0), and the devices' BARs through one MMIO window
// (WindowBase, WindowSize) that decodes the BAR addresses the guest
// programmed. A Bus exposes each of these as a vmm.PortDevice or
// vmm.MMIODevice; the VM builder registers them (see Bus).
//
// Everything a guest can touch is treated as hostile: every access of
// every size at every offset is validated, accesses the hardware would
// leave undefined read all ones (or zero where the specification says
// so) and are otherwise ignored. The accessors (config ports, ECAM,
// window, SetINTx, SignalMSIX) run on the VM-exit path: they do not
// allocate, do bounded work and are safe for concurrent use. Each
// Function has a mutex for its registers; it is never held while a BAR
// handler, the irq callback or the msi callback runs. Only the INTx
// line update holds the Bus's line mutex across irq, so that line
// changes reach the interrupt controller in order (see NewBus).
//
// Building functions and buses (NewFunction, NewBus, Add) allocates.
package pci

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Guest-physical layout and ports (the platform registers the Bus's
// devices there, and the ACPI tables describe the same values).
const (
	// WindowBase and WindowSize are the 32-bit MMIO window BARs are
	// decoded in: 0xC000_0000-0xDFFF_FFFF.
	WindowBase = 0xC000_0000
	WindowSize = 0x2000_0000
	// ECAMBase and ECAMSize are the PCIe ECAM (MMCONFIG) region of bus
	// 0: 32 devices x 8 functions x 4 KiB.
	ECAMBase = 0xE000_0000
	ECAMSize = 1 << 20
	// ConfigAddressPort and ConfigDataPort are configuration mechanism
	// #1's address register (0xCF8) and data window (0xCFC); each is
	// ConfigPortLen ports long.
	ConfigAddressPort = 0xCF8
	ConfigDataPort    = 0xCFC
	ConfigPortLen     = 4
	// INTxGSIBase is the GSI of the first INTx line: pin p (1 INTA .. 4
	// INTD) of the device in slot s drives GSI INTxGSIBase + ((s + p -
	// 1) & 3), level-triggered (the ACPI _PRT says the same).
	INTxGSIBase = 20
	// Slots is the number of device numbers on the bus; slot 0 is the
	// host bridge.
	Slots = 32
	// MaxMSIXVectors is the largest MSI-X table (PCI 3.0: 2048 entries).
	MaxMSIXVectors = 2048
	// MSIAddrBase and MSIAddrMask: an MSI address is valid when
	// addr&MSIAddrMask == MSIAddrBase (the x86 interrupt address range
	// 0xFEEx_xxxx); others are dropped and counted (Bus.DroppedMSIs).
	MSIAddrBase = 0xFEE0_0000
	MSIAddrMask = 0xFFFF_FFFF_FFF0_0000
)

// Host bridge identity (slot 0): the IDs QEMU uses for its generic PCIe
// host bridge (gpex), class "host bridge".
const (
	HostBridgeVendorID = 0x1b36
	HostBridgeDeviceID = 0x0008
	HostBridgeClass    = 0x060000
)

// Configuration header offsets (type 0).
const (
	regVendorID   = 0x00
	regCommand    = 0x04
	regClassRev   = 0x08
	regCacheLine  = 0x0C
	regBAR0       = 0x10
	regBAR5       = 0x24
	regSubsystem  = 0x2C
	regCapPtr     = 0x34
	regIntLine    = 0x3C
	capStart      = 0x40  // first capability
	cfgLegacySize = 0x100 // type-0 header plus capabilities
	cfgSize       = 0x1000
)

// Command register bits.
const (
	// CommandMemory enables the function's memory BARs.
	CommandMemory = 1 << 1
	// CommandBusMaster lets the function master the bus (DMA, MSI).
	CommandBusMaster = 1 << 2
	// CommandINTxDisable keeps the function's INTx line deasserted.
	CommandINTxDisable = 1 << 10

	commandWritable = CommandMemory | CommandBusMaster | CommandINTxDisable
)

// Status register bits.
const (
	statusINTx = 1 << 3 // interrupt status
	statusCaps = 1 << 4 // capabilities list
)

// BAR low bits.
const (
	barType64   = 2 << 1 // memory type: 64-bit
	barPrefetch = 1 << 3
)

// Capability IDs and MSI-X layout.
const (
	// CapIDMSIX is the MSI-X capability ID.
	CapIDMSIX = 0x11
	// CapIDVendor is the vendor-specific capability ID (virtio-pci's).
	CapIDVendor = 0x09

	msixCapLen      = 12
	msixCtrlMask    = 1 << 14 // function mask
	msixCtrlEnable  = 1 << 15
	msixCtrlRW      = msixCtrlMask | msixCtrlEnable
	msixEntrySize   = 16
	msixVectorMask  = 1 // vector control: mask bit
	msixAddrLoWrite = 0xFFFF_FFFC
)

// BARHandler serves a BAR's registers. off is the offset from the BAR's
// base, size is 1, 2, 4 or 8 and the access lies wholly inside the BAR.
// The methods run on the exit path without the function's lock held:
// they may call the Function's SetINTx and SignalMSIX.
type BARHandler interface {
	BARRead(off uint64, size uint8) uint64
	BARWrite(off uint64, size uint8, value uint64)
}

// BARConfig describes one memory BAR.
type BARConfig struct {
	// Size is the BAR's size in bytes: 0 for an unused BAR, else a power
	// of two, at least 4096; at most 2 GiB for a 32-bit BAR. A BAR
	// larger than WindowSize can never be decoded.
	Size uint64
	// Is64 makes it a 64-bit BAR: it uses this slot and the next, which
	// must be unused (zero BARConfig), so it cannot be BAR 5.
	Is64 bool
	// Prefetchable sets the BAR's prefetchable bit.
	Prefetchable bool
	// Handler serves accesses to the BAR (other than to the MSI-X table
	// and PBA). Nil: reads return all ones, writes are ignored.
	Handler BARHandler
}

// FunctionConfig describes a PCI function.
type FunctionConfig struct {
	// VendorID, DeviceID, SubsystemVendorID and SubsystemID are the
	// identification registers. VendorID 0xFFFF is refused (it means
	// "no function").
	VendorID, DeviceID, SubsystemVendorID, SubsystemID uint16
	// ClassCode is class<<16 | subclass<<8 | prog-if (24 bits).
	ClassCode uint32
	// Revision is the revision ID.
	Revision uint8
	// BARs are the six BAR slots (a 64-bit BAR takes two).
	BARs [6]BARConfig
	// InterruptPin is 0 (no INTx), 1 (INTA) .. 4 (INTD).
	InterruptPin uint8
	// MSIXVectors is the MSI-X table size, 0 (no MSI-X) to
	// MaxMSIXVectors. The table (16 bytes per vector) and the pending
	// bit array (8 bytes per 64 vectors) live in BAR MSIXBAR (the lower
	// slot of a 64-bit BAR) at MSIXTableOffset and MSIXPBAOffset: both
	// 8-byte aligned, inside the BAR and not overlapping. The Bus's
	// window serves them; the BAR's Handler never sees those accesses.
	MSIXVectors                    int
	MSIXBAR                        int
	MSIXTableOffset, MSIXPBAOffset uint32
	// VendorCaps are extra capabilities with ID CapIDVendor (virtio-pci's
	// capabilities), linked into the list in order after MSI-X. Each
	// entry is the capability's bytes from its third byte (cap_len) on:
	// pci writes cap_vndr (CapIDVendor) and cap_next before it, and sets
	// the entry's first byte, cap_len, to len(entry)+2 (the caller's
	// value there is ignored). So an entry must be at least 1 byte long.
	// Every capability starts dword-aligned at or after 0x40 and all of
	// them must fit below 0x100. They are read-only to the guest.
	VendorCaps [][]byte
}

// barInfo is one BAR slot's fixed description.
type barInfo struct {
	size     uint64 // 0: unused (or upper half)
	is64     bool
	upper    bool   // this slot is the upper dword of the previous 64-bit BAR
	flags    uint32 // read-only low bits
	lowMask  uint32 // writable bits of the low dword
	highMask uint32 // writable bits of the high dword (64-bit)
	handler  BARHandler
}

// Function is one PCI function: its type-0 configuration header, BARs,
// capabilities and MSI-X state. Create it with NewFunction and put it on
// a Bus with Bus.Add. Its methods are safe for concurrent use.
type Function struct {
	// Fixed after NewFunction.
	ident    uint32 // vendor | device<<16
	classRev uint32 // revision | class<<8
	subsys   uint32 // subsystem vendor | subsystem<<16
	pin      uint8
	capPtr   uint8
	bars     [6]barInfo
	caps     [cfgLegacySize]byte // the capability list image (0x40-0xFF); index = register
	capOffs  []uint8
	msixN    int
	msixCap  uint16 // offset of the MSI-X capability (0: none)
	msixBAR  int
	tableOff uint64
	tableEnd uint64
	pbaOff   uint64
	pbaEnd   uint64

	mu sync.Mutex // guards the fields below
	// Set by Bus.Add.
	bus  *Bus
	slot int
	// Registers.
	command   uint16
	cacheLine uint8
	intLine   uint8
	barAddr   [6]uint64 // address bits of each BAR (lower slot of a 64-bit BAR)
	msixCtrl  uint16    // function mask and enable bits
	table     []uint32  // MSI-X table: 4 dwords per vector
	pba       []uint64  // MSI-X pending bits
	level     bool      // the device's INTx level (SetINTx)

	// dec is the decoded base of each BAR for the window, published under
	// mu and read without it: 0 when the BAR does not decode (memory
	// space disabled, unused, or not wholly inside the window).
	dec [6]atomic.Uint64
}

// ErrConfig is wrapped by the errors NewFunction and Bus.Add return.
var ErrConfig = errors.New("pci: invalid configuration")

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
}

// NewFunction validates c and returns the function in its reset state:
// command register 0 (no decoding, no bus mastering, INTx enabled), BARs
// at address 0, MSI-X disabled with every vector masked.
func NewFunction(c FunctionConfig) (*Function, error) {
	f := &Function{
		ident:    uint32(c.VendorID) | uint32(c.DeviceID)<<16,
		classRev: uint32(c.Revision) | c.ClassCode<<8,
		subsys:   uint32(c.SubsystemVendorID) | uint32(c.SubsystemID)<<16,
		pin:      c.InterruptPin,
	}
	switch {
	case c.VendorID == 0xFFFF:
		return nil, bad("vendor ID 0xFFFF")
	case c.ClassCode > 0xFFFFFF:
		return nil, bad("class code %#x wider than 24 bits", c.ClassCode)
	case c.InterruptPin > 4:
		return nil, bad("interrupt pin %d not in 0..4", c.InterruptPin)
	}
	for i := 0; i < 6; i++ {
		b := c.BARs[i]
		if f.bars[i].upper {
			if b.Size != 0 || b.Is64 || b.Prefetchable || b.Handler != nil {
				return nil, bad("BAR %d is the upper half of 64-bit BAR %d and must be unused", i, i-1)
			}
			continue
		}
		if b.Size == 0 {
			if b.Is64 || b.Prefetchable || b.Handler != nil {
				return nil, bad("BAR %d has size 0 but other settings", i)
			}
			continue
		}
		switch {
		case b.Size&(b.Size-1) != 0 || b.Size < 4096:
			return nil, bad("BAR %d size %#x not a power of two >= 4096", i, b.Size)
		case !b.Is64 && b.Size > 1<<31:
			return nil, bad("32-bit BAR %d size %#x above 2 GiB", i, b.Size)
		case b.Is64 && i == 5:
			return nil, bad("BAR 5 cannot be 64-bit")
		case b.Size > 1<<62:
			return nil, bad("BAR %d size %#x too large", i, b.Size)
		}
		mask := ^(b.Size - 1)
		bi := barInfo{size: b.Size, is64: b.Is64, handler: b.Handler, lowMask: uint32(mask) &^ 0xF}
		if b.Is64 {
			bi.flags |= barType64
			bi.highMask = uint32(mask >> 32)
			f.bars[i+1].upper = true
		}
		if b.Prefetchable {
			bi.flags |= barPrefetch
		}
		f.bars[i] = bi
	}
	if err := f.buildCaps(&c); err != nil {
		return nil, err
	}
	return f, nil
}

// buildCaps validates the MSI-X and vendor capabilities and lays out the
// capability list image.
func (f *Function) buildCaps(c *FunctionConfig) error {
	n := c.MSIXVectors
	if n < 0 || n > MaxMSIXVectors {
		return bad("MSIXVectors %d not in 0..%d", n, MaxMSIXVectors)
	}
	type capRange struct{ off, len int }
	var list []capRange
	off := capStart
	if n > 0 {
		if c.MSIXBAR < 0 || c.MSIXBAR > 5 || f.bars[c.MSIXBAR].size == 0 {
			return bad("MSI-X BAR %d is not a BAR", c.MSIXBAR)
		}
		size := f.bars[c.MSIXBAR].size
		t, p := uint64(c.MSIXTableOffset), uint64(c.MSIXPBAOffset)
		tl, pl := uint64(n)*msixEntrySize, uint64((n+63)/64)*8
		switch {
		case t%8 != 0 || p%8 != 0:
			return bad("MSI-X table offset %#x or PBA offset %#x not 8-byte aligned", t, p)
		case t+tl > size || p+pl > size:
			return bad("MSI-X table [%#x,+%#x) or PBA [%#x,+%#x) outside BAR %d (%#x bytes)", t, tl, p, pl, c.MSIXBAR, size)
		case t < p+pl && p < t+tl:
			return bad("MSI-X table [%#x,+%#x) overlaps PBA [%#x,+%#x)", t, tl, p, pl)
		}
		f.msixN, f.msixBAR = n, c.MSIXBAR
		f.tableOff, f.tableEnd, f.pbaOff, f.pbaEnd = t, t+tl, p, p+pl
		f.table = make([]uint32, 4*n)
		for v := 0; v < n; v++ {
			f.table[4*v+3] = msixVectorMask
		}
		f.pba = make([]uint64, (n+63)/64)
		f.msixCap = uint16(off)
		cp := f.caps[off:]
		cp[0] = CapIDMSIX
		put16(cp[2:], uint16(n-1))
		put32(cp[4:], uint32(t)|uint32(c.MSIXBAR))
		put32(cp[8:], uint32(p)|uint32(c.MSIXBAR))
		list = append(list, capRange{off, msixCapLen})
		off += msixCapLen
	}
	for i, vc := range c.VendorCaps {
		l := len(vc) + 2
		if len(vc) < 1 || off+l > cfgLegacySize {
			return bad("vendor capability %d (%d bytes) empty or past 0x100 (at %#x)", i, len(vc), off)
		}
		cp := f.caps[off:]
		cp[0] = CapIDVendor
		copy(cp[2:], vc)
		cp[2] = byte(l)
		list = append(list, capRange{off, l})
		f.capOffs = append(f.capOffs, uint8(off))
		off = (off + l + 3) &^ 3
	}
	for i := range list {
		if i+1 < len(list) {
			f.caps[list[i].off+1] = byte(list[i+1].off)
		}
	}
	if len(list) > 0 {
		f.capPtr = capStart
	}
	return nil
}

func put16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
func put32(b []byte, v uint32) { put16(b, uint16(v)); put16(b[2:], uint16(v>>16)) }
func get32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// CapOffsets returns where each FunctionConfig.VendorCaps entry landed in
// configuration space (the offset of its cap_vndr byte).
func (f *Function) CapOffsets() []uint8 { return append([]uint8(nil), f.capOffs...) }

// MSIXEnabled reports whether the guest has enabled MSI-X.
func (f *Function) MSIXEnabled() bool {
	f.mu.Lock()
	e := f.msixCtrl&msixCtrlEnable != 0
	f.mu.Unlock()
	return e
}

// BusMaster reports whether the guest has enabled bus mastering
// (Command bit 2): a device should not touch guest memory without it.
func (f *Function) BusMaster() bool {
	f.mu.Lock()
	e := f.command&CommandBusMaster != 0
	f.mu.Unlock()
	return e
}

// Command returns the command register.
func (f *Function) Command() uint16 {
	f.mu.Lock()
	c := f.command
	f.mu.Unlock()
	return c
}

// status returns the status register. f.mu is held.
func (f *Function) status() uint16 {
	var s uint16
	if f.capPtr != 0 {
		s |= statusCaps
	}
	if f.level {
		s |= statusINTx
	}
	return s
}

// readDword returns the configuration dword at reg (dword-aligned, below
// cfgSize). f.mu is held.
func (f *Function) readDword(reg uint16) uint32 {
	switch {
	case reg >= cfgLegacySize:
		return 0 // no extended capabilities
	case reg >= capStart:
		v := get32(f.caps[reg : reg+4])
		if f.msixCap != 0 && reg == f.msixCap {
			v |= uint32(f.msixCtrl) << 16
		}
		return v
	case reg >= regBAR0 && reg <= regBAR5:
		return f.barRead(int(reg-regBAR0) / 4)
	}
	switch reg {
	case regVendorID:
		return f.ident
	case regCommand:
		return uint32(f.command) | uint32(f.status())<<16
	case regClassRev:
		return f.classRev
	case regCacheLine:
		return uint32(f.cacheLine) // latency timer, header type 0 (single function), BIST: 0
	case regSubsystem:
		return f.subsys
	case regCapPtr:
		return uint32(f.capPtr)
	case regIntLine:
		return uint32(f.intLine) | uint32(f.pin)<<8
	}
	return 0 // CardBus CIS, expansion ROM (none), reserved
}

// barRead returns BAR slot i's register. f.mu is held.
func (f *Function) barRead(i int) uint32 {
	b := &f.bars[i]
	switch {
	case b.upper:
		return uint32(f.barAddr[i-1] >> 32)
	case b.size == 0:
		return 0
	}
	return uint32(f.barAddr[i]) | b.flags
}

// Side effects of a configuration write, handled after f.mu is released.
const (
	effINTx   = 1 << iota // the INTx output may have changed
	effUnmask             // MSI-X vectors may have become deliverable
)

// writeDword writes the bytes of v selected by mask (whole bytes) to the
// configuration dword at reg, applying each register's write rules, and
// returns the side effects. f.mu is held.
func (f *Function) writeDword(reg uint16, v, mask uint32) int {
	merge := func(old uint32) uint32 { return old&^mask | v&mask }
	switch {
	case reg >= cfgLegacySize:
		return 0
	case reg >= capStart:
		if f.msixCap == 0 || reg != f.msixCap || mask&0xFF00_0000 == 0 {
			return 0 // vendor capabilities and MSI-X's other fields are read-only
		}
		old := f.msixCtrl
		f.msixCtrl = uint16(merge(uint32(old)<<16)>>16) & msixCtrlRW
		eff := 0
		if (old^f.msixCtrl)&msixCtrlEnable != 0 {
			eff |= effINTx
		}
		if old != f.msixCtrl {
			eff |= effUnmask
		}
		return eff
	case reg >= regBAR0 && reg <= regBAR5:
		f.barWrite(int(reg-regBAR0)/4, v, mask)
		f.publish()
		return 0
	}
	switch reg {
	case regCommand:
		old := f.command
		f.command = uint16(merge(uint32(old))) & commandWritable
		f.publish()
		if (old^f.command)&CommandINTxDisable != 0 {
			return effINTx
		}
	case regCacheLine:
		f.cacheLine = uint8(merge(uint32(f.cacheLine)))
	case regIntLine:
		f.intLine = uint8(merge(uint32(f.intLine)))
	}
	return 0
}

// barWrite writes BAR slot i. f.mu is held.
func (f *Function) barWrite(i int, v, mask uint32) {
	b := &f.bars[i]
	switch {
	case b.upper:
		lo := &f.barAddr[i-1]
		hi := (uint32(*lo>>32)&^mask | v&mask) & f.bars[i-1].highMask
		*lo = *lo&0xFFFF_FFFF | uint64(hi)<<32
	case b.size != 0:
		a := &f.barAddr[i]
		low := (uint32(*a)&^mask | v&mask) & b.lowMask
		*a = *a&^0xFFFF_FFFF | uint64(low)
	}
}

// publish recomputes the window decode state of every BAR. f.mu is held.
func (f *Function) publish() {
	for i := range f.bars {
		b := &f.bars[i]
		if b.size == 0 {
			continue
		}
		base := f.barAddr[i]
		if f.command&CommandMemory == 0 || b.size > WindowSize ||
			base < WindowBase || base > WindowBase+WindowSize-b.size {
			base = 0
		}
		f.dec[i].Store(base)
	}
}

// span is where an access of 1, 2, 4 or 8 bytes falls in an array of
// little-endian dwords: n (1 or 2) dwords from index idx; for n == 1 the
// bytes are at shift with mask (in the dword's bit positions).
type span struct {
	idx   uint64
	n     int
	shift uint
	mask  uint32
}

// spanOf returns the span of an access of size bytes at byte offset off.
// Only accesses inside one dword and aligned 8-byte accesses are valid.
func spanOf(off uint64, size uint8) (span, bool) {
	switch size {
	case 8:
		if off&7 != 0 {
			return span{}, false
		}
		return span{idx: off >> 2, n: 2, mask: 0xFFFF_FFFF}, true
	case 1, 2, 4:
		if off&3+uint64(size) > 4 {
			return span{}, false
		}
		sh := uint(off&3) * 8
		return span{idx: off >> 2, n: 1, shift: sh, mask: uint32(ones(size)) << sh}, true
	}
	return span{}, false
}

// ones returns the all-ones value of an access of size bytes (all 64
// bits for an invalid size).
func ones(size uint8) uint64 {
	switch size {
	case 1:
		return 0xFF
	case 2:
		return 0xFFFF
	case 4:
		return 0xFFFF_FFFF
	}
	return ^uint64(0)
}

// readConfig returns size bytes at configuration offset reg (below
// cfgSize). Accesses crossing a dword (other than aligned 8-byte ones)
// read all ones.
func (f *Function) readConfig(reg uint64, size uint8) uint64 {
	s, ok := spanOf(reg, size)
	if !ok || reg >= cfgSize {
		return ones(size)
	}
	f.mu.Lock()
	lo := f.readDword(uint16(s.idx << 2))
	var hi uint32
	if s.n == 2 {
		hi = f.readDword(uint16(s.idx<<2 + 4))
	}
	f.mu.Unlock()
	if s.n == 2 {
		return uint64(lo) | uint64(hi)<<32
	}
	return uint64(lo&s.mask) >> s.shift
}

// writeConfig writes size bytes at configuration offset reg (below
// cfgSize); invalid accesses are ignored.
func (f *Function) writeConfig(reg uint64, size uint8, v uint64) {
	s, ok := spanOf(reg, size)
	if !ok || reg >= cfgSize {
		return
	}
	f.mu.Lock()
	var eff int
	if s.n == 2 {
		eff = f.writeDword(uint16(s.idx<<2), uint32(v), 0xFFFF_FFFF)
		eff |= f.writeDword(uint16(s.idx<<2+4), uint32(v>>32), 0xFFFF_FFFF)
	} else {
		eff = f.writeDword(uint16(s.idx<<2), uint32(v)<<s.shift, s.mask)
	}
	f.mu.Unlock()
	f.effects(eff)
}

// effects carries out the side effects of a register write. No lock is
// held.
func (f *Function) effects(eff int) {
	if eff&effINTx != 0 {
		f.updateINTx()
	}
	if eff&effUnmask != 0 {
		f.flushPending()
	}
}

// SetINTx sets the device's INTx level. The line to the interrupt
// controller (GSI INTxGSIBase + ((slot + pin - 1) & 3), wired-OR with the
// other functions on that line) is asserted while the level is high,
// Command.INTxDisable is clear and MSI-X is disabled; the status
// register's interrupt bit shows the level itself. A function without an
// interrupt pin, or not yet on a bus, only records the level.
func (f *Function) SetINTx(level bool) {
	f.mu.Lock()
	changed := f.level != level
	f.level = level
	f.mu.Unlock()
	if changed {
		f.updateINTx()
	}
}

// updateINTx drives the function's share of its INTx line from its
// current state. No lock is held on entry.
func (f *Function) updateINTx() {
	f.mu.Lock()
	b := f.bus
	f.mu.Unlock()
	if b == nil || f.pin == 0 {
		return
	}
	b.lineMu.Lock()
	f.mu.Lock()
	want := f.level && f.command&CommandINTxDisable == 0 && f.msixCtrl&msixCtrlEnable == 0
	slot := f.slot
	f.mu.Unlock()
	line := (slot + int(f.pin) - 1) & 3
	bit := uint32(1) << uint(slot&31)
	if want {
		b.asserted[line] |= bit
	} else {
		b.asserted[line] &^= bit
	}
	out := b.asserted[line] != 0
	if out != b.lineOut[line] {
		b.lineOut[line] = out
		if b.irq != nil {
			b.irq(INTxGSIBase+line, out)
		}
	}
	b.lineMu.Unlock()
}

// SignalMSIX signals MSI-X vector and reports whether MSI-X is enabled;
// when it is not, nothing happens and the caller may use INTx instead.
// With MSI-X enabled the vector's message is sent (through the Bus's msi
// callback, if its address is valid) unless the function or the vector
// is masked, in which case the vector's pending bit is set and the
// message goes out when it is unmasked. A vector outside the table (such
// as virtio's NO_VECTOR) is dropped and counted.
func (f *Function) SignalMSIX(vector int) bool {
	f.mu.Lock()
	if f.msixCtrl&msixCtrlEnable == 0 {
		f.mu.Unlock()
		return false
	}
	b := f.bus
	if vector < 0 || vector >= f.msixN {
		f.mu.Unlock()
		if b != nil {
			b.dropped.Add(1)
		}
		return true
	}
	e := f.table[4*vector : 4*vector+4]
	if f.msixCtrl&msixCtrlMask != 0 || e[3]&msixVectorMask != 0 {
		f.pba[vector/64] |= 1 << uint(vector%64)
		f.mu.Unlock()
		return true
	}
	addr, data := uint64(e[0])|uint64(e[1])<<32, e[2]
	f.mu.Unlock()
	if b != nil {
		b.sendMSI(addr, data)
	}
	return true
}

// flushPending sends the messages of pending vectors that are now
// deliverable (MSI-X enabled, function and vector unmasked), clearing
// their pending bits, in vector order. No lock is held on entry; the
// lock is dropped around each message, and the scan makes one pass over
// the table.
func (f *Function) flushPending() {
	for next := 0; next < f.msixN; {
		f.mu.Lock()
		v := -1
		if f.msixCtrl&(msixCtrlEnable|msixCtrlMask) == msixCtrlEnable {
			v = f.nextPending(next)
		}
		if v < 0 {
			f.mu.Unlock()
			return
		}
		f.pba[v/64] &^= 1 << uint(v%64)
		e := f.table[4*v : 4*v+4]
		addr, data := uint64(e[0])|uint64(e[1])<<32, e[2]
		b := f.bus
		f.mu.Unlock()
		if b != nil {
			b.sendMSI(addr, data)
		}
		next = v + 1
	}
}

// nextPending returns the first vector at or after v whose pending bit is
// set and which is not masked, or -1. f.mu is held.
func (f *Function) nextPending(v int) int {
	for v >= 0 && v < f.msixN {
		w := f.pba[v/64] >> uint(v%64)
		if w == 0 {
			v = (v/64 + 1) * 64
			continue
		}
		v += bits.TrailingZeros64(w)
		if v < f.msixN && f.table[4*v+3]&msixVectorMask == 0 {
			return v
		}
		v++
	}
	return -1
}

// msixRegion says which MSI-X structure an access at BAR offset off of
// size bytes in BAR bar touches: 1 the table, 2 the PBA, 0 neither, -1
// both or only part of one (an invalid access).
func (f *Function) msixRegion(bar int, off uint64, size uint8) int {
	if f.msixN == 0 || bar != f.msixBAR {
		return 0
	}
	end := off + uint64(size)
	switch {
	case off >= f.tableOff && end <= f.tableEnd:
		return 1
	case off >= f.pbaOff && end <= f.pbaEnd:
		return 2
	case off < f.tableEnd && end > f.tableOff, off < f.pbaEnd && end > f.pbaOff:
		return -1
	}
	return 0
}

// msixRead reads the MSI-X table (region 1) or PBA (region 2) at BAR
// offset off.
func (f *Function) msixRead(region int, off uint64, size uint8) uint64 {
	var s span
	var ok bool
	if region == 1 {
		s, ok = spanOf(off-f.tableOff, size)
	} else {
		s, ok = spanOf(off-f.pbaOff, size)
	}
	if !ok {
		return ones(size)
	}
	f.mu.Lock()
	lo := f.msixDword(region, s.idx)
	var hi uint32
	if s.n == 2 {
		hi = f.msixDword(region, s.idx+1)
	}
	f.mu.Unlock()
	if s.n == 2 {
		return uint64(lo) | uint64(hi)<<32
	}
	return uint64(lo&s.mask) >> s.shift
}

// msixDword returns dword i of the table or PBA. f.mu is held.
func (f *Function) msixDword(region int, i uint64) uint32 {
	if region == 1 {
		if i < uint64(len(f.table)) {
			return f.table[i]
		}
		return 0
	}
	if i/2 < uint64(len(f.pba)) {
		return uint32(f.pba[i/2] >> (32 * (i & 1)))
	}
	return 0
}

// msixWrite writes the MSI-X table (region 1); the PBA (region 2) is
// read-only.
func (f *Function) msixWrite(region int, off uint64, size uint8, v uint64) {
	if region != 1 {
		return
	}
	s, ok := spanOf(off-f.tableOff, size)
	if !ok {
		return
	}
	f.mu.Lock()
	var eff int
	if s.n == 2 {
		eff = f.tableWrite(s.idx, uint32(v), 0xFFFF_FFFF)
		eff |= f.tableWrite(s.idx+1, uint32(v>>32), 0xFFFF_FFFF)
	} else {
		eff = f.tableWrite(s.idx, uint32(v)<<s.shift, s.mask)
	}
	f.mu.Unlock()
	f.effects(eff)
}

// tableWrite writes the bytes of v selected by mask to table dword i and
// returns effUnmask if a vector was unmasked. f.mu is held.
func (f *Function) tableWrite(i uint64, v, mask uint32) int {
	if i >= uint64(len(f.table)) {
		return 0
	}
	old := f.table[i]
	nv := old&^mask | v&mask
	switch i & 3 {
	case 0:
		nv &= msixAddrLoWrite // message address: dword aligned
	case 3:
		nv &= msixVectorMask // vector control: only the mask bit
	}
	f.table[i] = nv
	if i&3 == 3 && old&^nv&msixVectorMask != 0 {
		return effUnmask
	}
	return 0
}
