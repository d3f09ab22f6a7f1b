package bootinfo

import "juice/mm/phys"

// Multiboot2 information tag types (Multiboot2 specification, section 3.6).
const (
	mb2TagEnd        = 0
	mb2TagCmdline    = 1
	mb2TagLoaderName = 2
	mb2TagModule     = 3
	mb2TagMmap       = 6
	mb2TagEFI64      = 12
	mb2TagACPIOld    = 14
	mb2TagACPINew    = 15
	mb2TagEFIMmap    = 17
	mb2TagEFIBS      = 18

	mb2HeaderSize  = 8  // total_size u32, reserved u32
	mb2TagHeader   = 8  // type u32, size u32
	mb2ModuleFixed = 16 // header, mod_start u32, mod_end u32
	mb2MapFixed    = 16 // header, entry_size u32, entry_version u32
	mb2EFI64Size   = 16 // header, pointer u64
	rsdpV1Size     = 20 // ACPI 1.0 RSDP
	rsdpV2Size     = 36 // ACPI 2.0+ RSDP
)

// mb2State carries what the tag walk found to the end of parseMB2.
type mb2State struct {
	mmap, efiMap      rawMap
	rsdpOld, rsdpNew  uint64
	haveCmdline       bool
	haveName          bool
	haveEFI64         bool
	bootServicesAlive bool
}

// parseMB2 decodes the multiboot2 MBI at pa.
//
//go:nosplit
func parseMB2(m *phys.Mem, pa uint64, info *Info) Status {
	if pa&7 != 0 {
		return StatusBadTag
	}
	total32, ok := m.Load32(pa)
	if !ok {
		return StatusTruncated
	}
	total := uint64(total32)
	if total < mb2HeaderSize+mb2TagHeader {
		return StatusTruncated
	}
	if total > MaxMBISize {
		return StatusOversized
	}
	if !m.In(pa, total) {
		return StatusTruncated
	}
	reserve(info, pa, pa+total)

	var s mb2State
	st := mb2Walk(m, pa, total, info, &s)

	if s.rsdpNew != 0 {
		info.RSDP = s.rsdpNew
	} else {
		info.RSDP = s.rsdpOld
	}
	if s.bootServicesAlive {
		st = first(st, StatusBootServicesActive)
	}
	switch {
	case s.mmap.n > 0:
		if s.mmap.n > MaxRawEntries {
			return first(st, StatusTooManyRegions)
		}
		sanitize(m, &s.mmap, info)
		info.MemSource = MemSourceMB2
	case s.efiMap.n > 0:
		if s.efiMap.n > MaxRawEntries {
			return first(st, StatusTooManyRegions)
		}
		sanitize(m, &s.efiMap, info)
		info.MemSource = MemSourceEFI
	default:
		return first(st, StatusNoMemoryMap)
	}
	return finish(st, info)
}

// mb2Walk visits every tag of the MBI [pa, pa+total) up to the end tag.
// Structural errors stop the walk; a tag whose content is malformed is
// reported but the walk goes on.
//
//go:nosplit
func mb2Walk(m *phys.Mem, pa, total uint64, info *Info, s *mb2State) Status {
	st := StatusOK
	off := uint64(mb2HeaderSize)
	for {
		if off+mb2TagHeader > total {
			return first(st, StatusTruncated) // no end tag
		}
		typ, _ := m.Load32(pa + off)
		size32, _ := m.Load32(pa + off + 4)
		size := uint64(size32)
		if size < mb2TagHeader {
			return first(st, StatusBadTag)
		}
		if size > total-off {
			return first(st, StatusTruncated)
		}
		if typ == mb2TagEnd {
			return st
		}
		st = first(st, mb2DecodeTag(m, pa+off, typ, size, info, s))
		off += (size + 7) &^ 7
	}
}

// mb2DecodeTag decodes one tag of type typ and size bytes at tag (the whole tag
// lies inside the window). Unknown and uninteresting tags are skipped. For
// tags juice keeps once, the first occurrence wins.
//
//go:nosplit
func mb2DecodeTag(m *phys.Mem, tag uint64, typ uint32, size uint64, info *Info, s *mb2State) Status {
	body, bodyLen := tag+mb2TagHeader, size-mb2TagHeader
	switch typ {
	case mb2TagCmdline:
		if !s.haveCmdline {
			s.haveCmdline = true
			n, trunc, _ := copyBounded(m, body, bodyLen, info.Cmdline[:])
			info.CmdlineLen, info.CmdlineTruncated = n, trunc
		}
	case mb2TagLoaderName:
		if !s.haveName {
			s.haveName = true
			info.LoaderNameLen, _, _ = copyBounded(m, body, bodyLen, info.LoaderName[:])
		}
	case mb2TagModule:
		if size < mb2ModuleFixed {
			return StatusBadTag
		}
		start, _ := m.Load32(tag + 8)
		end, _ := m.Load32(tag + 12)
		if end < start {
			return StatusBadModule
		}
		n := info.NMod
		if n < 0 || n >= len(info.Mod) {
			info.ModTruncated = true
			return StatusOK
		}
		mod := &info.Mod[n&(MaxModules-1)]
		mod.Start, mod.End = uint64(start), uint64(end)
		c, _, _ := copyBounded(m, tag+mb2ModuleFixed, size-mb2ModuleFixed, mod.Cmdline[:])
		mod.CmdlineLen = uint16(c)
		info.NMod = n + 1
	case mb2TagMmap, mb2TagEFIMmap:
		if size < mb2MapFixed {
			return StatusBadTag
		}
		stride32, _ := m.Load32(tag + 8)
		stride := uint64(stride32)
		raw := &s.mmap
		kind, minStride := uint8(mapE820), uint64(e820EntrySize)
		if typ == mb2TagEFIMmap {
			raw = &s.efiMap
			kind, minStride = mapEFI, efiDescSize
		}
		if stride < minStride {
			return StatusBadTag
		}
		if raw.kind == 0 {
			*raw = rawMap{pa: tag + mb2MapFixed, stride: stride, n: (size - mb2MapFixed) / stride, kind: kind}
		}
	case mb2TagEFI64:
		if size < mb2EFI64Size {
			return StatusBadTag
		}
		if !s.haveEFI64 {
			s.haveEFI64 = true
			info.EFISystemTable, _ = m.Load64(tag + 8)
		}
	case mb2TagACPIOld:
		if bodyLen < rsdpV1Size {
			return StatusBadTag
		}
		if s.rsdpOld == 0 {
			s.rsdpOld = body
		}
	case mb2TagACPINew:
		if bodyLen < rsdpV2Size {
			return StatusBadTag
		}
		if s.rsdpNew == 0 {
			s.rsdpNew = body
		}
	case mb2TagEFIBS:
		s.bootServicesAlive = true
	}
	return StatusOK
}
