package vmx

import (
	"math/rand"
	"testing"
)

// ioBit reads port p's bit the way the SDM describes the two bitmaps:
// bitmap A (the first 4 KiB) for ports 0000-7FFF, bitmap B for 8000-FFFF,
// bit p mod 8 of byte (p mod 0x8000) / 8.
func ioBit(a, b []byte, p uint32) bool {
	m := a
	if p >= 0x8000 {
		m = b
		p -= 0x8000
	}
	return m[p/8]>>(p%8)&1 != 0
}

func TestIOBitmaps(t *testing.T) {
	if _, ok := NewIOBitmaps(make([]byte, IOBitmapsSize-1)); ok {
		t.Fatal("short slice accepted")
	}
	buf := make([]byte, IOBitmapsSize+16)
	m, ok := NewIOBitmaps(buf)
	if !ok {
		t.Fatal("NewIOBitmaps")
	}
	a, b := buf[:4096], buf[4096:8192]
	if &m.A()[0] != &a[0] || &m.B()[0] != &b[0] || len(m.A()) != 4096 || len(m.B()) != 4096 {
		t.Fatal("A/B do not alias the halves")
	}
	m.InterceptAll()
	for p := uint32(0); p < 0x10000; p++ {
		if !ioBit(a, b, p) {
			t.Fatalf("port %#x not intercepted after InterceptAll", p)
		}
	}
	if buf[IOBitmapsSize] != 0 {
		t.Fatal("InterceptAll wrote past the bitmaps")
	}

	// Allow a few ranges, across the A/B boundary and at the top.
	allowed := map[uint32]bool{}
	for _, r := range []struct {
		port uint16
		n    uint32
	}{{0x3f8, 8}, {0x7ffe, 4}, {0xfffc, 4}, {0x80, 1}, {0, 1}} {
		if !m.AllowPort(r.port, r.n) {
			t.Fatalf("AllowPort(%#x, %d) failed", r.port, r.n)
		}
		for p := uint32(r.port); p < uint32(r.port)+r.n; p++ {
			allowed[p] = true
		}
	}
	for p := uint32(0); p < 0x10000; p++ {
		if ioBit(a, b, p) == allowed[p] {
			t.Fatalf("port %#x: bit %v, allowed %v", p, ioBit(a, b, p), allowed[p])
		}
	}
	// Intercepted, against an independent model.
	rng := rand.New(rand.NewSource(1))
	ports := []uint32{0, 1, 0x3f7, 0x3f8, 0x3fb, 0x3fc, 0x3fd, 0x3ff, 0x400, 0x7ffd, 0x7ffe, 0x7fff, 0x8000,
		0x8001, 0xfffb, 0xfffc, 0xfffd, 0xfffe, 0xffff, 0x80, 0x7f}
	for i := 0; i < 2000; i++ {
		ports = append(ports, uint32(rng.Intn(0x10000)))
	}
	for _, p := range ports {
		for _, size := range []uint8{1, 2, 4} {
			want := false
			for q := p; q < p+uint32(size); q++ {
				if q > 0xffff || !allowed[q] {
					want = true
				}
			}
			if got := m.Intercepted(uint16(p), size); got != want {
				t.Errorf("Intercepted(%#x, %d) = %v, want %v", p, size, got, want)
			}
		}
		// Odd sizes count as 4.
		if m.Intercepted(uint16(p), 3) != m.Intercepted(uint16(p), 4) {
			t.Errorf("size 3 at %#x differs from size 4", p)
		}
	}
	// Re-intercept one port of a range.
	if !m.InterceptPort(0x3fa, 1) || !m.Intercepted(0x3f8, 4) || m.Intercepted(0x3f8, 2) {
		t.Error("InterceptPort(0x3fa)")
	}
	if !ioBit(a, b, 0x3fa) {
		t.Error("bit 0x3fa not set")
	}
	// Bad ranges change nothing.
	before := append([]byte(nil), buf...)
	if m.AllowPort(0xffff, 2) || m.AllowPort(0x10, 0) || m.InterceptPort(0xfff0, 0x11) {
		t.Error("bad range accepted")
	}
	if string(before) != string(buf) {
		t.Error("a refused range changed the bitmaps")
	}
	if !m.AllowPort(0, 0x10000) {
		t.Error("whole space refused")
	}
	for i := 0; i < IOBitmapsSize; i++ {
		if buf[i] != 0 {
			t.Fatalf("byte %d = %#x after allowing everything", i, buf[i])
		}
	}
	if !m.Intercepted(0xffff, 2) || !m.Intercepted(0xfffd, 4) || m.Intercepted(0xfffc, 4) {
		t.Error("wrap-around accesses must exit, others not")
	}
}

// msrBits reads msr's read and write bits as the SDM lays the page out:
// read-low at 0, read-high at 1024, write-low at 2048, write-high at 3072;
// each 8K bits for MSRs 0-1FFF or C0000000-C0001FFF. ok is false outside.
func msrBits(page []byte, msr uint32) (r, w, ok bool) {
	var base uint32
	switch {
	case msr <= 0x1fff:
		base = 0
	case msr >= 0xc0000000 && msr <= 0xc0001fff:
		base, msr = 1024, msr-0xc0000000
	default:
		return false, false, false
	}
	r = page[base+msr/8]>>(msr%8)&1 != 0
	w = page[base+2048+msr/8]>>(msr%8)&1 != 0
	return r, w, true
}

func TestMSRBitmap(t *testing.T) {
	if _, ok := NewMSRBitmap(make([]byte, 4095)); ok {
		t.Fatal("short slice accepted")
	}
	page := make([]byte, MSRBitmapSize+8)
	m, ok := NewMSRBitmap(page)
	if !ok {
		t.Fatal("NewMSRBitmap")
	}
	m.InterceptAll()
	if page[MSRBitmapSize] != 0 {
		t.Fatal("InterceptAll wrote past the page")
	}
	type rw struct{ r, w bool }
	set := map[uint32]rw{
		0x10:       {false, true},  // TSC: reads pass, writes exit
		0x1b:       {true, false},  // APIC base
		0x0:        {false, false}, // first low MSR
		0x1fff:     {false, false}, // last low MSR
		0xc0000080: {true, false},  // EFER
		0xc0000100: {false, false}, // FS base
		0xc0000000: {false, true},  // first high MSR
		0xc0001fff: {false, false}, // last high MSR
	}
	for msr, v := range set {
		if !m.SetMSR(msr, v.r, v.w) {
			t.Fatalf("SetMSR(%#x) refused", msr)
		}
	}
	for _, msr := range []uint32{0x2000, 0xbfffffff, 0xc0002000, 0xc0010000, 0x40000000, 0xffffffff} {
		if m.SetMSR(msr, false, false) {
			t.Errorf("SetMSR(%#x) outside the ranges accepted", msr)
		}
		if r, w := m.Intercepted(msr); !r || !w {
			t.Errorf("MSR %#x outside the ranges not intercepted", msr)
		}
	}
	check := func(msr uint32) {
		want, ok := set[msr]
		if !ok {
			want = rw{true, true}
		}
		r, w, in := msrBits(page, msr)
		if !in {
			t.Fatalf("msr %#x not in range", msr)
		}
		if r != want.r || w != want.w {
			t.Errorf("MSR %#x: page bits r=%v w=%v, want %v", msr, r, w, want)
		}
		if gr, gw := m.Intercepted(msr); gr != want.r || gw != want.w {
			t.Errorf("Intercepted(%#x) = %v %v, want %v", msr, gr, gw, want)
		}
	}
	for msr := uint32(0); msr <= 0x1fff; msr++ {
		check(msr)
	}
	for msr := uint32(0xc0000000); msr <= 0xc0001fff; msr++ {
		check(msr)
	}
	// Count set bits: everything but the cleared ones.
	cleared := 0
	for _, v := range set {
		if !v.r {
			cleared++
		}
		if !v.w {
			cleared++
		}
	}
	n := 0
	for _, b := range page[:MSRBitmapSize] {
		for ; b != 0; b &= b - 1 {
			n++
		}
	}
	if n != MSRBitmapSize*8-cleared {
		t.Errorf("%d bits set, want %d", n, MSRBitmapSize*8-cleared)
	}
}
