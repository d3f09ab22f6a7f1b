package mm_test

import (
	"testing"

	"juice/mm"
	"juice/mm/phys"
)

type ptEnv struct {
	ram []byte
	mem phys.Mem
	fr  mm.Frames
	pt  mm.PageTables
}

func newPT(t testing.TB, size int) *ptEnv {
	t.Helper()
	e := &ptEnv{ram: make([]byte, size)}
	for i := range e.ram {
		e.ram[i] = 0x77
	}
	e.mem = phys.FromSlice(e.ram)
	if st := e.fr.Init(&e.mem, []mm.Range{{Base: 0, End: uint64(size)}}, []mm.Range{{Base: 0, End: mib}}); st != mm.OK {
		t.Fatal(st)
	}
	if st := e.pt.Init(&e.mem, &e.fr); st != mm.OK {
		t.Fatal(st)
	}
	return e
}

// check compares Lookup with the independent walker for every leaf, and
// the walker's table count with TableFrames.
func (e *ptEnv) check(t *testing.T) walkResult {
	t.Helper()
	w := walk(e.ram, e.pt.Root)
	for _, s := range w.errs {
		t.Fatal(s)
	}
	if uint64(len(w.tables)) != e.pt.TableFrames() {
		t.Fatalf("walker: %d tables, TableFrames %d", len(w.tables), e.pt.TableFrames())
	}
	for _, l := range w.leaves {
		for _, off := range []uint64{0, 8, l.size - 1, l.size / 2} {
			pa, fl, sz, ok := e.pt.Lookup(l.va + off)
			if !ok || pa != l.pa+off || sz != l.size || fl != l.flags {
				t.Fatalf("Lookup(%#x) = %#x %#x %#x %v, walker %#x %#x %#x", l.va+off, pa, fl, sz, ok, l.pa+off, l.flags, l.size)
			}
		}
	}
	return w
}

func TestPageTablesMapLookupUnmap(t *testing.T) {
	e := newPT(t, 16*mib)
	free0 := e.fr.FreeCount()
	type m struct{ va, pa, size, flags uint64 }
	maps := []m{
		{0x1000, 0x5000, mm.Size4K, mm.PTEWrite},
		{0x0000_7fff_ffff_f000, 0xabc000, mm.Size4K, mm.PTENX},
		{0xffff_8000_0000_0000, 0x200000, mm.Size2M, mm.PTEWrite | mm.PTEGlobal},
		{0xffff_ffff_ffff_f000, 0x3000, mm.Size4K, 0},
		{0x4000_0000, 0x4000_0000, mm.Size1G, mm.PTEWrite | mm.PTENX},
		{0x20_0000, 0xf_ffff_ffe0_0000, mm.Size2M, mm.PTECacheDisable},
	}
	for _, x := range maps {
		if st := e.pt.Map(x.va, x.pa, x.size, x.flags); st != mm.OK {
			t.Fatalf("Map(%#x): %v", x.va, st)
		}
	}
	w := e.check(t)
	if len(w.leaves) != len(maps) {
		t.Fatalf("walker found %d leaves, want %d", len(w.leaves), len(maps))
	}
	for _, x := range maps {
		pa, fl, ok := w.translate(x.va + 0x123)
		want := x.flags | mm.PTEPresent
		if x.size != mm.Size4K {
			want |= mm.PTELarge
		}
		if !ok || pa != x.pa+0x123 || fl != want {
			t.Fatalf("walker translate(%#x) = %#x %#x %v; want %#x %#x", x.va, pa, fl, ok, x.pa+0x123, want)
		}
		if p, f, s, ok := e.pt.Lookup(x.va + 0x123); !ok || p != x.pa+0x123 || s != x.size || f != want {
			t.Fatalf("Lookup(%#x) = %#x %#x %#x %v", x.va, p, f, s, ok)
		}
	}
	// Conflicts.
	for _, c := range []m{
		{0x1000, 0x9000, mm.Size4K, 0},                    // same 4K page
		{0x0, 0x0, mm.Size2M, 0},                          // 2M over a PT holding 0x1000
		{0x0, 0x0, mm.Size1G, 0},                          // 1G over a PD
		{0x4000_0000 + 0x20_0000, 0, mm.Size2M, 0},        // inside a 1G page
		{0x4000_0000 + 0x5000, 0, mm.Size4K, 0},           // inside a 1G page
		{0xffff_8000_0000_0000 + 0x3000, 0, mm.Size4K, 0}, // inside a 2M page
	} {
		before := e.fr.FreeCount()
		if st := e.pt.Map(c.va, c.pa, c.size, c.flags); st != mm.Exists {
			t.Fatalf("Map(%#x, size %#x) over a mapping = %v", c.va, c.size, st)
		}
		if e.fr.FreeCount() != before {
			t.Fatal("failed Map leaked frames")
		}
	}
	// Argument errors.
	for _, c := range []struct {
		m
		want mm.Status
	}{
		{m{0x1001000, 0x1000, 12345, 0}, mm.BadSize},
		{m{0x1001, 0x1000, mm.Size4K, 0}, mm.BadAlign},
		{m{0x1000000, 0x1800, mm.Size4K, 0}, mm.BadAlign},
		{m{0x1001000, 0x1000, mm.Size2M, 0}, mm.BadAlign},
		{m{0x4000_0000 + 0x20_0000, 0, mm.Size1G, 0}, mm.BadAlign},
		{m{0x8000_0000_0000, 0x1000, mm.Size4K, 0}, mm.NonCanonical},
		{m{0xffff_7fff_ffff_f000, 0x1000, mm.Size4K, 0}, mm.NonCanonical},
		{m{0x1_0000_0000_0000, 0, mm.Size4K, 0}, mm.NonCanonical},
		{m{0x2000, 1 << 52, mm.Size4K, 0}, mm.BadAddress},
	} {
		if st := e.pt.Map(c.va, c.pa, c.size, c.flags); st != c.want {
			t.Errorf("Map(%#x, %#x, %#x) = %v, want %v", c.va, c.pa, c.size, st, c.want)
		}
	}
	for _, va := range []uint64{0x8000_0000_0000, 0xffff_0000_0000_0000, 0x2000, 0x20_0000 + 1<<21} {
		if _, _, _, ok := e.pt.Lookup(va); ok {
			t.Errorf("Lookup(%#x) found a mapping", va)
		}
		if _, _, ok := e.pt.Unmap(va); ok {
			t.Errorf("Unmap(%#x) found a mapping", va)
		}
	}
	e.check(t)
	// Unmap everything by an address inside each page.
	for _, x := range maps {
		pa, sz, ok := e.pt.Unmap(x.va + x.size - 1)
		if !ok || pa != x.pa || sz != x.size {
			t.Fatalf("Unmap(%#x) = %#x %#x %v", x.va, pa, sz, ok)
		}
		if _, _, _, ok := e.pt.Lookup(x.va); ok {
			t.Fatalf("still mapped after Unmap: %#x", x.va)
		}
		e.check(t)
	}
	if e.pt.TableFrames() != 1 || e.fr.FreeCount() != free0 {
		t.Fatalf("after unmapping all: %d tables, %d free (was %d)", e.pt.TableFrames(), e.fr.FreeCount(), free0)
	}
	w = walk(e.ram, e.pt.Root)
	if len(w.leaves) != 0 || len(w.tables) != 1 {
		t.Fatalf("walker: %d leaves %d tables after unmap", len(w.leaves), len(w.tables))
	}
}

func TestPageTablesLargeFlagIgnoredFor4K(t *testing.T) {
	e := newPT(t, 4*mib)
	if st := e.pt.Map(0x7000, 0x9000, mm.Size4K, mm.PTELarge|mm.PTEWrite|0xabc000); st != mm.OK {
		t.Fatal(st)
	}
	pa, fl, _, ok := e.pt.Lookup(0x7000)
	if !ok || pa != 0x9000 || fl != mm.PTEPresent|mm.PTEWrite {
		t.Fatalf("Lookup = %#x %#x %v", pa, fl, ok)
	}
	e.check(t)
}

func TestPageTablesMapRange(t *testing.T) {
	e := newPT(t, 16*mib)
	free0 := e.fr.FreeCount()
	// va and pa share 2M alignment from 0x40_0000 on; 1G pages allowed but
	// the range is too short for one.
	va, pa := uint64(0x1_0000_0000-0x3000), uint64(0x4000_0000-0x3000)
	length := uint64(0x3000 + 2*mm.Size2M + 0x5000)
	if st := e.pt.MapRange(va, pa, length, mm.PTEWrite, mm.Size1G); st != mm.OK {
		t.Fatal(st)
	}
	w := e.check(t)
	var sizes []uint64
	for _, l := range w.leaves {
		sizes = append(sizes, l.size)
	}
	want := []uint64{4096, 4096, 4096, mm.Size2M, mm.Size2M, 4096, 4096, 4096, 4096, 4096}
	if len(sizes) != len(want) {
		t.Fatalf("page sizes %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("page sizes %v, want %v", sizes, want)
		}
	}
	for off := uint64(0); off < length; off += 0x1000 {
		if p, _, _, ok := e.pt.Lookup(va + off); !ok || p != pa+off {
			t.Fatalf("Lookup(%#x) = %#x %v", va+off, p, ok)
		}
	}
	// maxPage 4K: all small pages.
	if st := e.pt.MapRange(0x8000_0000, 0x8000_0000, mm.Size2M, 0, mm.Size4K); st != mm.OK {
		t.Fatal(st)
	}
	if _, _, sz, _ := e.pt.Lookup(0x8000_0000); sz != 4096 {
		t.Fatalf("maxPage 4K gave %#x pages", sz)
	}
	// 1G page where alignment allows.
	if st := e.pt.MapRange(0x40_0000_0000, 0xc000_0000, mm.Size1G+mm.Size2M, 0, mm.Size1G); st != mm.OK {
		t.Fatal(st)
	}
	if _, _, sz, _ := e.pt.Lookup(0x40_0000_0000); sz != mm.Size1G {
		t.Fatalf("got %#x, want a 1G page", sz)
	}
	if _, _, sz, _ := e.pt.Lookup(0x40_4000_0000); sz != mm.Size2M {
		t.Fatalf("got %#x, want a 2M page", sz)
	}
	e.check(t)
	// All or nothing: a range running into an existing page maps nothing.
	tables, free := e.pt.TableFrames(), e.fr.FreeCount()
	if st := e.pt.MapRange(0x8000_0000-0x10000, 0x100000, 0x11000, 0, mm.Size2M); st != mm.Exists {
		t.Fatalf("MapRange into a mapping = %v", st)
	}
	if _, _, _, ok := e.pt.Lookup(0x8000_0000 - 0x10000); ok {
		t.Fatal("failed MapRange left pages behind")
	}
	if e.pt.TableFrames() != tables || e.fr.FreeCount() != free {
		t.Fatal("failed MapRange leaked tables")
	}
	for _, c := range []struct {
		va, pa, l, max uint64
		want           mm.Status
	}{
		{0x1000, 0x1000, 0x1000, 12345, mm.BadSize},
		{0x1001, 0x1000, 0x1000, mm.Size4K, mm.BadAlign},
		{0x1000, 0x1000, 0x1001, mm.Size4K, mm.BadAlign},
		{0x7fff_ffff_f000, 0x1000, 0x2000, mm.Size4K, mm.NonCanonical},
		{0xffff_ffff_ffff_f000, 0x1000, 0x2000, mm.Size4K, mm.NonCanonical},
		{0x1000, 1<<52 - 0x1000, 0x2000, mm.Size4K, mm.BadAddress},
		{0x1000, 0x1000, 0, mm.Size4K, mm.OK},
	} {
		if st := e.pt.MapRange(c.va, c.pa, c.l, 0, c.max); st != c.want {
			t.Errorf("MapRange(%#x,%#x,%#x,%#x) = %v, want %v", c.va, c.pa, c.l, c.max, st, c.want)
		}
	}
	// Unmap it all.
	for _, l := range walk(e.ram, e.pt.Root).leaves {
		if _, _, ok := e.pt.Unmap(l.va); !ok {
			t.Fatalf("Unmap(%#x) failed", l.va)
		}
	}
	if e.pt.TableFrames() != 1 || e.fr.FreeCount() != free0 {
		t.Fatalf("leak: %d tables, %d/%d free", e.pt.TableFrames(), e.fr.FreeCount(), free0)
	}
}

func TestPageTablesOOM(t *testing.T) {
	e := newPT(t, 2*mib)
	// Burn all frames but two: a 4K map far from anything needs three
	// tables (PDPT, PD, PT), so it must fail and give both back.
	var held []uint64
	for e.fr.FreeCount() > 2 {
		pa, _ := e.fr.Alloc()
		held = append(held, pa)
	}
	if st := e.pt.Map(0x1234_5678_9000, 0x1000, mm.Size4K, 0); st != mm.NoMemory {
		t.Fatalf("Map without frames = %v", st)
	}
	if e.fr.FreeCount() != 2 || e.pt.TableFrames() != 1 {
		t.Fatalf("OOM Map leaked: %d free, %d tables", e.fr.FreeCount(), e.pt.TableFrames())
	}
	e.check(t)
	// A 1G page needs only the PDPT.
	if st := e.pt.Map(0x40_0000_0000, 0x4000_0000, mm.Size1G, 0); st != mm.OK {
		t.Fatal(st)
	}
	// MapRange rollback on OOM: second half needs tables that are not there.
	if st := e.pt.MapRange(0x7f_ffe0_0000, 0x200000, 2*mm.Size2M+0x1000, 0, mm.Size2M); st != mm.NoMemory {
		t.Fatalf("MapRange OOM = %v", st)
	}
	e.check(t)
	for _, p := range held {
		e.fr.Free(p)
	}
	var z mm.PageTables
	if st := z.Map(0x1000, 0x1000, 4096, 0); st != mm.Uninitialized {
		t.Fatalf("zero PageTables Map = %v", st)
	}
	if _, _, _, ok := z.Lookup(0x1000); ok {
		t.Fatal("zero PageTables Lookup")
	}
	if st := z.Init(&e.mem, &mm.Frames{}); st != mm.Uninitialized {
		t.Fatalf("Init with zero Frames = %v", st)
	}
}

func TestPageTablesNoAllocs(t *testing.T) {
	e := newPT(t, 8*mib)
	n := testing.AllocsPerRun(200, func() {
		e.pt.Map(0x1234_5000_0000, 0x100000, mm.Size4K, mm.PTEWrite)
		e.pt.Lookup(0x1234_5000_0010)
		e.pt.Unmap(0x1234_5000_0000)
		e.pt.MapRange(0x40000000, 0x200000, 3*mm.Size2M, 0, mm.Size2M)
		for i := uint64(0); i < 3; i++ {
			e.pt.Unmap(0x40000000 + i*mm.Size2M)
		}
	})
	if n != 0 {
		t.Fatalf("PageTables allocates: %v", n)
	}
	if e.pt.TableFrames() != 1 {
		t.Fatal("leak")
	}
}
