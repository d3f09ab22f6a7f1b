// Package pci finds and sets up the host's PCI and PCI Express functions
// (PCI Local Bus 3.0 chapter 6, PCI Express Base 4.0 section 7):
// configuration space through ECAM (the window the ACPI MCFG describes)
// or, without one, configuration mechanism #1 (ports 0xCF8/0xCFC);
// enumeration of buses, devices and functions, following PCI-to-PCI
// bridges; BAR sizing (I/O, 32- and 64-bit memory, prefetchable);
// the capability list (MSI, MSI-X, vendor-specific ones such as
// virtio's); and enabling decoding, bus mastering and message-signalled
// interrupts.
//
// Hardware is reached only through two seams: ConfigSpace (an ECAM
// window over juice/mm/phys, the legacy ports over juice/drivers/portio,
// or a modelled configuration space in tests) and Regs (a BAR's
// registers: MMIO through the direct map, or a model). Everything else is
// pure decoding, so `go test` runs it on recorded configuration spaces.
//
// Configuration space is input from the hardware and treated as such:
// every pointer is bounds-checked, capability lists and bridge chains
// are walked with bounded loops, and a function reading all ones is
// absent. This is thread-context code (boot-time enumeration), not
// kernel context: it may allocate.
package pci

import "fmt"

// Addr names a function: bus, device (0-31) and function (0-7) number in
// PCI segment 0.
type Addr struct {
	Bus, Dev, Fn uint8
}

// String formats a as Linux does: "bb:dd.f" in hex.
func (a Addr) String() string { return fmt.Sprintf("%02x:%02x.%x", a.Bus, a.Dev, a.Fn) }

// valid reports whether the device and function numbers are in range.
func (a Addr) valid() bool { return a.Dev < 32 && a.Fn < 8 }

// ConfigSpace is the seam to configuration space. Offsets are byte
// offsets into the function's space; accesses are dword-sized and the
// two low bits of off are ignored. A read of a function that does not
// exist, or of an offset the mechanism cannot reach (above 0xFF through
// the legacy ports, above 0xFFF anywhere), returns all ones; such a
// write is dropped.
type ConfigSpace interface {
	Read32(a Addr, off uint16) uint32
	Write32(a Addr, off uint16, v uint32)
}

// Read16 reads the 16-bit register at off (2-byte aligned).
func Read16(cs ConfigSpace, a Addr, off uint16) uint16 {
	return uint16(cs.Read32(a, off) >> (8 * (off & 2)))
}

// Read8 reads the byte register at off.
func Read8(cs ConfigSpace, a Addr, off uint16) uint8 {
	return uint8(cs.Read32(a, off) >> (8 * (off & 3)))
}

// Configuration header registers (types 0 and 1).
const (
	RegVendorID    = 0x00
	RegDeviceID    = 0x02
	RegCommand     = 0x04
	RegStatus      = 0x06
	RegRevision    = 0x08 // revision ID; class code in the upper 24 bits of the dword
	RegHeaderType  = 0x0E
	RegBAR0        = 0x10
	RegBusNumbers  = 0x18 // type 1: primary, secondary, subordinate bus, latency
	RegSubsystem   = 0x2C // type 0: subsystem vendor ID, subsystem ID
	RegCapPtr      = 0x34
	RegInterrupt   = 0x3C // interrupt line, interrupt pin
	headerMulti    = 0x80 // header type: multi-function device
	headerTypeMask = 0x7F
)

// Header types.
const (
	HeaderNormal  = 0 // type 0: an endpoint
	HeaderBridge  = 1 // type 1: a PCI-to-PCI bridge
	HeaderCardBus = 2 // type 2: a CardBus bridge
)

// Command register bits.
const (
	CmdIO          = 1 << 0  // respond to I/O space accesses
	CmdMemory      = 1 << 1  // respond to memory space accesses
	CmdBusMaster   = 1 << 2  // may master the bus (DMA, MSI)
	CmdINTxDisable = 1 << 10 // keep INTx deasserted
)

// Status register bits.
const (
	statusCapList = 1 << 4 // the capability list at RegCapPtr is valid
)

// Capability IDs (PCI Code and ID Assignment Specification).
const (
	CapPM     = 0x01 // power management
	CapMSI    = 0x05 // message signalled interrupts
	CapVendor = 0x09 // vendor-specific (virtio-pci's structures)
	CapPCIe   = 0x10 // PCI Express
	CapMSIX   = 0x11 // MSI-X
)

// Limits.
const (
	// MaxCaps bounds the capability list walk: 48 dword-aligned
	// capabilities fill 0x40-0xFF, so a longer list loops.
	MaxCaps = 48
	// MaxFunctions bounds what Scan returns (256 buses of 32 devices of
	// 8 functions would be 65536; no real machine comes close).
	MaxFunctions = 1024
)

// Absent is what configuration reads return for a function that does not
// exist.
const Absent = 0xFFFF_FFFF

// Command reads the command register.
func Command(cs ConfigSpace, a Addr) uint16 { return Read16(cs, a, RegCommand) }

// SetCommand writes the command register. It writes the dword with a
// zero status half: the status register's error bits are write-one-to-
// clear, so writing them back would clear them.
func SetCommand(cs ConfigSpace, a Addr, cmd uint16) { cs.Write32(a, RegCommand, uint32(cmd)) }

// Enable sets bits (CmdIO, CmdMemory, CmdBusMaster, CmdINTxDisable) in
// the command register, leaving the others as they are.
func Enable(cs ConfigSpace, a Addr, bits uint16) {
	SetCommand(cs, a, Command(cs, a)|bits)
}
