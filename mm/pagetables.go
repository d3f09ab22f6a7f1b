package mm

import "juice/mm/phys"

// x86-64 page-table entry bits (Intel SDM Vol. 3A §4.5, Tables 4-14..4-20).
const (
	PTEPresent      = 1 << 0  // P: the entry maps or points to something
	PTEWrite        = 1 << 1  // R/W: writes allowed
	PTEUser         = 1 << 2  // U/S: ring-3 access allowed (juice never sets it)
	PTEWriteThrough = 1 << 3  // PWT
	PTECacheDisable = 1 << 4  // PCD
	PTEAccessed     = 1 << 5  // A: set by the CPU
	PTEDirty        = 1 << 6  // D: set by the CPU (leaf entries)
	PTELarge        = 1 << 7  // PS: 2 MiB (PDE) or 1 GiB (PDPTE) page
	PTEGlobal       = 1 << 8  // G
	PTENX           = 1 << 63 // XD: no instruction fetch (needs EFER.NXE)
)

// Page sizes the page tables can map.
const (
	Size4K = 1 << 12
	Size2M = 1 << 21
	Size1G = 1 << 30
)

// tableFlags are the flags of an entry that points to a lower table:
// permissive, so the leaf entry alone decides access.
const tableFlags = PTEPresent | PTEWrite

// PageTables is an x86-64 4-level page-table tree in host format (PML4,
// PDPT, PD, PT), built in physical memory through a phys.Mem and fed by a
// Frames allocator. It holds no Go pointers.
//
// Intermediate entries are Present|Write; leaf entries carry the caller's
// flags. Tables that become empty on an unmap are freed (the PML4 never
// is). 1 GiB pages need a CPU with PDPE1GB, and PTENX needs EFER.NXE: both
// are the caller's business.
type PageTables struct {
	// Root is the physical address of the PML4 (the value for CR3).
	Root uint64
	// FlushTLB, when true, makes Unmap run INVLPG (cpu.Invlpg) after it
	// clears a present entry, before a freed table can be reused. Host
	// tests leave it false. Only the local CPU is flushed.
	FlushTLB bool

	mem    phys.Mem
	fr     Frames
	tables uint64 // frames used by tables, the PML4 included
}

// Init allocates a zeroed PML4 from fr (FlushTLB is left as it is).
// Status: OK, NoMemory, Uninitialized (nil arguments or fr not
// initialised).
//
//go:nosplit
func (pt *PageTables) Init(mem *phys.Mem, fr *Frames) Status {
	*pt = PageTables{FlushTLB: pt.FlushTLB}
	if mem == nil || fr == nil || !fr.ready() {
		return Uninitialized
	}
	root, ok := fr.AllocZeroed()
	if !ok {
		return NoMemory
	}
	pt.mem, pt.fr, pt.Root, pt.tables = *mem, *fr, root, 1
	return OK
}

// TableFrames returns the number of frames the tables use, the PML4
// included.
//
//go:nosplit
func (pt *PageTables) TableFrames() uint64 { return pt.tables }

// canonical reports whether va is a canonical 48-bit address.
//
//go:nosplit
func canonical(va uint64) bool {
	return va < 1<<47 || va >= 0xffff_8000_0000_0000
}

// canonicalRange reports whether [va, va+length) (length > 0) lies in one
// canonical half without wrapping.
//
//go:nosplit
func canonicalRange(va, length uint64) bool {
	if length == 0 || length-1 > ^va {
		return false
	}
	last := va + length - 1
	return canonical(va) && canonical(last) && (va < 1<<47) == (last < 1<<47)
}

// levelShift is the number of address bits below one entry of a level-l
// table (level 3 = PML4 … 0 = PT).
//
//go:nosplit
func levelShift(l int) uint64 { return 12 + 9*uint64(l&3) }

// entryAddr is the physical address of va's entry in the level-l table.
//
//go:nosplit
func entryAddr(table, va uint64, l int) uint64 {
	return table + (va>>levelShift(l)&511)*8
}

// isLeaf reports whether e, a present entry at level l, maps a page.
//
//go:nosplit
func isLeaf(e uint64, l int) bool {
	return l == 0 || (l <= 2 && e&PTELarge != 0)
}

// flush invalidates va's TLB and paging-structure-cache entries when on.
//
//go:nosplit
func flush(on bool, va uint64) {
	if on {
		invlpg(va)
	}
}

// ensure walks to va's entry in the level-`level` table, allocating zeroed
// tables on the way. Status: OK, NoMemory (the caller prunes the tables
// created on the way: calling prune from here would deepen the nosplit
// chain), Exists (a page or a non-present entry is in the way),
// BadAddress (a table outside the window).
//
//go:nosplit
func (pt *PageTables) ensure(va uint64, level int) (uint64, Status) {
	table := pt.Root
	for l := 3; l > level; l-- {
		ea := entryAddr(table, va, l)
		e, ok := pt.mem.Load64(ea)
		if !ok {
			return 0, BadAddress
		}
		if e == 0 {
			nt, ok := pt.fr.AllocZeroed()
			if !ok {
				return 0, NoMemory
			}
			pt.mem.Store64(ea, nt|tableFlags)
			pt.tables++
			table = nt
			continue
		}
		if e&PTEPresent == 0 || isLeaf(e, l) {
			return 0, Exists
		}
		table = e & physMask
	}
	return entryAddr(table, va, level), OK
}

// find walks to the entry that maps va: a present leaf at some level.
// ok is false when the walk stops at a zero or non-present entry; then
// level is where it stopped, e is that entry and ea its address.
//
//go:nosplit
func (pt *PageTables) find(va uint64) (ea, e uint64, level int, ok bool) {
	table := pt.Root
	for l := 3; l >= 0; l-- {
		ea = entryAddr(table, va, l)
		v, in := pt.mem.Load64(ea)
		if !in {
			return ea, 0, l, false
		}
		if v&PTEPresent == 0 {
			return ea, v, l, false
		}
		if isLeaf(v, l) {
			return ea, v, l, true
		}
		table = v & physMask
	}
	return 0, 0, 0, false
}

// isEmpty reports whether every entry of the table at pa is zero.
//
//go:nosplit
func (pt *PageTables) isEmpty(pa uint64) bool {
	for i := uint64(0); i < 512; i++ {
		if v, ok := pt.mem.Load64(pa + i*8); !ok || v != 0 {
			return false
		}
	}
	return true
}

// prune frees the tables on va's path that are empty, bottom up, clearing
// the entries that point to them. The PML4 is never freed. Each pass
// re-walks from the root (no arrays: keeps the frame small and free of
// bounds checks) and frees the deepest table if it is empty.
//
//go:nosplit
func (pt *PageTables) prune(va uint64, fl bool) {
	for pass := 0; pass < 3; pass++ {
		table, ea, child := pt.Root, uint64(0), uint64(0)
		for l := 3; l >= 1; l-- {
			a := entryAddr(table, va, l)
			e, ok := pt.mem.Load64(a)
			if !ok || e&PTEPresent == 0 || isLeaf(e, l) {
				break
			}
			ea, child = a, e&physMask
			table = child
		}
		if child == 0 || !pt.isEmpty(child) {
			return
		}
		pt.mem.Store64(ea, 0)
		flush(fl, va)
		if pt.fr.Free(child) == OK {
			pt.tables--
		}
	}
}

// leafTable finds the PT (level-0 table) covering va. When there is none
// it returns the next address worth looking at (past the missing or
// large-page entry), or ok=false with next ≤ va at the top of the space.
//
//go:nosplit
func (pt *PageTables) leafTable(va uint64) (table, next uint64, found bool) {
	table = pt.Root
	for l := 3; l >= 1; l-- {
		e, ok := pt.mem.Load64(entryAddr(table, va, l))
		if !ok || e&PTEPresent == 0 || isLeaf(e, l) {
			size := uint64(1) << levelShift(l)
			return 0, (va &^ (size - 1)) + size, false
		}
		table = e & physMask
	}
	return table, 0, true
}

// pageLevel maps a page size to the level of its leaf entry.
//
//go:nosplit
func pageLevel(size uint64) (int, bool) {
	switch size {
	case Size4K:
		return 0, true
	case Size2M:
		return 1, true
	case Size1G:
		return 2, true
	}
	return 0, false
}

// leafFlags keeps the flag bits of flags that a leaf of the given size may
// carry, and sets Present (and PS for large pages).
//
//go:nosplit
func leafFlags(flags, size uint64) uint64 {
	f := flags&(pageMask|0xfff0_0000_0000_0000)&^PTELarge | PTEPresent
	if size != Size4K {
		f |= PTELarge
	}
	return f
}

// Map maps the one page [va, va+size) to pa with flags (Present is
// implied; PTELarge is set for 2 MiB and 1 GiB pages and ignored for
// 4 KiB ones; address bits in flags are ignored). Status: OK, BadSize,
// BadAlign (va or pa not size-aligned), NonCanonical, BadAddress (pa at or
// beyond 2^52), Exists (something is mapped there, a larger page covering
// va or a table below it included), NoMemory, Uninitialized.
//
//go:nosplit
func (pt *PageTables) Map(va, pa, size, flags uint64) Status {
	if pt.Root == 0 {
		return Uninitialized
	}
	level, ok := pageLevel(size)
	if !ok {
		return BadSize
	}
	if va&(size-1) != 0 || pa&(size-1) != 0 {
		return BadAlign
	}
	if !canonical(va) {
		return NonCanonical
	}
	if pa >= maxPhys {
		return BadAddress
	}
	ea, st := pt.ensure(va, level)
	if st == NoMemory {
		pt.prune(va, pt.FlushTLB)
	}
	if st != OK {
		return st
	}
	if e, _ := pt.mem.Load64(ea); e != 0 {
		return Exists
	}
	pt.mem.Store64(ea, pa|leafFlags(flags, size))
	return OK
}

// MapRange maps [va, va+length) to [pa, pa+length) with flags, using the
// largest pages (up to maxPage: Size4K, Size2M or Size1G) that va's and
// pa's alignment and the remaining length allow. All or nothing: on
// failure the pages mapped so far are unmapped again. Status as for Map
// (BadAlign: va, pa or length not 4 KiB-aligned; BadSize: bad maxPage);
// length 0 maps nothing and returns OK.
//
//go:nosplit
func (pt *PageTables) MapRange(va, pa, length, flags, maxPage uint64) Status {
	if pt.Root == 0 {
		return Uninitialized
	}
	if _, ok := pageLevel(maxPage); !ok {
		return BadSize
	}
	if (va|pa|length)&pageMask != 0 {
		return BadAlign
	}
	if length == 0 {
		return OK
	}
	if !canonicalRange(va, length) {
		return NonCanonical
	}
	if pa >= maxPhys || length > maxPhys-pa {
		return BadAddress
	}
	done := uint64(0)
	for done < length {
		size := uint64(Size4K)
		for _, s := range [2]uint64{Size1G, Size2M} {
			if s <= maxPage && (va+done)&(s-1) == 0 && (pa+done)&(s-1) == 0 && length-done >= s {
				size = s
				break
			}
		}
		if st := pt.Map(va+done, pa+done, size, flags); st != OK {
			for off := uint64(0); off < done; {
				_, sz, ok := pt.Unmap(va + off)
				if !ok {
					sz = Size4K
				}
				off += sz
			}
			return st
		}
		done += size
	}
	return OK
}

// Unmap removes the page (of any size) that contains va and frees the
// tables left empty. The page's frame is not freed: it belongs to the
// caller. ok is false when nothing is mapped there or va is not
// canonical; pa and size are the page's base and size.
//
//go:nosplit
func (pt *PageTables) Unmap(va uint64) (pa, size uint64, ok bool) {
	if pt.Root == 0 || !canonical(va) {
		return 0, 0, false
	}
	ea, e, level, found := pt.find(va)
	if !found {
		return 0, 0, false
	}
	size = uint64(1) << levelShift(level)
	pt.mem.Store64(ea, 0)
	flush(pt.FlushTLB, va)
	pt.prune(va, pt.FlushTLB)
	return e & physMask &^ (size - 1), size, true
}

// Lookup translates va: pa includes va's offset in the page, flags are
// the leaf entry's non-address bits (Present, Write, NX, PTELarge, the
// CPU's Accessed/Dirty…) and size is the page size. ok is false when va
// is not canonical or not mapped (a non-present entry does not map).
//
//go:nosplit
func (pt *PageTables) Lookup(va uint64) (pa, flags, size uint64, ok bool) {
	if pt.Root == 0 || !canonical(va) {
		return 0, 0, 0, false
	}
	_, e, level, found := pt.find(va)
	if !found {
		return 0, 0, 0, false
	}
	size = uint64(1) << levelShift(level)
	base := e & physMask &^ (size - 1)
	return base + va&(size-1), e &^ (physMask &^ (size - 1)), size, true
}
