// Package phys is juice's window onto physical memory.
//
// On bare metal juice identity-maps all RAM below its user address space,
// so a physical address is also a kernel virtual address and the window's
// base is zero. In host tests the window is a byte slice that stands in for
// RAM, so every parser, allocator and page-table builder that reaches
// physical memory through a Mem runs unchanged under plain `go test`.
//
// Every method is //go:nosplit, allocation-free and bounds-checked against
// the window's size: a guest- or firmware-supplied address outside the
// window gets ok=false, never a fault.
package phys

// Mem is a window [0, Size) of physical memory.
type Mem struct {
	base uintptr // host address of physical address 0 (tests)
	size uint64
	live bool // a bare-metal window: add the kernel's direct-map base
}

// directBase is where the kernel maps physical address 0: 0 while the boot
// page tables identity-map low memory, then the direct map's base. Every
// bare-metal window (Identity) follows it, including copies held by the
// frame allocator and page tables.
var directBase uintptr

// SetDirectBase moves every bare-metal window to a new virtual base, once
// the kernel has mapped physical memory there. Kernel context.
//
//go:nosplit
func SetDirectBase(b uintptr) { directBase = b }

// DirectBase returns the current base of bare-metal windows.
//
//go:nosplit
func DirectBase() uintptr { return directBase }

// Grow extends the window to size if it is smaller.
//
//go:nosplit
func (m *Mem) Grow(size uint64) {
	if size > m.size {
		m.size = size
	}
}

// Size returns the window's size in bytes.
//
//go:nosplit
func (m *Mem) Size() uint64 { return m.size }

// In reports whether [pa, pa+n) lies inside the window.
//
//go:nosplit
func (m *Mem) In(pa, n uint64) bool {
	return pa <= m.size && n <= m.size-pa
}

// Load64 reads the little-endian 64-bit word at pa (8-byte aligned access
// is the caller's business; x86 tolerates unaligned).
//
//go:nosplit
func (m *Mem) Load64(pa uint64) (uint64, bool) {
	if !m.In(pa, 8) {
		return 0, false
	}
	return *m.p64(pa), true
}

// Store64 writes v at pa.
//
//go:nosplit
func (m *Mem) Store64(pa, v uint64) bool {
	if !m.In(pa, 8) {
		return false
	}
	*m.p64(pa) = v
	return true
}

// Load32 reads the 32-bit word at pa.
//
//go:nosplit
func (m *Mem) Load32(pa uint64) (uint32, bool) {
	if !m.In(pa, 4) {
		return 0, false
	}
	return *m.p32(pa), true
}

// Store32 writes v at pa.
//
//go:nosplit
func (m *Mem) Store32(pa uint64, v uint32) bool {
	if !m.In(pa, 4) {
		return false
	}
	*m.p32(pa) = v
	return true
}

// Load8 reads the byte at pa.
//
//go:nosplit
func (m *Mem) Load8(pa uint64) (uint8, bool) {
	if !m.In(pa, 1) {
		return 0, false
	}
	return *m.p8(pa), true
}

// Bytes returns [pa, pa+n) as a slice aliasing physical memory.
//
//go:nosplit
func (m *Mem) Bytes(pa, n uint64) ([]byte, bool) {
	if !m.In(pa, n) {
		return nil, false
	}
	return m.slice(pa, n), true
}

// Zero clears [pa, pa+n).
//
//go:nosplit
func (m *Mem) Zero(pa, n uint64) bool {
	if !m.In(pa, n) {
		return false
	}
	clear(m.slice(pa, n))
	return true
}
