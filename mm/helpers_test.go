package mm_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"juice/mm"
	"juice/mm/phys"
)

// env is simulated RAM (physical address = offset into ram) with a frame
// allocator, page tables and a Space over them.
type env struct {
	ram   []byte
	mem   phys.Mem
	fr    mm.Frames
	sp    mm.Space
	start uint64 // free frames right after setup (root PML4 allocated)
}

const mib = 1 << 20

// newEnv builds an env of size bytes; RAM is filled with garbage so that
// missing zeroing shows. The first MiB (frame 0 included) is reserved.
func newEnv(t testing.TB, size int) *env {
	t.Helper()
	e := &env{ram: make([]byte, size)}
	e.reset(t)
	return e
}

// reset re-initialises everything over the same RAM.
func (e *env) reset(t testing.TB) {
	t.Helper()
	for i := range e.ram {
		e.ram[i] = 0xa5
	}
	e.mem = phys.FromSlice(e.ram)
	if st := e.fr.Init(&e.mem, []mm.Range{{Base: 0, End: uint64(len(e.ram))}}, []mm.Range{{Base: 0, End: mib}}); st != mm.OK {
		t.Fatalf("Frames.Init: %v", st)
	}
	var pt mm.PageTables
	if st := pt.Init(&e.mem, &e.fr); st != mm.OK {
		t.Fatalf("PageTables.Init: %v", st)
	}
	if st := e.sp.Init(&e.mem, &e.fr, &pt); st != mm.OK {
		t.Fatalf("Space.Init: %v", st)
	}
	e.start = e.fr.FreeCount()
}

// leaf is one leaf entry found by the walker: present, or a non-present
// entry holding a frame (a PROT_NONE page that keeps its contents).
type leaf struct {
	va, pa, size, flags uint64
	present             bool
}

// walkResult is everything the independent walker saw.
type walkResult struct {
	leaves []leaf
	tables []uint64 // every table frame, root first
	errs   []string
}

const (
	addrBits = 0x000f_ffff_ffff_f000
	bitP     = 1
	bitW     = 2
	bitU     = 4
	bitPS    = 0x80
	bitNX    = 1 << 63
)

// walk is an independent 4-level walker over raw RAM: it does not use the
// package's code. It records leaves and tables and flags malformed
// intermediate entries and empty non-root tables.
func walk(ram []byte, root uint64) walkResult {
	var r walkResult
	ld := func(pa uint64) uint64 {
		if pa+8 > uint64(len(ram)) {
			r.errs = append(r.errs, fmt.Sprintf("entry address %#x outside RAM", pa))
			return 0
		}
		return binary.LittleEndian.Uint64(ram[pa:])
	}
	sext := func(va uint64) uint64 {
		if va&(1<<47) != 0 {
			return va | 0xffff_0000_0000_0000
		}
		return va
	}
	empty := func(t uint64) bool {
		for i := uint64(0); i < 512; i++ {
			if ld(t+i*8) != 0 {
				return false
			}
		}
		return true
	}
	inter := func(e uint64, where string, t uint64) uint64 {
		if e&bitP == 0 {
			r.errs = append(r.errs, fmt.Sprintf("%s: non-present non-zero intermediate entry %#x", where, e))
			return 0
		}
		if e&bitU != 0 || e&bitW == 0 || e&bitNX != 0 {
			r.errs = append(r.errs, fmt.Sprintf("%s: intermediate flags %#x", where, e))
		}
		nt := e & addrBits
		r.tables = append(r.tables, nt)
		if empty(nt) {
			r.errs = append(r.errs, fmt.Sprintf("%s: empty table %#x left behind", where, nt))
		}
		_ = t
		return nt
	}
	r.tables = append(r.tables, root)
	for i4 := uint64(0); i4 < 512; i4++ {
		e4 := ld(root + i4*8)
		if e4 == 0 {
			continue
		}
		pdpt := inter(e4, fmt.Sprintf("PML4[%d]", i4), root)
		if pdpt == 0 {
			continue
		}
		for i3 := uint64(0); i3 < 512; i3++ {
			e3 := ld(pdpt + i3*8)
			if e3 == 0 {
				continue
			}
			va3 := sext(i4<<39 | i3<<30)
			if e3&bitP != 0 && e3&bitPS != 0 {
				r.leaves = append(r.leaves, leaf{va3, e3 & addrBits &^ (1<<30 - 1), 1 << 30, e3 &^ (addrBits &^ (1<<30 - 1)), true})
				continue
			}
			pd := inter(e3, fmt.Sprintf("PDPT[%d][%d]", i4, i3), pdpt)
			if pd == 0 {
				continue
			}
			for i2 := uint64(0); i2 < 512; i2++ {
				e2 := ld(pd + i2*8)
				if e2 == 0 {
					continue
				}
				va2 := va3 | i2<<21
				if e2&bitP != 0 && e2&bitPS != 0 {
					r.leaves = append(r.leaves, leaf{va2, e2 & addrBits &^ (1<<21 - 1), 1 << 21, e2 &^ (addrBits &^ (1<<21 - 1)), true})
					continue
				}
				pt := inter(e2, fmt.Sprintf("PD[%d][%d][%d]", i4, i3, i2), pd)
				if pt == 0 {
					continue
				}
				for i1 := uint64(0); i1 < 512; i1++ {
					e1 := ld(pt + i1*8)
					if e1 == 0 {
						continue
					}
					r.leaves = append(r.leaves, leaf{va2 | i1<<12, e1 & addrBits, 4096, e1 &^ addrBits, e1&bitP != 0})
				}
			}
		}
	}
	return r
}

// translate finds va in a walk result (present leaves only).
func (r *walkResult) translate(va uint64) (pa, flags uint64, ok bool) {
	for _, l := range r.leaves {
		if l.present && va >= l.va && va-l.va < l.size {
			return l.pa + (va - l.va), l.flags, true
		}
	}
	return 0, 0, false
}

// wantFlags is the leaf flags Space must use for prot.
func wantFlags(prot uint64) uint64 {
	f := uint64(bitP)
	if prot&mm.ProtWrite != 0 {
		f |= bitW
	}
	if prot&mm.ProtExec == 0 {
		f |= bitNX
	}
	return f
}

// vmaList returns the Space's VMAs.
func vmaList(sp *mm.Space) [][3]uint64 {
	var out [][3]uint64
	for i := 0; i < sp.VMAs(); i++ {
		s, e, p, ok := sp.VMA(i)
		if !ok {
			panic("VMA(i) refused an index below VMAs()")
		}
		out = append(out, [3]uint64{s, e, p})
	}
	return out
}

// checkSpace checks the invariants that hold after every Space call:
// VMAs sorted, disjoint, merged and inside the user range; every entry in
// the user range inside a VMA whose prot allows it, with the right flags;
// distinct, allocated backing frames; committed bytes and frame count
// conserved; no empty table left. It returns the user leaves by va.
func checkSpace(t testing.TB, e *env) map[uint64]leaf {
	t.Helper()
	vs := vmaList(&e.sp)
	if _, _, _, ok := e.sp.VMA(len(vs)); ok {
		t.Fatalf("VMA(%d) accepted past the end", len(vs))
	}
	for i, v := range vs {
		if v[0] >= v[1] || v[0]&4095 != 0 || v[1]&4095 != 0 || v[0] < mm.UserBase || v[1] > mm.UserTop {
			t.Fatalf("VMA %d malformed: %#x", i, v)
		}
		if v[2]&^7 != 0 {
			t.Fatalf("VMA %d has prot %#x", i, v[2])
		}
		if i > 0 {
			p := vs[i-1]
			if p[1] > v[0] {
				t.Fatalf("VMAs %d and %d overlap or are unsorted: %#x %#x", i-1, i, p, v)
			}
			if p[1] == v[0] && p[2] == v[2] {
				t.Fatalf("VMAs %d and %d not merged: %#x %#x", i-1, i, p, v)
			}
		}
	}
	find := func(va uint64) (uint64, bool) {
		for _, v := range vs {
			if va >= v[0] && va < v[1] {
				return v[2], true
			}
		}
		return 0, false
	}
	w := walk(e.ram, e.sp.PT.Root)
	for _, s := range w.errs {
		t.Fatal(s)
	}
	if uint64(len(w.tables)) != e.sp.PT.TableFrames() {
		t.Fatalf("walker saw %d tables, TableFrames says %d", len(w.tables), e.sp.PT.TableFrames())
	}
	seen := map[uint64]string{}
	for _, tb := range w.tables {
		if seen[tb] != "" {
			t.Fatalf("table frame %#x used twice", tb)
		}
		seen[tb] = "table"
		if !e.fr.IsAllocated(tb) {
			t.Fatalf("table frame %#x is not allocated", tb)
		}
	}
	leaves := map[uint64]leaf{}
	for _, l := range w.leaves {
		if l.va < mm.UserBase || l.va >= mm.UserTop {
			t.Fatalf("entry outside the user range: %+v", l)
		}
		if l.size != 4096 {
			t.Fatalf("user page not 4 KiB: %+v", l)
		}
		prot, ok := find(l.va)
		if !ok {
			t.Fatalf("entry for %#x lies in no VMA", l.va)
		}
		if l.present {
			if prot == mm.ProtNone {
				t.Fatalf("present entry %#x in a PROT_NONE VMA", l.va)
			}
			if got := l.flags & (bitP | bitW | bitU | bitNX | bitPS); got != wantFlags(prot) {
				t.Fatalf("entry %#x flags %#x, want %#x for prot %d", l.va, got, wantFlags(prot), prot)
			}
		} else {
			if prot != mm.ProtNone {
				t.Fatalf("non-present backed entry %#x in a VMA with prot %d", l.va, prot)
			}
			if l.flags != 0 {
				t.Fatalf("non-present entry %#x carries flags %#x", l.va, l.flags)
			}
		}
		if seen[l.pa] != "" {
			t.Fatalf("frame %#x of page %#x also used as %s", l.pa, l.va, seen[l.pa])
		}
		seen[l.pa] = fmt.Sprintf("page %#x", l.va)
		if !e.fr.IsAllocated(l.pa) {
			t.Fatalf("frame %#x backing %#x is not allocated", l.pa, l.va)
		}
		leaves[l.va] = l
	}
	if got := e.sp.Committed(); got != uint64(len(leaves))*4096 {
		t.Fatalf("Committed = %d, walker found %d backed pages", got, len(leaves))
	}
	if used := e.fr.TotalCount() - e.fr.FreeCount(); used != uint64(len(leaves))+uint64(len(w.tables)) {
		t.Fatalf("frames in use %d != backed pages %d + tables %d", used, len(leaves), len(w.tables))
	}
	return leaves
}

// ld8 reads a byte of simulated RAM.
func (e *env) ld8(pa uint64) byte { return e.ram[pa] }
