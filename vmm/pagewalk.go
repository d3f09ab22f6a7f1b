package vmm

// Guest linear-to-physical translation for the instruction emulator: a
// software walk of the guest's own page tables, reading only guest RAM.
// It follows Intel SDM Vol. 3A chapter 4 and AMD APM Vol. 2 chapter 5:
// paging off, 32-bit paging (with PSE and PSE-36), PAE paging, 4-level
// and 5-level paging; present, R/W, U/S, NX (with EFER.NXE), CR0.WP, SMEP
// and SMAP are checked against the guest's CPL. Accessed and dirty bits
// are not set (the hardware walk that led to the exit already did that
// for the access being emulated). Segment limits are not checked: a guest
// that violates its own limits only gets an access its page tables allow.

// Page-table entry bits.
const (
	pteP    = 1 << 0
	pteRW   = 1 << 1
	pteUS   = 1 << 2
	ptePS   = 1 << 7
	pteNX   = 1 << 63
	pteAddr = 0x000f_ffff_ffff_f000 // bits 51:12

	// pdptePAERsvd are a PAE PDPTE's reserved bits below 52 (2:1, 8:5)
	// plus bit 63.
	pdptePAERsvd = 0x1e6 | 1<<63
)

// Page-fault error code bits (Intel SDM Vol. 3A 4.7).
const (
	pfP    = 1 << 0 // the fault was a protection violation (else not present)
	pfW    = 1 << 1 // write access
	pfU    = 1 << 2 // CPL 3
	pfRSVD = 1 << 3 // a reserved bit was set in a paging-structure entry
	pfID   = 1 << 4 // instruction fetch
)

// access is the kind of a translated access.
type access uint8

const (
	accRead access = iota
	accWrite
	accFetch
)

// xlate is the outcome of a translation.
type xlate uint8

const (
	xlOK       xlate = iota // gpa is valid
	xlPF                    // page fault: inject #PF(pfec) with CR2 = the linear address
	xlGP                    // non-canonical address: #GP(0) (or #SS(0) for stack accesses)
	xlBadTable              // a paging-structure entry is not in RAM: gpa is its address
)

// translate maps linear address la to a guest-physical address for an
// access of kind acc at privilege cpl. v.SRegs must be current.
func (v *VCPU) translate(la uint64, acc access, cpl uint8) (gpa uint64, pfec uint32, st xlate) {
	s := &v.SRegs
	if s.CR0&cr0PG == 0 {
		if s.EFER&eferLMA != 0 {
			return la, 0, xlOK // not a state hardware allows; keep the address
		}
		return la & 0xffffffff, 0, xlOK
	}
	mem := v.VM.Mem
	user := cpl == 3
	write := acc == accWrite
	fetch := acc == accFetch
	nxe := s.EFER&eferNXE != 0
	if write {
		pfec |= pfW
	}
	if user {
		pfec |= pfU
	}
	if fetch && (nxe || s.CR4&cr4SMEP != 0) {
		pfec |= pfID
	}
	rw, us, nx := true, true, false
	var pa uint64

	switch {
	case s.CR4&cr4PAE == 0: // 32-bit paging
		la &= 0xffffffff
		pdeAddr := s.CR3&0xfffff000 + (la>>22)*4
		pde, ok := mem.Read(pdeAddr, 4)
		if !ok {
			return pdeAddr, 0, xlBadTable
		}
		if pde&pteP == 0 {
			return 0, pfec, xlPF
		}
		rw, us = pde&pteRW != 0, pde&pteUS != 0
		if pde&ptePS != 0 && s.CR4&cr4PSE != 0 {
			// 4 MiB page; PSE-36 puts physical-address bits 39:32 in
			// PDE bits 20:13.
			pa = pde&0xffc00000 | (pde>>13&0xff)<<32 | la&0x3fffff
			break
		}
		pteAddr := pde&0xfffff000 + (la>>12&0x3ff)*4
		pte, ok := mem.Read(pteAddr, 4)
		if !ok {
			return pteAddr, 0, xlBadTable
		}
		if pte&pteP == 0 {
			return 0, pfec, xlPF
		}
		rw = rw && pte&pteRW != 0
		us = us && pte&pteUS != 0
		pa = pte&0xfffff000 | la&0xfff

	default:
		var table uint64
		start := 2
		if s.EFER&eferLMA == 0 { // PAE paging: four PDPTEs at CR3[31:5]
			la &= 0xffffffff
			addr := s.CR3&0xffffffe0 + (la>>30)*8
			e, ok := mem.Read(addr, 8)
			if !ok {
				return addr, 0, xlBadTable
			}
			if e&pteP == 0 {
				return 0, pfec, xlPF
			}
			if e&pdptePAERsvd != 0 {
				return 0, pfec | pfP | pfRSVD, xlPF
			}
			table = e & pteAddr
		} else { // 4-level or 5-level paging
			start = 4
			if s.CR4&cr4LA57 != 0 {
				start = 5
			}
			if !canonical(la, start) {
				return 0, 0, xlGP
			}
			table = s.CR3 & pteAddr
		}
		for lvl := start; lvl >= 1; lvl-- {
			shift := uint(12 + 9*(lvl-1))
			addr := table + (la>>shift&0x1ff)*8
			e, ok := mem.Read(addr, 8)
			if !ok {
				return addr, 0, xlBadTable
			}
			if e&pteP == 0 {
				return 0, pfec, xlPF
			}
			if e&pteNX != 0 {
				if !nxe {
					return 0, pfec | pfP | pfRSVD, xlPF
				}
				nx = true
			}
			rw = rw && e&pteRW != 0
			us = us && e&pteUS != 0
			if lvl == 1 {
				pa = e&pteAddr | la&0xfff
				break
			}
			if e&ptePS != 0 {
				if lvl > 3 {
					return 0, pfec | pfP | pfRSVD, xlPF
				}
				size := uint64(1) << shift
				pa = e&pteAddr&^(size-1) | la&(size-1)
				break
			}
			table = e & pteAddr
		}
	}

	prot := pfec | pfP
	switch {
	case user && !us:
		return 0, prot, xlPF
	case write && !rw && (user || s.CR0&cr0WP != 0):
		return 0, prot, xlPF
	case fetch && nx:
		return 0, prot, xlPF
	case !user && us && fetch && s.CR4&cr4SMEP != 0:
		return 0, prot, xlPF
	case !user && us && !fetch && s.CR4&cr4SMAP != 0 && v.Regs.RFLAGS&rflagsAC == 0:
		return 0, prot, xlPF
	}
	return pa, 0, xlOK
}

// canonical reports whether la is canonical for levels-level paging (bits
// 63:47, or 63:56 with 5 levels, all equal).
func canonical(la uint64, levels int) bool {
	shift := uint(47)
	if levels == 5 {
		shift = 56
	}
	top := int64(la) >> shift
	return top == 0 || top == -1
}
