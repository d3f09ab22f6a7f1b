// Package acpi generates the ACPI tables juice gives each guest: the
// RSDP (revision 2), the XSDT, a revision-6 FADT describing a PC-style
// (not hardware-reduced) platform with PM1a event/control blocks, an ACPI
// PM timer and a reset register, the FACS, a DSDT whose AML defines
// \_S5_, optionally a pvpanic device (\_SB.PEVT, _HID "QEMU0001"), a PCI
// host bridge (\_SB.PCI0 with its ECAM reserved by \_SB.MRES, plus an
// MCFG table) and virtio-mmio devices (\_SB.VRnn, _HID "LNRO0005"), plus
// any AML the caller appends, and the MADT (local APICs, one I/O APIC,
// the ISA interrupt source overrides and the LINT1 NMI).
//
// That is what a stock Linux guest needs to enumerate its CPUs and
// interrupt controllers, run its ACPI PM clocksource, power off (S5) and
// reboot through ACPI. Build returns the tables as byte blobs, each with
// the guest-physical address it must be copied to; the VM builder copies
// them into guest RAM before the guest starts.
//
// The tables assume ACPI is always enabled: SMI_CMD is 0, so the guest
// never asks for the ACPI-mode switch, and the device model must return
// SCI_EN (bit 0) set in every PM1a_CNT read.
//
// This is VM-construction code, not exit-path code: it allocates freely.
package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Platform constants the device model must implement to match the tables.
const (
	// SlpTypS5 is the SLP_TYP value \_S5_ gives for both PM1 control
	// blocks: a guest write to PM1a_CNT with SLP_EN (bit 13) set and
	// SLP_TYP (bits 12:10) equal to SlpTypS5 is a request to power off.
	SlpTypS5 = 5

	// PM1EvtLen, PM1CntLen and PMTimerLen are the byte lengths of the
	// PM1a event block (2 bytes status, then 2 bytes enable), the PM1a
	// control block and the PM timer block.
	PM1EvtLen  = 4
	PM1CntLen  = 2
	PMTimerLen = 4

	// MaxCPUs is the most CPUs Build describes: APIC IDs 0..254 fit the
	// MADT's Processor Local APIC entry (0xFF is reserved).
	MaxCPUs = 255

	// OEMID is the OEM ID in the RSDP and every table header.
	OEMID = "JUICE "
	// OEMTableID is the OEM table ID in every table header.
	OEMTableID = "JUICEVM "
	// CreatorID is the creator ID in every table header.
	CreatorID = "JUIC"
)

// Default platform addresses (DefaultConfig). The PM block ports follow
// QEMU's q35 (ICH9 PMBASE 0x600) so guests and tools see familiar values.
const (
	DefaultBase        = 0xE0000    // RSDP at the start of the BIOS area Linux scans
	DefaultLAPICAddr   = 0xFEE00000 // local APIC MMIO base
	DefaultIOAPICAddr  = 0xFEC00000 // I/O APIC MMIO base
	DefaultPM1aEvtPort = 0x600      // PM1a_EVT_BLK: PM1_STS at 0x600, PM1_EN at 0x602
	DefaultPM1aCntPort = 0x604      // PM1a_CNT_BLK
	DefaultPMTimerPort = 0x608      // PM_TMR_BLK (24-bit counter unless PMTimer32, 3.579545 MHz)
	DefaultSCIIRQ      = 9          // SCI on ISA IRQ 9 = GSI 9, level, active high
	DefaultResetPort   = 0xCF9      // reset control register
	DefaultResetValue  = 0x06       // CF9: system reset (bit 2) | full reset (bit 1)
	DefaultPVPanicPort = 0x505      // QEMU's ISA pvpanic port (Config.PVPanicPort)
)

// PVPanicHID is the ACPI hardware ID of the pvpanic device Build puts in
// the DSDT when Config.PVPanicPort is set; Linux's pvpanic driver binds
// to it.
const PVPanicHID = "QEMU0001"

// FADT Flags Build sets.
const (
	fadtFlagWBINVD      = 1 << 0  // WBINVD works
	fadtFlagProcC1      = 1 << 2  // C1 supported on all processors
	fadtFlagPwrButton   = 1 << 4  // power button, if any, is a control-method device (no fixed one)
	fadtFlagSlpButton   = 1 << 5  // sleep button likewise
	fadtFlagTmrValExt   = 1 << 8  // PM timer is 32 bits
	fadtFlagResetRegSup = 1 << 10 // RESET_REG supported
)

// IAPC_BOOT_ARCH bits.
const (
	bootLegacyDevices = 1 << 0
	boot8042          = 1 << 1
	bootNoVGA         = 1 << 2
	bootNoCMOSRTC     = 1 << 5
)

// Config describes the virtual platform the tables must match.
type Config struct {
	// NCPU is the number of vCPUs, 1..MaxCPUs. CPU i has APIC ID i and
	// ACPI processor UID i.
	NCPU int
	// RAMBytes is the guest RAM size; RAM is assumed to be one run from
	// guest-physical 0, and every table must lie inside it.
	RAMBytes uint64
	// Base is where the RSDP goes: 16-byte aligned. Put it in
	// 0xE0000-0xFFFFF (DefaultBase) so guests that scan the BIOS area
	// find it; PVH guests may be handed it in start_info instead.
	Base uint64
	// TableBase, when nonzero, is where the other tables start (16-byte
	// aligned); when zero they follow the RSDP. When Base is in the BIOS
	// area and TableBase is zero, everything must end below 1 MiB.
	TableBase uint64
	// LAPICAddr is the local APIC MMIO base (below 4 GiB).
	LAPICAddr uint64
	// IOAPICAddr and IOAPICID describe the single I/O APIC, which serves
	// GSIs from 0.
	IOAPICAddr uint32
	IOAPICID   uint8
	// PM1aEvtPort, PM1aCntPort and PMTimerPort are the I/O ports of the
	// PM1a event block (PM1EvtLen bytes), PM1a control block (PM1CntLen
	// bytes) and PM timer (PMTimerLen bytes). All nonzero.
	PM1aEvtPort, PM1aCntPort, PMTimerPort uint16
	// PMTimer32 sets the FADT's TMR_VAL_EXT flag: the PM timer counts 32
	// bits. Leave it false (the default) for a 24-bit counter, as
	// juice/vmm/devices.PMTimer implements: the flag must match the
	// device, or the guest's clocksource misreads every wrap.
	PMTimer32 bool
	// SCIIRQ is the ISA IRQ of the SCI (1..15, not 2). It is routed
	// identity to the same GSI, level-triggered, active high.
	SCIIRQ uint8
	// ResetPort and ResetValue form the FADT reset register: writing the
	// byte ResetValue to I/O port ResetPort resets the VM.
	ResetPort  uint16
	ResetValue uint8
	// Has8042 sets IAPC_BOOT_ARCH.8042, telling the guest a PS/2
	// controller exists (Linux then probes it). Clear by default: Linux
	// skips the i8042 probe and reboots through the reset register.
	Has8042 bool
	// NoCMOSRTC sets IAPC_BOOT_ARCH.CMOS_RTC_NOT_PRESENT.
	NoCMOSRTC bool
	// PVPanicPort, when nonzero, adds QEMU's pvpanic device to the DSDT:
	// \_SB.PEVT with _HID PVPanicHID, _STA 0x0F and one 16-bit-decoded
	// I/O port at PVPanicPort in _CRS (DefaultPVPanicPort is QEMU's).
	// The device model (juice/vmm/devices.PVPanic) must be registered
	// there. Zero (DefaultConfig's choice) leaves the device out.
	PVPanicPort uint16
	// PCI, when set, describes a PCI host bridge: Build adds an MCFG
	// table (one allocation) to the XSDT and, to the DSDT, \_SB.PCI0
	// (_HID PNP0A08, _CID PNP0A03, its bus range, I/O and memory windows
	// in _CRS, and a static _PRT routing every slot's INTA-INTD to GSIs)
	// and \_SB.MRES (PNP0C02), which reserves the ECAM region so Linux
	// accepts it as MMCONFIG. Nil (the default) leaves PCI out.
	//
	// The _PRT entries name GSIs directly (no interrupt link devices),
	// so Linux programs those I/O APIC pins level-triggered, active
	// low, the PCI default; the MADT needs no override for GSIs above
	// 15 (it could not give one: Linux takes overrides for ISA IRQs
	// only). juice's I/O APIC ignores the polarity bit, so this matches
	// a device model that drives the pin "asserted" as true.
	PCI *PCIConfig
	// VirtioMMIO lists virtio-mmio devices: each becomes \_SB.VRnn (nn
	// its index in decimal) with _HID "LNRO0005", _UID nn, _CCA 1 and,
	// in _CRS, its register window (Memory32Fixed) and its GSI (an
	// Extended Interrupt descriptor: level-triggered, active high, and
	// exclusive unless another entry uses the same GSI, then shared).
	// Linux's virtio_mmio driver binds to that _HID, and programs the
	// pin level/active-high as the descriptor says. At most
	// MaxVirtioMMIO entries.
	VirtioMMIO []MMIODevice
	// DSDTAML is appended to the DSDT's AML after \_S5_: a TermList at
	// root scope (device objects such as virtio-mmio nodes). Build does
	// not check it.
	DSDTAML []byte
}

// PCIConfig describes the PCI host bridge (Config.PCI). All of it must
// lie below 4 GiB, outside RAM, the APIC pages and each other.
type PCIConfig struct {
	// ECAMBase is the ECAM base address as MCFG gives it: the address
	// bus 0's configuration space would have; bus n's 1 MiB is at
	// ECAMBase + n<<20. 1 MiB aligned.
	ECAMBase uint64
	// BusStart and BusEnd are the bus numbers the bridge decodes
	// (_BBN is BusStart).
	BusStart, BusEnd uint8
	// MMIOBase and MMIOSize are the memory window the bridge forwards
	// to BARs (_CRS DWordMemory, non-cacheable).
	MMIOBase, MMIOSize uint64
	// INTxGSIBase routes INTx: pin p (0 INTA .. 3 INTD) of the device in
	// slot s goes to GSI INTxGSIBase + ((s + p) & 3), for slots 1-31.
	// The four GSIs must be in MinDeviceGSI..MaxGSI.
	INTxGSIBase uint32
}

// DefaultPCIConfig returns the layout juice/vmm/pci implements: ECAM for
// bus 0 at 0xE000_0000, the window 0xC000_0000-0xDFFF_FFFF, INTx on GSIs
// 20-23.
func DefaultPCIConfig() PCIConfig {
	return PCIConfig{
		ECAMBase:    0xE000_0000,
		MMIOBase:    0xC000_0000,
		MMIOSize:    0x2000_0000,
		INTxGSIBase: 20,
	}
}

// MMIODevice is a virtio-mmio device (Config.VirtioMMIO): its register
// window [Base, Base+Size), below 4 GiB and outside RAM, and its GSI
// (MinDeviceGSI..MaxGSI, not one of the PCI INTx GSIs).
type MMIODevice struct {
	Base, Size uint64
	GSI        uint32
}

// Limits of the device descriptions.
const (
	// MaxVirtioMMIO is the most virtio-mmio devices Build describes.
	MaxVirtioMMIO = 32
	// MinDeviceGSI and MaxGSI bound the GSIs PCI INTx and virtio-mmio
	// devices may use: above the ISA IRQs (0-15) and within the one
	// 24-pin I/O APIC (juice/vmm/apic.IOAPICPins).
	MinDeviceGSI = 16
	MaxGSI       = 23
	// VirtioMMIOHID is the _HID of virtio-mmio devices (Linux's
	// virtio_mmio ACPI match, as QEMU's microvm uses).
	VirtioMMIOHID = "LNRO0005"
)

// DefaultConfig returns the standard platform for ncpu vCPUs and ramBytes
// of RAM: the Default* addresses, I/O APIC ID 0, a 24-bit PM timer, no
// 8042, a CMOS RTC.
func DefaultConfig(ncpu int, ramBytes uint64) Config {
	return Config{
		NCPU:        ncpu,
		RAMBytes:    ramBytes,
		Base:        DefaultBase,
		LAPICAddr:   DefaultLAPICAddr,
		IOAPICAddr:  DefaultIOAPICAddr,
		PM1aEvtPort: DefaultPM1aEvtPort,
		PM1aCntPort: DefaultPM1aCntPort,
		PMTimerPort: DefaultPMTimerPort,
		SCIIRQ:      DefaultSCIIRQ,
		ResetPort:   DefaultResetPort,
		ResetValue:  DefaultResetValue,
	}
}

// Blob is bytes to copy into guest RAM at guest-physical address GPA.
type Blob struct {
	GPA  uint64
	Data []byte
}

// Tables is Build's result.
type Tables struct {
	// RSDPAddr is the RSDP's guest-physical address (PVH rsdp_paddr).
	RSDPAddr uint64
	// Blobs are the tables, in ascending, non-overlapping GPA order.
	Blobs []Blob
}

// Extent returns the lowest and one past the highest guest-physical
// address the blobs cover (0, 0 when there are none); the caller keeps
// that range out of the guest's usable RAM in its memory map.
func (t *Tables) Extent() (start, end uint64) {
	for i, b := range t.Blobs {
		e := b.GPA + uint64(len(b.Data))
		if i == 0 || b.GPA < start {
			start = b.GPA
		}
		if e > end {
			end = e
		}
	}
	return start, end
}

// ErrConfig is wrapped by every error Build returns.
var ErrConfig = errors.New("acpi: invalid config")

// Table layout.
const (
	hdrLen    = 36
	rsdpLen   = 36
	facsLen   = 64
	fadtLen   = 276
	biosStart = 0xE0000
	biosEnd   = 0x100000
)

// validate checks c and returns an error wrapping ErrConfig.
func (c *Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.NCPU < 1 || c.NCPU > MaxCPUs:
		return bad("NCPU %d not in 1..%d", c.NCPU, MaxCPUs)
	case c.Base == 0 || c.Base%16 != 0:
		return bad("Base %#x not a nonzero multiple of 16", c.Base)
	case c.TableBase%16 != 0:
		return bad("TableBase %#x not a multiple of 16", c.TableBase)
	case c.LAPICAddr == 0 || c.LAPICAddr > 0xFFFFFFFF:
		return bad("LAPICAddr %#x not a nonzero 32-bit address", c.LAPICAddr)
	case c.IOAPICAddr == 0:
		return bad("IOAPICAddr is 0")
	case c.PM1aEvtPort == 0 || c.PM1aCntPort == 0 || c.PMTimerPort == 0:
		return bad("PM ports %#x/%#x/%#x must be nonzero", c.PM1aEvtPort, c.PM1aCntPort, c.PMTimerPort)
	case c.SCIIRQ == 0 || c.SCIIRQ == 2 || c.SCIIRQ > 15:
		return bad("SCIIRQ %d not an ISA IRQ in 1..15 other than 2", c.SCIIRQ)
	case c.ResetPort == 0:
		return bad("ResetPort is 0")
	}
	type portBlock struct {
		base, n uint32
		name    string
	}
	ports := []portBlock{
		{uint32(c.PM1aEvtPort), PM1EvtLen, "PM1a_EVT"},
		{uint32(c.PM1aCntPort), PM1CntLen, "PM1a_CNT"},
		{uint32(c.PMTimerPort), PMTimerLen, "PM_TMR"},
		{uint32(c.ResetPort), 1, "RESET_REG"},
	}
	if c.PVPanicPort != 0 {
		ports = append(ports, portBlock{uint32(c.PVPanicPort), 1, "pvpanic"})
	}
	for i, a := range ports {
		if a.base+a.n > 0x10000 {
			return bad("%s block at %#x runs past port 0xFFFF", a.name, a.base)
		}
		for _, b := range ports[i+1:] {
			if a.base < b.base+b.n && b.base < a.base+a.n {
				return bad("%s block at %#x overlaps %s at %#x", a.name, a.base, b.name, b.base)
			}
		}
	}
	return c.validateDevices()
}

// validateDevices checks c.PCI and c.VirtioMMIO: every memory range
// below 4 GiB, outside RAM and disjoint from the others and the APIC
// pages; GSIs in range and not shared between PCI and virtio-mmio.
func (c *Config) validateDevices() error {
	if c.PCI == nil && len(c.VirtioMMIO) == 0 {
		return nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	type memRange struct {
		base, size uint64
		name       string
	}
	mems := []memRange{
		{c.LAPICAddr, 0x1000, "local APIC"},
		{uint64(c.IOAPICAddr), 0x1000, "I/O APIC"},
	}
	var pciGSI [2]uint32 // [first, last] PCI INTx GSI
	if p := c.PCI; p != nil {
		switch {
		case p.ECAMBase == 0 || p.ECAMBase%(1<<20) != 0 || p.ECAMBase >= 1<<32:
			return bad("PCI ECAM base %#x not a nonzero multiple of 1 MiB below 4 GiB", p.ECAMBase)
		case p.BusStart > p.BusEnd:
			return bad("PCI buses %d-%d", p.BusStart, p.BusEnd)
		case p.MMIOSize == 0:
			return bad("PCI MMIO window empty")
		case p.INTxGSIBase < MinDeviceGSI || p.INTxGSIBase > MaxGSI-3:
			return bad("PCI INTx GSIs from %d not in %d..%d", p.INTxGSIBase, MinDeviceGSI, MaxGSI)
		}
		pciGSI = [2]uint32{p.INTxGSIBase, p.INTxGSIBase + 3}
		mems = append(mems,
			memRange{p.ECAMBase + uint64(p.BusStart)<<20, ecamSize(p), "PCI ECAM"},
			memRange{p.MMIOBase, p.MMIOSize, "PCI MMIO window"})
	}
	if len(c.VirtioMMIO) > MaxVirtioMMIO {
		return bad("%d virtio-mmio devices, at most %d", len(c.VirtioMMIO), MaxVirtioMMIO)
	}
	for i, d := range c.VirtioMMIO {
		switch {
		case d.Size == 0:
			return bad("virtio-mmio device %d has size 0", i)
		case d.GSI < MinDeviceGSI || d.GSI > MaxGSI:
			return bad("virtio-mmio device %d GSI %d not in %d..%d", i, d.GSI, MinDeviceGSI, MaxGSI)
		case c.PCI != nil && d.GSI >= pciGSI[0] && d.GSI <= pciGSI[1]:
			return bad("virtio-mmio device %d GSI %d is a PCI INTx GSI", i, d.GSI)
		}
		mems = append(mems, memRange{d.Base, d.Size, fmt.Sprintf("virtio-mmio device %d", i)})
	}
	for i, a := range mems {
		if i >= 2 && (a.base < c.RAMBytes || a.base+a.size > 1<<32 || a.base+a.size < a.base) {
			return bad("%s [%#x, +%#x) not between RAM's end %#x and 4 GiB", a.name, a.base, a.size, c.RAMBytes)
		}
		for _, b := range mems[i+1:] {
			if a.base < b.base+b.size && b.base < a.base+a.size {
				return bad("%s [%#x, +%#x) overlaps %s [%#x, +%#x)", a.name, a.base, a.size, b.name, b.base, b.size)
			}
		}
	}
	return nil
}

// Build generates the tables for c. The RSDP is at c.Base; FACS (64-byte
// aligned), XSDT, FADT, MADT, MCFG (with c.PCI) and DSDT follow at c.TableBase or right after
// the RSDP, each 16-byte aligned. It fails (wrapping ErrConfig) on an
// invalid config, or when a table would lie outside RAM, wrap, overlap the
// RSDP, or — with the RSDP in the BIOS area and no TableBase — cross 1 MiB.
func Build(c Config) (Tables, error) {
	if err := c.validate(); err != nil {
		return Tables{}, err
	}
	dsdt := buildDSDT(&c)
	madt := buildMADT(&c)
	var mcfg []byte
	if c.PCI != nil {
		mcfg = buildMCFG(c.PCI)
	}

	next := c.TableBase
	if next == 0 {
		next = c.Base + rsdpLen
	}
	facsAt := alignUp(next, 64)
	xsdtAt := alignUp(facsAt+facsLen, 16)
	xsdtLen := hdrLen + 2*8
	if mcfg != nil {
		xsdtLen += 8
	}
	fadtAt := alignUp(xsdtAt+uint64(xsdtLen), 16)
	madtAt := alignUp(fadtAt+fadtLen, 16)
	mcfgAt := alignUp(madtAt+uint64(len(madt)), 16)
	dsdtAt := alignUp(mcfgAt+uint64(len(mcfg)), 16)
	end := dsdtAt + uint64(len(dsdt))

	if facsAt < next || end < facsAt || c.Base+rsdpLen < c.Base || end > c.RAMBytes || c.Base+rsdpLen > c.RAMBytes {
		return Tables{}, fmt.Errorf("%w: tables [%#x, %#x) and RSDP at %#x do not fit in %#x bytes of RAM",
			ErrConfig, facsAt, end, c.Base, c.RAMBytes)
	}
	if c.TableBase != 0 && c.TableBase < c.Base+rsdpLen && c.Base < end {
		return Tables{}, fmt.Errorf("%w: tables [%#x, %#x) overlap the RSDP at %#x", ErrConfig, c.TableBase, end, c.Base)
	}
	if c.TableBase == 0 && c.Base >= biosStart && c.Base < biosEnd && end > biosEnd {
		return Tables{}, fmt.Errorf("%w: tables end at %#x, past the BIOS area; set TableBase", ErrConfig, end)
	}

	finish(dsdt)
	finish(madt)
	fadt := buildFADT(&c, facsAt, dsdtAt)
	xsdt := sdt("XSDT", 1, xsdtLen)
	binary.LittleEndian.PutUint64(xsdt[hdrLen:], fadtAt)
	binary.LittleEndian.PutUint64(xsdt[hdrLen+8:], madtAt)
	if mcfg != nil {
		binary.LittleEndian.PutUint64(xsdt[hdrLen+16:], mcfgAt)
		finish(mcfg)
	}
	finish(xsdt)

	blobs := []Blob{
		{c.Base, buildRSDP(xsdtAt)},
		{facsAt, buildFACS()},
		{xsdtAt, xsdt},
		{fadtAt, fadt},
		{madtAt, madt},
	}
	if mcfg != nil {
		blobs = append(blobs, Blob{mcfgAt, mcfg})
	}
	blobs = append(blobs, Blob{dsdtAt, dsdt})
	if c.TableBase != 0 && c.TableBase < c.Base {
		blobs = append(blobs[1:], blobs[0]) // keep ascending GPA order
	}
	return Tables{RSDPAddr: c.Base, Blobs: blobs}, nil
}

// alignUp rounds v up to a multiple of a (a power of two).
func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// checksum returns the byte that makes b sum to zero when stored in a
// byte of b that currently holds 0.
func checksum(b []byte) byte {
	var s byte
	for _, v := range b {
		s += v
	}
	return -s
}

// sdt returns an n-byte table with its standard header filled in and a
// zero checksum; finish sets the checksum once the body is written.
func sdt(sig string, rev uint8, n int) []byte {
	t := make([]byte, n)
	copy(t[0:4], sig)
	binary.LittleEndian.PutUint32(t[4:], uint32(n))
	t[8] = rev
	copy(t[10:16], OEMID)
	copy(t[16:24], OEMTableID)
	binary.LittleEndian.PutUint32(t[24:], 1) // OEM revision
	copy(t[28:32], CreatorID)
	binary.LittleEndian.PutUint32(t[32:], 1) // creator revision
	return t
}

// finish sets the header checksum of table t.
func finish(t []byte) {
	t[9] = 0
	t[9] = checksum(t)
}

// buildRSDP returns a revision-2 RSDP pointing at the XSDT (no RSDT).
func buildRSDP(xsdt uint64) []byte {
	r := make([]byte, rsdpLen)
	copy(r, "RSD PTR ")
	copy(r[9:15], OEMID)
	r[15] = 2                                      // revision: ACPI 2.0+
	binary.LittleEndian.PutUint32(r[20:], rsdpLen) // length
	binary.LittleEndian.PutUint64(r[24:], xsdt)    // XSDT address
	r[8] = checksum(r[:20])                        // ACPI 1.0 checksum
	r[32] = checksum(r)                            // extended checksum
	return r
}

// buildFACS returns a version-2 FACS: no waking vector, global lock free.
func buildFACS() []byte {
	f := make([]byte, facsLen)
	copy(f, "FACS")
	binary.LittleEndian.PutUint32(f[4:], facsLen)
	f[32] = 2 // version
	return f
}

// putGAS writes a Generic Address Structure for an I/O-space register.
func putGAS(b []byte, off int, bitWidth, accessSize uint8, port uint16) {
	b[off] = 1 // system I/O
	b[off+1] = bitWidth
	b[off+2] = 0
	b[off+3] = accessSize // 1 byte, 2 word, 3 dword
	binary.LittleEndian.PutUint64(b[off+4:], uint64(port))
}

// buildFADT returns the revision-6.5 FADT (276 bytes).
func buildFADT(c *Config, facs, dsdt uint64) []byte {
	f := sdt("FACP", 6, fadtLen)
	le := binary.LittleEndian
	// FIRMWARE_CTRL (36) stays 0: X_FIRMWARE_CTRL carries the FACS.
	if dsdt <= 0xFFFFFFFF {
		le.PutUint32(f[40:], uint32(dsdt)) // DSDT (X_DSDT alone above 4 GiB)
	}
	f[45] = 0 // preferred PM profile: unspecified
	le.PutUint16(f[46:], uint16(c.SCIIRQ))
	// SMI_CMD (48), ACPI_ENABLE/DISABLE (52, 53) stay 0: always in ACPI mode.
	le.PutUint32(f[56:], uint32(c.PM1aEvtPort))
	le.PutUint32(f[64:], uint32(c.PM1aCntPort))
	le.PutUint32(f[76:], uint32(c.PMTimerPort))
	f[88] = PM1EvtLen
	f[89] = PM1CntLen
	f[91] = PMTimerLen
	le.PutUint16(f[96:], 101)  // P_LVL2_LAT > 100: C2 not supported
	le.PutUint16(f[98:], 1001) // P_LVL3_LAT > 1000: C3 not supported
	// CENTURY (108) stays 0: no RTC century register promised.
	boot := uint16(bootLegacyDevices | bootNoVGA)
	if c.Has8042 {
		boot |= boot8042
	}
	if c.NoCMOSRTC {
		boot |= bootNoCMOSRTC
	}
	le.PutUint16(f[109:], boot)
	flags := uint32(fadtFlagWBINVD | fadtFlagProcC1 | fadtFlagPwrButton | fadtFlagSlpButton | fadtFlagResetRegSup)
	if c.PMTimer32 {
		flags |= fadtFlagTmrValExt
	}
	le.PutUint32(f[112:], flags)
	putGAS(f, 116, 8, 1, c.ResetPort)
	f[128] = c.ResetValue
	f[131] = 5                  // FADT minor version: ACPI 6.5
	le.PutUint64(f[132:], facs) // X_FIRMWARE_CTRL
	le.PutUint64(f[140:], dsdt) // X_DSDT
	putGAS(f, 148, PM1EvtLen*8, 2, c.PM1aEvtPort)
	putGAS(f, 172, PM1CntLen*8, 2, c.PM1aCntPort)
	putGAS(f, 208, PMTimerLen*8, 3, c.PMTimerPort)
	copy(f[268:276], "JUICEHV ") // hypervisor vendor identity
	finish(f)
	return f
}

// MADT structure types and MPS INTI flags.
const (
	madtLAPIC    = 0
	madtIOAPIC   = 1
	madtOverride = 2
	madtNMI      = 4

	intiActiveHigh = 1 << 0
	intiLevel      = 3 << 2
)

// buildMADT returns the MADT without its checksum.
func buildMADT(c *Config) []byte {
	n := hdrLen + 8 + 8*c.NCPU + 12 + 2*10 + 6
	m := sdt("APIC", 5, n)
	le := binary.LittleEndian
	le.PutUint32(m[36:], uint32(c.LAPICAddr))
	le.PutUint32(m[40:], 1) // PCAT_COMPAT: dual 8259s present
	off := 44
	for i := 0; i < c.NCPU; i++ {
		e := m[off : off+8]
		e[0], e[1], e[2], e[3] = madtLAPIC, 8, byte(i), byte(i) // UID i, APIC ID i
		le.PutUint32(e[4:], 1)                                  // enabled
		off += 8
	}
	e := m[off : off+12]
	e[0], e[1], e[2] = madtIOAPIC, 12, c.IOAPICID
	le.PutUint32(e[4:], c.IOAPICAddr)
	le.PutUint32(e[8:], 0) // GSI base
	off += 12
	for _, o := range [...]struct {
		irq   uint8
		gsi   uint32
		flags uint16
	}{
		{0, 2, 0}, // PIT: ISA IRQ 0 is GSI 2, bus-conforming polarity/trigger
		{c.SCIIRQ, uint32(c.SCIIRQ), intiActiveHigh | intiLevel},
	} {
		e := m[off : off+10]
		e[0], e[1], e[2], e[3] = madtOverride, 10, 0, o.irq // bus 0 (ISA)
		le.PutUint32(e[4:], o.gsi)
		le.PutUint16(e[8:], o.flags)
		off += 10
	}
	e = m[off : off+6]
	e[0], e[1], e[2] = madtNMI, 6, 0xFF // all processors
	le.PutUint16(e[3:], 0)              // bus-conforming
	e[5] = 1                            // LINT1
	return m
}

// AML encoding (ACPI 6.5 chapter 20, AML grammar).
const (
	amlZeroOp       = 0x00
	amlNameOp       = 0x08
	amlBytePrefix   = 0x0A
	amlStringPrefix = 0x0D
	amlScopeOp      = 0x10
	amlBufferOp     = 0x11
	amlPackageOp    = 0x12
	amlRootChar     = 0x5C // '\'
	amlExtOpPrefix  = 0x5B
	amlDeviceOp     = 0x82 // follows amlExtOpPrefix
)

// Small resource data types (ACPI 6.5 section 6.4.2): the tag byte is
// the item name in bits 6:3 and the length of the data after the tag in
// bits 2:0.
const (
	resIOPort     = 0x08<<3 | 7 // I/O port descriptor, 7 data bytes
	resEndTag     = 0x0F<<3 | 1 // end tag, 1 data byte (checksum)
	resIODecode16 = 0x01        // I/O descriptor information: 16-bit decode
)

// buildDSDT returns a revision-2 DSDT (64-bit AML integers) holding
//
//	Name (_S5_, Package (4) { SlpTypS5, SlpTypS5, Zero, Zero })
//
// then, when c.PVPanicPort is set,
//
//	Scope (\_SB) {
//	    Device (PEVT) {
//	        Name (_HID, "QEMU0001")
//	        Name (_STA, 0x0F)
//	        Name (_CRS, ResourceTemplate () {
//	            IO (Decode16, port, port, 1, 1)
//	        })
//	    }
//	}
//
// then the PCI and virtio-mmio devices (devicesAML), followed by
// c.DSDTAML, without its checksum.
func buildDSDT(c *Config) []byte {
	aml := []byte{
		amlNameOp, '_', 'S', '5', '_',
		amlPackageOp,
		8,                       // PkgLength (one byte, counts itself): 1 + 1 + 2 + 2 + 1 + 1
		4,                       // NumElements
		amlBytePrefix, SlpTypS5, // SLP_TYPa
		amlBytePrefix, SlpTypS5, // SLP_TYPb
		amlZeroOp, amlZeroOp, // reserved
	}
	if c.PVPanicPort != 0 {
		aml = append(aml, pvpanicAML(c.PVPanicPort)...)
	}
	if c.PCI != nil || len(c.VirtioMMIO) > 0 {
		aml = append(aml, devicesAML(c)...)
	}
	aml = append(aml, c.DSDTAML...)
	d := sdt("DSDT", 2, hdrLen+len(aml))
	copy(d[hdrLen:], aml)
	return d
}

// pvpanicAML returns Scope (\_SB) { Device (PEVT) { ... } } for a pvpanic
// device at I/O port port (see buildDSDT).
func pvpanicAML(port uint16) []byte {
	lo, hi := byte(port), byte(port>>8)
	res := []byte{
		resIOPort, resIODecode16,
		lo, hi, // range minimum base
		lo, hi, // range maximum base
		1, // base alignment
		1, // range length
		resEndTag, 0,
	}
	res[len(res)-1] = checksum(res) // the whole template sums to zero

	var dev []byte
	dev = append(dev, "PEVT"...)
	dev = append(dev, amlNameOp, '_', 'H', 'I', 'D', amlStringPrefix)
	dev = append(dev, PVPanicHID...)
	dev = append(dev, 0) // string terminator
	dev = append(dev, amlNameOp, '_', 'S', 'T', 'A', amlBytePrefix, 0x0F)
	dev = append(dev, amlNameOp, '_', 'C', 'R', 'S', amlBufferOp)
	buf := append([]byte{amlBytePrefix, byte(len(res))}, res...) // BufferSize, then the bytes
	dev = append(dev, amlPkgLength(len(buf))...)
	dev = append(dev, buf...)

	device := []byte{amlExtOpPrefix, amlDeviceOp}
	device = append(device, amlPkgLength(len(dev))...)
	device = append(device, dev...)

	body := append([]byte{amlRootChar, '_', 'S', 'B', '_'}, device...)
	scope := []byte{amlScopeOp}
	scope = append(scope, amlPkgLength(len(body))...)
	return append(scope, body...)
}

// amlPkgLength encodes the PkgLength of a package whose contents after
// the PkgLength are n bytes long; the encoded length counts the PkgLength
// bytes too. One byte holds lengths up to 63 in bits 5:0; longer ones use
// 1-3 following bytes (their count in bits 7:6 of the lead byte), the
// lead byte's bits 3:0 holding the low nibble and each following byte the
// next 8 bits. n must be below 1<<28 - 4 (AML's limit); larger n is
// truncated.
func amlPkgLength(n int) []byte {
	if n+1 <= 0x3F {
		return []byte{byte(n + 1)}
	}
	for follow := 1; follow <= 3; follow++ {
		total := n + 1 + follow
		if total < 1<<(4+8*follow) || follow == 3 {
			b := make([]byte, 1+follow)
			b[0] = byte(follow)<<6 | byte(total&0x0F)
			for i := 1; i <= follow; i++ {
				b[i] = byte(total >> (4 + 8*(i-1)))
			}
			return b
		}
	}
	return nil // not reached
}

// ecamSize returns the size of p's ECAM region: 1 MiB per bus.
func ecamSize(p *PCIConfig) uint64 { return (uint64(p.BusEnd) - uint64(p.BusStart) + 1) << 20 }

// mcfgLen is the MCFG's length with one allocation: the header, 8
// reserved bytes, then one 16-byte Configuration Space Base Address
// Allocation Structure (PCI Firmware Specification 3.2, table 4-3).
const mcfgLen = hdrLen + 8 + 16

// buildMCFG returns the MCFG (revision 1) without its checksum: one
// allocation for segment 0, buses p.BusStart-p.BusEnd, at p.ECAMBase.
func buildMCFG(p *PCIConfig) []byte {
	m := sdt("MCFG", 1, mcfgLen)
	binary.LittleEndian.PutUint64(m[44:], p.ECAMBase)
	binary.LittleEndian.PutUint16(m[52:], 0) // PCI segment group
	m[54] = p.BusStart
	m[55] = p.BusEnd
	return m
}

// More AML encodings (ACPI 6.5 section 20.2).
const (
	amlOneOp       = 0x01
	amlWordPrefix  = 0x0B
	amlDWordPrefix = 0x0C
	amlQWordPrefix = 0x0E
)

// Large resource data types (ACPI 6.5 section 6.4.3): the tag byte, then
// a 16-bit length of the data that follows.
const (
	resMemory32Fixed = 0x86 // 32-bit fixed memory range, 9 data bytes
	resDWordAddr     = 0x87 // DWord address space, 23 data bytes
	resWordAddr      = 0x88 // Word address space, 13 data bytes
	resExtIRQ        = 0x89 // extended interrupt, 2 + 4n data bytes

	// Address space resource types.
	addrMemory = 0
	addrIO     = 1
	addrBus    = 2
	// General flags: producer (bit 0 clear), positive decode (bit 1
	// clear), minimum fixed (bit 2) and maximum fixed (bit 3).
	addrProducerFixed = 1<<3 | 1<<2
	// Type-specific flags: I/O ranges cover ISA and non-ISA addresses
	// (_RNG = 3, EntireRange); memory is read-write, non-cacheable.
	addrIOEntireRange = 3
	addrMemRWNonCache = 1
	// Memory32Fixed information: read-write.
	memReadWrite = 1
	// Extended interrupt flags: consumer (bit 0); level-triggered (bit 1
	// clear), active high (bit 2 clear); shared (bit 3).
	irqConsumer = 1 << 0
	irqShared   = 1 << 3
)

// amlInt encodes integer v in its shortest form.
func amlInt(v uint64) []byte {
	le := binary.LittleEndian
	switch {
	case v == 0:
		return []byte{amlZeroOp}
	case v == 1:
		return []byte{amlOneOp}
	case v <= 0xFF:
		return []byte{amlBytePrefix, byte(v)}
	case v <= 0xFFFF:
		return le.AppendUint16([]byte{amlWordPrefix}, uint16(v))
	case v <= 0xFFFFFFFF:
		return le.AppendUint32([]byte{amlDWordPrefix}, uint32(v))
	}
	return le.AppendUint64([]byte{amlQWordPrefix}, v)
}

// amlString encodes an ASCII string.
func amlString(str string) []byte {
	b := append([]byte{amlStringPrefix}, str...)
	return append(b, 0)
}

// amlName encodes Name (seg, data); seg is a 4-character NameSeg.
func amlName(seg string, data []byte) []byte {
	b := append([]byte{amlNameOp}, seg...)
	return append(b, data...)
}

// amlPackage encodes Package () { elems... } (fewer than 256 elements).
func amlPackage(elems ...[]byte) []byte {
	body := []byte{byte(len(elems))}
	for _, e := range elems {
		body = append(body, e...)
	}
	b := append([]byte{amlPackageOp}, amlPkgLength(len(body))...)
	return append(b, body...)
}

// amlBuffer encodes Buffer () { data }.
func amlBuffer(data []byte) []byte {
	body := append(amlInt(uint64(len(data))), data...)
	b := append([]byte{amlBufferOp}, amlPkgLength(len(body))...)
	return append(b, body...)
}

// amlDevice encodes Device (seg) { body }.
func amlDevice(seg string, body []byte) []byte {
	inner := append([]byte(seg), body...)
	b := append([]byte{amlExtOpPrefix, amlDeviceOp}, amlPkgLength(len(inner))...)
	return append(b, inner...)
}

// amlScopeSB encodes Scope (\_SB) { body }.
func amlScopeSB(body []byte) []byte {
	inner := append([]byte{amlRootChar, '_', 'S', 'B', '_'}, body...)
	b := append([]byte{amlScopeOp}, amlPkgLength(len(inner))...)
	return append(b, inner...)
}

// resourceTemplate returns the descriptors followed by an end tag whose
// checksum makes the whole template sum to zero.
func resourceTemplate(descs ...[]byte) []byte {
	var r []byte
	for _, d := range descs {
		r = append(r, d...)
	}
	r = append(r, resEndTag, 0)
	r[len(r)-1] = checksum(r)
	return r
}

// resWordAddress encodes a Word Address Space Descriptor for a
// producer with fixed minimum and maximum: [min, max], length max-min+1,
// granularity and translation 0.
func resWordAddress(rtype, typeFlags uint8, min, max uint16) []byte {
	le := binary.LittleEndian
	b := []byte{resWordAddr, 13, 0, rtype, addrProducerFixed, typeFlags}
	b = le.AppendUint16(b, 0) // granularity
	b = le.AppendUint16(b, min)
	b = le.AppendUint16(b, max)
	b = le.AppendUint16(b, 0) // translation offset
	return le.AppendUint16(b, max-min+1)
}

// resDWordMemory encodes a DWord Address Space Descriptor for a
// read-write, non-cacheable memory window [min, min+length).
func resDWordMemory(min, length uint32) []byte {
	le := binary.LittleEndian
	b := []byte{resDWordAddr, 23, 0, addrMemory, addrProducerFixed, addrMemRWNonCache}
	b = le.AppendUint32(b, 0) // granularity
	b = le.AppendUint32(b, min)
	b = le.AppendUint32(b, min+length-1)
	b = le.AppendUint32(b, 0) // translation offset
	return le.AppendUint32(b, length)
}

// resIO encodes an I/O Port Descriptor with 16-bit decode for the fixed
// range [port, port+length).
func resIO(port uint16, length uint8) []byte {
	return []byte{resIOPort, resIODecode16, byte(port), byte(port >> 8), byte(port), byte(port >> 8), 1, length}
}

// resMem32Fixed encodes a read-write 32-bit Fixed Memory Range
// Descriptor.
func resMem32Fixed(base, length uint32) []byte {
	le := binary.LittleEndian
	b := []byte{resMemory32Fixed, 9, 0, memReadWrite}
	b = le.AppendUint32(b, base)
	return le.AppendUint32(b, length)
}

// resInterrupt encodes an Extended Interrupt Descriptor for one
// level-triggered, active-high GSI consumed by the device.
func resInterrupt(gsi uint32, shared bool) []byte {
	flags := byte(irqConsumer)
	if shared {
		flags |= irqShared
	}
	return binary.LittleEndian.AppendUint32([]byte{resExtIRQ, 6, 0, flags, 1}, gsi)
}

// eisaID compresses a 7-character EISA ID ("PNP0A08": three letters
// A-Z and four hex digits) into the 32-bit integer AML's EisaId()
// yields: the letters as 5-bit values (letter - 0x40) packed big-endian
// into the first two bytes, the hex digits in the last two.
func eisaID(id string) uint32 {
	l := func(i int) uint32 { return uint32(id[i]-'@') & 0x1F }
	h := func(i int) uint32 {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
			return uint32(c - '0')
		case c >= 'A' && c <= 'F':
			return uint32(c-'A') + 10
		}
		return 0
	}
	b0 := l(0)<<2 | l(1)>>3
	b1 := (l(1)&7)<<5 | l(2)
	b2 := h(3)<<4 | h(4)
	b3 := h(5)<<4 | h(6)
	return b0 | b1<<8 | b2<<16 | b3<<24
}

// EISA IDs of the devices devicesAML describes.
const (
	hidPCIeRoot    = "PNP0A08" // PCI Express root bridge
	hidPCIRoot     = "PNP0A03" // PCI root bridge (compatible ID)
	hidMotherboard = "PNP0C02" // motherboard resources
)

// devicesAML returns
//
//	Scope (\_SB) {
//	    Device (PCI0) {                        // with c.PCI
//	        Name (_HID, EisaId ("PNP0A08"))
//	        Name (_CID, EisaId ("PNP0A03"))
//	        Name (_UID, Zero)
//	        Name (_SEG, Zero)
//	        Name (_BBN, BusStart)
//	        Name (_CRS, ResourceTemplate () {
//	            WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
//	                0, BusStart, BusEnd, 0, BusEnd-BusStart+1)
//	            IO (Decode16, 0x0CF8, 0x0CF8, 1, 8)
//	            WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
//	                0, 0x0000, 0x0CF7, 0, 0x0CF8)
//	            WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
//	                0, 0x0D00, 0xFFFF, 0, 0xF300)
//	            DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed,
//	                NonCacheable, ReadWrite, 0, MMIOBase, MMIOBase+MMIOSize-1, 0, MMIOSize)
//	        })
//	        Name (_PRT, Package () {           // slots 1-31, pins 0-3
//	            Package () { slot<<16 | 0xFFFF, pin, Zero, INTxGSIBase + ((slot + pin) & 3) },
//	            ...
//	        })
//	    }
//	    Device (MRES) {                        // with c.PCI
//	        Name (_HID, EisaId ("PNP0C02"))
//	        Name (_UID, Zero)
//	        Name (_CRS, ResourceTemplate () {
//	            Memory32Fixed (ReadWrite, ECAM of BusStart, (BusEnd-BusStart+1) MiB)
//	        })
//	    }
//	    Device (VR00) {                        // per c.VirtioMMIO entry
//	        Name (_HID, "LNRO0005")
//	        Name (_UID, 0)
//	        Name (_CCA, One)
//	        Name (_CRS, ResourceTemplate () {
//	            Memory32Fixed (ReadWrite, Base, Size)
//	            Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { GSI }
//	        })
//	    }
//	    ...
//	}
func devicesAML(c *Config) []byte {
	var body []byte
	if p := c.PCI; p != nil {
		crs := resourceTemplate(
			resWordAddress(addrBus, 0, uint16(p.BusStart), uint16(p.BusEnd)),
			resIO(0x0CF8, 8),
			resWordAddress(addrIO, addrIOEntireRange, 0x0000, 0x0CF7),
			resWordAddress(addrIO, addrIOEntireRange, 0x0D00, 0xFFFF),
			resDWordMemory(uint32(p.MMIOBase), uint32(p.MMIOSize)),
		)
		var prt [][]byte
		for slot := uint64(1); slot < 32; slot++ {
			for pin := uint64(0); pin < 4; pin++ {
				prt = append(prt, amlPackage(
					amlInt(slot<<16|0xFFFF),
					amlInt(pin),
					amlInt(0), // no link device: the last element is a GSI
					amlInt(uint64(p.INTxGSIBase)+(slot+pin)&3),
				))
			}
		}
		var pci []byte
		pci = append(pci, amlName("_HID", amlInt(uint64(eisaID(hidPCIeRoot))))...)
		pci = append(pci, amlName("_CID", amlInt(uint64(eisaID(hidPCIRoot))))...)
		pci = append(pci, amlName("_UID", amlInt(0))...)
		pci = append(pci, amlName("_SEG", amlInt(0))...)
		pci = append(pci, amlName("_BBN", amlInt(uint64(p.BusStart)))...)
		pci = append(pci, amlName("_CRS", amlBuffer(crs))...)
		pci = append(pci, amlName("_PRT", amlPackage(prt...))...)
		body = append(body, amlDevice("PCI0", pci)...)

		ecam := resourceTemplate(resMem32Fixed(uint32(p.ECAMBase+uint64(p.BusStart)<<20), uint32(ecamSize(p))))
		var mres []byte
		mres = append(mres, amlName("_HID", amlInt(uint64(eisaID(hidMotherboard))))...)
		mres = append(mres, amlName("_UID", amlInt(0))...)
		mres = append(mres, amlName("_CRS", amlBuffer(ecam))...)
		body = append(body, amlDevice("MRES", mres)...)
	}
	for i, d := range c.VirtioMMIO {
		shared := false
		for j, e := range c.VirtioMMIO {
			shared = shared || j != i && e.GSI == d.GSI
		}
		crs := resourceTemplate(resMem32Fixed(uint32(d.Base), uint32(d.Size)), resInterrupt(d.GSI, shared))
		var dev []byte
		dev = append(dev, amlName("_HID", amlString(VirtioMMIOHID))...)
		dev = append(dev, amlName("_UID", amlInt(uint64(i)))...)
		dev = append(dev, amlName("_CCA", amlInt(1))...)
		dev = append(dev, amlName("_CRS", amlBuffer(crs))...)
		body = append(body, amlDevice(fmt.Sprintf("VR%02d", i), dev)...)
	}
	return amlScopeSB(body)
}
