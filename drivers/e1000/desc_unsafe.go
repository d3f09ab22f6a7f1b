package e1000

import (
	"sync/atomic"
	"unsafe"
)

// load64 loads the aligned little-endian quadword at the start of b (a
// descriptor's write-back half) atomically: the compiler neither caches
// it across polls nor moves the loads of the buffer it describes above
// it, and the device's write of the quadword is seen whole.
func load64(b []byte) uint64 {
	// SAFETY: b is part of a descriptor ring at a 16-byte-aligned
	// physical address (the rings start on a page), at offset 0 or 8 of
	// a descriptor, and at least 8 bytes long (the b[:8] bound checks it).
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[:8][0])))
}

// store64 stores v into the aligned quadword at the start of b
// atomically, after every earlier store.
func store64(b []byte, v uint64) {
	// SAFETY: as load64.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[:8][0])), v)
}
