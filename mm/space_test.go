package mm_test

import (
	"testing"

	"juice/mm"
	"juice/mm/phys"
)

const (
	rw      = mm.ProtRead | mm.ProtWrite
	anon    = mm.MapPrivate | mm.MapAnonymous
	fixed   = anon | mm.MapFixed
	noRepl  = anon | mm.MapFixedNoReplace
	arena   = 0x00c0_0000_0000
	chunk   = 4 * mib
	page    = 4096
	reserve = 64 * mib
)

// store writes b at va through the page tables (as the CPU would after a
// successful fault); the page must be present.
func (e *env) store(t testing.TB, va uint64, b byte) {
	t.Helper()
	pa, fl, _, ok := e.sp.PT.Lookup(va)
	if !ok || fl&mm.PTEWrite == 0 {
		t.Fatalf("store to %#x: not mapped writable (%#x %v)", va, fl, ok)
	}
	e.ram[pa] = b
}

// load reads va through the page tables; the page must be present.
func (e *env) load(t testing.TB, va uint64) byte {
	t.Helper()
	pa, _, _, ok := e.sp.PT.Lookup(va)
	if !ok {
		t.Fatalf("load from %#x: not mapped", va)
	}
	return e.ram[pa]
}

func (e *env) mustMmap(t testing.TB, addr, length, prot, flags uint64) uint64 {
	t.Helper()
	a, errno := e.sp.Mmap(addr, length, prot, flags)
	if errno != 0 {
		t.Fatalf("Mmap(%#x, %#x, %d, %#x) = %v", addr, length, prot, flags, errno)
	}
	return a
}

func (e *env) mustFault(t testing.TB, va uint64, write bool) {
	t.Helper()
	if r := e.sp.Fault(va, write, false); r != mm.FaultFixed {
		t.Fatalf("Fault(%#x, write=%v) = %v", va, write, r)
	}
}

func wantVMAs(t testing.TB, sp *mm.Space, want ...[3]uint64) {
	t.Helper()
	got := vmaList(sp)
	if len(got) != len(want) {
		t.Fatalf("VMAs %#x, want %#x", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("VMAs %#x, want %#x", got, want)
		}
	}
}

// The Go runtime's start-up pattern.
func TestSpaceGoRuntimePattern(t *testing.T) {
	e := newEnv(t, 32*mib)
	// Arena hint reservation: honoured exactly.
	a := e.mustMmap(t, arena, reserve, mm.ProtNone, anon)
	if a != arena {
		t.Fatalf("hint %#x not honoured: %#x", arena, a)
	}
	// Commit 4 MiB chunks one after another: always two VMAs.
	for i := uint64(0); i < 6; i++ {
		if got := e.mustMmap(t, arena+i*chunk, chunk, rw, fixed); got != arena+i*chunk {
			t.Fatalf("MAP_FIXED moved to %#x", got)
		}
		wantVMAs(t, &e.sp, [3]uint64{arena, arena + (i+1)*chunk, rw}, [3]uint64{arena + (i+1)*chunk, arena + reserve, 0})
	}
	if e.sp.Committed() != 0 {
		t.Fatal("mmap committed frames")
	}
	// Touch pages across the committed part.
	for va := uint64(arena); va < arena+6*chunk; va += 37 * page {
		e.mustFault(t, va+5, true)
		if got := e.load(t, va); got != 0 {
			t.Fatalf("fresh page %#x reads %#x", va, got)
		}
		e.store(t, va+5, 0x42)
	}
	touched := e.sp.Committed()
	checkSpace(t, e)
	// Beyond the committed part: still PROT_NONE.
	if r := e.sp.Fault(arena+6*chunk, false, false); r != mm.FaultProt {
		t.Fatalf("fault in the reservation = %v", r)
	}
	// DONTNEED the second chunk: its pages go, the rest stay.
	if errno := e.sp.Madvise(arena+chunk, chunk, mm.MadvDontNeed); errno != 0 {
		t.Fatal(errno)
	}
	if e.sp.Committed() >= touched {
		t.Fatal("DONTNEED freed nothing")
	}
	for va := uint64(arena); va < arena+6*chunk; va += 37 * page {
		inSecond := va >= arena+chunk && va < arena+2*chunk
		_, _, _, mapped := e.sp.PT.Lookup(va)
		if mapped == inSecond {
			t.Fatalf("page %#x mapped=%v after DONTNEED of chunk 2", va, mapped)
		}
		e.mustFault(t, va, false)
		want := byte(0x42)
		if inSecond {
			want = 0
		}
		if got := e.load(t, va+5); got != want {
			t.Fatalf("page %#x reads %#x, want %#x", va, got, want)
		}
	}
	if e.sp.Committed() != touched {
		t.Fatalf("refault: Committed %d, want %d", e.sp.Committed(), touched)
	}
	wantVMAs(t, &e.sp, [3]uint64{arena, arena + 6*chunk, rw}, [3]uint64{arena + 6*chunk, arena + reserve, 0})

	// The heap index: a NULL-hint 32 MiB RW map touched at a few pages.
	c0 := e.sp.Committed()
	idx := e.mustMmap(t, 0, 32*mib, rw, anon)
	if idx < mm.UserBase || idx+32*mib > mm.UserTop || idx&4095 != 0 {
		t.Fatalf("heap index at %#x", idx)
	}
	if e.sp.Madvise(idx, 32*mib, mm.MadvNoHugePage) != 0 {
		t.Fatal("NOHUGEPAGE")
	}
	for _, off := range []uint64{0, 5 * mib, 31*mib + 4095} {
		e.mustFault(t, idx+off, true)
	}
	if got := e.sp.Committed() - c0; got != 3*page {
		t.Fatalf("32 MiB map touched at 3 pages commits %d bytes", got)
	}
	// Several 512 MiB PROT_NONE reservations.
	var res []uint64
	for i := 0; i < 4; i++ {
		r := e.mustMmap(t, 0, 512*mib, mm.ProtNone, anon|mm.MapNoReserve)
		for _, p := range res {
			if r < p+512*mib && p < r+512*mib {
				t.Fatalf("reservation %#x overlaps %#x", r, p)
			}
		}
		if r < idx+32*mib && idx < r+512*mib {
			t.Fatalf("reservation %#x overlaps the heap index", r)
		}
		res = append(res, r)
	}
	if r := e.sp.Fault(res[2]+12345, false, false); r != mm.FaultProt {
		t.Fatalf("fault in a PROT_NONE reservation = %v", r)
	}
	if r := e.sp.Fault(arena-1, false, false); r != mm.FaultNoVMA {
		t.Fatalf("fault below the arena = %v", r)
	}
	checkSpace(t, e)
	// The scavenger's munmap of a reservation and final cleanup.
	if errno := e.sp.Munmap(res[1], 512*mib); errno != 0 {
		t.Fatal(errno)
	}
	checkSpace(t, e)
	if errno := e.sp.Munmap(mm.UserBase, mm.UserTop-mm.UserBase); errno != 0 {
		t.Fatal(errno)
	}
	if e.sp.VMAs() != 0 || e.sp.Committed() != 0 || e.sp.PT.TableFrames() != 1 || e.fr.FreeCount() != e.start {
		t.Fatalf("after unmapping all: %d VMAs, %d committed, %d tables, %d/%d free",
			e.sp.VMAs(), e.sp.Committed(), e.sp.PT.TableFrames(), e.fr.FreeCount(), e.start)
	}
}

func TestSpaceMmapArguments(t *testing.T) {
	e := newEnv(t, 8*mib)
	for _, c := range []struct {
		addr, length, prot, flags uint64
		want                      mm.Errno
	}{
		{0, page, rw, mm.MapShared | mm.MapAnonymous, mm.ENODEV},
		{0, page, rw, 0x03 | mm.MapAnonymous, mm.ENODEV},
		{0, page, rw, mm.MapPrivate, mm.ENODEV},
		{0, page, rw, mm.MapAnonymous, mm.EINVAL},
		{0, 0, rw, anon, mm.EINVAL},
		{0, page, 0x10, anon, mm.EINVAL},
		{0, ^uint64(0), rw, anon, mm.ENOMEM},
		{0, ^uint64(0) - 4095, rw, anon, mm.ENOMEM},
		{0, 1 << 47, rw, anon, mm.ENOMEM},
		{arena + 1, page, rw, fixed, mm.EINVAL},
		{arena + 1, page, rw, noRepl, mm.EINVAL},
		{0, page, rw, fixed, mm.ENOMEM},
		{0x1000, page, rw, fixed, mm.ENOMEM},
		{mm.UserBase - page, 2 * page, rw, fixed, mm.ENOMEM},
		{mm.UserTop - page, 2 * page, rw, fixed, mm.ENOMEM},
		{mm.UserTop, page, rw, fixed, mm.ENOMEM},
		{^uint64(0) &^ 4095, page, rw, fixed, mm.ENOMEM},
	} {
		if a, errno := e.sp.Mmap(c.addr, c.length, c.prot, c.flags); errno != c.want {
			t.Errorf("Mmap(%#x, %#x, %#x, %#x) = %#x, %v; want %v", c.addr, c.length, c.prot, c.flags, a, errno, c.want)
		}
	}
	if e.sp.VMAs() != 0 {
		t.Fatal("failed mmaps created VMAs")
	}
	// Edges of the user range work with MAP_FIXED.
	e.mustMmap(t, mm.UserBase, page, rw, fixed)
	e.mustMmap(t, mm.UserTop-page, page, rw, fixed)
	// PROT_SEM and ignored flags are accepted; length rounds up.
	a := e.mustMmap(t, 0, 1, mm.ProtRead|0x8, anon|mm.MapStack|mm.MapNoReserve|0x40000)
	if s, en, p, _ := e.sp.VMA(e.sp.VMAs() - 2); s != a || en != a+page || p != mm.ProtRead {
		t.Fatalf("1-byte PROT_SEM map: VMA %#x..%#x prot %d (at %#x)", s, en, p, a)
	}
	// Top-down: the first free range below UserTop's page.
	if a != mm.UserTop-2*page {
		t.Fatalf("NULL-hint map at %#x, want %#x", a, uint64(mm.UserTop-2*page))
	}
	// Hints: unaligned rounds up; taken hint moves elsewhere; hint below
	// the user range (kernel identity map) moves elsewhere.
	if got := e.mustMmap(t, arena+1, page, rw, anon); got != arena+page {
		t.Fatalf("unaligned hint gave %#x", got)
	}
	if got := e.mustMmap(t, arena, 2*page, rw, anon); got == arena || got+2*page > mm.UserTop || got < mm.UserBase {
		t.Fatalf("overlapping hint gave %#x", got)
	}
	if got := e.mustMmap(t, 0x10_0000, page, rw, anon); got < mm.UserBase {
		t.Fatalf("kernel-range hint honoured: %#x", got)
	}
	if got := e.mustMmap(t, mm.UserTop-page, 2*page, rw, anon); got+2*page > mm.UserTop {
		t.Fatalf("hint past UserTop gave %#x", got)
	}
	// NOREPLACE.
	if _, errno := e.sp.Mmap(arena, 4*page, rw, noRepl); errno != mm.EEXIST {
		t.Fatalf("NOREPLACE over a mapping = %v", errno)
	}
	if got := e.mustMmap(t, arena+2*page, 4*page, rw, noRepl); got != arena+2*page {
		t.Fatalf("NOREPLACE in a hole gave %#x", got)
	}
	checkSpace(t, e)
	// The user range is full: nothing more fits.
	if _, errno := e.sp.Mmap(0, mm.UserTop-mm.UserBase, mm.ProtNone, anon); errno != mm.ENOMEM {
		t.Fatalf("huge map in a used space = %v", errno)
	}
	var z mm.Space
	if _, errno := z.Mmap(0, page, rw, anon); errno != mm.ENOMEM {
		t.Fatalf("uninitialised Space Mmap = %v", errno)
	}
	if r := z.Fault(arena, false, false); r != mm.FaultNoVMA {
		t.Fatalf("uninitialised Space Fault = %v", r)
	}
}

func TestSpaceFixedReplaces(t *testing.T) {
	e := newEnv(t, 8*mib)
	a := e.mustMmap(t, arena, 8*page, rw, fixed)
	for i := uint64(0); i < 8; i++ {
		e.mustFault(t, a+i*page, true)
		e.store(t, a+i*page, byte(i+1))
	}
	free := e.fr.FreeCount()
	// Replace pages 2..5 with a read-only mapping: their frames go back.
	e.mustMmap(t, a+2*page, 4*page, mm.ProtRead, fixed)
	if e.fr.FreeCount() != free+4 {
		t.Fatalf("MAP_FIXED over 4 backed pages freed %d frames", e.fr.FreeCount()-free)
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + 2*page, rw}, [3]uint64{a + 2*page, a + 6*page, mm.ProtRead}, [3]uint64{a + 6*page, a + 8*page, rw})
	checkSpace(t, e)
	for i := uint64(0); i < 8; i++ {
		e.mustFault(t, a+i*page, false)
		want := byte(i + 1)
		if i >= 2 && i < 6 {
			want = 0
		}
		if got := e.load(t, a+i*page); got != want {
			t.Fatalf("page %d reads %d, want %d", i, got, want)
		}
	}
	// Same-prot FIXED over the middle merges everything back.
	e.mustMmap(t, a+2*page, 4*page, rw, fixed)
	wantVMAs(t, &e.sp, [3]uint64{a, a + 8*page, rw})
	checkSpace(t, e)
}

func TestSpaceMunmap(t *testing.T) {
	e := newEnv(t, 8*mib)
	a := e.mustMmap(t, arena, 16*page, rw, fixed)
	for i := uint64(0); i < 16; i++ {
		e.mustFault(t, a+i*page, true)
	}
	for _, c := range []struct {
		addr, length uint64
		want         mm.Errno
	}{
		{a + 1, page, mm.EINVAL},
		{a, 0, mm.EINVAL},
		{0x1000, page, mm.EINVAL},
		{mm.UserBase - page, 2 * page, mm.EINVAL},
		{mm.UserTop - page, 2 * page, mm.EINVAL},
		{a, ^uint64(0), mm.EINVAL},
		{a, ^uint64(0) - 4095 - a + 1, mm.EINVAL},
		{a + 64*page, 10 * page, 0}, // nothing there
	} {
		if errno := e.sp.Munmap(c.addr, c.length); errno != c.want {
			t.Errorf("Munmap(%#x, %#x) = %v, want %v", c.addr, c.length, errno, c.want)
		}
	}
	if e.sp.Committed() != 16*page {
		t.Fatal("failed munmaps freed pages")
	}
	// Split in the middle (length rounds up).
	if errno := e.sp.Munmap(a+4*page, 3*page+1); errno != 0 {
		t.Fatal(errno)
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + 4*page, rw}, [3]uint64{a + 8*page, a + 16*page, rw})
	if e.sp.Committed() != 12*page {
		t.Fatalf("Committed %d after unmapping 4 pages", e.sp.Committed())
	}
	if r := e.sp.Fault(a+5*page, false, false); r != mm.FaultNoVMA {
		t.Fatalf("fault in unmapped hole = %v", r)
	}
	checkSpace(t, e)
	// Across the hole and both pieces.
	if errno := e.sp.Munmap(a+2*page, 8*page); errno != 0 {
		t.Fatal(errno)
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + 2*page, rw}, [3]uint64{a + 10*page, a + 16*page, rw})
	checkSpace(t, e)
	if errno := e.sp.Munmap(a, 16*page); errno != 0 {
		t.Fatal(errno)
	}
	if e.fr.FreeCount() != e.start || e.sp.PT.TableFrames() != 1 {
		t.Fatalf("leak: %d/%d free, %d tables", e.fr.FreeCount(), e.start, e.sp.PT.TableFrames())
	}
}

func TestSpaceMadvise(t *testing.T) {
	e := newEnv(t, 8*mib)
	a := e.mustMmap(t, arena, 8*page, rw, fixed)
	for i := uint64(0); i < 8; i++ {
		e.mustFault(t, a+i*page, true)
		e.store(t, a+i*page+100, 9)
	}
	for _, adv := range []uint64{0, 1, 2, 3, 14, 15, 16, 17, 25} {
		if errno := e.sp.Madvise(a, 8*page, adv); errno != 0 {
			t.Errorf("Madvise(advice %d) = %v", adv, errno)
		}
	}
	if e.sp.Committed() != 8*page {
		t.Fatal("harmless advice freed pages")
	}
	for _, adv := range []uint64{5, 9, 100, 1 << 40} {
		if errno := e.sp.Madvise(a, page, adv); errno != mm.EINVAL {
			t.Errorf("Madvise(advice %d) = %v, want EINVAL", adv, errno)
		}
	}
	if errno := e.sp.Madvise(a+1, page, mm.MadvDontNeed); errno != mm.EINVAL {
		t.Errorf("unaligned Madvise = %v", errno)
	}
	if errno := e.sp.Madvise(a, 0, mm.MadvDontNeed); errno != 0 {
		t.Errorf("zero-length Madvise = %v", errno)
	}
	if errno := e.sp.Madvise(a, ^uint64(0)-a, mm.MadvDontNeed); errno != mm.EINVAL {
		t.Errorf("wrapping Madvise = %v", errno)
	}
	if errno := e.sp.Madvise(0x200000, page, mm.MadvNormal); errno != mm.ENOMEM {
		t.Errorf("Madvise on the kernel range = %v", errno)
	}
	if e.sp.Committed() != 8*page {
		t.Fatal("failed madvise freed pages")
	}
	// MADV_FREE of pages 6..9: the mapped part is dropped, ENOMEM reported.
	if errno := e.sp.Madvise(a+6*page, 4*page, mm.MadvFree); errno != mm.ENOMEM {
		t.Fatalf("Madvise over a hole = %v", errno)
	}
	if e.sp.Committed() != 6*page {
		t.Fatalf("MADV_FREE over pages 6,7 left %d bytes", e.sp.Committed())
	}
	// DONTNEED of one page (length rounds up).
	if errno := e.sp.Madvise(a+2*page, 1, mm.MadvDontNeed); errno != 0 {
		t.Fatal(errno)
	}
	checkSpace(t, e)
	for i := uint64(0); i < 8; i++ {
		e.mustFault(t, a+i*page, false)
		want := byte(9)
		if i == 2 || i >= 6 {
			want = 0
		}
		if got := e.load(t, a+i*page+100); got != want {
			t.Fatalf("page %d reads %d, want %d", i, got, want)
		}
	}
	// DONTNEED on a PROT_NONE page whose frame is kept drops the frame.
	e.sp.Mprotect(a, page, mm.ProtNone)
	if errno := e.sp.Madvise(a, page, mm.MadvDontNeed); errno != 0 {
		t.Fatal(errno)
	}
	e.sp.Mprotect(a, page, rw)
	e.mustFault(t, a, false)
	if e.load(t, a+100) != 0 {
		t.Fatal("DONTNEED on a PROT_NONE page kept its contents")
	}
	checkSpace(t, e)
}

func TestSpaceMprotect(t *testing.T) {
	e := newEnv(t, 8*mib)
	a := e.mustMmap(t, arena, 8*page, rw, fixed)
	for i := uint64(0); i < 4; i++ {
		e.mustFault(t, a+i*page, true)
		e.store(t, a+i*page+7, byte(0x10+i))
	}
	// PROT_NONE over pages 1..2: entries go non-present, frames stay.
	free := e.fr.FreeCount()
	if errno := e.sp.Mprotect(a+page, 2*page, mm.ProtNone); errno != 0 {
		t.Fatal(errno)
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + page, rw}, [3]uint64{a + page, a + 3*page, 0}, [3]uint64{a + 3*page, a + 8*page, rw})
	if e.fr.FreeCount() != free || e.sp.Committed() != 4*page {
		t.Fatal("PROT_NONE freed frames")
	}
	if _, _, _, ok := e.sp.PT.Lookup(a + page); ok {
		t.Fatal("PROT_NONE page still present")
	}
	if r := e.sp.Fault(a+page, false, false); r != mm.FaultProt {
		t.Fatalf("read of PROT_NONE page = %v", r)
	}
	checkSpace(t, e)
	// Read-only: reads fine, writes refused, contents back.
	if errno := e.sp.Mprotect(a+page, 2*page, mm.ProtRead); errno != 0 {
		t.Fatal(errno)
	}
	if _, fl, _, ok := e.sp.PT.Lookup(a + page); !ok || fl&mm.PTEWrite != 0 || fl&mm.PTENX == 0 {
		t.Fatalf("read-only page flags %#x %v", fl, ok)
	}
	if e.load(t, a+page+7) != 0x11 || e.load(t, a+2*page+7) != 0x12 {
		t.Fatal("contents lost across PROT_NONE")
	}
	if r := e.sp.Fault(a+page, true, false); r != mm.FaultProt {
		t.Fatalf("write to read-only page = %v", r)
	}
	if r := e.sp.Fault(a+page, false, true); r != mm.FaultProt {
		t.Fatalf("exec of non-exec page = %v", r)
	}
	e.mustFault(t, a+page, false) // spurious: already present
	checkSpace(t, e)
	// Exec.
	if errno := e.sp.Mprotect(a, 8*page, mm.ProtRead|mm.ProtExec); errno != 0 {
		t.Fatal(errno)
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + 8*page, mm.ProtRead | mm.ProtExec})
	if r := e.sp.Fault(a+5*page, false, true); r != mm.FaultFixed {
		t.Fatalf("exec fault = %v", r)
	}
	if _, fl, _, _ := e.sp.PT.Lookup(a + 5*page); fl&mm.PTENX != 0 {
		t.Fatal("exec page has NX")
	}
	// Write-only still reads (x86).
	e.sp.Mprotect(a, 8*page, mm.ProtWrite)
	e.mustFault(t, a+6*page, false)
	checkSpace(t, e)
	for _, c := range []struct {
		addr, length, prot uint64
		want               mm.Errno
	}{
		{a + 1, page, rw, mm.EINVAL},
		{a, page, 0x20, mm.EINVAL},
		{a, 9 * page, rw, mm.ENOMEM},
		{a - page, 2 * page, rw, mm.ENOMEM},
		{0x1000, page, rw, mm.ENOMEM},
		{a, ^uint64(0) - a, rw, mm.ENOMEM},
		{a, 0, rw, 0},
	} {
		if errno := e.sp.Mprotect(c.addr, c.length, c.prot); errno != c.want {
			t.Errorf("Mprotect(%#x, %#x, %#x) = %v, want %v", c.addr, c.length, c.prot, errno, c.want)
		}
	}
	wantVMAs(t, &e.sp, [3]uint64{a, a + 8*page, mm.ProtWrite})
	checkSpace(t, e)
}

func TestSpaceTouch(t *testing.T) {
	e := newEnv(t, 8*mib)
	a := e.mustMmap(t, arena, 4*page, rw, fixed)
	e.mustMmap(t, arena+4*page, 2*page, mm.ProtRead, fixed)
	if r := e.sp.Touch(a+100, 4*page-100, true); r != mm.FaultFixed {
		t.Fatalf("write Touch of 4 RW pages = %v", r)
	}
	if e.sp.Committed() != 4*page {
		t.Fatalf("Touch committed %d", e.sp.Committed())
	}
	// One byte more reaches the read-only page.
	if r := e.sp.Touch(a+100, 4*page, true); r != mm.FaultProt {
		t.Fatalf("write Touch into a read-only page = %v", r)
	}
	if r := e.sp.Touch(a, 6*page, false); r != mm.FaultFixed {
		t.Fatalf("read Touch = %v", r)
	}
	if e.sp.Committed() != 6*page {
		t.Fatalf("Touch committed %d", e.sp.Committed())
	}
	if r := e.sp.Touch(a, 7*page, false); r != mm.FaultNoVMA {
		t.Fatalf("Touch past the end = %v", r)
	}
	if r := e.sp.Touch(a, 0, true); r != mm.FaultFixed {
		t.Fatalf("empty Touch = %v", r)
	}
	if r := e.sp.Touch(^uint64(0)-10, 20, false); r != mm.FaultNoVMA {
		t.Fatalf("wrapping Touch = %v", r)
	}
	// MAP_POPULATE faults the pages in.
	p := e.mustMmap(t, 0, 3*page, rw, anon|mm.MapPopulate)
	for i := uint64(0); i < 3; i++ {
		if _, fl, _, ok := e.sp.PT.Lookup(p + i*page); !ok || fl&mm.PTEWrite == 0 {
			t.Fatalf("MAP_POPULATE page %d not present writable", i)
		}
	}
	checkSpace(t, e)
}

func TestSpaceVMACapacity(t *testing.T) {
	e := newEnv(t, 8*mib)
	base := uint64(arena)
	// Alternate protections so nothing merges.
	for i := uint64(0); i < mm.MaxVMAs; i++ {
		prot := uint64(mm.ProtRead)
		if i%2 == 1 {
			prot = rw
		}
		e.mustMmap(t, base+i*3*page, 3*page, prot, fixed)
	}
	if e.sp.VMAs() != mm.MaxVMAs {
		t.Fatalf("%d VMAs", e.sp.VMAs())
	}
	e.mustFault(t, base, false)
	before := vmaList(&e.sp)
	committed := e.sp.Committed()
	free := e.fr.FreeCount()
	same := func(what string) {
		t.Helper()
		after := vmaList(&e.sp)
		if len(after) != len(before) {
			t.Fatalf("%s changed the VMA count", what)
		}
		for i := range after {
			if after[i] != before[i] {
				t.Fatalf("%s changed VMA %d", what, i)
			}
		}
		if e.sp.Committed() != committed || e.fr.FreeCount() != free {
			t.Fatalf("%s changed the backing", what)
		}
	}
	if _, errno := e.sp.Mmap(0, page, rw, anon); errno != mm.ENOMEM {
		t.Fatalf("Mmap with no VMA slot = %v", errno)
	}
	same("Mmap")
	if _, errno := e.sp.Mmap(base, page, mm.ProtExec, fixed); errno != mm.ENOMEM {
		t.Fatalf("splitting MAP_FIXED with no slot = %v", errno)
	}
	same("MAP_FIXED")
	if errno := e.sp.Munmap(base+page, page); errno != mm.ENOMEM {
		t.Fatalf("splitting Munmap with no slot = %v", errno)
	}
	same("Munmap")
	if errno := e.sp.Mprotect(base+page, page, mm.ProtExec); errno != mm.ENOMEM {
		t.Fatalf("splitting Mprotect with no slot = %v", errno)
	}
	same("Mprotect")
	checkSpace(t, e)
	// Changes that do not need a slot still work: merging three VMAs
	// into one frees two.
	if errno := e.sp.Mprotect(base+3*page, 3*page, mm.ProtRead); errno != 0 {
		t.Fatal(errno)
	}
	if e.sp.VMAs() != mm.MaxVMAs-2 {
		t.Fatalf("%d VMAs after merging", e.sp.VMAs())
	}
	if errno := e.sp.Munmap(base, 3*page*mm.MaxVMAs); errno != 0 {
		t.Fatal(errno)
	}
	if e.sp.VMAs() != 0 || e.fr.FreeCount() != e.start {
		t.Fatal("leak after capacity test")
	}
}

func TestSpaceOOM(t *testing.T) {
	e := newEnv(t, 2*mib) // 1 MiB usable
	a := e.mustMmap(t, arena, 64*mib, rw, anon)
	var n uint64
	for va := a; va < a+64*mib; va += page {
		r := e.sp.Fault(va, true, false)
		if r == mm.FaultOOM {
			break
		}
		if r != mm.FaultFixed {
			t.Fatalf("Fault = %v", r)
		}
		e.store(t, va, byte(va>>12))
		n++
	}
	if e.fr.FreeCount() != 0 {
		t.Fatalf("FaultOOM with %d frames free", e.fr.FreeCount())
	}
	checkSpace(t, e)
	// OOM needing tables (far away): nothing changes.
	b := e.mustMmap(t, arena+1<<40, page, rw, fixed)
	tables := e.sp.PT.TableFrames()
	if r := e.sp.Fault(b, false, false); r != mm.FaultOOM {
		t.Fatalf("Fault without frames for tables = %v", r)
	}
	if e.sp.PT.TableFrames() != tables {
		t.Fatal("failed Fault left tables")
	}
	checkSpace(t, e)
	// Contents intact; Touch reports OOM.
	for i := uint64(0); i < n; i++ {
		if got := e.load(t, a+i*page); got != byte((a+i*page)>>12) {
			t.Fatalf("page %d corrupted after OOM", i)
		}
	}
	if r := e.sp.Touch(a, 64*mib, false); r != mm.FaultOOM {
		t.Fatalf("Touch into OOM = %v", r)
	}
	// Free one page: a fault in the same table now works.
	e.sp.Madvise(a, page, mm.MadvDontNeed)
	e.mustFault(t, a+n*page, true)
	if errno := e.sp.Munmap(mm.UserBase, mm.UserTop-mm.UserBase); errno != 0 {
		t.Fatal(errno)
	}
	if e.fr.FreeCount() != e.start {
		t.Fatalf("leak after OOM: %d/%d", e.fr.FreeCount(), e.start)
	}
}

func TestSpaceInit(t *testing.T) {
	ram := make([]byte, 4*mib)
	mem := phys.FromSlice(ram)
	var fr mm.Frames
	fr.Init(&mem, []mm.Range{{Base: 0, End: 4 * mib}}, []mm.Range{{Base: 0, End: mib}})
	var pt mm.PageTables
	pt.Init(&mem, &fr)
	var sp mm.Space
	if st := sp.Init(nil, &fr, &pt); st != mm.Uninitialized {
		t.Errorf("nil mem: %v", st)
	}
	if st := sp.Init(&mem, &fr, &mm.PageTables{}); st != mm.Uninitialized {
		t.Errorf("zero PageTables: %v", st)
	}
	// The kernel's identity map below UserBase is fine.
	if st := pt.MapRange(0, 0, 4*mib, mm.PTEWrite, mm.Size2M); st != mm.OK {
		t.Fatal(st)
	}
	if st := sp.Init(&mem, &fr, &pt); st != mm.OK {
		t.Fatalf("Init over a kernel identity map: %v", st)
	}
	// Space never touches it.
	a, _ := sp.Mmap(0, page, rw, anon)
	sp.Fault(a, true, false)
	sp.Munmap(mm.UserBase, mm.UserTop-mm.UserBase)
	if p, _, sz, ok := sp.PT.Lookup(0x3ff000); !ok || p != 0x3ff000 || sz != mm.Size2M {
		t.Fatal("identity map damaged")
	}
	// Something in the user range already: refused.
	if st := pt.Map(mm.UserBase, 0x1000, page, 0); st != mm.OK {
		t.Fatal(st)
	}
	if st := sp.Init(&mem, &fr, &pt); st != mm.Exists {
		t.Errorf("Init over user mappings: %v", st)
	}
}

func TestSpaceNoAllocs(t *testing.T) {
	e := newEnv(t, 16*mib)
	n := testing.AllocsPerRun(100, func() {
		a, _ := e.sp.Mmap(arena, reserve, mm.ProtNone, anon)
		e.sp.Mmap(a, chunk, rw, fixed)
		e.sp.Mmap(a+chunk, chunk, rw, fixed)
		e.sp.Fault(a+5, true, false)
		e.sp.Fault(a+chunk+page, false, false)
		e.sp.Touch(a, 3*page, true)
		e.sp.Madvise(a, chunk, mm.MadvDontNeed)
		e.sp.Mprotect(a+chunk, page, mm.ProtNone)
		e.sp.Munmap(a, reserve)
	})
	if n != 0 {
		t.Fatalf("Space allocates: %v per run", n)
	}
	if e.fr.FreeCount() != e.start || e.sp.VMAs() != 0 {
		t.Fatal("leak")
	}
}

// BenchmarkFault faults in the pages of a 64 MiB RW mapping one by one;
// every pass over it ends with a DONTNEED of the whole mapping (counted).
func BenchmarkFault(b *testing.B) {
	e := newEnv(b, 96*mib)
	a, _ := e.sp.Mmap(0, 64*mib, rw, anon)
	const pages = 64 * mib / page
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := uint64(i % pages)
		if p == 0 && i > 0 {
			e.sp.Madvise(a, 64*mib, mm.MadvDontNeed)
		}
		if r := e.sp.Fault(a+p*page, true, false); r != mm.FaultFixed {
			b.Fatal(r)
		}
	}
}

// BenchmarkMmapFixedChunk is the runtime's heap growth: a 4 MiB MAP_FIXED
// RW commit inside a PROT_NONE reservation (and its later release).
func BenchmarkMmapFixedChunk(b *testing.B) {
	e := newEnv(b, 4*mib)
	const chunks = 256
	a, _ := e.sp.Mmap(arena, chunks*chunk, mm.ProtNone, anon)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := uint64(i % chunks)
		if c == 0 && i > 0 {
			e.sp.Mmap(a, chunks*chunk, mm.ProtNone, fixed)
		}
		if _, errno := e.sp.Mmap(a+c*chunk, chunk, rw, fixed); errno != 0 {
			b.Fatal(errno)
		}
	}
}
