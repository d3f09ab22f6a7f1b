package vmx

import "juice/vmm"

// VMX segment access rights (the guest-state "access rights" fields, SDM
// Vol. 3C 25.4.1, Table 25-2): the descriptor's attribute bits in the
// positions they have in the descriptor's second dword shifted right by 8,
// plus an "unusable" flag.
const (
	ARTypeMask = 0xf     // bits 3:0 segment type
	ARS        = 1 << 4  // descriptor type: 1 = code or data
	ARDPLShift = 5       // bits 6:5 DPL
	ARDPLMask  = 3 << 5  //
	ARP        = 1 << 7  // present
	ARAVL      = 1 << 12 // available for system software
	ARL        = 1 << 13 // 64-bit code segment (CS only)
	ARDB       = 1 << 14 // default operation size (0 = 16-bit, 1 = 32-bit)
	ARG        = 1 << 15 // granularity
	ARUnusable = 1 << 16 // segment unusable (null selector loaded, or none)
)

// vmm.Segment.Attr bits 8-11 (AVL, L, D/B, G) sit at access-rights bits
// 12-15: the AMD layout packs out the four bits of the descriptor's limit
// 19:16 that VMX leaves as a hole (bits 11:8).
const (
	attrLowMask  = 0x00ff // type, S, DPL, P: the same in both layouts
	attrHighMask = 0x0f00 // AVL, L, D/B, G in Attr
	attrShift    = 4      // Attr bits 8-11 → access-rights bits 12-15
)

// AccessRights converts vmm.Segment.Attr (AMD's packed layout: bits 0-3
// type, 4 S, 5-6 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G) to VMX access
// rights. A segment that is not present (P = 0) is marked unusable,
// which is what VMX calls a segment register loaded with a null selector
// (and how KVM maps it too); its other bits are kept, since the CPU still
// reads SS.DPL of an unusable SS as the CPL. Attr bits 12-15 do not exist
// and are dropped, so the reserved access-rights bits (11:8, 31:17) are
// always 0.
func AccessRights(attr uint16) uint32 {
	ar := uint32(attr&attrLowMask) | uint32(attr&attrHighMask)<<attrShift
	if attr&vmm.SegP == 0 {
		ar |= ARUnusable
	}
	return ar
}

// SegmentAttr converts VMX access rights back to vmm.Segment.Attr. An
// unusable segment comes back not present (P = 0), whatever its P bit
// said, so that SegmentAttr(AccessRights(a)) == a for every 12-bit a.
// Reserved access-rights bits are dropped.
func SegmentAttr(ar uint32) uint16 {
	attr := uint16(ar&attrLowMask) | uint16(ar>>attrShift)&attrHighMask
	if ar&ARUnusable != 0 {
		attr &^= vmm.SegP
	}
	return attr
}
