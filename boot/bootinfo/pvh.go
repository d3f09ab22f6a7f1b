package bootinfo

import "juice/mm/phys"

// hvm_start_info layout (xen/include/public/arch-x86/hvm/start_info.h).
const (
	pvhVersion      = 4
	pvhNrModules    = 12
	pvhModlistPaddr = 16
	pvhCmdlinePaddr = 24
	pvhRSDPPaddr    = 32
	pvhMemmapPaddr  = 40 // version 1 and later
	pvhMemmapCount  = 48 // version 1 and later
	pvhSizeV0       = 40
	pvhSizeV1       = 56

	// hvm_modlist_entry {paddr, size, cmdline_paddr, reserved}.
	pvhModSize        = 32
	pvhModPaddr       = 0
	pvhModLen         = 8
	pvhModCmdlinePadr = 16
)

// parsePVH decodes the hvm_start_info at pa (magic already checked).
// Address fields of 0 mean "not present", as start_info.h specifies.
//
//go:nosplit
func parsePVH(m *phys.Mem, pa uint64, info *Info) Status {
	version, ok := m.Load32(pa + pvhVersion)
	if !ok {
		return StatusTruncated
	}
	size := uint64(pvhSizeV1)
	if version == 0 {
		size = pvhSizeV0
	}
	if !m.In(pa, size) {
		return StatusTruncated
	}
	reserve(info, pa, pa+size)

	st := StatusOK
	nrMods, _ := m.Load32(pa + pvhNrModules)
	modlist, _ := m.Load64(pa + pvhModlistPaddr)
	cmdline, _ := m.Load64(pa + pvhCmdlinePaddr)
	info.RSDP, _ = m.Load64(pa + pvhRSDPPaddr)

	if cmdline != 0 {
		n, used, trunc, ok := copyCString(m, cmdline, info.Cmdline[:], CmdlineScanLimit)
		info.CmdlineLen, info.CmdlineTruncated = n, trunc
		if !ok {
			st = first(st, StatusTruncated)
		}
		reserve(info, cmdline, cmdline+used)
	}

	if nrMods != 0 && modlist != 0 {
		st = first(st, pvhModules(m, modlist, nrMods, info))
	}

	if version == 0 {
		return first(st, StatusNoMemoryMap)
	}
	memmap, _ := m.Load64(pa + pvhMemmapPaddr)
	entries, _ := m.Load32(pa + pvhMemmapCount)
	if memmap == 0 || entries == 0 {
		return first(st, StatusNoMemoryMap)
	}
	if entries > MaxRawEntries {
		return first(st, StatusTooManyRegions)
	}
	bytes := uint64(entries) * e820EntrySize
	if !m.In(memmap, bytes) {
		return first(st, StatusTruncated)
	}
	reserve(info, memmap, memmap+bytes)
	raw := rawMap{pa: memmap, stride: e820EntrySize, n: uint64(entries), kind: mapE820}
	sanitize(m, &raw, info)
	info.MemSource = MemSourcePVH
	return finish(st, info)
}

// pvhModules decodes the first MaxModules entries of the module list.
//
//go:nosplit
func pvhModules(m *phys.Mem, modlist uint64, nr uint32, info *Info) Status {
	count := uint64(nr)
	if count > MaxModules {
		count = MaxModules
		info.ModTruncated = true
	}
	bytes := count * pvhModSize
	if !m.In(modlist, bytes) {
		return StatusTruncated
	}
	reserve(info, modlist, modlist+bytes)
	st := StatusOK
	for k := uint64(0); k < count; k++ {
		e := modlist + k*pvhModSize
		start, _ := m.Load64(e + pvhModPaddr)
		length, _ := m.Load64(e + pvhModLen)
		cl, _ := m.Load64(e + pvhModCmdlinePadr)
		if length > maxU64-start {
			st = first(st, StatusBadModule)
			continue
		}
		n := info.NMod
		if n < 0 || n >= len(info.Mod) {
			break
		}
		mod := &info.Mod[n&(MaxModules-1)]
		mod.Start, mod.End = start, start+length
		if cl != 0 {
			c, used, _, ok := copyCString(m, cl, mod.Cmdline[:], CmdlineScanLimit)
			mod.CmdlineLen = uint16(c)
			if !ok {
				st = first(st, StatusTruncated)
			}
			reserve(info, cl, cl+used)
		}
		info.NMod = n + 1
	}
	return st
}
