package vmx

import (
	"testing"

	"juice/vmm"
)

func TestAccessRightsKnown(t *testing.T) {
	cases := []struct {
		name string
		attr uint16
		ar   uint32
	}{
		// Descriptors as juice builds them (vmm reset state, loader).
		{"real-mode CS", vmm.SegP | vmm.SegS | 0xb, 0x9b},
		{"real-mode data", vmm.SegP | vmm.SegS | 0x3, 0x93},
		{"flat 32-bit code", vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0xb, 0xc09b},
		{"flat 32-bit data", vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0x3, 0xc093},
		{"64-bit code", vmm.SegP | vmm.SegS | vmm.SegL | vmm.SegG | 0xb, 0xa09b},
		{"ring-3 data", vmm.SegP | vmm.SegS | vmm.SegDPL3 | 0x3, 0xf3},
		{"busy 32-bit TSS", vmm.SegP | 0xb, 0x8b},
		{"LDT", vmm.SegP | 0x2, 0x82},
		{"AVL", vmm.SegP | vmm.SegS | 1<<8 | 0x3, 0x1093},
		{"null (not present) segment", 0, ARUnusable},
		{"not present keeps its bits", vmm.SegS | vmm.SegDB | 0x3, ARUnusable | 0x4013},
		{"64-bit SS unusable at DPL 3", vmm.SegDPL3, ARUnusable | 0x60},
	}
	for _, c := range cases {
		if got := AccessRights(c.attr); got != c.ar {
			t.Errorf("%s: AccessRights(%#x) = %#x, want %#x", c.name, c.attr, got, c.ar)
		}
		if got := SegmentAttr(c.ar); got != c.attr {
			t.Errorf("%s: SegmentAttr(%#x) = %#x, want %#x", c.name, c.ar, got, c.attr)
		}
	}
}

// TestAccessRightsRoundTrip converts every 12-bit attribute both ways, and
// checks each bit lands where the two manuals put it.
func TestAccessRightsRoundTrip(t *testing.T) {
	for a := 0; a < 1<<12; a++ {
		attr := uint16(a)
		ar := AccessRights(attr)
		if got := SegmentAttr(ar); got != attr {
			t.Fatalf("round trip %#x → %#x → %#x", attr, ar, got)
		}
		// Bit by bit: AMD 0-7 → VMX 0-7, AMD 8-11 → VMX 12-15.
		for b := 0; b < 12; b++ {
			vb := b
			if b >= 8 {
				vb = b + 4
			}
			if (attr>>b)&1 != uint16(ar>>vb)&1 {
				t.Fatalf("attr %#x: bit %d → access rights bit %d lost (%#x)", attr, b, vb, ar)
			}
		}
		if ar&0xfffe_0f00 != 0 {
			t.Fatalf("attr %#x: reserved access-rights bits set: %#x", attr, ar)
		}
		if (ar&ARUnusable != 0) != (attr&vmm.SegP == 0) {
			t.Fatalf("attr %#x: unusable %v", attr, ar&ARUnusable != 0)
		}
	}
	// Bits 12-15 of Attr do not exist in either layout.
	if got := AccessRights(0xf000 | vmm.SegP); got != 0x80 {
		t.Errorf("high Attr bits leaked: %#x", got)
	}
}

// TestSegmentAttrRoundTrip goes the other way over canonical access rights:
// usable ones (P set, bit 16 clear) and unusable ones with P clear.
func TestSegmentAttrRoundTrip(t *testing.T) {
	for lo := uint32(0); lo < 256; lo++ {
		for hi := uint32(0); hi < 16; hi++ {
			ar := lo | hi<<12
			if ar&ARP == 0 {
				ar |= ARUnusable
			}
			if got := AccessRights(SegmentAttr(ar)); got != ar {
				t.Fatalf("%#x → %#x → %#x", ar, SegmentAttr(ar), got)
			}
		}
	}
	// Unusable with P set comes back not present; reserved bits are dropped.
	if got := SegmentAttr(ARUnusable | 0x93); got != vmm.SegS|0x3 {
		t.Errorf("unusable P=1: %#x", got)
	}
	if got := SegmentAttr(0xfffe_0f00 | 0x93); got != vmm.SegP|vmm.SegS|0x3 {
		t.Errorf("reserved bits: %#x", got)
	}
}
