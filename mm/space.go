package mm

import "juice/mm/phys"

// The user range: the addresses Space hands out and manages. Below
// UserBase (PML4 slot 0) is the kernel's identity map of RAM; UserTop is
// where Linux's 47-bit user space ends (one guard page below 2^47).
const (
	UserBase = 0x0000_0080_0000_0000 // 512 GiB
	UserTop  = 0x0000_7fff_ffff_f000
)

// MaxVMAs is how many VMAs (maximal runs of pages with one protection) a
// Space holds. Running out makes mmap/munmap/mprotect fail with ENOMEM and
// change nothing, as Linux does past vm.max_map_count. The Go runtime
// needs a few dozen.
const MaxVMAs = 1024

// Protection bits (mmap/mprotect prot).
const (
	ProtNone  = 0x0
	ProtRead  = 0x1
	ProtWrite = 0x2
	ProtExec  = 0x4
	protSem   = 0x8 // PROT_SEM: accepted and ignored, as on x86 Linux
	protMask  = ProtRead | ProtWrite | ProtExec
)

// mmap flags (Linux x86-64 values).
const (
	MapShared         = 0x01     // refused: ENODEV
	MapPrivate        = 0x02     // required
	mapTypeMask       = 0x03     // MAP_SHARED_VALIDATE = 0x03 is a shared type too
	MapFixed          = 0x10     // exactly at addr, replacing
	MapAnonymous      = 0x20     // required (no file mappings: ENODEV)
	MapNoReserve      = 0x4000   // ignored: nothing is reserved anyway
	MapPopulate       = 0x8000   // fault the pages in now, best effort
	MapStack          = 0x20000  // ignored
	MapFixedNoReplace = 0x100000 // exactly at addr, EEXIST if anything is there
)

// madvise advice values (Linux).
const (
	MadvNormal     = 0
	MadvRandom     = 1
	MadvSequential = 2
	MadvWillNeed   = 3
	MadvDontNeed   = 4
	MadvFree       = 8
	MadvHugePage   = 14
	MadvNoHugePage = 15
	MadvDontDump   = 16
	MadvDoDump     = 17
	MadvCollapse   = 25
)

// FaultResult is the outcome of Space.Fault and Space.Touch.
type FaultResult uint8

// FaultResult values.
const (
	// FaultFixed: the page is now backed and allowed (or already was:
	// a spurious fault). The faulting access may be retried.
	FaultFixed FaultResult = iota
	// FaultNoVMA: no mapping covers the address.
	FaultNoVMA
	// FaultProt: the mapping's protection does not allow the access (or
	// a page Space did not make is in the way).
	FaultProt
	// FaultOOM: no frame was left to back the page; nothing changed.
	FaultOOM
)

// String names r. It returns constants only; use it once the runtime runs.
//
//go:nosplit
func (r FaultResult) String() string {
	switch r {
	case FaultFixed:
		return "fixed"
	case FaultNoVMA:
		return "no mapping"
	case FaultProt:
		return "protection"
	case FaultOOM:
		return "out of memory"
	}
	return "fault?"
}

// vma is one mapping [start, end) with protection prot.
type vma struct{ start, end, prot uint64 }

// Space is the address space that the runtime's mmap calls manage: a
// sorted array of VMAs plus the pages backing them in PT.
//
// VMAs are kept sorted, non-overlapping and merged (no two adjacent VMAs
// have the same protection) after every call; lookups are binary
// searches. A user page is backed on its first Fault with a zeroed 4 KiB
// frame mapped Present | Write (if PROT_WRITE) | NX (unless PROT_EXEC),
// never User: juice runs everything in ring 0. A backed page whose VMA
// becomes PROT_NONE keeps its frame in a non-present entry (the entry
// holds only the frame address), so mprotect back restores its contents.
// Space owns the user range of PT: no present entry there lies outside a
// VMA that allows it.
//
// Space holds no Go pointers. It is about 25 KiB: make it a global.
type Space struct {
	// PT holds the user mappings; its PML4 slots below UserBase are the
	// kernel's. After Init, use s.PT rather than the caller's copy.
	PT PageTables
	// FlushTLB, when true, makes Space run INVLPG (cpu.Invlpg) after it
	// changes or clears a present entry. Host tests leave it false. Only
	// the local CPU is flushed.
	FlushTLB bool

	n     int    // VMAs in use
	pages uint64 // frames backing user pages
	pl    plan   // scratch VMA edit
	vmas  [MaxVMAs]vma
}

// Init sets s up over the page tables pt (copied into s.PT, with mem and
// fr as their window and allocator) with no VMAs; FlushTLB is left as it
// is. pt's user range must be empty: Space owns it.
// Status: OK, Uninitialized (nil arguments, pt or fr not initialised),
// Exists (pt already maps something in the user range), BadAddress (the
// PML4 lies outside mem).
//
//go:nosplit
func (s *Space) Init(mem *phys.Mem, fr *Frames, pt *PageTables) Status {
	s.n, s.pages = 0, 0
	s.PT = PageTables{}
	if mem == nil || fr == nil || pt == nil || pt.Root == 0 || !fr.ready() {
		return Uninitialized
	}
	s.PT = *pt
	s.PT.mem, s.PT.fr = *mem, *fr
	for i := uint64(UserBase >> 39); i <= (UserTop-1)>>39; i++ {
		e, ok := s.PT.mem.Load64(s.PT.Root + i*8)
		if !ok {
			s.PT = PageTables{}
			return BadAddress
		}
		if e != 0 {
			s.PT = PageTables{}
			return Exists
		}
	}
	return OK
}

// Committed returns the bytes of frames backing user pages.
//
//go:nosplit
func (s *Space) Committed() uint64 { return s.pages * PageSize }

// VMAs returns the number of VMAs.
//
//go:nosplit
func (s *Space) VMAs() int { return s.n }

// VMA returns the i-th VMA in address order (for /proc/self/maps-style
// dumps and tests); ok is false when i is out of range.
//
//go:nosplit
func (s *Space) VMA(i int) (start, end, prot uint64, ok bool) {
	if i < 0 || i >= s.n {
		return 0, 0, 0, false
	}
	v := s.vm(i)
	return v.start, v.end, v.prot, true
}

// vm returns VMA slot i. Callers keep 0 ≤ i < MaxVMAs; the mask only lets
// the compiler drop the bounds check, whose panic path alone would add
// 160 bytes to every nosplit chain through here.
//
//go:nosplit
func (s *Space) vm(i int) *vma { return &s.vmas[uint(i)%MaxVMAs] }

// count is s.n, clamped to the array (it never exceeds it).
//
//go:nosplit
func (s *Space) count() int {
	if s.n < 0 || s.n > MaxVMAs {
		return 0
	}
	return s.n
}

// firstEndAbove returns the index of the first VMA whose end is above x
// (s.n when none is).
//
//go:nosplit
func (s *Space) firstEndAbove(x uint64) int {
	lo, hi := 0, s.count()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.vm(mid).end > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// firstStartAtOrAbove returns the index of the first VMA starting at or
// above x (s.n when none does).
//
//go:nosplit
func (s *Space) firstStartAtOrAbove(x uint64) int {
	lo, hi := 0, s.count()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.vm(mid).start >= x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// find returns the VMA containing va, or nil.
//
//go:nosplit
func (s *Space) find(va uint64) *vma {
	i := s.firstEndAbove(va)
	if i >= s.count() {
		return nil
	}
	if v := s.vm(i); v.start <= va {
		return v
	}
	return nil
}

// overlaps reports whether any VMA intersects [start, end).
//
//go:nosplit
func (s *Space) overlaps(start, end uint64) bool {
	i := s.firstEndAbove(start)
	return i < s.count() && s.vm(i).start < end
}

// covered reports whether VMAs cover all of [start, end).
//
//go:nosplit
func (s *Space) covered(start, end uint64) bool {
	cur := start
	n := s.count()
	for i := s.firstEndAbove(start); i < n && cur < end; i++ {
		v := s.vm(i)
		if v.start > cur {
			return false
		}
		cur = v.end
	}
	return cur >= end
}

// findFree returns the highest free, page-aligned range of length bytes
// in the user range (top-down, as Linux).
//
//go:nosplit
func (s *Space) findFree(length uint64) (uint64, bool) {
	top := uint64(UserTop)
	for i := s.count() - 1; i >= -1; i-- {
		bottom := uint64(UserBase)
		if i >= 0 {
			bottom = s.vm(i).end
		}
		if top >= bottom && top-bottom >= length {
			return top - length, true
		}
		if i >= 0 {
			top = s.vm(i).start
		}
	}
	return 0, false
}

// plan is a VMA-array edit: entries [lo, hi) are replaced by p[:k]. Space
// keeps one as scratch (calls are serialised) to keep it off the stack.
type plan struct {
	lo, hi, k int
	p         [3]vma
}

// push appends v to the replacement list.
//
//go:nosplit
func (pl *plan) push(v vma) {
	if uint(pl.k) < uint(len(pl.p)) {
		pl.p[pl.k] = v
		pl.k++
	}
}

// plan computes into s.pl the edit that gives [start, end) protection
// prot (insert) or removes it (!insert), merging with neighbours of equal
// protection. It changes no VMA.
//
//go:nosplit
func (s *Space) plan(start, end, prot uint64, insert bool) {
	pl := &s.pl
	n := s.count()
	i := s.firstEndAbove(start)
	j := s.firstStartAtOrAbove(end)
	if j < i {
		j = i
	}
	pl.lo, pl.hi, pl.k = i, j, 0
	var left, right vma
	hasL, hasR := false, false
	if i < j {
		if v := s.vm(i); v.start < start {
			left, hasL = vma{v.start, start, v.prot}, true
		}
		if v := s.vm(j - 1); v.end > end {
			right, hasR = vma{end, v.end, v.prot}, true
		}
	}
	if !insert {
		if hasL {
			pl.push(left)
		}
		if hasR {
			pl.push(right)
		}
		return
	}
	mid := vma{start, end, prot}
	if hasL && left.prot == prot {
		mid.start, hasL = left.start, false
	}
	if hasR && right.prot == prot {
		mid.end, hasR = right.end, false
	}
	if !hasL && pl.lo > 0 {
		if p := s.vm(pl.lo - 1); p.end == mid.start && p.prot == prot {
			mid.start = p.start
			pl.lo--
		}
	}
	if !hasR && pl.hi < n {
		if q := s.vm(pl.hi); q.start == mid.end && q.prot == prot {
			mid.end = q.end
			pl.hi++
		}
	}
	if hasL {
		pl.push(left)
	}
	pl.push(mid)
	if hasR {
		pl.push(right)
	}
}

// fits reports whether applying s.pl keeps the VMA count within MaxVMAs.
//
//go:nosplit
func (s *Space) fits() bool {
	pl := &s.pl
	n := s.count()
	if pl.lo < 0 || pl.lo > pl.hi || pl.hi > n || pl.k < 0 || pl.k > len(pl.p) {
		return false
	}
	return n-(pl.hi-pl.lo)+pl.k <= MaxVMAs
}

// apply performs the edit s.pl; callers check fits first.
//
//go:nosplit
func (s *Space) apply() {
	if !s.fits() {
		return
	}
	pl := &s.pl
	n := s.count()
	newN := n - (pl.hi - pl.lo) + pl.k
	// Move the tail [hi, n) to start at lo+k, in the safe direction.
	if dst, src := pl.lo+pl.k, pl.hi; dst < src {
		for t := 0; t < n-src; t++ {
			*s.vm(dst + t) = *s.vm(src + t)
		}
	} else if dst > src {
		for t := n - src - 1; t >= 0; t-- {
			*s.vm(dst + t) = *s.vm(src + t)
		}
	}
	for t := 0; t < pl.k && t < len(pl.p); t++ {
		*s.vm(pl.lo + t) = pl.p[t]
	}
	s.n = newN
}

// pteFlags is the leaf-entry flags for a page of protection prot; 0 for
// PROT_NONE (not present).
//
//go:nosplit
func pteFlags(prot uint64) uint64 {
	if prot&protMask == 0 {
		return 0
	}
	f := uint64(PTEPresent)
	if prot&ProtWrite != 0 {
		f |= PTEWrite
	}
	if prot&ProtExec == 0 {
		f |= PTENX
	}
	return f
}

// pteAccess is the entry bits Space sets and compares.
const pteAccess = PTEPresent | PTEWrite | PTEUser | PTENX

// userRange clips [start, end) to the user range.
//
//go:nosplit
func userRange(start, end uint64) (uint64, uint64) {
	if start < UserBase {
		start = UserBase
	}
	if end > UserTop {
		end = UserTop
	}
	return start, end
}

// clearRange drops the backing of every page in [start, end) (clipped to
// the user range), frees the frames and the tables left empty.
//
//go:nosplit
func (s *Space) clearRange(start, end uint64) {
	va, end := userRange(start, end)
	for va < end {
		tbl, next, found := s.PT.leafTable(va)
		if !found {
			if next <= va {
				return
			}
			va = next
			continue
		}
		stop := (va &^ (Size2M - 1)) + Size2M
		if stop > end {
			stop = end
		}
		for a := va; a < stop; a += PageSize {
			ea := entryAddr(tbl, a, 0)
			e, _ := s.PT.mem.Load64(ea)
			if e == 0 {
				continue
			}
			s.PT.mem.Store64(ea, 0)
			if e&PTEPresent != 0 {
				flush(s.FlushTLB, a)
			}
			if s.PT.fr.Free(e&physMask) == OK && s.pages > 0 {
				s.pages--
			}
		}
		s.PT.prune(va, s.FlushTLB)
		va = stop
	}
}

// reprotect rewrites the entries of the backed pages in [start, end) for
// protection prot (PROT_NONE: non-present, frame kept).
//
//go:nosplit
func (s *Space) reprotect(start, end, prot uint64) {
	want := pteFlags(prot)
	va, end := userRange(start, end)
	for va < end {
		tbl, next, found := s.PT.leafTable(va)
		if !found {
			if next <= va {
				return
			}
			va = next
			continue
		}
		stop := (va &^ (Size2M - 1)) + Size2M
		if stop > end {
			stop = end
		}
		for a := va; a < stop; a += PageSize {
			ea := entryAddr(tbl, a, 0)
			e, _ := s.PT.mem.Load64(ea)
			if e == 0 || e&pteAccess == want {
				continue
			}
			s.PT.mem.Store64(ea, e&physMask|want)
			if e&PTEPresent != 0 {
				flush(s.FlushTLB, a)
			}
		}
		va = stop
	}
}

// pageLength rounds length up to pages; ok is false for 0 or overflow.
//
//go:nosplit
func pageLength(length uint64) (uint64, bool) {
	if length == 0 {
		return 0, false
	}
	return alignUp(length)
}

// Mmap creates an anonymous private mapping of length bytes (rounded up
// to pages) with protection prot and returns its address, following
// Linux: MAP_PRIVATE|MAP_ANONYMOUS is required (shared or file mappings:
// ENODEV; neither MAP_SHARED nor MAP_PRIVATE: EINVAL). MAP_FIXED places it
// exactly at addr (page-aligned, else EINVAL; outside the user range:
// ENOMEM), replacing what was there and freeing its frames;
// MAP_FIXED_NOREPLACE does the same but fails with EEXIST if anything is
// mapped there. Otherwise a non-zero addr is a hint, used (rounded up to a
// page) when the range is free and in the user range; else the highest
// free range is chosen. length 0: EINVAL; too long: ENOMEM; unknown prot
// bits: EINVAL; no VMA slot left: ENOMEM. No frame is allocated
// (MAP_POPULATE faults the pages in, best effort); MAP_NORESERVE,
// MAP_STACK and other flags are ignored.
//
//go:nosplit
func (s *Space) Mmap(addr, length, prot, flags uint64) (uint64, Errno) {
	switch flags & mapTypeMask {
	case MapPrivate:
	case 0:
		return 0, EINVAL
	default:
		return 0, ENODEV
	}
	if flags&MapAnonymous == 0 {
		return 0, ENODEV
	}
	if prot&^(protMask|protSem) != 0 {
		return 0, EINVAL
	}
	prot &= protMask
	if length == 0 {
		return 0, EINVAL
	}
	length, ok := pageLength(length)
	if !ok || length > UserTop-UserBase {
		return 0, ENOMEM
	}
	if s.PT.Root == 0 {
		return 0, ENOMEM
	}
	fixed := flags&(MapFixed|MapFixedNoReplace) != 0
	var start uint64
	if fixed {
		if addr&pageMask != 0 {
			return 0, EINVAL
		}
		if addr < UserBase || addr > UserTop || length > UserTop-addr {
			return 0, ENOMEM
		}
		start = addr
		if flags&MapFixedNoReplace != 0 && s.overlaps(start, start+length) {
			return 0, EEXIST
		}
	} else {
		found := false
		if addr != 0 {
			if a, ok := alignUp(addr); ok && a >= UserBase && a <= UserTop &&
				length <= UserTop-a && !s.overlaps(a, a+length) {
				start, found = a, true
			}
		}
		if !found {
			if start, found = s.findFree(length); !found {
				return 0, ENOMEM
			}
		}
	}
	s.plan(start, start+length, prot, true)
	if !s.fits() {
		return 0, ENOMEM
	}
	if fixed {
		s.clearRange(start, start+length)
	}
	s.apply()
	if flags&MapPopulate != 0 && prot != ProtNone {
		// Best effort, as Linux; a loop rather than Touch keeps the
		// nosplit chain one frame shorter.
		for p := start; p-start < length; p += PageSize {
			if s.Fault(p, prot&ProtWrite != 0, false) != FaultFixed {
				break
			}
		}
	}
	return start, 0
}

// Munmap removes the mappings in [addr, addr+length) (length rounded up
// to pages) and frees their frames and the tables left empty. Unmapping
// nothing is fine. EINVAL: addr not page-aligned, length 0, or the range
// leaves the user range; ENOMEM: splitting a VMA needs a slot and none is
// left (nothing changes).
//
//go:nosplit
func (s *Space) Munmap(addr, length uint64) Errno {
	if addr&pageMask != 0 {
		return EINVAL
	}
	length, ok := pageLength(length)
	if !ok || addr < UserBase || addr > UserTop || length > UserTop-addr {
		return EINVAL
	}
	s.plan(addr, addr+length, 0, false)
	if !s.fits() {
		return ENOMEM
	}
	s.clearRange(addr, addr+length)
	s.apply()
	return 0
}

// Madvise applies advice to [addr, addr+length). MADV_DONTNEED and
// MADV_FREE free the backing frames (the next touch reads zeros); NORMAL,
// RANDOM, SEQUENTIAL, WILLNEED, HUGEPAGE, NOHUGEPAGE, DONTDUMP, DODUMP and
// COLLAPSE do nothing. As on Linux: unknown advice or unaligned addr:
// EINVAL; length 0: success; part of the range unmapped: ENOMEM (after
// applying the advice to the mapped part).
//
//go:nosplit
func (s *Space) Madvise(addr, length, advice uint64) Errno {
	drop := false
	switch advice {
	case MadvDontNeed, MadvFree:
		drop = true
	case MadvNormal, MadvRandom, MadvSequential, MadvWillNeed, MadvHugePage,
		MadvNoHugePage, MadvDontDump, MadvDoDump, MadvCollapse:
	default:
		return EINVAL
	}
	if addr&pageMask != 0 {
		return EINVAL
	}
	if length == 0 {
		return 0
	}
	length, ok := pageLength(length)
	if !ok || length > ^addr {
		return EINVAL
	}
	end := addr + length
	if drop && s.PT.Root != 0 {
		s.clearRange(addr, end)
	}
	if addr < UserBase || end > UserTop || !s.covered(addr, end) {
		return ENOMEM
	}
	return 0
}

// Mprotect sets the protection of [addr, addr+length) to prot, splitting
// and merging VMAs, and rewrites the entries of backed pages (PROT_NONE
// makes them non-present but keeps their frames). EINVAL: addr unaligned
// or unknown prot bits; ENOMEM: part of the range is not mapped, or no
// VMA slot is left (nothing changes either way); length 0: success.
//
//go:nosplit
func (s *Space) Mprotect(addr, length, prot uint64) Errno {
	if addr&pageMask != 0 || prot&^(protMask|protSem) != 0 {
		return EINVAL
	}
	prot &= protMask
	if length == 0 {
		return 0
	}
	length, ok := pageLength(length)
	if !ok || addr < UserBase || addr > UserTop || length > UserTop-addr {
		return ENOMEM
	}
	end := addr + length
	if !s.covered(addr, end) {
		return ENOMEM
	}
	s.plan(addr, end, prot, true)
	if !s.fits() {
		return ENOMEM
	}
	s.apply()
	s.reprotect(addr, end, prot)
	return 0
}

// allowed reports whether a VMA of protection prot allows the access (on
// x86 every non-PROT_NONE page is readable).
//
//go:nosplit
func allowed(prot uint64, write, exec bool) bool {
	if prot&protMask == 0 {
		return false
	}
	if write && prot&ProtWrite == 0 {
		return false
	}
	return !exec || prot&ProtExec != 0
}

// Fault handles a page fault at va for a write (write), an instruction
// fetch (exec) or a read (neither): when a VMA covers va and allows the
// access, it backs the page with a zeroed frame (or fixes the entry of a
// page already backed) and returns FaultFixed.
//
//go:nosplit
func (s *Space) Fault(va uint64, write, exec bool) FaultResult {
	if s.PT.Root == 0 || va < UserBase || va >= UserTop {
		return FaultNoVMA
	}
	v := s.find(va)
	if v == nil {
		return FaultNoVMA
	}
	prot := v.prot
	if !allowed(prot, write, exec) {
		return FaultProt
	}
	page := va &^ pageMask
	want := pteFlags(prot)
	ea, st := s.PT.ensure(page, 0)
	if st == NoMemory {
		s.PT.prune(page, s.FlushTLB)
		return FaultOOM
	}
	if st != OK {
		return FaultProt
	}
	e, _ := s.PT.mem.Load64(ea)
	if e != 0 {
		if e&pteAccess != want {
			s.PT.mem.Store64(ea, e&physMask|want)
			if e&PTEPresent != 0 {
				flush(s.FlushTLB, page)
			}
		}
		return FaultFixed
	}
	pa, ok := s.PT.fr.AllocZeroed()
	if !ok {
		s.PT.prune(page, s.FlushTLB)
		return FaultOOM
	}
	s.PT.mem.Store64(ea, pa|want)
	s.pages++
	return FaultFixed
}

// Touch faults in every page of [va, va+length) for a read or a write, as
// the kernel does before it reads or writes a user buffer. It stops at the
// first page that cannot be made accessible and returns why (a wrapping
// range: FaultNoVMA); length 0 returns FaultFixed.
//
//go:nosplit
func (s *Space) Touch(va, length uint64, write bool) FaultResult {
	if length == 0 {
		return FaultFixed
	}
	if length-1 > ^va {
		return FaultNoVMA
	}
	last := (va + length - 1) &^ pageMask
	for p := va &^ pageMask; ; p += PageSize {
		if r := s.Fault(p, write, false); r != FaultFixed {
			return r
		}
		if p >= last {
			return FaultFixed
		}
	}
}
