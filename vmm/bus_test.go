package vmm

import (
	"strings"
	"testing"
)

func TestIOBus(t *testing.T) {
	var b IOBus
	d1, d2, d3 := &recDevice{readVal: 0x11223344}, &recDevice{readVal: 0xaabbccdd}, &recDevice{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Register(0x3f8, 8, d1))
	must(b.Register(0x60, 1, d2))
	must(b.Register(0xfffc, 4, d3))
	must(b.Register(0x61, 1, d3)) // adjacent is fine
	for _, bad := range []struct {
		base uint16
		n    uint32
		dev  PortDevice
		want string
	}{
		{0x3fa, 2, d3, "overlap"},
		{0x3f0, 9, d3, "overlap"},
		{0x3ff, 1, d3, "overlap"},
		{0xfffe, 4, d3, "bad port range"},
		{0x100, 0, d3, "bad port range"},
		{0x100, 1, nil, "nil device"},
	} {
		if err := b.Register(bad.base, bad.n, bad.dev); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Register(%#x, %d) = %v, want %q", bad.base, bad.n, err, bad.want)
		}
	}
	if got := b.In(0x3fa, 2); got != 0x3344 || d1.lastOff != 2 || d1.lastSize != 2 {
		t.Errorf("In = %#x off %d", got, d1.lastOff)
	}
	if got := b.In(0x60, 1); got != 0xdd {
		t.Errorf("In(0x60) = %#x", got)
	}
	b.Out(0xfffc, 4, 0x12345678)
	if d3.lastOff != 0 || d3.lastWrite != 0x12345678 {
		t.Errorf("Out to the top of the space: %+v", d3)
	}
	b.Out(0x3f8, 1, 0x1ff) // wider value than the access
	if d1.lastWrite != 0xff {
		t.Errorf("Out not masked: %#x", d1.lastWrite)
	}
	// Unregistered ports and accesses that span a range end.
	for _, c := range []struct {
		port uint16
		size uint8
		want uint32
	}{{0x80, 1, 0xff}, {0x80, 2, 0xffff}, {0x80, 4, 0xffffffff}, {0x3fe, 4, 0xffffffff}, {0x5f, 2, 0xffff}, {0x62, 1, 0xff}} {
		if got := b.In(c.port, c.size); got != c.want {
			t.Errorf("In(%#x,%d) = %#x, want %#x", c.port, c.size, got, c.want)
		}
	}
	writes := d1.writes
	b.Out(0x3fe, 4, 1)
	b.Out(0x80, 1, 1)
	if d1.writes != writes || b.Unhandled() != 8 {
		t.Errorf("unhandled %d", b.Unhandled())
	}
	if n := testing.AllocsPerRun(100, func() { b.In(0x3f8, 1); b.Out(0x61, 1, 0); b.In(0x1234, 2) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestMMIOBus(t *testing.T) {
	b := MMIOBus{ramSize: 1 << 20}
	d1, d2 := &recDevice{readVal: 0x1122334455667788}, &recDevice{}
	if err := b.Register(0xfee00000, 0x1000, d1); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0xd0000000, 0x200, d2); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		base, n uint64
		want    string
	}{
		{0xfee00800, 0x1000, "overlap"},
		{0xcffff000, 0x1001, "overlap"},
		{0x80000, 0x1000, "overlaps guest RAM"},
		{0xfffffffffffff000, 0x2000, "bad range"},
		{0x1000000, 0, "bad range"},
	} {
		if err := b.Register(bad.base, bad.n, d2); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Register(%#x, %#x) = %v, want %q", bad.base, bad.n, err, bad.want)
		}
	}
	if v, ok := b.Read(0xfee00020, 4); !ok || v != 0x55667788 || d1.lastOff != 0x20 {
		t.Errorf("Read = %#x %v", v, ok)
	}
	if !b.Write(0xd00001f8, 8, 0xabc) || d2.lastOff != 0x1f8 || d2.lastSize != 8 {
		t.Errorf("Write: %+v", d2)
	}
	for _, c := range []struct {
		gpa  uint64
		size uint8
	}{{0xd00001fc, 8}, {0xd0000200, 1}, {0xcfffffff, 2}, {0xfee00000, 3}, {0x1000, 4}} {
		if _, ok := b.Read(c.gpa, c.size); ok {
			t.Errorf("Read(%#x, %d) reached a device", c.gpa, c.size)
		}
		if b.Write(c.gpa, c.size, 0) {
			t.Errorf("Write(%#x, %d) reached a device", c.gpa, c.size)
		}
	}
	if !b.Has(0xd00001ff) || b.Has(0xd0000200) || b.Has(0) {
		t.Error("Has")
	}
}
