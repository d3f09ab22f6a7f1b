package devices

import (
	"testing"

	"juice/vmm"
)

var _ vmm.PortDevice = (*PVPanic)(nil)

func TestPVPanic(t *testing.T) {
	var events []uint8
	p := NewPVPanic(func(e uint8) { events = append(events, e) })
	for _, c := range []struct {
		off  uint16
		size uint8
		want uint32
	}{
		{0, 1, 0x03}, {0, 2, 0xff03}, {0, 4, 0xffffff03}, {1, 1, 0xff}, {0xffff, 2, 0x03ff}, {0xffff, 1, 0xff},
	} {
		if got := p.In(c.off, c.size); got != c.want {
			t.Errorf("In(%#x, %d) = %#x, want %#x", c.off, c.size, got, c.want)
		}
	}
	if events != nil {
		t.Fatalf("reads raised events %v", events)
	}
	p.Out(0, 1, PVPanicPanicked)
	p.Out(0, 1, 0)               // zero: nothing
	p.Out(0, 1, 0x100)           // low byte zero: nothing
	p.Out(1, 1, PVPanicPanicked) // not the port
	p.Out(0, 2, 0x0100|PVPanicCrashLoaded)
	p.Out(0xffff, 2, PVPanicPanicked<<8) // second byte lands on the port
	p.Out(0, 1, 0x84)                    // unadvertised bits pass through
	p.Out(0, 3, 0)                       // odd size, zero
	want := []uint8{PVPanicPanicked, PVPanicCrashLoaded, PVPanicPanicked, 0x84}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events %v, want %v", events, want)
		}
	}
	NewPVPanic(nil).Out(0, 1, 1) // no function: ignored
}

func TestPVPanicNoAlloc(t *testing.T) {
	n := 0
	p := NewPVPanic(func(uint8) { n++ })
	if a := testing.AllocsPerRun(100, func() {
		p.In(0, 1)
		p.Out(0, 1, PVPanicPanicked)
	}); a != 0 {
		t.Errorf("PVPanic allocates %v per access", a)
	}
	if n != 101 {
		t.Errorf("%d events", n)
	}
}

// FuzzPVPanic checks that any access leaves reads unchanged and raises an
// event exactly for a non-zero byte written at offset 0.
func FuzzPVPanic(f *testing.F) {
	f.Add(uint16(0), uint8(1), uint32(1))
	f.Add(uint16(0xffff), uint8(4), uint32(0x0200))
	f.Fuzz(func(t *testing.T, off uint16, size uint8, v uint32) {
		var got []uint8
		p := NewPVPanic(func(e uint8) { got = append(got, e) })
		p.Out(off, size, v)
		var want []uint8
		for k := uint8(0); k < size && k < 4; k++ {
			if off+uint16(k) == 0 && byte(v>>(8*k)) != 0 {
				want = append(want, byte(v>>(8*k)))
			}
		}
		if len(got) != len(want) || len(got) == 1 && got[0] != want[0] {
			t.Fatalf("Out(%#x, %d, %#x): events %v, want %v", off, size, v, got, want)
		}
		if r := p.In(0, 1); r != PVPanicEvents {
			t.Fatalf("read %#x", r)
		}
	})
}
