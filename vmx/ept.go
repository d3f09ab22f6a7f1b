package vmx

import (
	"errors"

	"juice/mm"
	"juice/vmm"
)

// EPT paging-structure entries (SDM Vol. 3C 29.3.2, Tables 29-1..29-6).
// This is not the x86 page-table format: there is no present bit (an
// entry with R, W and X all clear is not present), the access rights are
// read/write/execute, and leaves carry a memory type.
const (
	EPTRead      = 1 << 0 // reads allowed
	EPTWrite     = 1 << 1 // writes allowed
	EPTExec      = 1 << 2 // instruction fetches allowed (supervisor-mode, with mode-based control)
	EPTRWX       = EPTRead | EPTWrite | EPTExec
	EPTMemShift  = 3      // bits 5:3 of a leaf: the EPT memory type
	EPTIgnorePAT = 1 << 6 // leaf: ignore the guest's PAT memory type
	EPTLarge     = 1 << 7 // PDPTE: 1 GiB page; PDE: 2 MiB page
	EPTAccessed  = 1 << 8 // set by the CPU when A/D flags are enabled
	EPTDirty     = 1 << 9 // leaf: set by the CPU on writes when A/D flags are enabled

	// EPTAddrMask covers bits 51:12, the physical address of the next
	// table or of a 4 KiB page (1 GiB and 2 MiB pages use the bits above
	// their size).
	EPTAddrMask = 0x000f_ffff_ffff_f000
)

// Memory types (SDM Vol. 3A 11.3), as used in EPT leaves and the EPTP.
const (
	MemTypeUC = 0 // uncacheable
	MemTypeWB = 6 // write-back
)

// EPTP fields (SDM Vol. 3C 25.6.11).
const (
	EPTPMemTypeWB   = MemTypeWB // bits 2:0: memory type of the EPT paging structures
	EPTPWalk4       = 3 << 3    // bits 5:3: page-walk length minus 1
	EPTPAccessDirty = 1 << 6    // enable the accessed and dirty flags
)

// eptLeafFlags are the flags of every leaf juice writes for guest RAM:
// read, write, execute, write-back (combined with the guest's PAT, as on
// real hardware).
const eptLeafFlags = EPTRWX | MemTypeWB<<EPTMemShift

// eptTableFlags are the flags of an entry pointing at a lower table:
// permissive, so the leaf alone decides.
const eptTableFlags = EPTRWX

// maxEPTGPA is the end of the guest-physical space a 4-level EPT maps.
const maxEPTGPA = 1 << 48

// EPTOptions choose the EPT's page sizes and flags; set them from Caps.
type EPTOptions struct {
	Page2M      bool // 2 MiB pages (Caps.EPT2M)
	Page1G      bool // 1 GiB pages (Caps.EPT1G)
	AccessDirty bool // accessed/dirty flags (Caps.EPTAccessDirty): set in the EPTP
}

// EPT is a VM's extended page tables: the guest-physical → host-physical
// map the EPTP points to. It maps guest RAM [0, Mapped()) to
// mem.HPA()+gpa with the largest pages that alignment and the options
// allow (1 GiB, 2 MiB, else 4 KiB), read/write/execute and write-back, and
// nothing else: every other guest-physical address takes an EPT violation
// (ExitMMIO).
//
// With AccessDirty, the accessed flag is preset in every entry and the
// dirty flag in every leaf, so the CPU never has to write them.
type EPT struct {
	host   *vmm.Host
	root   uint64 // host-physical address of the PML4
	mapped uint64
	tables uint64 // table frames, the PML4 included
	ad     bool
}

// NewEPT builds extended page tables for mem from host frames. Guest RAM
// must start on a 4 KiB-aligned host-physical address and end below 256
// TiB; a size that is not a multiple of 4 KiB is rounded down (the partial
// page stays unmapped, so the guest can never reach the host memory after
// its RAM). On failure every frame taken is given back.
func NewEPT(host *vmm.Host, mem *vmm.GuestMemory, opt EPTOptions) (*EPT, error) {
	if host == nil || host.Mem == nil || host.Frames == nil {
		return nil, errors.New("vmx: EPT needs a host with memory and frames")
	}
	if mem == nil {
		return nil, errors.New("vmx: EPT needs guest memory")
	}
	hpa := mem.HPA()
	if hpa&(mm.Size4K-1) != 0 {
		return nil, errors.New("vmx: guest RAM does not start on a 4 KiB-aligned host-physical address")
	}
	size := mem.Size() &^ (mm.Size4K - 1)
	if size > maxEPTGPA || hpa > EPTAddrMask || size > EPTAddrMask+mm.Size4K-hpa {
		return nil, errors.New("vmx: guest RAM is beyond what 4-level EPT can map")
	}
	e := &EPT{host: host, ad: opt.AccessDirty}
	root, ok := e.allocTable()
	if !ok {
		return nil, errors.New("vmx: no memory for the EPT PML4")
	}
	e.root = root
	for gpa := uint64(0); gpa < size; {
		page := uint64(mm.Size4K)
		for _, p := range [...]struct {
			on   bool
			size uint64
		}{{opt.Page1G, mm.Size1G}, {opt.Page2M, mm.Size2M}} {
			if p.on && gpa&(p.size-1) == 0 && (hpa+gpa)&(p.size-1) == 0 && size-gpa >= p.size {
				page = p.size
				break
			}
		}
		if !e.mapPage(gpa, hpa+gpa, page) {
			e.Close()
			return nil, errors.New("vmx: no memory for the EPT tables")
		}
		gpa += page
	}
	e.mapped = size
	return e, nil
}

// allocTable takes a zeroed frame for a table.
func (e *EPT) allocTable() (uint64, bool) {
	_, pa, ok := e.host.AllocPages(1)
	if ok {
		e.tables++
	}
	return pa, ok
}

// tableEntry is the flags of an entry pointing at a table.
func (e *EPT) tableEntry() uint64 {
	if e.ad {
		return eptTableFlags | EPTAccessed
	}
	return eptTableFlags
}

// levelFor is the table level whose entries map a page of size (3 = PML4,
// 2 = PDPT, 1 = PD, 0 = PT).
func levelFor(size uint64) int {
	switch size {
	case mm.Size1G:
		return 2
	case mm.Size2M:
		return 1
	}
	return 0
}

// eptShift is the number of address bits below one entry of a level-l table.
func eptShift(l int) uint { return 12 + 9*uint(l) }

// mapPage maps the page [gpa, gpa+size) to hpa, allocating tables on the
// way; false when out of frames (the tables built so far stay linked and
// Close frees them).
func (e *EPT) mapPage(gpa, hpa, size uint64) bool {
	mem := e.host.Mem
	table := e.root
	leafLevel := levelFor(size)
	for l := 3; l > leafLevel; l-- {
		ea := table + (gpa>>eptShift(l)&511)*8
		ent, _ := mem.Load64(ea)
		if ent&EPTRWX == 0 {
			nt, ok := e.allocTable()
			if !ok {
				return false
			}
			mem.Store64(ea, nt|e.tableEntry())
			table = nt
			continue
		}
		table = ent & EPTAddrMask
	}
	leaf := hpa | eptLeafFlags
	if leafLevel > 0 {
		leaf |= EPTLarge
	}
	if e.ad {
		leaf |= EPTAccessed | EPTDirty
	}
	mem.Store64(table+(gpa>>eptShift(leafLevel)&511)*8, leaf)
	return true
}

// EPTP is the value for the VMCS's EPT pointer: the PML4's address,
// write-back paging structures, a 4-level walk, and the A/D enable bit
// when AccessDirty was asked for.
func (e *EPT) EPTP() uint64 {
	p := e.root | EPTPMemTypeWB | EPTPWalk4
	if e.ad {
		p |= EPTPAccessDirty
	}
	return p
}

// Root is the PML4's host-physical address (0 after Close).
func (e *EPT) Root() uint64 { return e.root }

// Mapped is the number of bytes of guest RAM mapped, from guest-physical 0.
func (e *EPT) Mapped() uint64 { return e.mapped }

// TableFrames is the number of host frames the tables use.
func (e *EPT) TableFrames() uint64 { return e.tables }

// Lookup translates gpa through the tables: the host-physical address
// (with gpa's offset), the page size, and ok=false when gpa is not mapped.
func (e *EPT) Lookup(gpa uint64) (hpa, size uint64, ok bool) {
	if e.root == 0 || gpa >= maxEPTGPA {
		return 0, 0, false
	}
	table := e.root
	for l := 3; l >= 0; l-- {
		ent, in := e.host.Mem.Load64(table + (gpa>>eptShift(l)&511)*8)
		if !in || ent&EPTRWX == 0 {
			return 0, 0, false
		}
		if l == 0 || (l <= 2 && ent&EPTLarge != 0) {
			size = 1 << eptShift(l)
			return ent&EPTAddrMask&^(size-1) | gpa&(size-1), size, true
		}
		table = ent & EPTAddrMask
	}
	return 0, 0, false
}

// Close returns every table frame, the PML4 included, to the host. The
// EPT is unusable afterwards; further calls do nothing.
func (e *EPT) Close() {
	if e.root == 0 {
		return
	}
	e.freeTable(e.root, 3)
	e.root, e.mapped, e.tables = 0, 0, 0
}

// freeTable frees the level-l table at pa and every table below it.
func (e *EPT) freeTable(pa uint64, l int) {
	if l > 0 {
		for i := uint64(0); i < 512; i++ {
			ent, ok := e.host.Mem.Load64(pa + i*8)
			if !ok || ent&EPTRWX == 0 || (l <= 2 && ent&EPTLarge != 0) {
				continue
			}
			e.freeTable(ent&EPTAddrMask, l-1)
		}
	}
	e.host.FreePages(pa, 1)
}

// EPTOptionsFor chooses the EPT options for a CPU with capabilities c:
// 2 MiB and 1 GiB pages when it has them, accessed/dirty flags off (juice
// tracks no dirty pages). It fails when the CPU cannot walk juice's EPT:
// no EPT, no 4-level walk, or no write-back paging structures (the EPTP
// juice builds asks for both).
func EPTOptionsFor(c Caps) (EPTOptions, error) {
	switch {
	case !c.EPT:
		return EPTOptions{}, errors.New("vmx: the CPU has no EPT")
	case !c.EPT4Level:
		return EPTOptions{}, errors.New("vmx: the CPU has no 4-level EPT walk (IA32_VMX_EPT_VPID_CAP bit 6)")
	case !c.EPTWriteBack:
		return EPTOptions{}, errors.New("vmx: the CPU cannot use write-back EPT paging structures (IA32_VMX_EPT_VPID_CAP bit 14)")
	}
	return EPTOptions{Page2M: c.EPT2M, Page1G: c.EPT1G}, nil
}
