package pci

import "unsafe"

// The MMIO accessors: each is one load or store of its width through a
// pointer into the mapped window. They are not inlined, so the compiler
// can neither merge nor split nor drop an access, nor move one across
// another (a device register is not memory: reading it may have effects,
// and two reads may differ). Callers have checked bounds and alignment.

//go:noinline
func mmioLoad8(w []byte, off uint32) uint8 {
	// SAFETY: off < len(w), checked by the caller.
	return *(*uint8)(unsafe.Pointer(&w[off]))
}

//go:noinline
func mmioLoad16(w []byte, off uint32) uint16 {
	// SAFETY: off+2 <= len(w) and off is 2-aligned, checked by the caller.
	return *(*uint16)(unsafe.Pointer(&w[off]))
}

//go:noinline
func mmioLoad32(w []byte, off uint32) uint32 {
	// SAFETY: off+4 <= len(w) and off is 4-aligned, checked by the caller.
	return *(*uint32)(unsafe.Pointer(&w[off]))
}

//go:noinline
func mmioStore8(w []byte, off uint32, v uint8) {
	// SAFETY: as mmioLoad8.
	*(*uint8)(unsafe.Pointer(&w[off])) = v
}

//go:noinline
func mmioStore16(w []byte, off uint32, v uint16) {
	// SAFETY: as mmioLoad16.
	*(*uint16)(unsafe.Pointer(&w[off])) = v
}

//go:noinline
func mmioStore32(w []byte, off uint32, v uint32) {
	// SAFETY: as mmioLoad32.
	*(*uint32)(unsafe.Pointer(&w[off])) = v
}
