package mm_test

import (
	"testing"

	"juice/mm"
	"juice/mm/phys"
)

// e820-like layout: low RAM with unaligned ends, a hole, main RAM with an
// unaligned end, RAM beyond the window.
func frameLayout() (ram, reserved []mm.Range) {
	ram = []mm.Range{
		{Base: 0x1234, End: 0x9fc00},          // low RAM: frames 2..0x9e
		{Base: 0x100000, End: 0x1000000 - 5},  // main RAM up to 16 MiB - 5
		{Base: 0x2000_0000, End: 0x2010_0000}, // beyond the 16 MiB window
	}
	reserved = []mm.Range{
		{Base: 0, End: 0x100000},            // first MiB
		{Base: 0x200000, End: 0x300000 + 1}, // "kernel image", unaligned end
		{Base: 0x400800, End: 0x400900},     // boot info inside one frame
		{Base: 0x500000, End: 0x500000},     // empty: ignored
		{Base: 0x600000, End: 0x5ff000},     // inverted: ignored
	}
	return
}

// expectedFrames is the independent answer: frames fully inside RAM and
// the window, touching no reserved range, not frame 0.
func expectedFrames(size uint64, ram, reserved []mm.Range) map[uint64]bool {
	want := map[uint64]bool{}
	for _, r := range ram {
		for pa := (r.Base + 4095) &^ 4095; pa+4096 <= r.End && pa+4096 <= size; pa += 4096 {
			want[pa] = true
		}
	}
	for _, r := range reserved {
		if r.End <= r.Base {
			continue
		}
		for pa := r.Base &^ 4095; pa < r.End; pa += 4096 {
			delete(want, pa)
		}
	}
	delete(want, 0)
	return want
}

func TestFramesAllocateEverything(t *testing.T) {
	const size = 16 * mib
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = 0xee
	}
	mem := phys.FromSlice(buf)
	ram, reserved := frameLayout()
	var f mm.Frames
	if st := f.Init(&mem, ram, reserved); st != mm.OK {
		t.Fatalf("Init: %v", st)
	}
	want := expectedFrames(size, ram, reserved)
	bm := f.Bitmap()
	if bm.Base == 0 || bm.End <= bm.Base || bm.Base&4095 != 0 || bm.End&4095 != 0 {
		t.Fatalf("bitmap range %#x", bm)
	}
	for pa := bm.Base; pa < bm.End; pa += 4096 {
		if !want[pa] {
			t.Fatalf("bitmap frame %#x is not free RAM", pa)
		}
		delete(want, pa)
	}
	// Low RAM is all reserved: the lowest free RAM is at 1 MiB.
	if bm.Base != 0x100000 {
		t.Errorf("bitmap at %#x, want the lowest free RAM 0x100000", bm.Base)
	}
	if f.TotalCount() != uint64(len(want)) || f.FreeCount() != f.TotalCount() {
		t.Fatalf("TotalCount %d FreeCount %d, want %d", f.TotalCount(), f.FreeCount(), len(want))
	}
	got := map[uint64]bool{}
	var order []uint64
	for {
		pa, ok := f.Alloc()
		if !ok {
			break
		}
		if !want[pa] {
			t.Fatalf("Alloc handed out %#x: not allocatable", pa)
		}
		if got[pa] {
			t.Fatalf("Alloc handed out %#x twice", pa)
		}
		if !f.IsAllocated(pa) {
			t.Fatalf("IsAllocated(%#x) false after Alloc", pa)
		}
		got[pa] = true
		order = append(order, pa)
	}
	if len(got) != len(want) || f.FreeCount() != 0 {
		t.Fatalf("allocated %d of %d frames, FreeCount %d", len(got), len(want), f.FreeCount())
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("first fit broken: %#x after %#x", order[i], order[i-1])
		}
	}
	if _, ok := f.AllocZeroed(); ok {
		t.Fatal("AllocZeroed succeeded with nothing free")
	}
	if _, ok := f.AllocContig(1); ok {
		t.Fatal("AllocContig succeeded with nothing free")
	}
	// Bad frees change nothing.
	for _, c := range []struct {
		pa   uint64
		want mm.Status
	}{
		{0, mm.NotRAM},
		{0x1000, mm.NotRAM},      // frame 1: below low RAM start (0x1234)
		{0x9f000, mm.NotRAM},     // partial last low-RAM frame
		{0xa0000, mm.NotRAM},     // hole
		{0x200000, mm.NotRAM},    // reserved
		{0x300000, mm.NotRAM},    // reserved by the unaligned end
		{0x400000, mm.NotRAM},    // frame touched by boot info
		{bm.Base, mm.NotRAM},     // bitmap
		{0xfff000, mm.NotRAM},    // partial last frame of main RAM
		{0x2000_0000, mm.NotRAM}, // beyond the window
		{^uint64(0) &^ 4095, mm.NotRAM},
		{0x500001, mm.BadAlign},
	} {
		if st := f.Free(c.pa); st != c.want {
			t.Errorf("Free(%#x) = %v, want %v", c.pa, st, c.want)
		}
		if f.IsAllocated(c.pa) {
			t.Errorf("IsAllocated(%#x) true for a foreign frame", c.pa)
		}
	}
	if f.FreeCount() != 0 {
		t.Fatalf("bad frees changed FreeCount to %d", f.FreeCount())
	}
	for _, pa := range order {
		if st := f.Free(pa); st != mm.OK {
			t.Fatalf("Free(%#x) = %v", pa, st)
		}
	}
	if f.FreeCount() != f.TotalCount() {
		t.Fatalf("after freeing all: FreeCount %d TotalCount %d", f.FreeCount(), f.TotalCount())
	}
	if st := f.Free(order[7]); st != mm.DoubleFree {
		t.Fatalf("double free: %v", st)
	}
	if f.FreeCount() != f.TotalCount() {
		t.Fatal("double free changed the count")
	}
	// Free lowers the hint: the lowest freed frame comes back first.
	a, _ := f.Alloc()
	b, _ := f.Alloc()
	c, _ := f.Alloc()
	f.Free(b)
	f.Free(a)
	if x, _ := f.Alloc(); x != a {
		t.Fatalf("Alloc after freeing %#x and %#x gave %#x", a, b, x)
	}
	if x, _ := f.Alloc(); x != b {
		t.Fatalf("second Alloc gave %#x, want %#x", x, b)
	}
	_ = c
}

func TestFramesAllocZeroed(t *testing.T) {
	buf := make([]byte, 4*mib)
	for i := range buf {
		buf[i] = 0x5a
	}
	mem := phys.FromSlice(buf)
	var f mm.Frames
	if st := f.Init(&mem, []mm.Range{{Base: 0, End: 4 * mib}}, []mm.Range{{Base: 0, End: mib}}); st != mm.OK {
		t.Fatal(st)
	}
	for i := 0; i < 50; i++ {
		pa, ok := f.AllocZeroed()
		if !ok {
			t.Fatal("AllocZeroed failed")
		}
		for j := pa; j < pa+4096; j++ {
			if buf[j] != 0 {
				t.Fatalf("frame %#x byte %#x = %#x", pa, j-pa, buf[j])
			}
		}
		buf[pa+17] = 1
	}
}

func TestFramesBitmapAvoidsReserved(t *testing.T) {
	const size = 8 * mib
	buf := make([]byte, size)
	mem := phys.FromSlice(buf)
	ram := []mm.Range{{Base: 0, End: size}}
	// Reserved ranges out of order and overlapping, covering everything
	// but [3 MiB+8K, 4 MiB) and [5 MiB, 8 MiB).
	reserved := []mm.Range{
		{Base: 2 * mib, End: 3*mib + 8192},
		{Base: 0, End: 2*mib + 100},
		{Base: 4 * mib, End: 5 * mib},
	}
	var f mm.Frames
	if st := f.Init(&mem, ram, reserved); st != mm.OK {
		t.Fatal(st)
	}
	if bm := f.Bitmap(); bm.Base != 3*mib+8192 {
		t.Fatalf("bitmap at %#x, want %#x", bm.Base, 3*mib+8192)
	}
	want := expectedFrames(size, ram, reserved)
	delete(want, f.Bitmap().Base)
	if f.TotalCount() != uint64(len(want)) {
		t.Fatalf("TotalCount %d want %d", f.TotalCount(), len(want))
	}
	for {
		pa, ok := f.Alloc()
		if !ok {
			break
		}
		if !want[pa] {
			t.Fatalf("handed out reserved frame %#x", pa)
		}
		delete(want, pa)
	}
	if len(want) != 0 {
		t.Fatalf("%d frames never handed out", len(want))
	}
}

func TestFramesInitFailures(t *testing.T) {
	buf := make([]byte, 2*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	if st := f.Init(nil, nil, nil); st != mm.Uninitialized {
		t.Errorf("nil mem: %v", st)
	}
	if st := f.Init(&mem, nil, nil); st != mm.NoMemory {
		t.Errorf("no RAM: %v", st)
	}
	if st := f.Init(&mem, []mm.Range{{Base: 5 * mib, End: 9 * mib}}, nil); st != mm.NoMemory {
		t.Errorf("RAM outside window: %v", st)
	}
	if st := f.Init(&mem, []mm.Range{{Base: 0, End: 2 * mib}}, []mm.Range{{Base: 0, End: 2 * mib}}); st != mm.NoMemory {
		t.Errorf("everything reserved: %v", st)
	}
	if st := f.Init(&mem, []mm.Range{{Base: 0x1800, End: 0x2700}}, nil); st != mm.NoMemory {
		t.Errorf("no whole frame: %v", st)
	}
	// Exactly one frame besides frame 0 and the bitmap.
	if st := f.Init(&mem, []mm.Range{{Base: 0, End: 3 * 4096}}, nil); st != mm.OK {
		t.Fatalf("tiny RAM: %v", st)
	}
	if f.TotalCount() != 1 {
		t.Fatalf("tiny RAM: TotalCount %d", f.TotalCount())
	}
	pa, ok := f.Alloc()
	if !ok || pa != 0x2000 {
		t.Fatalf("tiny RAM: Alloc = %#x %v", pa, ok)
	}
	var z mm.Frames
	if _, ok := z.Alloc(); ok {
		t.Error("zero Frames allocated")
	}
	if st := z.Free(0x1000); st != mm.Uninitialized {
		t.Errorf("zero Frames Free: %v", st)
	}
	if z.FreeCount() != 0 || z.TotalCount() != 0 || z.IsAllocated(0x1000) {
		t.Error("zero Frames reports frames")
	}
	var nilF *mm.Frames
	if _, ok := nilF.Alloc(); ok {
		t.Error("nil Frames allocated")
	}
}

func TestFramesCopiesShareState(t *testing.T) {
	buf := make([]byte, 4*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 4 * mib}}, []mm.Range{{Base: 0, End: mib}})
	g := f
	pa, _ := g.Alloc()
	if f.FreeCount() != g.FreeCount() || !f.IsAllocated(pa) {
		t.Fatal("a copy of Frames does not share the allocator state")
	}
	if st := f.Free(pa); st != mm.OK || g.IsAllocated(pa) {
		t.Fatalf("free through the original: %v", st)
	}
}

func TestFramesContig(t *testing.T) {
	buf := make([]byte, 4*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 4 * mib}}, []mm.Range{{Base: 0, End: mib}})
	total := f.TotalCount()
	// Fragment: allocate 64 frames, free every other one.
	var fr []uint64
	for i := 0; i < 64; i++ {
		pa, _ := f.Alloc()
		fr = append(fr, pa)
	}
	for i := 0; i < 64; i += 2 {
		f.Free(fr[i])
	}
	pa, ok := f.AllocContig(5)
	if !ok {
		t.Fatal("AllocContig(5) failed")
	}
	if pa <= fr[63] {
		t.Fatalf("AllocContig(5) = %#x inside the fragmented area (ends %#x)", pa, fr[63])
	}
	for i := uint64(0); i < 5; i++ {
		if !f.IsAllocated(pa + i*4096) {
			t.Fatalf("frame %d of the run not allocated", i)
		}
	}
	// A single-frame run fits in a hole.
	one, ok := f.AllocContig(1)
	if !ok || one != fr[0] {
		t.Fatalf("AllocContig(1) = %#x, want the first hole %#x", one, fr[0])
	}
	if _, ok := f.AllocContig(0); ok {
		t.Fatal("AllocContig(0) succeeded")
	}
	if _, ok := f.AllocContig(total); ok {
		t.Fatal("AllocContig(total) succeeded with frames in use")
	}
	if st := f.FreeContig(pa, 6); st != mm.DoubleFree {
		t.Fatalf("FreeContig past the run: %v", st)
	}
	if !f.IsAllocated(pa) {
		t.Fatal("failed FreeContig freed part of the run")
	}
	if st := f.FreeContig(pa, 5); st != mm.OK {
		t.Fatalf("FreeContig: %v", st)
	}
	if st := f.FreeContig(1<<52-4096, 2); st != mm.BadAddress {
		t.Fatalf("FreeContig wrapping: %v", st)
	}
	f.Free(one)
	for i := 1; i < 64; i += 2 {
		f.Free(fr[i])
	}
	if f.FreeCount() != total {
		t.Fatalf("leak: %d of %d free", f.FreeCount(), total)
	}
	// Everything free and contiguous: the whole RAM in one run.
	big, ok := f.AllocContig(total)
	if !ok {
		t.Fatal("AllocContig(all) failed on empty allocator")
	}
	if f.FreeCount() != 0 {
		t.Fatal("AllocContig(all) left frames")
	}
	if st := f.FreeContig(big, total); st != mm.OK || f.FreeCount() != total {
		t.Fatalf("FreeContig(all): %v", st)
	}
}

func TestFramesNoAllocs(t *testing.T) {
	buf := make([]byte, 4*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 4 * mib}}, []mm.Range{{Base: 0, End: mib}})
	n := testing.AllocsPerRun(1000, func() {
		pa, _ := f.Alloc()
		pz, _ := f.AllocZeroed()
		pc, _ := f.AllocContig(3)
		f.Free(pa)
		f.Free(pz)
		f.FreeContig(pc, 3)
	})
	if n != 0 {
		t.Fatalf("Frames allocates: %v per run", n)
	}
	if f.FreeCount() != f.TotalCount() {
		t.Fatal("leak")
	}
	ram, res := frameLayout()
	big := make([]byte, 16*mib)
	bm := phys.FromSlice(big)
	if n := testing.AllocsPerRun(10, func() { f.Init(&bm, ram, res) }); n != 0 {
		t.Fatalf("Init allocates: %v", n)
	}
}

func TestStatusStrings(t *testing.T) {
	seen := map[string]bool{}
	for s := mm.OK; s <= mm.Uninitialized; s++ {
		str := s.String()
		if str == "" || str == "unknown status" || seen[str] {
			t.Errorf("Status %d: %q", s, str)
		}
		seen[str] = true
	}
	if mm.Status(200).String() != "unknown status" {
		t.Error("out-of-range Status")
	}
	for r := mm.FaultFixed; r <= mm.FaultOOM; r++ {
		if r.String() == "fault?" {
			t.Errorf("FaultResult %d unnamed", r)
		}
	}
	for _, e := range []mm.Errno{0, mm.EPERM, mm.ENOMEM, mm.EACCES, mm.EFAULT, mm.EEXIST, mm.ENODEV, mm.EINVAL} {
		if e.String() == "errno?" {
			t.Errorf("Errno %d unnamed", e)
		}
	}
}

func BenchmarkAlloc(b *testing.B) {
	buf := make([]byte, 64*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 64 * mib}}, []mm.Range{{Base: 0, End: mib}})
	held := make([]uint64, 0, f.TotalCount())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pa, ok := f.Alloc()
		if !ok {
			b.StopTimer()
			for _, p := range held {
				f.Free(p)
			}
			held = held[:0]
			b.StartTimer()
			pa, _ = f.Alloc()
		}
		held = append(held, pa)
	}
}

func BenchmarkFree(b *testing.B) {
	buf := make([]byte, 64*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 64 * mib}}, []mm.Range{{Base: 0, End: mib}})
	held := make([]uint64, 0, f.TotalCount())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(held) == 0 {
			b.StopTimer()
			for {
				pa, ok := f.Alloc()
				if !ok {
					break
				}
				held = append(held, pa)
			}
			b.StartTimer()
		}
		f.Free(held[len(held)-1])
		held = held[:len(held)-1]
	}
}

// BenchmarkAllocFree is the steady state: one frame in, one out, with
// half of RAM in use.
func BenchmarkAllocFree(b *testing.B) {
	buf := make([]byte, 64*mib)
	mem := phys.FromSlice(buf)
	var f mm.Frames
	f.Init(&mem, []mm.Range{{Base: 0, End: 64 * mib}}, []mm.Range{{Base: 0, End: mib}})
	for i := uint64(0); i < f.TotalCount()/2; i++ {
		f.Alloc()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pa, _ := f.Alloc()
		f.Free(pa)
	}
}
