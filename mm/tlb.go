package mm

import "juice/cpu"

// flushHook, when set (by tests only), replaces INVLPG so host tests can
// see which addresses would be flushed. The kernel leaves it nil.
var flushHook func(va uint64)

// invlpg invalidates the local TLB entry for va (and, per Intel SDM
// Vol. 3A §4.10.4.1, all paging-structure-cache entries).
//
//go:nosplit
func invlpg(va uint64) {
	if flushHook != nil {
		flushHook(va)
		return
	}
	cpu.Invlpg(uintptr(va))
}
