package bootinfo

import "juice/mm/phys"

// Layouts of the loaders' memory-map entries.
const (
	// mapE820 entries: {addr u64, len u64, type u32, reserved u32}, used by
	// both hvm_memmap_table_entry and the multiboot2 mmap tag.
	mapE820 = 1
	// mapEFI entries: EFI_MEMORY_DESCRIPTOR {Type u32, pad u32,
	// PhysicalStart u64, VirtualStart u64, NumberOfPages u64, Attribute u64}.
	mapEFI = 2

	e820EntrySize = 24 // minimum multiboot2 entry_size; PVH's fixed size
	efiDescSize   = 40 // minimum EFI descriptor_size
)

// e820 types (ACPI "Address Range Types").
const (
	e820RAM      = 1
	e820ACPI     = 3
	e820NVS      = 4
	e820Unusable = 5
)

// EFI_MEMORY_TYPE values (UEFI spec, "Memory Type Usage after
// ExitBootServices()").
const (
	efiLoaderCode                = 1
	efiLoaderData                = 2
	efiBootServicesCode          = 3
	efiBootServicesData          = 4
	efiConventionalMemory        = 7
	efiUnusableMemory            = 8
	efiACPIReclaimMemory         = 9
	efiACPIMemoryNVS             = 10
	efiPageShift                 = 12
	efiMaxPages                  = MaxPhys >> efiPageShift
	maxU64                uint64 = ^uint64(0)
)

// rawMap describes a loader's memory-map array in physical memory: n
// entries of stride bytes from pa, in layout kind. The array has been
// checked to lie inside the window.
type rawMap struct {
	pa, stride, n uint64
	kind          uint8
}

// entry decodes entry i into a clipped half-open range [base, end) and a
// type. ok is false for entries that contribute nothing: zero length, base
// at or above MaxPhys, RAM whose length wraps the address space, or an
// unreadable entry. A non-RAM entry that wraps or reaches past MaxPhys is
// clipped to MaxPhys (conservative: it stays unusable).
//
//go:nosplit
func (r *rawMap) entry(m *phys.Mem, i uint64) (base, end uint64, t RegionType, ok bool) {
	pa := r.pa + i*r.stride
	var length uint64
	var wraps bool
	switch r.kind {
	case mapE820:
		b, ok1 := m.Load64(pa)
		l, ok2 := m.Load64(pa + 8)
		ty, ok3 := m.Load32(pa + 16)
		if !ok1 || !ok2 || !ok3 {
			return 0, 0, 0, false
		}
		base, length, t = b, l, e820Type(ty)
		wraps = length > maxU64-base
	case mapEFI:
		ty, ok1 := m.Load32(pa)
		b, ok2 := m.Load64(pa + 8)
		pages, ok3 := m.Load64(pa + 24)
		if !ok1 || !ok2 || !ok3 {
			return 0, 0, 0, false
		}
		base, t = b, efiType(ty)
		if pages >= efiMaxPages {
			// pages<<12 would reach past MaxPhys on its own.
			length, wraps = maxU64, true
		} else {
			length = pages << efiPageShift
			wraps = length > maxU64-base
		}
	default:
		return 0, 0, 0, false
	}
	if length == 0 || base >= MaxPhys {
		return 0, 0, 0, false
	}
	if wraps {
		if t == RegionRAM {
			return 0, 0, 0, false
		}
		return base, MaxPhys, t, true
	}
	end = base + length
	if end > MaxPhys {
		end = MaxPhys
	}
	return base, end, t, true
}

// e820Type maps an e820 / multiboot2 / PVH memory type to a RegionType.
//
//go:nosplit
func e820Type(t uint32) RegionType {
	switch t {
	case e820RAM:
		return RegionRAM
	case e820ACPI:
		return RegionACPIReclaim
	case e820NVS:
		return RegionACPINVS
	case e820Unusable:
		return RegionBad
	}
	return RegionReserved
}

// efiType maps an EFI memory type to a RegionType, as seen after
// ExitBootServices.
//
//go:nosplit
func efiType(t uint32) RegionType {
	switch t {
	case efiLoaderCode, efiLoaderData, efiBootServicesCode, efiBootServicesData, efiConventionalMemory:
		return RegionRAM
	case efiACPIReclaimMemory:
		return RegionACPIReclaim
	case efiACPIMemoryNVS:
		return RegionACPINVS
	case efiUnusableMemory:
		return RegionBad
	}
	return RegionReserved
}

// sanitize builds info.Mem from the raw map by sweeping over the entries'
// boundaries in ascending order: each elementary interval between two
// consecutive boundaries gets the highest type of the entries covering it
// (nothing if none does), equal neighbours are merged, and RAM is finally
// shrunk to page boundaries. It needs no storage beyond info.Mem: the raw
// map is re-read on every step, which costs O(n²) entry reads for n raw
// entries (n ≤ MaxRawEntries).
//
//go:nosplit
func sanitize(m *phys.Mem, r *rawMap, info *Info) {
	info.NMem = 0
	// Start at the lowest base.
	cur := maxU64
	for i := uint64(0); i < r.n; i++ {
		if b, _, _, ok := r.entry(m, i); ok && b < cur {
			cur = b
		}
	}
	if cur == maxU64 {
		return
	}
	for {
		next := maxU64
		var cover RegionType
		for i := uint64(0); i < r.n; i++ {
			b, e, t, ok := r.entry(m, i)
			if !ok {
				continue
			}
			if b <= cur && cur < e && t > cover {
				cover = t
			}
			if b > cur && b < next {
				next = b
			}
			if e > cur && e < next {
				next = e
			}
		}
		if next == maxU64 {
			break // cur is at or past every end
		}
		if cover != 0 && !emit(info, cur, next, cover) {
			info.MemTruncated = true
			break
		}
		cur = next
	}
	shrinkRAM(info)
}

// emit appends [b, e) of type t to info.Mem, extending the last region when
// it has the same type and ends at b. It returns false when Mem is full.
//
//go:nosplit
func emit(info *Info, b, e uint64, t RegionType) bool {
	n := info.NMem
	if n > 0 && n <= len(info.Mem) {
		last := &info.Mem[(n-1)&(MaxRegions-1)]
		if last.Type == t && last.Base+last.Length == b {
			last.Length = e - last.Base
			return true
		}
	}
	if n < 0 || n >= len(info.Mem) {
		return false
	}
	info.Mem[n&(MaxRegions-1)] = Region{Base: b, Length: e - b, Type: t}
	info.NMem = n + 1
	return true
}

// shrinkRAM rounds every RAM region inward to page boundaries and drops
// regions left empty, compacting Mem in place.
//
//go:nosplit
func shrinkRAM(info *Info) {
	n := info.NMem
	if n > len(info.Mem) {
		n = len(info.Mem)
	}
	w := 0
	for k := 0; k < n; k++ {
		reg := info.Mem[k&(MaxRegions-1)]
		if reg.Type == RegionRAM {
			b := alignUp(reg.Base)
			e := (reg.Base + reg.Length) &^ (PageSize - 1)
			if b >= e {
				continue
			}
			reg.Base, reg.Length = b, e-b
		}
		if uint(w) < uint(len(info.Mem)) { // always: w <= k
			info.Mem[w&(MaxRegions-1)] = reg
		}
		w++
	}
	for k := w; k < n; k++ {
		if uint(k) < uint(len(info.Mem)) {
			info.Mem[k&(MaxRegions-1)] = Region{}
		}
	}
	info.NMem = w
}

// alignUp rounds v up to a page boundary, saturating at the last page.
//
//go:nosplit
func alignUp(v uint64) uint64 {
	if v > maxU64-(PageSize-1) {
		return maxU64 &^ (PageSize - 1)
	}
	return (v + PageSize - 1) &^ (PageSize - 1)
}

// reserve records the loader-owned range [base, end) in info.Reserved,
// rounded out to pages and merged with any range it overlaps or touches.
// When the array is full the range is merged into its nearest neighbour,
// which over-reserves the gap between them but never loses coverage.
// Addresses at or above MaxPhys cannot be RAM and are not recorded.
//
//go:nosplit
func reserve(info *Info, base, end uint64) {
	if end > MaxPhys {
		end = MaxPhys
	}
	if end <= base {
		return
	}
	b := base &^ (PageSize - 1)
	e := alignUp(end)
	rs := &info.Reserved
	n := uint(info.NReserved)
	if n > MaxReserved {
		n = 0
	}
	// Absorb every range that overlaps or touches [b, e). The ranges are
	// sorted and pairwise separated, so one pass suffices. (The redundant
	// index guards let the compiler drop its bounds checks.)
	w := uint(0)
	for k := uint(0); k < n && k < MaxReserved; k++ {
		r := rs[k&(MaxReserved-1)]
		if r.Base <= e && b <= r.End {
			b = min(b, r.Base)
			e = max(e, r.End)
			continue
		}
		if w < MaxReserved {
			rs[w&(MaxReserved-1)] = r
		}
		w++
	}
	n = w
	// Insertion point: first range above the new one.
	p := uint(0)
	for p < n && p < MaxReserved && rs[p&(MaxReserved-1)].Base < b {
		p++
	}
	if n >= MaxReserved {
		// Full: widen the nearer neighbour instead of inserting. Neither
		// neighbour touches [b, e), so the result stays separated.
		switch {
		case p == 0:
			rs[0].Base = b
		case p >= MaxReserved:
			rs[MaxReserved-1].End = e
		default:
			l, r := (p-1)&(MaxReserved-1), p&(MaxReserved-1)
			if b-rs[l].End <= rs[r].Base-e {
				rs[l].End = e
			} else {
				rs[r].Base = b
			}
		}
		info.NReserved = MaxReserved
		return
	}
	for k := n; k > p && k < MaxReserved; k-- {
		rs[k&(MaxReserved-1)] = rs[(k-1)&(MaxReserved-1)]
	}
	if p < MaxReserved {
		rs[p&(MaxReserved-1)] = Range{Base: b, End: e}
	}
	n++
	for k := n; k < MaxReserved; k++ {
		rs[k&(MaxReserved-1)] = Range{}
	}
	info.NReserved = int(n)
}
