package net

import "juice/vmm/netswitch"

// Software segmentation for other receivers than a guest's device: a
// switch port bridged to a host NIC without offloads (juice's uplink)
// must put TCP segments of at most the MTU on the wire, so it cuts a GSO
// frame from a guest with the same code the device uses (gso.go).

// Segments checks that frame is the TCP packet off's GSO type says
// (see parseGSO) and returns how many segments of off.GSOSize payload
// bytes it cuts into; 0 when it is not a GSO frame this code can cut.
func Segments(frame []byte, off netswitch.Offload) int {
	if off.GSO == netswitch.GSONone || off.GSOSize == 0 {
		return 0
	}
	g, ok := parseGSO(frame, off)
	if !ok {
		return 0
	}
	return g.segments(len(frame), int(off.GSOSize))
}

// Segment writes segment i of the n = Segments(frame, off) segments of
// frame into out, complete (IP lengths and header checksum, TCP sequence
// number, flags and checksum), and returns its length; 0 when i is out
// of range, frame is not a GSO frame, or out is too short. Allocation-free.
func Segment(out, frame []byte, off netswitch.Offload, i int) int {
	n := Segments(frame, off)
	if i < 0 || i >= n {
		return 0
	}
	g, _ := parseGSO(frame, off)
	mss := int(off.GSOSize)
	l := g.segLen(len(frame), mss, i)
	if l > len(out) {
		return 0
	}
	g.segment(out[:l], frame, mss, i, n)
	return l
}
