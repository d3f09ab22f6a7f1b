package devices

import (
	"testing"

	"juice/vmm"
)

var (
	_ vmm.PortDevice = (*ResetControl)(nil)
	_ vmm.PortDevice = (*KBCData)(nil)
	_ vmm.PortDevice = (*KBCCommand)(nil)
)

func TestResetPaths(t *testing.T) {
	cases := []struct {
		name  string
		dev   func(r *Reset) vmm.PortDevice
		v     uint32
		reset int
	}{
		{"cf9 0x06", func(r *Reset) vmm.PortDevice { return r.Control() }, 0x06, 1},
		{"cf9 0x0e", func(r *Reset) vmm.PortDevice { return r.Control() }, 0x0e, 1},
		{"cf9 0x02 only prepares", func(r *Reset) vmm.PortDevice { return r.Control() }, 0x02, 0},
		{"cf9 0x00", func(r *Reset) vmm.PortDevice { return r.Control() }, 0x00, 0},
		{"kbc 0xfe", func(r *Reset) vmm.PortDevice { return r.KBCCommand() }, 0xfe, 1},
		{"kbc 0xff pulses nothing", func(r *Reset) vmm.PortDevice { return r.KBCCommand() }, 0xff, 0},
		{"kbc 0xaa ignored", func(r *Reset) vmm.PortDevice { return r.KBCCommand() }, 0xaa, 0},
		{"kbc 0xd1 ignored", func(r *Reset) vmm.PortDevice { return r.KBCCommand() }, 0xd1, 0},
		{"kbc data 0xfe ignored", func(r *Reset) vmm.PortDevice { return r.KBCData() }, 0xfe, 0},
	}
	for _, c := range cases {
		n := 0
		r := NewReset(func() { n++ })
		c.dev(r).Out(0, 1, c.v)
		if n != c.reset {
			t.Errorf("%s: reset called %d times, want %d", c.name, n, c.reset)
		}
	}
}

func TestKBCReads(t *testing.T) {
	r := NewReset(nil)
	if v := r.KBCCommand().In(0, 1); v&0x03 != 0 {
		t.Errorf("kbc status %#x: buffers not empty", v)
	}
	if v := r.KBCData().In(0, 1); v != 0 {
		t.Errorf("kbc data %#x, want 0", v)
	}
	r.KBCCommand().Out(0, 1, 0xfe) // nil callback: no panic
	r.Control().Out(0, 1, 0x06)
}
