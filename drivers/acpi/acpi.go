// Package acpi finds and parses the firmware's ACPI tables (ACPI 6.x):
// the RSDP, the XSDT or RSDT, and from them the FADT, the DSDT's \_S5_
// sleep-type package, the MADT, the HPET table and the MCFG. It also
// performs the two ACPI actions juice needs without an AML interpreter:
// S5 soft-off through PM1 control (or the HW-reduced sleep control
// register) and reset through the FADT reset register.
//
// It is kernel-context code: every function is //go:nosplit and
// allocation-free, the results land in a caller-owned Tables value that
// holds no pointers, and every read is bounds-checked against the
// physical-memory window — firmware tables are untrusted input, and no
// byte sequence can make the parser panic or loop without bound (FuzzParse
// checks this).
//
// Physical memory is read through juice/mm/phys; port I/O goes through a
// portio.Ports seam.
package acpi

import "juice/mm/phys"

// Limits on what the parser accepts.
const (
	// MaxTableLen is the longest table accepted; longer lengths are
	// treated as corrupt.
	MaxTableLen = 4 << 20
	// MaxRootEntries bounds how many XSDT/RSDT entries are examined.
	MaxRootEntries = 256
	// MaxCPUs, MaxIOAPICs and MaxOverrides size the MADT arrays in Tables.
	MaxCPUs      = 256
	MaxIOAPICs   = 8
	MaxOverrides = 16
	// MaxBad is how many bad tables Tables remembers by signature.
	MaxBad = 8
)

// Status reports the outcome of FindRSDP and Parse.
type Status uint8

// Status values.
const (
	StatusOK       Status = iota // found / parsed, FADT usable
	StatusNotFound               // no valid RSDP at the hint, in the EBDA or in the BIOS area
	StatusBadRSDP                // the RSDP passed to Parse has a bad signature or checksum
	StatusNoRoot                 // neither the XSDT nor the RSDT is a valid table
	StatusNoFADT                 // no FADT among the root table's entries
	StatusBadFADT                // an FADT is listed but corrupt or too short to use
)

// String names the status; safe anywhere (it returns constants).
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "no RSDP found"
	case StatusBadRSDP:
		return "bad RSDP"
	case StatusNoRoot:
		return "no valid XSDT or RSDT"
	case StatusNoFADT:
		return "no FADT"
	case StatusBadFADT:
		return "FADT corrupt or too short"
	}
	return "unknown acpi status"
}

// Address spaces of a Generic Address Structure.
const (
	SpaceMemory = 0 // system memory
	SpaceIO     = 1 // system I/O ports
	SpacePCI    = 2 // PCI configuration space (bus 0)
)

// GAS is an ACPI Generic Address Structure.
type GAS struct {
	Space      uint8  // SpaceMemory, SpaceIO, SpacePCI, ...
	Width      uint8  // register bit width
	Offset     uint8  // register bit offset
	AccessSize uint8  // 0 undefined, 1 byte, 2 word, 3 dword, 4 qword
	Address    uint64 // address in Space
}

// IOAPIC is one MADT I/O APIC entry.
type IOAPIC struct {
	ID      uint8
	Addr    uint32 // MMIO base
	GSIBase uint32 // first global system interrupt it serves
}

// Override is one MADT interrupt source override: ISA IRQ Source on Bus is
// GSI, with MPS INTI Flags (polarity bits 1:0, trigger mode bits 3:2).
type Override struct {
	Bus, Source uint8
	GSI         uint32
	Flags       uint16
}

// Table bits for Tables.Found and Tables.Bad.
const (
	HaveFADT = 1 << iota
	HaveDSDT
	HaveMADT
	HaveHPET
	HaveMCFG
)

// FADT flag and boot-architecture bits exposed in Tables.
const (
	FlagTmrValExt   = 1 << 8  // FADT.Flags: PM timer is 32 bits
	FlagResetRegSup = 1 << 10 // FADT.Flags: RESET_REG is supported
	FlagHWReduced   = 1 << 20 // FADT.Flags: hardware-reduced ACPI

	BootLegacyDevices = 1 << 0 // IAPC_BOOT_ARCH: LPC/ISA devices present
	Boot8042          = 1 << 1 // IAPC_BOOT_ARCH: 8042 keyboard controller present
	BootNoVGA         = 1 << 2 // IAPC_BOOT_ARCH: VGA not present
	BootNoMSI         = 1 << 3 // IAPC_BOOT_ARCH: MSI not supported
	BootNoASPM        = 1 << 4 // IAPC_BOOT_ARCH: PCIe ASPM must not be enabled
	BootNoCMOSRTC     = 1 << 5 // IAPC_BOOT_ARCH: CMOS RTC not present
)

// Tables is what Parse extracts. It holds no pointers, so it can live in
// kernel globals. Fields whose table is missing or corrupt stay zero.
type Tables struct {
	// From the RSDP.
	Revision uint8   // RSDP revision: 0 for ACPI 1.0, 2 for 2.0+
	OEM      [6]byte // RSDP OEM ID

	// From the FADT. I/O port fields come from the X_ GAS when it is
	// present, nonzero and in I/O space, else from the 32-bit field;
	// values that cannot be I/O ports (above 0xFFFF) read as 0.
	FADTRevision   uint8
	FADTFlags      uint32
	SCIInt         uint16
	PM1aEvt        uint32
	PM1bEvt        uint32
	PM1aCnt        uint32
	PM1bCnt        uint32
	PMTimer        uint32 // 0 when absent (PM_TMR_LEN is not 4)
	PMTimer32      bool   // TMR_VAL_EXT: the PM timer counts 32 bits, else 24
	SMICmd         uint32
	ACPIEnable     uint8
	ResetReg       GAS
	ResetValue     uint8
	ResetSupported bool   // RESET_REG_SUP set and the FADT long enough to hold the register
	SleepControl   GAS    // HW-reduced sleep control register (zero if absent)
	SleepStatus    GAS    // HW-reduced sleep status register (zero if absent)
	BootArchFlags  uint16 // IAPC_BOOT_ARCH (Boot* bits)
	Century        uint8  // CMOS index of the RTC century register; 0 if none
	HWReduced      bool

	// From the DSDT (X_DSDT preferred): the \_S5_ package.
	DSDTAddr         uint64
	DSDTLen          uint32
	S5Valid          bool
	SlpTypA, SlpTypB uint8

	// From the MADT.
	LAPICAddr   uint64 // local APIC MMIO base (type 5 override applied)
	PCATCompat  bool   // dual 8259 PICs present (they must be masked)
	LINT1NMI    bool   // a Local APIC NMI entry wires NMI to LINT1
	NCPU        int    // enabled processors recorded in CPUAPICID
	CPUAPICID   [MaxCPUs]uint32
	NIOAPIC     int
	IOAPIC      [MaxIOAPICs]IOAPIC
	NOverride   int
	Overrides   [MaxOverrides]Override
	MADTDropped int // enabled CPUs, I/O APICs or overrides beyond the arrays

	// From the HPET table: the event timer block's MMIO base.
	HPETAddr uint64

	// From the MCFG's first allocation: the PCIe ECAM window.
	MCFGBase     uint64
	MCFGSegment  uint16
	MCFGBusStart uint8
	MCFGBusEnd   uint8

	// Bookkeeping.
	Found  uint16          // Have* bits of tables found valid
	Bad    uint16          // Have* bits of wanted tables seen only corrupt
	NBad   int             // root entries (of any kind) that were corrupt
	BadSig [MaxBad][4]byte // signatures of the first MaxBad corrupt entries ("\x00\x00\x00\x00" if unreadable)
}

// Table signatures as little-endian uint32s.
const (
	sigFACP = 'F' | 'A'<<8 | 'C'<<16 | 'P'<<24
	sigDSDT = 'D' | 'S'<<8 | 'D'<<16 | 'T'<<24
	sigAPIC = 'A' | 'P'<<8 | 'I'<<16 | 'C'<<24
	sigHPET = 'H' | 'P'<<8 | 'E'<<16 | 'T'<<24
	sigMCFG = 'M' | 'C'<<8 | 'F'<<16 | 'G'<<24
	sigXSDT = 'X' | 'S'<<8 | 'D'<<16 | 'T'<<24
	sigRSDT = 'R' | 'S'<<8 | 'D'<<16 | 'T'<<24
)

const headerLen = 36 // common SDT header

// u8, u16, u32 and u64 read little-endian values at off in b, returning 0
// when the value would run past the end. They are written so the compiler
// can prove every index in range (no bounds-check calls, which would
// deepen nosplit call chains).
//
//go:nosplit
func u8(b []byte, off uint) uint8 {
	if off >= uint(len(b)) {
		return 0
	}
	return b[off]
}

//go:nosplit
func u16(b []byte, off uint) uint16 {
	if off >= uint(len(b)) {
		return 0
	}
	s := b[off:]
	if len(s) < 2 {
		return 0
	}
	return uint16(s[0]) | uint16(s[1])<<8
}

//go:nosplit
func u32(b []byte, off uint) uint32 {
	if off >= uint(len(b)) {
		return 0
	}
	s := b[off:]
	if len(s) < 4 {
		return 0
	}
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

//go:nosplit
func u64(b []byte, off uint) uint64 {
	if off >= uint(len(b)) {
		return 0
	}
	s := b[off:]
	if len(s) < 8 {
		return 0
	}
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// gas decodes the Generic Address Structure at off (zero if truncated).
//
//go:nosplit
func gas(b []byte, off uint) GAS {
	if off >= uint(len(b)) {
		return GAS{}
	}
	s := b[off:]
	if len(s) < 12 {
		return GAS{}
	}
	return GAS{Space: s[0], Width: s[1], Offset: s[2], AccessSize: s[3], Address: u64(s, 4)}
}

// sum returns the 8-bit sum of b; a valid ACPI structure sums to 0.
//
//go:nosplit
func sum(b []byte) uint8 {
	var s uint8
	for i := 0; i < len(b); i++ {
		s += b[i]
	}
	return s
}

// table returns the SDT at pa if its header is inside the window, its
// length is sane and inside the window, and its checksum is right. sig is
// the signature read from the header (0 if unreadable).
//
//go:nosplit
func table(mem *phys.Mem, pa uint64) (b []byte, sig uint32, ok bool) {
	hdr, ok := mem.Bytes(pa, headerLen)
	if !ok {
		return nil, 0, false
	}
	sig = u32(hdr, 0)
	n := u32(hdr, 4)
	if n < headerLen || n > MaxTableLen {
		return nil, sig, false
	}
	b, ok = mem.Bytes(pa, uint64(n))
	if !ok || sum(b) != 0 {
		return nil, sig, false
	}
	return b, sig, true
}

// rsdpLen returns the number of bytes of a valid RSDP at pa (20 for
// revision 0/1, the Length field for revision 2+), or 0 if there is no
// valid RSDP there. A revision-2 RSDP must pass both checksums.
//
//go:nosplit
func rsdpLen(mem *phys.Mem, pa uint64) uint32 {
	b, ok := mem.Bytes(pa, 20)
	if !ok || !isRSDPSig(b) || sum(b) != 0 {
		return 0
	}
	if u8(b, 15) < 2 {
		return 20
	}
	n, ok := mem.Load32(pa + 20)
	if !ok || n < 36 || n > 4096 {
		return 0
	}
	x, ok := mem.Bytes(pa, uint64(n))
	if !ok || sum(x) != 0 {
		return 0
	}
	return n
}

// isRSDPSig reports whether b starts with "RSD PTR ".
//
//go:nosplit
func isRSDPSig(b []byte) bool {
	return u64(b, 0) == 'R'|'S'<<8|'D'<<16|' '<<24|'P'<<32|'T'<<40|'R'<<48|' '<<56
}

// FindRSDP returns the physical address of the Root System Description
// Pointer. hint, when nonzero, is tried first (a PVH rsdp_paddr, or the
// address of the copy in a multiboot2 ACPI tag); then the first KiB of the
// EBDA (whose segment is the word at physical 0x40E) and the BIOS area
// 0xE0000–0xFFFFF are scanned on 16-byte boundaries. A candidate must
// carry the signature and a valid checksum — for revision 2+, valid
// extended checksum and length too.
//
//go:nosplit
func FindRSDP(mem *phys.Mem, hint uint64) (uint64, Status) {
	if mem == nil {
		return 0, StatusNotFound
	}
	if hint != 0 && rsdpLen(mem, hint) != 0 {
		return hint, StatusOK
	}
	lo, ok1 := mem.Load8(0x40E)
	hi, ok2 := mem.Load8(0x40F)
	if ebda := (uint64(hi)<<8 | uint64(lo)) << 4; ok1 && ok2 && ebda != 0 {
		if pa, ok := scanRSDP(mem, ebda, ebda+1024); ok {
			return pa, StatusOK
		}
	}
	if pa, ok := scanRSDP(mem, 0xE0000, 0x100000); ok {
		return pa, StatusOK
	}
	return 0, StatusNotFound
}

// scanRSDP looks for a valid RSDP at 16-byte boundaries in [from, to).
//
//go:nosplit
func scanRSDP(mem *phys.Mem, from, to uint64) (uint64, bool) {
	for pa := from &^ 15; pa < to; pa += 16 {
		if !mem.In(pa, 20) {
			return 0, false // the window ends here
		}
		if rsdpLen(mem, pa) != 0 {
			return pa, true
		}
	}
	return 0, false
}

// Parse reads the ACPI tables reached from the RSDP at rsdp into t, which
// it clears first.
//
// The XSDT is used when the RSDP is revision 2+ with a valid extended
// checksum and a nonzero XSDT address, and the XSDT itself is valid;
// otherwise the RSDT. Every root entry's table is checked (header and
// length inside the window, length sane, checksum zero); corrupt entries
// are skipped and recorded in t.NBad/t.BadSig (and in t.Bad when it is a
// table Parse wants), and the first valid FADT, MADT, HPET and MCFG are
// used. The DSDT comes from the FADT's X_DSDT, falling back to DSDT.
//
// The status concerns only what is essential: the RSDP, the root table
// and the FADT. MADT, HPET, MCFG and DSDT problems do not change it; t.Found
// and t.Bad say which of those were usable. Even on StatusNoFADT or
// StatusBadFADT, t holds everything else that was found.
//
//go:nosplit
func Parse(mem *phys.Mem, rsdp uint64, t *Tables) Status {
	*t = Tables{}
	if mem == nil {
		return StatusBadRSDP
	}
	r, ok := mem.Bytes(rsdp, 20)
	if !ok || !isRSDPSig(r) || sum(r) != 0 {
		return StatusBadRSDP
	}
	t.Revision = u8(r, 15)
	for i := uint(0); i < 6; i++ {
		t.OEM[i] = u8(r, 9+i)
	}
	root, esize := rootTable(mem, rsdp, t.Revision, u32(r, 16))
	if esize == 0 {
		return StatusNoRoot
	}
	var f found
	t.scanRoot(mem, root, esize, &f)
	t.parseOthers(mem, &f)
	st := t.parseFADTAt(mem, f.fadt)
	if st == StatusOK {
		// At the top level rather than inside the FADT parser, to keep the
		// nosplit call chain short.
		if aml := t.findDSDT(mem, f.fadt); aml != nil {
			t.SlpTypA, t.SlpTypB, t.S5Valid = FindS5(aml)
		}
	}
	return st
}

// found holds the addresses of the first valid copy of each wanted table
// (0 if none).
type found struct {
	fadt, madt, hpet, mcfg uint64
}

// rootTable picks the root table: the XSDT (entry size 8) if the RSDP is
// revision 2+ with a valid extended checksum, the XSDT address is nonzero
// and the XSDT is valid; else the RSDT (entry size 4) at rsdt if valid.
// esize 0 means neither.
//
//go:nosplit
func rootTable(mem *phys.Mem, rsdp uint64, rev uint8, rsdt uint32) (pa uint64, esize uint) {
	if rev >= 2 && rsdpLen(mem, rsdp) != 0 {
		if x, _ := mem.Load64(rsdp + 24); x != 0 {
			if _, sig, ok := table(mem, x); ok && sig == sigXSDT {
				return x, 8
			}
		}
	}
	if _, sig, ok := table(mem, uint64(rsdt)); ok && sig == sigRSDT {
		return uint64(rsdt), 4
	}
	return 0, 0
}

// scanRoot validates every entry of the root table at root (at most
// MaxRootEntries), recording corrupt ones in t and the first valid copy
// of each wanted table in f.
//
//go:nosplit
func (t *Tables) scanRoot(mem *phys.Mem, root uint64, esize uint, f *found) {
	b, _, ok := table(mem, root)
	if !ok {
		return
	}
	n := (uint(len(b)) - headerLen) / esize
	if n > MaxRootEntries {
		n = MaxRootEntries
	}
	for i := uint(0); i < n; i++ {
		off := headerLen + i*esize
		pa := uint64(u32(b, off))
		if esize == 8 {
			pa = u64(b, off)
		}
		_, sig, ok := table(mem, pa)
		if !ok {
			t.noteBad(sig)
			continue
		}
		switch {
		case sig == sigFACP && f.fadt == 0:
			f.fadt = pa
		case sig == sigAPIC && f.madt == 0:
			f.madt = pa
		case sig == sigHPET && f.hpet == 0:
			f.hpet = pa
		case sig == sigMCFG && f.mcfg == 0:
			f.mcfg = pa
		}
	}
}

// parseOthers parses the MADT, HPET and MCFG found by scanRoot.
//
//go:nosplit
func (t *Tables) parseOthers(mem *phys.Mem, f *found) {
	if m, _, ok := table(mem, f.madt); f.madt != 0 && ok {
		t.Found |= HaveMADT
		t.parseMADT(m)
	}
	if h, _, ok := table(mem, f.hpet); f.hpet != 0 && ok {
		if len(h) >= 52 && u8(h, 40) == SpaceMemory {
			t.Found |= HaveHPET
			t.HPETAddr = u64(h, 44)
		} else {
			t.Bad |= HaveHPET
		}
	}
	if m, _, ok := table(mem, f.mcfg); f.mcfg != 0 && ok {
		if len(m) >= 60 {
			t.Found |= HaveMCFG
			t.MCFGBase = u64(m, 44)
			t.MCFGSegment = u16(m, 52)
			t.MCFGBusStart = u8(m, 54)
			t.MCFGBusEnd = u8(m, 55)
		} else {
			t.Bad |= HaveMCFG
		}
	}
}

// parseFADTAt parses the FADT at pa (0: none was found valid) and the
// DSDT it names, and returns Parse's status.
//
//go:nosplit
func (t *Tables) parseFADTAt(mem *phys.Mem, pa uint64) Status {
	st := StatusOK
	f, _, ok := table(mem, pa)
	switch {
	case pa == 0 || !ok:
		st = StatusNoFADT
		if t.Bad&HaveFADT != 0 {
			st = StatusBadFADT
		}
	case len(f) < fadtMinLen:
		t.Bad |= HaveFADT
		st = StatusBadFADT
	default:
		t.Found |= HaveFADT
		t.parseFADT(f)
	}
	t.Bad &^= t.Found // a corrupt duplicate does not matter once a good copy was used
	return st
}

// noteBad records a corrupt root entry with signature sig.
//
//go:nosplit
func (t *Tables) noteBad(sig uint32) {
	switch sig {
	case sigFACP:
		t.Bad |= HaveFADT
	case sigAPIC:
		t.Bad |= HaveMADT
	case sigHPET:
		t.Bad |= HaveHPET
	case sigMCFG:
		t.Bad |= HaveMCFG
	}
	if n := t.NBad; n >= 0 && n < MaxBad {
		t.BadSig[n] = [4]byte{byte(sig), byte(sig >> 8), byte(sig >> 16), byte(sig >> 24)}
	}
	t.NBad++
}
