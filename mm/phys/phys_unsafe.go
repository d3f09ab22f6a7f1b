package phys

import "unsafe"

// Identity returns the bare-metal window: physical address pa is kernel
// virtual address DirectBase()+pa, for pa below size (at boot DirectBase is
// 0: the boot page tables identity-map low memory).
//
//go:nosplit
func Identity(size uint64) Mem { return Mem{base: 0, size: size, live: true} }

// FromSlice returns a window whose physical address 0 is b[0]; for tests.
// b must stay alive (and unmoved: heap slices do not move) while in use.
func FromSlice(b []byte) Mem {
	if len(b) == 0 {
		return Mem{}
	}
	return Mem{base: uintptr(unsafe.Pointer(&b[0])), size: uint64(len(b))}
}

//go:nosplit
func (m *Mem) ptr(pa uint64) unsafe.Pointer {
	// unsafe.Add from a nil base: on bare metal the address is identity-mapped
	// RAM the Go heap does not own; in tests base is the backing slice.
	b := m.base
	if m.live {
		b = directBase
	}
	return unsafe.Add(unsafe.Pointer(nil), b+uintptr(pa))
}

//go:nosplit
func (m *Mem) p64(pa uint64) *uint64 { return (*uint64)(m.ptr(pa)) }

//go:nosplit
func (m *Mem) p32(pa uint64) *uint32 { return (*uint32)(m.ptr(pa)) }

//go:nosplit
func (m *Mem) p8(pa uint64) *uint8 { return (*uint8)(m.ptr(pa)) }

//go:nosplit
func (m *Mem) slice(pa, n uint64) []byte { return unsafe.Slice((*byte)(m.ptr(pa)), n) }
