package kernel

import "unsafe"

// Addresses of kernel globals, for the CPU (descriptor tables, stacks,
// per-CPU block) and the entry assembly. All of them are static data that
// never moves.

//go:nosplit
func frameAddr(t *thread) uintptr { return uintptr(unsafe.Pointer(&t.frame)) }

//go:nosplit
func fxAddr(t *thread) uintptr { return (uintptr(unsafe.Pointer(&t.fx[0])) + 15) &^ 15 }

//go:nosplit
func perCPUAddr(c *perCPU) uintptr { return uintptr(unsafe.Pointer(c)) }

//go:nosplit
func kernelStackTop() uintptr {
	return (uintptr(unsafe.Pointer(&kernelStack[0])) + kernelStackSize) &^ 15
}

//go:nosplit
func istTop(i int) uintptr {
	return (uintptr(unsafe.Pointer(&istStacks[i][0])) + istStackSize) &^ 15
}

//go:nosplit
func gdtAddrOf(c *perCPU) uintptr { return uintptr(unsafe.Pointer(&c.gdt[0])) }

//go:nosplit
func idtAddr() uintptr { return uintptr(unsafe.Pointer(&idt[0])) }

//go:nosplit
func tssAddrOf(c *perCPU) uintptr { return uintptr(unsafe.Pointer(&c.tss[0])) }

// trampolineCode returns apTrampoline's bytes (entry_amd64.s).
func trampolineCode() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), apTrampolineAddr())), trampSize)
}

//go:nosplit
func descAddr(d *[10]byte) uintptr { return uintptr(unsafe.Pointer(d)) }

//go:nosplit
func initStackAddr() uintptr { return uintptr(unsafe.Pointer(&initStack[0])) }

// userBytes returns [va, va+n) of the running address space as a slice.
// The caller has checked the range (checkUser).
//
//go:nosplit
func userBytes(va, n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(va))), n)
}

//go:nosplit
func userU32(va uint64) *uint32 { return (*uint32)(unsafe.Add(unsafe.Pointer(nil), uintptr(va))) }

//go:nosplit
func userU64(va uint64) *uint64 { return (*uint64)(unsafe.Add(unsafe.Pointer(nil), uintptr(va))) }

//go:nosplit
func ptrU64(va uintptr) *uint64 { return (*uint64)(unsafe.Add(unsafe.Pointer(nil), va)) }

//go:nosplit
func bootTLSAddr() uintptr { return uintptr(unsafe.Pointer(&bootTLS[1])) }

// kernelContextData lists the globals kernel context touches (where a
// page fault is fatal), so that no lazy bss run covers them.
func kernelContextData() [16]lazyRun {
	r := func(p unsafe.Pointer, n uintptr) lazyRun {
		return lazyRun{uint64(uintptr(p)), uint64(uintptr(p) + n)}
	}
	return [...]lazyRun{
		r(unsafe.Pointer(&kernelStack), unsafe.Sizeof(kernelStack)),
		r(unsafe.Pointer(&istStacks), unsafe.Sizeof(istStacks)),
		r(unsafe.Pointer(&threads), unsafe.Sizeof(threads)),
		r(unsafe.Pointer(&fds), unsafe.Sizeof(fds)),
		r(unsafe.Pointer(&syscallCount), unsafe.Sizeof(syscallCount)),
		r(unsafe.Pointer(&frames), unsafe.Sizeof(frames)),
		r(unsafe.Pointer(&kpt), unsafe.Sizeof(kpt)),
		r(unsafe.Pointer(&space), unsafe.Sizeof(space)),
		r(unsafe.Pointer(&cpus), unsafe.Sizeof(cpus)),
		r(unsafe.Pointer(&bkl), unsafe.Sizeof(bkl)),
		r(unsafe.Pointer(&mmLock), unsafe.Sizeof(mmLock)),
		r(unsafe.Pointer(&idt), unsafe.Sizeof(idt)),
		r(unsafe.Pointer(&lazy), unsafe.Sizeof(lazy)),
		r(unsafe.Pointer(&acpiTables), unsafe.Sizeof(acpiTables)),
		r(unsafe.Pointer(&apic), unsafe.Sizeof(apic)),
		// The process stack's top, written by Start (the runtime's m0
		// uses 64 KiB below it as its g0 stack).
		r(unsafe.Pointer(&initStack[len(initStack)-72<<10]), 72<<10),
	}
}
