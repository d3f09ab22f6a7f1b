package apic

import (
	"strings"
	"testing"
)

// TestDebugStrings: the state dump names requested and in-service
// vectors, and the I/O APIC's live pins only.
func TestDebugStrings(t *testing.T) {
	now := int64(0)
	a := New(0, func() int64 { return now }, 0, nil, nil)
	a.Write(RegSVR, 4, SVREnable|0xff)
	a.Accept(0x33)
	a.Accept(0x41)
	a.Ack(0x41)
	s := a.DebugString()
	for _, want := range []string{"xAPIC", "irr=[0x33]", "isr=[0x41]", "ppr=0x40"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	io := NewIOAPIC(1, nil)
	io.Write(IORegSel, 4, IORedirBase+2*4)
	io.Write(IOWin, 4, 0x23)
	io.SetIRQ(9, true)
	s = io.DebugString()
	if !strings.Contains(s, "pin4{line=false vec=0x23") || !strings.Contains(s, "pin9{line=true") || strings.Contains(s, "pin5") {
		t.Errorf("ioapic: %q", s)
	}
}
