package svm

import (
	"errors"

	"juice/mm"
	"juice/mm/phys"
	"juice/vmm"
)

// NPTFlags are the flags of every nested leaf entry juice writes: present,
// writable, executable (no NX) and user. AMD treats every nested-table
// access as a user access (APM 15.25.5), so leaf and non-leaf entries
// alike need U/S, or the guest's first access faults.
const NPTFlags = mm.PTEPresent | mm.PTEWrite | mm.PTEUser

// NPT is a VM's nested page tables: the guest-physical → host-physical
// map that N_CR3 points to. It maps guest RAM [0, Mapped()) to
// Mem.HPA()+gpa with the largest pages alignment allows (1 GiB when
// enabled, else 2 MiB, down to 4 KiB) and nothing else: every other
// guest-physical address takes a nested page fault (ExitMMIO).
//
// The tables are built with mm.PageTables, which writes intermediate
// entries as Present|Write without U/S; NewNPT then sets U/S on every
// intermediate entry itself (see setUserOnTables).
type NPT struct {
	pt     *mm.PageTables
	host   *vmm.Host
	mapped uint64
}

// NewNPT builds nested page tables for mem from host frames. Guest RAM
// must start on a 4 KiB-aligned host-physical address; a size that is not
// a multiple of 4 KiB is rounded down (the partial page stays unmapped, so
// a guest can never reach the host memory after its RAM). page1G allows
// 1 GiB pages (CPUID Fn8000_0001_EDX[26] Page1GB).
func NewNPT(host *vmm.Host, mem *vmm.GuestMemory, page1G bool) (*NPT, error) {
	if host == nil || host.Mem == nil || host.Frames == nil {
		return nil, errors.New("svm: nested page tables need a host with memory and frames")
	}
	if mem == nil {
		return nil, errors.New("svm: nested page tables need guest memory")
	}
	if mem.HPA()&(mm.Size4K-1) != 0 {
		return nil, errors.New("svm: guest RAM does not start on a 4 KiB-aligned host-physical address")
	}
	pt, ok := host.NewPageTables()
	if !ok {
		return nil, errors.New("svm: no memory for the nested PML4")
	}
	n := &NPT{pt: pt, host: host}
	size := mem.Size() &^ (mm.Size4K - 1)
	maxPage := uint64(mm.Size2M)
	if page1G {
		maxPage = mm.Size1G
	}
	var st mm.Status
	host.Locked(func() {
		st = pt.MapRange(0, mem.HPA(), size, NPTFlags, maxPage)
	})
	if st != mm.OK {
		n.Free()
		return nil, errors.New("svm: mapping guest RAM into the nested page tables: " + st.String())
	}
	n.mapped = size
	setUserOnTables(host.Mem, pt.Root, 3)
	return n, nil
}

// setUserOnTables sets U/S on every present non-leaf entry of the level-l
// table at pa and of the tables below it (level 3 = PML4).
func setUserOnTables(mem *phys.Mem, pa uint64, l int) {
	if l < 1 {
		return
	}
	for i := uint64(0); i < 512; i++ {
		ea := pa + i*8
		e, ok := mem.Load64(ea)
		if !ok || e&mm.PTEPresent == 0 {
			continue
		}
		if l <= 2 && e&mm.PTELarge != 0 { // a 1 GiB or 2 MiB leaf
			continue
		}
		if e&mm.PTEUser == 0 {
			mem.Store64(ea, e|mm.PTEUser)
		}
		setUserOnTables(mem, e&0x000f_ffff_ffff_f000, l-1)
	}
}

// Root is the PML4's host-physical address: the value for N_CR3.
func (n *NPT) Root() uint64 { return n.pt.Root }

// Mapped is the number of bytes of guest RAM mapped, from guest-physical 0.
func (n *NPT) Mapped() uint64 { return n.mapped }

// TableFrames is the number of host frames the tables use.
func (n *NPT) TableFrames() uint64 { return n.pt.TableFrames() }

// Lookup translates gpa: hpa (with gpa's offset), the page size, and
// ok=false when gpa is not mapped.
func (n *NPT) Lookup(gpa uint64) (hpa, size uint64, ok bool) {
	hpa, _, size, ok = n.pt.Lookup(gpa)
	return hpa, size, ok
}

// Free unmaps everything and returns every table frame, the PML4
// included, to the host. The NPT is unusable afterwards.
func (n *NPT) Free() {
	if n.pt == nil || n.pt.Root == 0 {
		return
	}
	root := n.pt.Root
	n.host.Locked(func() {
		for gpa := uint64(0); gpa < n.mapped; {
			_, size, ok := n.pt.Unmap(gpa)
			if !ok {
				size = mm.Size4K
			}
			gpa += size
		}
	})
	n.host.FreePages(root, 1)
	n.pt.Root = 0
	n.mapped = 0
}
