package vmm

import (
	"juice/mm"
	"juice/mm/phys"
)

// Host is where a VM's RAM and the backends' hardware structures (VMCB,
// VMCS, nested page tables, permission bitmaps) come from: host-physical
// frames, reached through the kernel's direct map. In host tests Mem is a
// byte slice and Frames an allocator over it.
type Host struct {
	Mem    *phys.Mem
	Frames *mm.Frames
	// IRQOff and IRQRestore bracket every use of Frames: on bare metal
	// they clear and restore the interrupt flag, because the kernel's page
	// fault handler allocates frames too. Nil in host tests.
	IRQOff     func() uint64
	IRQRestore func(uint64)
}

func (h *Host) lock() uint64 {
	if h.IRQOff != nil {
		return h.IRQOff()
	}
	return 0
}

func (h *Host) unlock(s uint64) {
	if h.IRQRestore != nil {
		h.IRQRestore(s)
	}
}

// AllocPages returns n zeroed, physically contiguous 4 KiB pages: their
// host view and host-physical address.
func (h *Host) AllocPages(n uint64) (mem []byte, hpa uint64, ok bool) {
	if n == 0 {
		return nil, 0, false
	}
	s := h.lock()
	pa, ok := h.Frames.AllocContig(n)
	h.unlock(s)
	if !ok {
		return nil, 0, false
	}
	b, ok := h.Mem.Bytes(pa, n*mm.PageSize)
	if !ok {
		h.FreePages(pa, n)
		return nil, 0, false
	}
	clear(b)
	return b, pa, true
}

// FreePages returns pages from AllocPages.
func (h *Host) FreePages(hpa, n uint64) {
	s := h.lock()
	h.Frames.FreeContig(hpa, n)
	h.unlock(s)
}

// NewPageTables returns empty x86-64 page tables whose table frames come
// from the host (nested page tables use the same format on AMD).
func (h *Host) NewPageTables() (*mm.PageTables, bool) {
	pt := new(mm.PageTables)
	s := h.lock()
	st := pt.Init(h.Mem, h.Frames)
	h.unlock(s)
	return pt, st == mm.OK
}

// Locked runs f with the host allocator's lock held (page-table edits).
func (h *Host) Locked(f func()) {
	s := h.lock()
	f()
	h.unlock(s)
}
