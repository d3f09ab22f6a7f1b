package virtio

import (
	"sync/atomic"
	"unsafe"
)

// loadAcquire32 loads the aligned little-endian dword at the start of b
// (the used ring's flags and index) atomically: the compiler neither
// caches it across polls nor moves later loads of the ring above it.
func loadAcquire32(b []byte) uint32 {
	// SAFETY: b is a ring area of at least 4 bytes at a 4-byte-aligned
	// physical address (NewQueue lays it out so).
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[:4][0])))
}

// storeRelease32 stores v into the aligned dword at the start of b (the
// available ring's flags and index) atomically, after every earlier
// store.
func storeRelease32(b []byte, v uint32) {
	// SAFETY: as loadAcquire32.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[:4][0])), v)
}
