package mm_test

import (
	"math/rand"
	"testing"

	"juice/mm"
)

// The model: per page, whether it is mapped, its protection, whether it
// is backed and the marker byte at markerOff in it.
type mpage struct {
	prot   uint64
	backed bool
	val    byte
}

const (
	markerOff = 100
	// The op window straddles the 1 TiB boundary (a PML4 slot boundary)
	// so tables are created and pruned at every level.
	windowPages = 2048
	windowBase  = 0x100_0000_0000 - windowPages/2*page
)

// driver runs an op sequence decoded from bytes against a Space and the
// model, checking each result.
type driver struct {
	t      testing.TB
	e      *env
	in     []byte
	pos    int
	model  map[uint64]*mpage
	backed uint64
	ops    int
}

func (d *driver) more() bool { return d.pos < len(d.in) }

func (d *driver) b() uint64 {
	if d.pos >= len(d.in) {
		return 0
	}
	v := d.in[d.pos]
	d.pos++
	return uint64(v)
}

func (d *driver) u16() uint64 { return d.b() | d.b()<<8 }

// windowAddr picks a page in the window.
func (d *driver) windowAddr() uint64 { return windowBase + d.u16()%windowPages*page }

// pages picks a length in pages: mostly short, sometimes long.
func (d *driver) pages() uint64 {
	v := d.b()
	if v >= 250 {
		return 1 + d.u16()%windowPages
	}
	return 1 + v%48
}

func (d *driver) prot() uint64 { return d.b() % 8 }

func modelAllowed(p *mpage, write, exec bool) mm.FaultResult {
	if p == nil {
		return mm.FaultNoVMA
	}
	if p.prot == 0 || (write && p.prot&mm.ProtWrite == 0) || (exec && p.prot&mm.ProtExec == 0) {
		return mm.FaultProt
	}
	return mm.FaultFixed
}

func (d *driver) anyMapped(a, n uint64) bool {
	for i := uint64(0); i < n; i++ {
		if d.model[a+i*page] != nil {
			return true
		}
	}
	return false
}

func (d *driver) allMapped(a, n uint64) bool {
	for i := uint64(0); i < n; i++ {
		if d.model[a+i*page] == nil {
			return false
		}
	}
	return true
}

func (d *driver) drop(va uint64) {
	if p := d.model[va]; p != nil && p.backed {
		p.backed, p.val = false, 0
		d.backed--
	}
}

func (d *driver) setMapped(a, n, prot uint64) {
	for i := uint64(0); i < n; i++ {
		d.drop(a + i*page)
		d.model[a+i*page] = &mpage{prot: prot}
	}
}

func (d *driver) unmap(a, n uint64) {
	for i := uint64(0); i < n; i++ {
		d.drop(a + i*page)
		delete(d.model, a+i*page)
	}
}

// afterFault checks a page the Space says it backed and updates the
// model; write stores a fresh marker.
func (d *driver) afterFault(va uint64, write bool) {
	t := d.t
	pg := va &^ 4095
	p := d.model[pg]
	pa, fl, _, ok := d.e.sp.PT.Lookup(pg)
	if !ok || fl&mm.PTEPresent == 0 {
		t.Fatalf("op %d: page %#x not present after FaultFixed", d.ops, pg)
	}
	if !p.backed {
		for i := pa; i < pa+page; i++ {
			if d.e.ram[i] != 0 {
				t.Fatalf("op %d: new page %#x not zero at %#x", d.ops, pg, i-pa)
			}
		}
		p.backed = true
		p.val = 0
		d.backed++
	}
	if got := d.e.ram[pa+markerOff]; got != p.val {
		t.Fatalf("op %d: page %#x marker %#x, model %#x", d.ops, pg, got, p.val)
	}
	if write {
		p.val = byte(d.b() | 1)
		d.e.ram[pa+markerOff] = p.val
	}
}

func (d *driver) fault(va uint64, write, exec bool) {
	pg := va &^ 4095
	free := d.e.fr.FreeCount()
	want := modelAllowed(d.model[pg], write, exec)
	got := d.e.sp.Fault(va, write, exec)
	if got == mm.FaultOOM && want == mm.FaultFixed && free < 4 {
		if d.e.fr.FreeCount() != free {
			d.t.Fatalf("op %d: FaultOOM changed the free count", d.ops)
		}
		return
	}
	if got != want {
		d.t.Fatalf("op %d: Fault(%#x, w=%v, x=%v) = %v, model %v (free %d)", d.ops, va, write, exec, got, want, free)
	}
	if got == mm.FaultFixed {
		d.afterFault(va, write)
	}
}

func (d *driver) step() {
	t := d.t
	sp := &d.e.sp
	d.ops++
	switch op := d.b() % 20; op {
	case 0, 1: // MAP_FIXED / MAP_FIXED_NOREPLACE in the window
		a, n, prot := d.windowAddr(), d.pages(), d.prot()
		flags := uint64(fixed)
		if op == 1 {
			flags = noRepl
		}
		vmas := sp.VMAs()
		got, errno := sp.Mmap(a, n*page, prot, flags)
		switch {
		case op == 1 && d.anyMapped(a, n):
			if errno != mm.EEXIST {
				t.Fatalf("op %d: NOREPLACE over mapped pages = %#x %v", d.ops, got, errno)
			}
		case errno == mm.ENOMEM && vmas >= mm.MaxVMAs-2:
		case errno != 0 || got != a:
			t.Fatalf("op %d: Mmap(%#x, %d pages, %d, %#x) = %#x %v", d.ops, a, n, prot, flags, got, errno)
		default:
			d.setMapped(a, n, prot)
		}
	case 2, 3: // hint in the window, or no hint
		a, n, prot := d.windowAddr(), d.pages(), d.prot()
		if op == 3 {
			a = 0
		}
		vmas := sp.VMAs()
		got, errno := sp.Mmap(a, n*page, prot, anon)
		if errno == mm.ENOMEM && vmas >= mm.MaxVMAs-1 {
			return
		}
		if errno != 0 {
			t.Fatalf("op %d: Mmap(%#x, %d pages) = %v", d.ops, a, n, errno)
		}
		if got&4095 != 0 || got < mm.UserBase || got+n*page > mm.UserTop || got+n*page < got {
			t.Fatalf("op %d: Mmap returned %#x", d.ops, got)
		}
		if d.anyMapped(got, n) {
			t.Fatalf("op %d: Mmap returned %#x over a live mapping", d.ops, got)
		}
		if a != 0 && !d.anyMapped(a, n) && a+n*page <= mm.UserTop && got != a {
			t.Fatalf("op %d: free hint %#x not honoured: %#x", d.ops, a, got)
		}
		d.setMapped(got, n, prot)
	case 4, 5: // munmap in the window / of a whole existing VMA
		var a, n uint64
		if op == 4 {
			a, n = d.windowAddr(), d.pages()
		} else {
			if sp.VMAs() == 0 {
				return
			}
			s, e, _, _ := sp.VMA(int(d.u16() % uint64(sp.VMAs())))
			a, n = s, (e-s)/page
			if n > 4*windowPages {
				return
			}
		}
		vmas := sp.VMAs()
		errno := sp.Munmap(a, n*page)
		if errno == mm.ENOMEM && vmas >= mm.MaxVMAs {
			return
		}
		if errno != 0 {
			t.Fatalf("op %d: Munmap(%#x, %d pages) = %v", d.ops, a, n, errno)
		}
		d.unmap(a, n)
	case 6, 7: // madvise
		a, n := d.windowAddr(), d.pages()
		adv := uint64(mm.MadvDontNeed)
		switch d.b() % 4 {
		case 1:
			adv = mm.MadvFree
		case 2:
			adv = mm.MadvNoHugePage
		case 3:
			adv = mm.MadvWillNeed
		}
		errno := sp.Madvise(a, n*page, adv)
		want := mm.Errno(0)
		if !d.allMapped(a, n) {
			want = mm.ENOMEM
		}
		if errno != want {
			t.Fatalf("op %d: Madvise(%#x, %d pages, %d) = %v, model %v", d.ops, a, n, adv, errno, want)
		}
		if adv == mm.MadvDontNeed || adv == mm.MadvFree {
			for i := uint64(0); i < n; i++ {
				d.drop(a + i*page)
			}
		}
	case 8: // mprotect
		a, n, prot := d.windowAddr(), d.pages(), d.prot()
		vmas := sp.VMAs()
		errno := sp.Mprotect(a, n*page, prot)
		if !d.allMapped(a, n) {
			if errno != mm.ENOMEM {
				t.Fatalf("op %d: Mprotect over a hole = %v", d.ops, errno)
			}
			return
		}
		if errno == mm.ENOMEM && vmas >= mm.MaxVMAs-1 {
			return
		}
		if errno != 0 {
			t.Fatalf("op %d: Mprotect(%#x, %d pages, %d) = %v", d.ops, a, n, prot, errno)
		}
		for i := uint64(0); i < n; i++ {
			d.model[a+i*page].prot = prot
		}
	case 9, 10, 11, 15, 16, 17, 18: // fault in the window
		va := d.windowAddr() + d.b()*16
		k := d.b() % 3
		d.fault(va, k == 1, k == 2)
	case 12: // fault in an existing VMA
		if sp.VMAs() == 0 {
			return
		}
		s, e, _, _ := sp.VMA(int(d.u16() % uint64(sp.VMAs())))
		va := s + (d.u16()%((e-s)/page))*page + d.b()
		d.fault(va, d.b()%2 == 1, false)
	case 13, 19: // touch
		a := d.windowAddr() + d.b()*16
		length := d.b() * d.b() * 16
		write := d.b()%2 == 1
		r := sp.Touch(a, length, write)
		if length == 0 {
			if r != mm.FaultFixed {
				t.Fatalf("op %d: empty Touch = %v", d.ops, r)
			}
			return
		}
		for pg := a &^ 4095; pg <= (a+length-1)&^4095; pg += page {
			want := modelAllowed(d.model[pg], write, false)
			if want != mm.FaultFixed {
				if r != want {
					t.Fatalf("op %d: Touch(%#x, %d) = %v, model fails %v at %#x", d.ops, a, length, r, want, pg)
				}
				return
			}
			if _, _, _, ok := sp.PT.Lookup(pg); !ok {
				if r != mm.FaultOOM {
					t.Fatalf("op %d: Touch = %v but page %#x not present", d.ops, r, pg)
				}
				return
			}
			d.afterFault(pg, false)
		}
		if r != mm.FaultFixed {
			t.Fatalf("op %d: Touch = %v, model says fine", d.ops, r)
		}
	case 14: // wide operations over the whole window
		switch d.b() % 3 {
		case 0:
			if sp.Munmap(windowBase, windowPages*page) == 0 {
				d.unmap(windowBase, windowPages)
			}
		case 1:
			if _, errno := sp.Mmap(windowBase, windowPages*page, mm.ProtNone, fixed); errno == 0 {
				d.setMapped(windowBase, windowPages, mm.ProtNone)
			}
		case 2:
			errno := sp.Madvise(windowBase, windowPages*page, mm.MadvDontNeed)
			if (errno == 0) != d.allMapped(windowBase, windowPages) {
				t.Fatalf("op %d: window DONTNEED = %v", d.ops, errno)
			}
			for i := uint64(0); i < windowPages; i++ {
				d.drop(windowBase + i*page)
			}
		}
	}
	// Cheap checks after every op.
	if got := sp.Committed(); got != d.backed*page {
		t.Fatalf("op %d: Committed %d, model %d pages", d.ops, got, d.backed)
	}
	if used := d.e.fr.TotalCount() - d.e.fr.FreeCount(); used != d.backed+sp.PT.TableFrames() {
		t.Fatalf("op %d: %d frames used, %d backed + %d tables", d.ops, used, d.backed, sp.PT.TableFrames())
	}
}

// full runs checkSpace and compares everything with the model (which
// costs time in proportion to the pages mapped).
func (d *driver) full() {
	t := d.t
	leaves := checkSpace(t, d.e)
	n := uint64(0)
	for _, v := range vmaList(&d.e.sp) {
		for a := v[0]; a < v[1]; a += page {
			p := d.model[a]
			if p == nil {
				t.Fatalf("op %d: VMA page %#x not in the model", d.ops, a)
			}
			if p.prot != v[2] {
				t.Fatalf("op %d: page %#x prot %d, model %d", d.ops, a, v[2], p.prot)
			}
			n++
		}
	}
	if n != uint64(len(d.model)) {
		t.Fatalf("op %d: VMAs cover %d pages, model %d", d.ops, n, len(d.model))
	}
	for va, p := range d.model {
		l, ok := leaves[va]
		if ok != p.backed {
			t.Fatalf("op %d: page %#x backed=%v, model %v", d.ops, va, ok, p.backed)
		}
		if ok && d.e.ram[l.pa+markerOff] != p.val {
			t.Fatalf("op %d: page %#x marker %#x, model %#x", d.ops, va, d.e.ram[l.pa+markerOff], p.val)
		}
	}
}

// runModel executes the whole input, checking the invariants every
// `every` ops and the full model every `modelEvery` ops and at the end,
// then unmaps everything and checks that no frame leaked.
func runModel(t testing.TB, e *env, in []byte, every, modelEvery int) {
	d := &driver{t: t, e: e, in: in, model: map[uint64]*mpage{}}
	for d.more() {
		d.step()
		switch {
		case d.ops%modelEvery == 0:
			d.full()
		case d.ops%every == 0:
			checkSpace(t, e)
		}
	}
	d.full()
	if errno := e.sp.Munmap(mm.UserBase, mm.UserTop-mm.UserBase); errno != 0 {
		t.Fatalf("final Munmap = %v", errno)
	}
	if e.sp.VMAs() != 0 || e.sp.Committed() != 0 || e.sp.PT.TableFrames() != 1 || e.fr.FreeCount() != e.start {
		t.Fatalf("after unmapping all: %d VMAs, %d committed, %d tables, %d/%d frames free",
			e.sp.VMAs(), e.sp.Committed(), e.sp.PT.TableFrames(), e.fr.FreeCount(), e.start)
	}
}

func TestSpaceModel(t *testing.T) {
	ops := 6000
	if testing.Short() {
		ops = 1500
	}
	for seed := int64(1); seed <= 6; seed++ {
		// Odd seeds: 1.5 MiB of RAM (127 frames) against a 2048-page
		// window, so faults often run out of frames; even seeds: 4 MiB.
		size := 4 * mib
		if seed%2 == 1 {
			size = 3 * mib / 2
		}
		e := newEnv(t, size)
		rng := rand.New(rand.NewSource(seed))
		in := make([]byte, ops*8)
		rng.Read(in)
		runModel(t, e, in, 10, 50)
	}
}

var fuzzEnv *env

// FuzzSpace interprets the input as an op sequence (see driver.step) and
// checks every result against the model and the invariants after every
// op: VMAs sorted, disjoint and merged; every user entry inside a VMA
// whose prot allows it, with the right flags; frames conserved.
func FuzzSpace(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 20, 3, 9, 0, 0, 0, 0, 1, 6, 0, 0, 5, 0})
	// Reservation, chunks, faults, DONTNEED, mprotect, unmap.
	f.Add([]byte{
		14, 1,
		0, 0, 0, 40, 3, 0, 40, 0, 40, 3,
		9, 1, 0, 3, 1, 9, 2, 0, 0, 1, 10, 50, 0, 0, 2,
		6, 0, 0, 10, 0,
		8, 0, 0, 45, 0, 9, 2, 0, 0, 0,
		8, 0, 0, 45, 3, 12, 0, 0, 1, 0, 0, 1, 1,
		13, 0, 0, 0, 200, 1,
		4, 10, 0, 20,
		14, 2, 14, 0,
	})
	f.Add([]byte{3, 0, 0, 250, 0, 8, 7, 12, 0, 0, 200, 0, 9, 1, 5, 0, 0})
	rng := rand.New(rand.NewSource(99))
	for i := 0; i < 4; i++ {
		b := make([]byte, 600)
		rng.Read(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 2048 {
			in = in[:2048]
		}
		if fuzzEnv == nil {
			fuzzEnv = newEnv(t, 3*mib/2)
		} else {
			fuzzEnv.reset(t)
		}
		runModel(t, fuzzEnv, in, 2, 64)
	})
}
