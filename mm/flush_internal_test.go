package mm

import (
	"testing"

	"juice/mm/phys"
)

// TestFlushTLB checks, through the test hook that stands in for INVLPG,
// that a present entry is flushed exactly when it changes or goes, and
// that nothing is flushed when FlushTLB is off.
func TestFlushTLB(t *testing.T) {
	var flushed []uint64
	flushHook = func(va uint64) { flushed = append(flushed, va) }
	defer func() { flushHook = nil }()
	take := func() []uint64 { f := flushed; flushed = nil; return f }

	ram := make([]byte, 4<<20)
	mem := phys.FromSlice(ram)
	var fr Frames
	fr.Init(&mem, []Range{{0, 4 << 20}}, []Range{{0, 1 << 20}})
	var pt PageTables
	pt.Init(&mem, &fr)
	var s Space
	s.Init(&mem, &fr, &pt)
	s.FlushTLB = true
	const a = 0xc000000000
	if _, e := s.Mmap(a, 4*PageSize, ProtRead|ProtWrite, MapPrivate|MapAnonymous|MapFixed); e != 0 {
		t.Fatal(e)
	}
	s.Fault(a, true, false)
	s.Fault(a+PageSize, true, false)
	if f := take(); len(f) != 0 {
		t.Fatalf("backing a page flushed %#x", f)
	}
	s.Fault(a, true, false) // spurious
	if f := take(); len(f) != 0 {
		t.Fatalf("spurious fault flushed %#x", f)
	}
	s.Mprotect(a, 4*PageSize, ProtRead)
	if f := take(); len(f) != 2 || f[0] != a || f[1] != a+PageSize {
		t.Fatalf("RW→RO flushed %#x, want the two backed pages", f)
	}
	s.Mprotect(a, 4*PageSize, ProtRead)
	if f := take(); len(f) != 0 {
		t.Fatalf("no-op mprotect flushed %#x", f)
	}
	s.Mprotect(a, PageSize, ProtNone)
	if f := take(); len(f) != 1 || f[0] != a {
		t.Fatalf("RO→NONE flushed %#x", f)
	}
	s.Mprotect(a, PageSize, ProtRead|ProtWrite)
	if f := take(); len(f) != 0 {
		t.Fatalf("NONE→RW (entry not present) flushed %#x", f)
	}
	s.Madvise(a+PageSize, PageSize, MadvDontNeed)
	if f := take(); len(f) != 1 || f[0] != a+PageSize {
		t.Fatalf("DONTNEED flushed %#x", f)
	}
	// The last page goes: its PT, PD and PDPT are freed, each after a flush.
	s.Munmap(a, 4*PageSize)
	f := take()
	if len(f) != 4 {
		t.Fatalf("munmap of the last page flushed %#x, want the page and 3 tables", f)
	}
	for _, va := range f {
		if va != a {
			t.Fatalf("munmap flushed %#x, want %#x", va, uint64(a))
		}
	}
	// PageTables.Unmap.
	pt = s.PT
	pt.FlushTLB = true
	pt.Map(0x5000, 0x5000, PageSize, PTEWrite)
	pt.Unmap(0x5000)
	if f := take(); len(f) != 4 {
		t.Fatalf("PageTables.Unmap flushed %#x", f)
	}
	// Off: never.
	s.FlushTLB = false
	s.Mmap(a, PageSize, ProtRead|ProtWrite, MapPrivate|MapAnonymous|MapFixed)
	s.Fault(a, true, false)
	s.Mprotect(a, PageSize, ProtRead)
	s.Munmap(a, PageSize)
	if f := take(); len(f) != 0 {
		t.Fatalf("FlushTLB off flushed %#x", f)
	}
}
