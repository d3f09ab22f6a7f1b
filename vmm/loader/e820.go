package loader

// E820 memory types, as the BIOS INT 15h E820 call, multiboot's mmap and
// PVH's hvm_memmap_table_entry all number them.
const (
	E820RAM      = 1
	E820Reserved = 2
)

// Guest physical layout below 1 MiB that every guest sees: conventional
// memory up to the EBDA, then the legacy VGA/ROM/BIOS hole.
const (
	// LowMemEnd is the end of conventional memory (start of the EBDA).
	LowMemEnd = 0x9fc00
	// HighMemStart is the start of extended memory, above the legacy hole.
	HighMemStart = 0x100000
)

// E820Entry is one entry of the guest's physical memory map: [Addr,
// Addr+Size) of Type (E820RAM or E820Reserved).
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// E820 returns the memory map of a guest whose RAM is guest-physical [0,
// memSize): RAM [0, min(memSize, LowMemEnd)), reserved [LowMemEnd,
// HighMemStart) and, when memSize is above 1 MiB, RAM [HighMemStart,
// memSize). It assumes RAM is one contiguous run from address 0 (no PCI or
// APIC hole); a caller that maps MMIO inside RAM must punch its own hole.
func E820(memSize uint64) []E820Entry {
	m := make([]E820Entry, 0, 3)
	low := min(memSize, LowMemEnd)
	if low > 0 {
		m = append(m, E820Entry{Addr: 0, Size: low, Type: E820RAM})
	}
	m = append(m, E820Entry{Addr: LowMemEnd, Size: HighMemStart - LowMemEnd, Type: E820Reserved})
	if memSize > HighMemStart {
		m = append(m, E820Entry{Addr: HighMemStart, Size: memSize - HighMemStart, Type: E820RAM})
	}
	return m
}
