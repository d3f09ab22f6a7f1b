// Package bootinfo decodes what the boot loader hands juice's 32-bit entry
// point and turns it into one loader-neutral, fixed-size Info.
//
// juice is entered in one of two ways:
//
//   - PVH (QEMU -kernel, Firecracker, Cloud Hypervisor, Xen): EBX holds the
//     physical address of a Xen hvm_start_info whose first field is the magic
//     0x336ec578 (xen/include/public/arch-x86/hvm/start_info.h).
//   - Multiboot2 (GRUB): EAX holds 0x36d76289 and EBX the physical address of
//     the multiboot2 information structure (MBI), an 8-byte aligned
//     {total_size, reserved} header followed by 8-byte aligned tags.
//
// Anything else is an unknown loader.
//
// Parse is kernel-context code: it runs before the Go runtime starts, so
// every function is //go:nosplit, nothing allocates, every address read goes
// through a bounds-checked phys.Mem and no input, however hostile, makes it
// panic. Its results live in fixed arrays inside Info (no Go pointers).
//
// The memory map is sanitised: whatever the loader reported (unsorted,
// overlapping, zero-length, wrapping or absurdly high entries) comes out
// sorted by base, without overlaps (where entries overlap the most
// restrictive type wins, see RegionType), clipped to [0, MaxPhys), with RAM
// regions shrunk inward to 4 KiB boundaries and empty regions dropped.
package bootinfo

import "juice/mm/phys"

// Magic values that identify the boot protocol.
const (
	// PVHMagic is hvm_start_info.magic ("xEn3" with the 0x80 bit of "E" set).
	PVHMagic = 0x336ec578
	// Multiboot2Magic is the value a multiboot2 loader leaves in EAX.
	Multiboot2Magic = 0x36d76289
)

// Limits of the fixed-size Info and of the parser.
const (
	// MaxRegions is the capacity of Info.Mem.
	MaxRegions = 128
	// MaxModules is the capacity of Info.Mod.
	MaxModules = 16
	// MaxReserved is the capacity of Info.Reserved.
	MaxReserved = 8
	// MaxRawEntries bounds how many entries a loader's memory map may have.
	// Sanitising is quadratic in this number; real firmware reports a few
	// hundred at most. A longer map is refused with StatusTooManyRegions.
	MaxRawEntries = 4096
	// CmdlineScanLimit bounds the scan for the NUL that ends a PVH command
	// line (PVH strings are bare physical addresses with no length).
	CmdlineScanLimit = 4096
	// MaxMBISize bounds a multiboot2 MBI's total_size.
	MaxMBISize = 1 << 20
	// MaxPhys is the exclusive upper bound of physical addresses juice
	// accepts (x86-64 allows at most 52 physical address bits).
	MaxPhys = 1 << 52
	// PageSize is the granule RAM regions and reserved ranges are
	// aligned to.
	PageSize = 4096
)

// The array capacities above are powers of two, and variable indices into
// those arrays are masked with capacity-1 after being range-checked. The
// mask never changes a valid index; it lets the compiler drop every bounds
// check, so no panic path (and no deep runtime.panicBounds frame on the
// nosplit chain) exists even in coverage-instrumented fuzzing builds, whose
// bounds-check elimination is weaker. This constant fails to compile if a
// capacity stops being a power of two.
const _ uint = -(MaxRegions & (MaxRegions - 1)) - (MaxModules & (MaxModules - 1)) - (MaxReserved & (MaxReserved - 1))

// Where Info.Mem came from (values of Info.MemSource).
const (
	// MemSourceNone: no memory map was found.
	MemSourceNone = 0
	// MemSourcePVH: hvm_start_info's memmap (start_info version 1+).
	MemSourcePVH = 1
	// MemSourceMB2: the multiboot2 memory-map tag (type 6).
	MemSourceMB2 = 2
	// MemSourceEFI: the multiboot2 EFI memory-map tag (type 17).
	MemSourceEFI = 3
)

// Loader identifies the boot protocol juice was entered by.
type Loader uint8

// Boot protocols.
const (
	// LoaderUnknown: neither PVH nor multiboot2.
	LoaderUnknown Loader = iota
	// LoaderPVH: Xen PVH boot (hvm_start_info in EBX).
	LoaderPVH
	// LoaderMultiboot2: multiboot2 boot (magic in EAX, MBI in EBX).
	LoaderMultiboot2
)

// String returns "unknown", "pvh" or "multiboot2".
//
//go:nosplit
func (l Loader) String() string {
	switch l {
	case LoaderPVH:
		return "pvh"
	case LoaderMultiboot2:
		return "multiboot2"
	}
	return "unknown"
}

// RegionType classifies a memory-map region. The numeric order is the
// override order: where loader entries overlap, the higher type wins, so
// anything that is not RAM always beats RAM.
type RegionType uint8

// Region types, lowest precedence first. The zero value is no type.
const (
	// RegionRAM is usable RAM (e820 type 1; EFI loader/boot-services
	// code and data and conventional memory).
	RegionRAM RegionType = iota + 1
	// RegionACPIReclaim holds ACPI tables; reusable once they are parsed
	// (e820 type 3, EFI type 9).
	RegionACPIReclaim
	// RegionACPINVS is ACPI non-volatile storage; must be preserved
	// (e820 type 4, EFI type 10).
	RegionACPINVS
	// RegionReserved is anything else the firmware keeps (e820 type 2 and
	// every unknown type; EFI runtime, MMIO and unknown types).
	RegionReserved
	// RegionBad is defective memory (e820 type 5, EFI type 8).
	RegionBad
)

// String returns a short name for the type.
//
//go:nosplit
func (t RegionType) String() string {
	switch t {
	case RegionRAM:
		return "RAM"
	case RegionACPIReclaim:
		return "ACPI reclaimable"
	case RegionACPINVS:
		return "ACPI NVS"
	case RegionReserved:
		return "reserved"
	case RegionBad:
		return "bad"
	}
	return "invalid"
}

// Region is one entry of the sanitised memory map: [Base, Base+Length).
type Region struct {
	Base, Length uint64
	Type         RegionType
}

// End returns Base+Length (never wraps in a sanitised map).
//
//go:nosplit
func (r Region) End() uint64 { return r.Base + r.Length }

// Module is a boot module (initrd, guest image, ...): physical bytes
// [Start, End) plus its command line, truncated to the array.
type Module struct {
	Start, End uint64
	Cmdline    [128]byte
	CmdlineLen uint16
}

// Range is a physical address range [Base, End).
type Range struct {
	Base, End uint64
}

// Info is everything juice keeps from the boot loader. It holds no Go
// pointers, so it may live in a global written before the runtime starts.
type Info struct {
	// Loader is the protocol juice was entered by.
	Loader Loader

	// LoaderName is the multiboot2 boot-loader name (tag 2), truncated;
	// empty for PVH.
	LoaderName    [64]byte
	LoaderNameLen int

	// Cmdline is the kernel command line without its NUL. CmdlineTruncated
	// is set when the loader's string did not fit (or, for PVH, had no NUL
	// within CmdlineScanLimit bytes).
	Cmdline          [1024]byte
	CmdlineLen       int
	CmdlineTruncated bool

	// Mem[:NMem] is the sanitised memory map (see the package comment).
	// If it would need more than MaxRegions entries the lowest MaxRegions
	// are kept and MemTruncated is set: every kept region is exact, and the
	// dropped ones all lie above the last kept one (treat that space as
	// unusable).
	Mem          [MaxRegions]Region
	NMem         int
	MemSource    uint8
	MemTruncated bool

	// Mod[:NMod] are the boot modules in loader order. ModTruncated is set
	// when the loader passed more than MaxModules.
	Mod          [MaxModules]Module
	NMod         int
	ModTruncated bool

	// RSDP is the physical address of the ACPI RSDP, or 0. For PVH it is
	// rsdp_paddr. Multiboot2 tags 15 (preferred) and 14 carry a copy of
	// the RSDP inside the MBI; RSDP is the address of that copy.
	RSDP uint64

	// EFISystemTable is the multiboot2 tag 12 EFI64 system-table pointer,
	// or 0.
	EFISystemTable uint64

	// Reserved[:NReserved] lists the physical ranges the loader's own
	// structures occupy (the MBI; or start_info, the memory-map array, the
	// module list and every command-line string), rounded out to PageSize,
	// sorted and merged. If more than MaxReserved disjoint ranges would be
	// needed, neighbours are merged (over-reserving, never under). The
	// frame allocator must not hand these out before it is done with Info.
	// Module contents are not listed here: reserve Mod[i] separately.
	Reserved  [MaxReserved]Range
	NReserved int
}

// Status is Parse's verdict.
type Status uint8

// Parse results.
const (
	// StatusOK: Info is complete.
	StatusOK Status = iota
	// StatusUnknownLoader: EAX is not the multiboot2 magic and EBX does not
	// point at an hvm_start_info.
	StatusUnknownLoader
	// StatusTruncated: a structure runs past the physical window or past
	// its own declared size (including an MBI with no end tag, and a PVH
	// string that runs off the window before its NUL).
	StatusTruncated
	// StatusBadTag: a multiboot2 tag is malformed (misaligned MBI, tag
	// size under 8, smaller than its type needs, or a memory-map entry
	// size below the minimum).
	StatusBadTag
	// StatusOversized: the MBI claims more than MaxMBISize bytes.
	StatusOversized
	// StatusNoMemoryMap: the loader gave no memory map (PVH version 0 or
	// zero entries; multiboot2 without tag 6 or 17).
	StatusNoMemoryMap
	// StatusTooManyRegions: the loader's memory map has more than
	// MaxRawEntries entries.
	StatusTooManyRegions
	// StatusBadModule: a module's end lies before its start (or wraps).
	StatusBadModule
	// StatusBootServicesActive: multiboot2 tag 18 says EFI boot services
	// were not exited; juice needs them terminated.
	StatusBootServicesActive
	// StatusNoRAM: the sanitised memory map holds no usable RAM.
	StatusNoRAM
)

// String returns a short human phrase for the status.
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnknownLoader:
		return "unknown boot loader (neither PVH nor multiboot2)"
	case StatusTruncated:
		return "boot information runs past memory or its declared size"
	case StatusBadTag:
		return "malformed multiboot2 tag"
	case StatusOversized:
		return "multiboot2 information implausibly large"
	case StatusNoMemoryMap:
		return "no memory map from the boot loader"
	case StatusTooManyRegions:
		return "boot loader memory map has too many entries"
	case StatusBadModule:
		return "boot module has an invalid address range"
	case StatusBootServicesActive:
		return "EFI boot services were not exited by the boot loader"
	case StatusNoRAM:
		return "memory map lists no usable RAM"
	}
	return "unknown boot information status"
}

// Parse detects the boot protocol from the entry registers (eax, ebx),
// decodes the loader's structures through mem into *info and sanitises the
// memory map. It zeroes *info first.
//
// On an error Parse still fills in whatever it could decode (for example the
// command line, so a console= setting can be honoured while the error is
// reported) and returns the first problem it met; a caller should not boot
// on anything but StatusOK. Whatever the status, Mem[:NMem] is sorted,
// non-overlapping and inside [0, MaxPhys), and all counts are within their
// arrays.
//
//go:nosplit
func Parse(mem *phys.Mem, eax, ebx uint32, info *Info) Status {
	*info = Info{}
	if eax == Multiboot2Magic {
		info.Loader = LoaderMultiboot2
		return parseMB2(mem, uint64(ebx), info)
	}
	if magic, ok := mem.Load32(uint64(ebx)); ok && magic == PVHMagic {
		info.Loader = LoaderPVH
		return parsePVH(mem, uint64(ebx), info)
	}
	return StatusUnknownLoader
}

// UsableRAM returns the total size in bytes of the RAM regions in Mem.
//
//go:nosplit
func (i *Info) UsableRAM() uint64 {
	var sum uint64
	n := i.NMem
	if n > len(i.Mem) {
		n = len(i.Mem)
	}
	for k := 0; k < n; k++ {
		if r := &i.Mem[k&(MaxRegions-1)]; r.Type == RegionRAM {
			sum += r.Length
		}
	}
	return sum
}

// CmdlineBytes returns Cmdline[:CmdlineLen].
//
//go:nosplit
func (i *Info) CmdlineBytes() []byte {
	if n := uint(i.CmdlineLen); n <= uint(len(i.Cmdline)) {
		return i.Cmdline[:n]
	}
	return nil
}

// first keeps the first error: it returns st unless st is StatusOK.
//
//go:nosplit
func first(st, next Status) Status {
	if st != StatusOK {
		return st
	}
	return next
}

// finish applies the checks common to both loaders once the memory map
// has been sanitised.
//
//go:nosplit
func finish(st Status, info *Info) Status {
	if st == StatusOK && info.MemSource != MemSourceNone && info.UsableRAM() == 0 {
		return StatusNoRAM
	}
	return st
}
