package devices

import (
	"testing"
	"time"

	"juice/vmm"
)

var _ vmm.PortDevice = (*RTC)(nil)

func rtcRead(r *RTC, i uint8) uint8 {
	r.Out(0, 1, uint32(i))
	return uint8(r.In(1, 1))
}

func rtcWrite(r *RTC, i, v uint8) {
	r.Out(0, 1, uint32(i))
	r.Out(1, 1, uint32(v))
}

func TestRTCTime(t *testing.T) {
	// Tuesday 2024-02-27 15:04:05.5 UTC.
	wall := time.Date(2024, 2, 27, 15, 4, 5, 5e8, time.UTC)
	regs := []uint8{0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32}
	cases := []struct {
		name string
		b    uint8
		want []uint8
	}{
		{"bcd 24h", 0x02, []uint8{0x05, 0x04, 0x15, 0x03, 0x27, 0x02, 0x24, 0x20}},
		{"binary 24h", 0x06, []uint8{5, 4, 15, 3, 27, 2, 24, 20}},
		{"bcd 12h", 0x00, []uint8{0x05, 0x04, 0x83, 0x03, 0x27, 0x02, 0x24, 0x20}},
		{"binary 12h", 0x04, []uint8{5, 4, 0x83, 3, 27, 2, 24, 20}},
	}
	for _, c := range cases {
		r := NewRTC(func() time.Time { return wall })
		rtcWrite(r, 0x0b, c.b)
		for k, i := range regs {
			if got := rtcRead(r, i); got != c.want[k] {
				t.Errorf("%s: reg %#x = %#x, want %#x", c.name, i, got, c.want[k])
			}
		}
	}
}

func TestRTCSetTime(t *testing.T) {
	wall := time.Date(2024, 2, 27, 15, 4, 5, 0, time.UTC)
	r := NewRTC(func() time.Time { return wall })
	// Linux's mc146818_set_time: SET, write fields, clear SET.
	rtcWrite(r, 0x0b, 0x82)
	for _, w := range [][2]uint8{{0, 0x30}, {2, 0x59}, {4, 0x23}, {7, 0x31}, {8, 0x12}, {9, 0x99}, {0x32, 0x19}} {
		rtcWrite(r, w[0], w[1])
	}
	if got := rtcRead(r, 0); got != 0x30 {
		t.Errorf("held seconds %#x", got)
	}
	rtcWrite(r, 0x0b, 0x02)
	wall = wall.Add(2 * time.Second)
	want := []uint8{0x32, 0x59, 0x23, 0x31, 0x12, 0x99, 0x19}
	for k, i := range []uint8{0, 2, 4, 7, 8, 9, 0x32} {
		if got := rtcRead(r, i); got != want[k] {
			t.Errorf("reg %#x = %#x after set, want %#x", i, got, want[k])
		}
	}
	// A lone write takes effect at once; 12-hour PM decodes.
	rtcWrite(r, 0x0b, 0x00)
	rtcWrite(r, 0x04, 0x81) // 1 PM
	rtcWrite(r, 0x0b, 0x02)
	if got := rtcRead(r, 0x04); got != 0x13 {
		t.Errorf("hour %#x, want 0x13", got)
	}
}

func TestRTCStatusAndRAM(t *testing.T) {
	wall := time.Date(2024, 2, 27, 15, 4, 5, 0, time.UTC)
	r := NewRTC(func() time.Time { return wall })
	if a := rtcRead(r, 0x0a); a != 0x26 {
		t.Errorf("status A %#x", a)
	}
	rtcWrite(r, 0x0a, 0xa6)
	if a := rtcRead(r, 0x0a); a&0x80 != 0 {
		t.Errorf("UIP set: %#x", a)
	}
	if d := rtcRead(r, 0x0d); d != 0x80 {
		t.Errorf("status D %#x", d)
	}
	rtcWrite(r, 0x0d, 0)
	if d := rtcRead(r, 0x0d); d != 0x80 {
		t.Errorf("status D writable: %#x", d)
	}
	if c := rtcRead(r, 0x0c); c != 0 {
		t.Errorf("status C %#x with no second passed", c)
	}
	rtcWrite(r, 0x0b, 0x12) // UIE
	wall = wall.Add(time.Second)
	if c := rtcRead(r, 0x0c); c != 0x90 {
		t.Errorf("status C %#x, want UF|IRQF", c)
	}
	if c := rtcRead(r, 0x0c); c != 0 {
		t.Errorf("status C %#x, not cleared by read", c)
	}
	for _, i := range []uint8{0x01, 0x0e, 0x40, 0x7f} {
		rtcWrite(r, i, i^0x5a)
		if got := rtcRead(r, i); got != i^0x5a {
			t.Errorf("cmos %#x = %#x", i, got)
		}
	}
	r.Out(0, 1, 0x8f) // NMI disable, index 0x0f
	if !r.NMIDisabled() {
		t.Error("NMI disable bit lost")
	}
	r.Out(1, 1, 0x42)
	if got := rtcRead(r, 0x0f); got != 0x42 || r.NMIDisabled() {
		t.Errorf("index with NMI bit: %#x", got)
	}
	if got := r.In(0, 1); got != 0xff {
		t.Errorf("index port reads %#x", got)
	}
	r.SetMemory(3<<30, 1<<30)
	want := map[uint8]uint8{0x15: 0x80, 0x16: 0x02, 0x17: 0xff, 0x18: 0xff, 0x34: 0x00, 0x35: 0xbf, 0x5b: 0, 0x5c: 0x40, 0x5d: 0}
	for i, v := range want {
		if got := rtcRead(r, i); got != v {
			t.Errorf("memory byte %#x = %#x, want %#x", i, got, v)
		}
	}
}

func TestRTCAllocs(t *testing.T) {
	r := NewRTC(time.Now)
	if n := testing.AllocsPerRun(1000, func() { rtcRead(r, 0); rtcRead(r, 0x0c) }); n != 0 {
		t.Errorf("RTC read allocates %v", n)
	}
}
