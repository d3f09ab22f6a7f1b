package kernel

import (
	"juice/cpu"
	"juice/vmm"
)

// Host returns the host memory the VM core allocates guest RAM and the
// backends' hardware structures from: juice's frame allocator, reached
// through the direct map. Allocations run with interrupts off and mmLock
// held, which the page-fault handler takes too (on the same CPU it may
// take it again: a fault inside the locked region finds the allocator
// consistent).
func Host() *vmm.Host {
	return &vmm.Host{
		Mem:        &physMem,
		Frames:     &frames,
		IRQOff:     irqOff,
		IRQRestore: irqRestore,
	}
}

//go:nosplit
func irqOff() uint64 {
	f := cpu.Flags()
	cpu.Cli()
	mmLock.lockRecursive()
	return f
}

//go:nosplit
func irqRestore(f uint64) {
	mmLock.unlock()
	if f&(1<<9) != 0 {
		cpu.Sti()
	}
}

// Modules returns the boot modules' contents (read-only by convention),
// viewed through the direct map.
func Modules() [][]byte {
	var mods [][]byte
	for i := 0; i < bootInfo.NMod; i++ {
		m := bootInfo.Mod[i]
		if m.End <= m.Start {
			continue
		}
		if b, ok := physMem.Bytes(m.Start, m.End-m.Start); ok {
			mods = append(mods, b)
		}
	}
	return mods
}
