package svm

import (
	"math/rand"
	"testing"
)

// onlyBits checks that exactly the listed (byte, bit) pairs are set in b.
func onlyBits(t *testing.T, what string, b []byte, want ...[2]int) {
	t.Helper()
	set := map[[2]int]bool{}
	for _, w := range want {
		set[w] = true
	}
	for i, x := range b {
		for bit := 0; bit < 8; bit++ {
			on := x&(1<<bit) != 0
			if on != set[[2]int{i, bit}] {
				t.Errorf("%s: byte %#x bit %d is %v", what, i, bit, on)
			}
		}
	}
}

func TestIOPMBitPositions(t *testing.T) {
	buf := make([]byte, IOPMSize)
	m, ok := NewIOPM(buf)
	if !ok {
		t.Fatal("NewIOPM")
	}
	// Port p is bit p: byte p/8, bit p%8 (APM 15.10.1), computed by hand.
	for _, c := range []struct {
		port uint16
		n    uint32
		bits [][2]int
	}{
		{0x0000, 1, [][2]int{{0, 0}}},
		{0x0080, 1, [][2]int{{0x10, 0}}},
		{0x03f8, 8, [][2]int{{0x7f, 0}, {0x7f, 1}, {0x7f, 2}, {0x7f, 3}, {0x7f, 4}, {0x7f, 5}, {0x7f, 6}, {0x7f, 7}}},
		{0x0cf9, 2, [][2]int{{0x19f, 1}, {0x19f, 2}}},
		{0x8000, 1, [][2]int{{0x1000, 0}}},                                        // first bit of the second page
		{0xfffe, 4, [][2]int{{0x1fff, 6}, {0x1fff, 7}, {0x2000, 0}, {0x2000, 1}}}, // into the spill bits
		{0xffff, 4, [][2]int{{0x1fff, 7}, {0x2000, 0}, {0x2000, 1}, {0x2000, 2}}},
	} {
		clear(buf)
		if !m.InterceptPort(c.port, c.n) {
			t.Errorf("InterceptPort(%#x, %d) refused", c.port, c.n)
			continue
		}
		onlyBits(t, "intercept", buf, c.bits...)
		for i := range buf {
			buf[i] = 0xff
		}
		if !m.AllowPort(c.port, c.n) {
			t.Errorf("AllowPort(%#x, %d) refused", c.port, c.n)
		}
		for i := range buf {
			buf[i] = ^buf[i]
		}
		onlyBits(t, "allow", buf, c.bits...)
	}
	for _, c := range []struct {
		port uint16
		n    uint32
	}{{0x10, 0}, {0xffff, 5}, {0xfffd, 7}, {0, 0x10004}} {
		if m.InterceptPort(c.port, c.n) || m.AllowPort(c.port, c.n) {
			t.Errorf("range (%#x, %d) accepted", c.port, c.n)
		}
	}
}

func TestIOPMIntercepted(t *testing.T) {
	buf := make([]byte, IOPMSize)
	m, _ := NewIOPM(buf)
	m.InterceptAll()
	for _, b := range buf {
		if b != 0xff {
			t.Fatal("InterceptAll left a clear bit")
		}
	}
	if !m.Intercepted(0x3f8, 1) || !m.Intercepted(0xffff, 4) {
		t.Error("default map lets a port through")
	}
	m.AllowPort(0x60, 1)
	m.AllowPort(0x64, 1)
	cases := []struct {
		port uint16
		size uint8
		want bool
	}{
		{0x60, 1, false}, {0x64, 1, false}, {0x61, 1, true},
		{0x60, 2, true}, // also touches 0x61
		{0x5f, 2, true}, {0x63, 2, true}, {0x64, 4, true},
	}
	for _, c := range cases {
		if got := m.Intercepted(c.port, c.size); got != c.want {
			t.Errorf("Intercepted(%#x, %d) = %v", c.port, c.size, got)
		}
	}
	m.AllowPort(0x1000, 4)
	if m.Intercepted(0x1000, 4) || m.Intercepted(0x1002, 2) || !m.Intercepted(0x1002, 4) {
		t.Error("a 4-port window misbehaves")
	}
	if _, ok := NewIOPM(make([]byte, IOPMSize-1)); ok {
		t.Error("NewIOPM accepted a short buffer")
	}
}

func TestMSRPMBitPositions(t *testing.T) {
	buf := make([]byte, MSRPMSize)
	m, ok := NewMSRPM(buf)
	if !ok {
		t.Fatal("NewMSRPM")
	}
	// Expected (byte, read bit) computed by hand from APM 15.11: three 2 KiB
	// vectors at 0x000, 0x800 and 0x1000, two bits per MSR (read, write).
	for _, c := range []struct {
		msr        uint32
		byte, bitR int
	}{
		{0x0000_0000, 0x000, 0},
		{0x0000_0001, 0x000, 2},
		{0x0000_0010, 0x004, 0}, // TSC
		{0x0000_0174, 0x05d, 0}, // SYSENTER_CS
		{0x0000_0277, 0x09d, 6}, // PAT
		{0x0000_1fff, 0x7ff, 6},
		{0xc000_0000, 0x800, 0},
		{0xc000_0080, 0x820, 0}, // EFER
		{0xc000_0082, 0x820, 4}, // LSTAR
		{0xc000_0102, 0x840, 4}, // KERNEL_GS_BASE
		{0xc000_1fff, 0xfff, 6},
		{0xc001_0000, 0x1000, 0},
		{0xc001_0117, 0x1045, 6}, // VM_HSAVE_PA
		{0xc001_1fff, 0x17ff, 6},
	} {
		clear(buf)
		if !m.SetMSR(c.msr, true, false) {
			t.Errorf("SetMSR(%#x) refused", c.msr)
			continue
		}
		onlyBits(t, "read", buf, [2]int{c.byte, c.bitR})
		clear(buf)
		m.SetMSR(c.msr, false, true)
		onlyBits(t, "write", buf, [2]int{c.byte, c.bitR + 1})
		if r, w := m.Intercepted(c.msr); r || !w {
			t.Errorf("Intercepted(%#x) = %v, %v", c.msr, r, w)
		}
	}
}

func TestMSRPMOutsideRanges(t *testing.T) {
	buf := make([]byte, MSRPMSize)
	m, _ := NewMSRPM(buf) // all clear: in-range MSRs pass, others still exit
	for _, msr := range []uint32{0x2000, 0x4000_0000, 0xbfff_ffff, 0xc000_2000, 0xc000_ffff, 0xc001_2000, 0xc002_0000, 0xffff_ffff} {
		if m.SetMSR(msr, false, false) {
			t.Errorf("SetMSR(%#x) accepted", msr)
		}
		if r, w := m.Intercepted(msr); !r || !w {
			t.Errorf("MSR %#x outside the map does not always exit", msr)
		}
	}
	for _, b := range buf {
		if b != 0 {
			t.Fatal("an out-of-range SetMSR wrote the map")
		}
	}
	if r, w := m.Intercepted(0x10); r || w {
		t.Error("clear in-range MSR intercepted")
	}
	m.InterceptAll()
	rng := rand.New(rand.NewSource(1))
	for range 1000 {
		msr := rng.Uint32()
		if r, w := m.Intercepted(msr); !r || !w {
			t.Fatalf("MSR %#x passes a full map", msr)
		}
	}
	if _, ok := NewMSRPM(make([]byte, MSRPMSize-1)); ok {
		t.Error("NewMSRPM accepted a short buffer")
	}
}
