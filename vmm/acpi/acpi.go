// Package acpi generates the ACPI tables juice gives each guest: the
// RSDP (revision 2), the XSDT, a revision-6 FADT describing a PC-style
// (not hardware-reduced) platform with PM1a event/control blocks, an ACPI
// PM timer and a reset register, the FACS, a DSDT whose AML defines
// \_S5_, optionally a pvpanic device (\_SB.PEVT, _HID "QEMU0001"), plus
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
	// DSDTAML is appended to the DSDT's AML after \_S5_: a TermList at
	// root scope (device objects such as virtio-mmio nodes). Build does
	// not check it.
	DSDTAML []byte
}

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
	return nil
}

// Build generates the tables for c. The RSDP is at c.Base; FACS (64-byte
// aligned), XSDT, FADT, MADT and DSDT follow at c.TableBase or right after
// the RSDP, each 16-byte aligned. It fails (wrapping ErrConfig) on an
// invalid config, or when a table would lie outside RAM, wrap, overlap the
// RSDP, or — with the RSDP in the BIOS area and no TableBase — cross 1 MiB.
func Build(c Config) (Tables, error) {
	if err := c.validate(); err != nil {
		return Tables{}, err
	}
	dsdt := buildDSDT(&c)
	madt := buildMADT(&c)

	next := c.TableBase
	if next == 0 {
		next = c.Base + rsdpLen
	}
	facsAt := alignUp(next, 64)
	xsdtAt := alignUp(facsAt+facsLen, 16)
	const xsdtLen = hdrLen + 2*8
	fadtAt := alignUp(xsdtAt+xsdtLen, 16)
	madtAt := alignUp(fadtAt+fadtLen, 16)
	dsdtAt := alignUp(madtAt+uint64(len(madt)), 16)
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
	finish(xsdt)

	blobs := []Blob{
		{c.Base, buildRSDP(xsdtAt)},
		{facsAt, buildFACS()},
		{xsdtAt, xsdt},
		{fadtAt, fadt},
		{madtAt, madt},
		{dsdtAt, dsdt},
	}
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
// followed by c.DSDTAML, without its checksum.
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
