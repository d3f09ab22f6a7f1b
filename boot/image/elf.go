package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"slices"
)

// ELF64 structure sizes. The Go linker writes exactly these.
const (
	ehdrSize = 64
	phdrSize = 56
	shdrSize = 64
	symSize  = 24
)

// Layout constants of the Go 1.26 linker output for
// -ldflags "-E sym -T addr -R 0x1000".
const (
	// textFileOffset is where .text starts in the file: the linker
	// reserves one page (ELFRESERVE) for the headers and notes.
	textFileOffset = 0x1000
	// noteAlign is the PT_NOTE alignment the Go linker writes; note
	// names and descriptors are padded to it.
	noteAlign = 4
	// goBuildIDNoteType is the note type of .note.go.buildid.
	goBuildIDNoteType = 4
	// goBuildIDSection is the section the Go linker's PT_NOTE covers.
	goBuildIDSection = ".note.go.buildid"
)

// Address limits the boot protocols impose.
const (
	minLoadAddr = 1 << 20 // 1 MiB: below is real-mode memory, BIOS, VGA
	maxLoadAddr = 1 << 32 // 4 GiB: PVH and multiboot enter 32-bit code
)

var le = binary.LittleEndian

// segment is one parsed program header.
type segment struct {
	idx    int
	typ    elf.ProgType
	flags  elf.ProgFlag
	off    uint64
	vaddr  uint64
	paddr  uint64
	filesz uint64
	memsz  uint64
	align  uint64
}

// section is one parsed section header.
type section struct {
	idx     int
	name    string
	typ     elf.SectionType
	flags   elf.SectionFlag
	addr    uint64
	off     uint64
	size    uint64
	link    uint32
	entsize uint64
}

// fileBacked reports whether the section occupies bytes in the file.
func (s *section) fileBacked() bool {
	return s.typ != elf.SHT_NULL && s.typ != elf.SHT_NOBITS && s.size > 0
}

// layout is what inspect learned about a validated image.
type layout struct {
	size     uint64 // file size
	entry    uint64
	phoff    uint64
	phnum    uint64
	shoff    uint64
	shnum    uint64
	segs     []segment
	loads    []segment
	note     segment
	secs     []section
	symName  string // the .symtab name that matched e_entry
	loadLow  uint64 // lowest PT_LOAD address
	loadHigh uint64 // end of the last PT_LOAD's memory image
	bssEnd   uint64 // end of bss sections past loadHigh (a trimmed lazy tail), or 0
}

// fits reports whether [off, off+size) lies within [0, total).
func fits(off, size, total uint64) bool {
	return off <= total && size <= total-off
}

// align rounds v up to a multiple of a (a power of two); ok is false on
// overflow.
func alignUp(v, a uint64) (uint64, bool) {
	r := (v + a - 1) &^ (a - 1)
	return r, r >= v
}

// cstring returns the NUL-terminated string at off in b, or ok=false.
func cstring(b []byte, off uint64) (string, bool) {
	if off >= uint64(len(b)) {
		return "", false
	}
	rest := b[off:]
	n := bytes.IndexByte(rest, 0)
	if n < 0 {
		return "", false
	}
	return string(rest[:n]), true
}

// inspect validates raw against the Go linker layout. When patched is
// false, raw must be the linker's output (Go build-id note in the
// PT_NOTE, no boot headers); when true, raw must be Patch's output and
// the note/gap checks are left to Verify.
func inspect(raw []byte, entrySym string, patched bool) (*layout, error) {
	size := uint64(len(raw))
	if size < ehdrSize {
		return nil, errf(KindTruncated, "file is %d bytes, shorter than the %d-byte ELF header", size, ehdrSize)
	}
	if !bytes.Equal(raw[:4], []byte(elf.ELFMAG)) {
		return nil, errf(KindNotELF, "file starts with % x, expected the ELF magic 7f 45 4c 46", raw[:4])
	}
	if c := elf.Class(raw[elf.EI_CLASS]); c != elf.ELFCLASS64 {
		return nil, errf(KindClass, "EI_CLASS is %d (%v), expected %d (ELFCLASS64)", uint8(c), c, uint8(elf.ELFCLASS64))
	}
	if d := elf.Data(raw[elf.EI_DATA]); d != elf.ELFDATA2LSB {
		return nil, errf(KindData, "EI_DATA is %d (%v), expected %d (ELFDATA2LSB, little-endian)", uint8(d), d, uint8(elf.ELFDATA2LSB))
	}
	if v := raw[elf.EI_VERSION]; v != byte(elf.EV_CURRENT) {
		return nil, errf(KindIdent, "EI_VERSION is %d, expected %d", v, elf.EV_CURRENT)
	}
	if v := raw[elf.EI_OSABI]; v != byte(elf.ELFOSABI_NONE) {
		return nil, layoutErrf(KindIdent, "EI_OSABI is %d, expected 0 (System V)", v)
	}
	if v := raw[elf.EI_ABIVERSION]; v != 0 {
		return nil, layoutErrf(KindIdent, "EI_ABIVERSION is %d, expected 0", v)
	}
	if t := elf.Type(le.Uint16(raw[16:])); t != elf.ET_EXEC {
		return nil, errf(KindType, "e_type is %d (%v), expected %d (ET_EXEC)", uint16(t), t, uint16(elf.ET_EXEC))
	}
	if m := elf.Machine(le.Uint16(raw[18:])); m != elf.EM_X86_64 {
		return nil, errf(KindMachine, "e_machine is %d (%v), expected %d (EM_X86_64)", uint16(m), m, uint16(elf.EM_X86_64))
	}
	if v := le.Uint32(raw[20:]); v != uint32(elf.EV_CURRENT) {
		return nil, errf(KindIdent, "e_version is %d, expected %d", v, elf.EV_CURRENT)
	}
	if f := le.Uint32(raw[48:]); f != 0 {
		return nil, layoutErrf(KindFlags, "e_flags is %#x, expected 0 (QEMU's PVH loader also refuses flag bits 0x10002)", f)
	}
	if v := le.Uint16(raw[52:]); v != ehdrSize {
		return nil, layoutErrf(KindHeaderSize, "e_ehsize is %d, expected %d", v, ehdrSize)
	}
	if v := le.Uint16(raw[54:]); v != phdrSize {
		return nil, layoutErrf(KindHeaderSize, "e_phentsize is %d, expected %d", v, phdrSize)
	}
	if v := le.Uint16(raw[58:]); v != shdrSize {
		return nil, layoutErrf(KindHeaderSize, "e_shentsize is %d, expected %d", v, shdrSize)
	}

	l := &layout{
		size:  size,
		entry: le.Uint64(raw[24:]),
		phoff: le.Uint64(raw[32:]),
		shoff: le.Uint64(raw[40:]),
		phnum: uint64(le.Uint16(raw[56:])),
		shnum: uint64(le.Uint16(raw[60:])),
	}
	shstrndx := uint64(le.Uint16(raw[62:]))

	// Program header table: right after the ELF header.
	if l.phoff != ehdrSize {
		return nil, layoutErrf(KindPhdrTable, "e_phoff is %#x, expected %#x (program headers right after the ELF header)", l.phoff, ehdrSize)
	}
	if l.phnum == 0 {
		return nil, layoutErrf(KindPhdrTable, "e_phnum is 0, expected program headers")
	}
	phEnd := l.phoff + l.phnum*phdrSize
	if phEnd > size {
		return nil, errf(KindTruncated, "program headers [%#x, %#x) extend past the end of the file (%d bytes)", l.phoff, phEnd, size)
	}
	// Section header table: right after the program headers.
	if l.shnum == 0 || l.shnum == uint64(elf.SHN_UNDEF) {
		return nil, layoutErrf(KindShdrTable, "e_shnum is 0, expected section headers")
	}
	if l.shoff != phEnd {
		return nil, layoutErrf(KindShdrTable, "e_shoff is %#x, expected %#x (section headers right after the program headers)", l.shoff, phEnd)
	}
	shEnd := l.shoff + l.shnum*shdrSize
	if shEnd > size {
		return nil, errf(KindTruncated, "section headers [%#x, %#x) extend past the end of the file (%d bytes)", l.shoff, shEnd, size)
	}
	if shstrndx == 0 || shstrndx >= l.shnum {
		return nil, layoutErrf(KindShdrTable, "e_shstrndx is %d, expected an index in [1, %d)", shstrndx, l.shnum)
	}

	// Parse program headers.
	l.segs = make([]segment, l.phnum)
	for i := range l.segs {
		p := raw[l.phoff+uint64(i)*phdrSize:]
		s := segment{
			idx:    i,
			typ:    elf.ProgType(le.Uint32(p[0:])),
			flags:  elf.ProgFlag(le.Uint32(p[4:])),
			off:    le.Uint64(p[8:]),
			vaddr:  le.Uint64(p[16:]),
			paddr:  le.Uint64(p[24:]),
			filesz: le.Uint64(p[32:]),
			memsz:  le.Uint64(p[40:]),
			align:  le.Uint64(p[48:]),
		}
		if s.filesz > 0 && !fits(s.off, s.filesz, size) {
			return nil, errf(KindTruncated, "program header #%d (%v) file range [%#x, +%#x) extends past the end of the file (%d bytes)", i, s.typ, s.off, s.filesz, size)
		}
		l.segs[i] = s
	}
	if err := l.checkProgTypes(); err != nil {
		return nil, err
	}
	if err := l.checkLoads(); err != nil {
		return nil, err
	}
	if err := l.checkPhdrSegment(); err != nil {
		return nil, err
	}

	// Parse section headers and their names.
	str := raw[l.shoff+shstrndx*shdrSize:]
	strOff, strSize := le.Uint64(str[24:]), le.Uint64(str[32:])
	if elf.SectionType(le.Uint32(str[4:])) != elf.SHT_STRTAB {
		return nil, layoutErrf(KindShdrTable, "section #%d (e_shstrndx) has type %v, expected SHT_STRTAB", shstrndx, elf.SectionType(le.Uint32(str[4:])))
	}
	if !fits(strOff, strSize, size) {
		return nil, errf(KindTruncated, "section name table [%#x, +%#x) extends past the end of the file (%d bytes)", strOff, strSize, size)
	}
	names := raw[strOff : strOff+strSize]
	l.secs = make([]section, l.shnum)
	for i := range l.secs {
		h := raw[l.shoff+uint64(i)*shdrSize:]
		s := section{
			idx:     i,
			typ:     elf.SectionType(le.Uint32(h[4:])),
			flags:   elf.SectionFlag(le.Uint64(h[8:])),
			addr:    le.Uint64(h[16:]),
			off:     le.Uint64(h[24:]),
			size:    le.Uint64(h[32:]),
			link:    le.Uint32(h[40:]),
			entsize: le.Uint64(h[56:]),
		}
		if i > 0 {
			n, ok := cstring(names, uint64(le.Uint32(h[0:])))
			if !ok {
				return nil, layoutErrf(KindSections, "section #%d has name offset %#x outside the section name table (%d bytes)", i, le.Uint32(h[0:]), len(names))
			}
			s.name = n
		}
		if s.fileBacked() && !fits(s.off, s.size, size) {
			return nil, errf(KindTruncated, "section #%d %s [%#x, +%#x) extends past the end of the file (%d bytes)", i, s.name, s.off, s.size, size)
		}
		l.secs[i] = s
	}
	text, err := l.checkSections()
	if err != nil {
		return nil, err
	}
	if err := l.checkNoteSegment(raw, patched); err != nil {
		return nil, err
	}
	if err := l.checkEntry(text); err != nil {
		return nil, err
	}
	if err := l.checkSymbol(raw, entrySym); err != nil {
		return nil, err
	}
	return l, nil
}

// checkProgTypes requires the Go linker's program header sequence:
// PT_PHDR, PT_NOTE, one or more PT_LOAD, PT_GNU_STACK.
func (l *layout) checkProgTypes() error {
	notes := 0
	for _, s := range l.segs {
		if s.typ == elf.PT_NOTE {
			notes++
		}
	}
	if notes == 0 {
		return errf(KindNote, "no PT_NOTE program header: the PVH note needs one (expected one covering %s)", goBuildIDSection)
	}
	n := len(l.segs)
	if n < 4 {
		return layoutErrf(KindProgHeaders, "%d program headers, expected PT_PHDR, PT_NOTE, PT_LOAD..., PT_GNU_STACK (at least 4)", n)
	}
	for i, s := range l.segs {
		var want elf.ProgType
		switch {
		case i == 0:
			want = elf.PT_PHDR
		case i == 1:
			want = elf.PT_NOTE
		case i == n-1:
			want = elf.PT_GNU_STACK
		default:
			want = elf.PT_LOAD
		}
		if s.typ != want {
			return layoutErrf(KindProgHeaders, "program header #%d is %v, expected %v (sequence PT_PHDR, PT_NOTE, PT_LOAD..., PT_GNU_STACK)", i, s.typ, want)
		}
	}
	l.note = l.segs[1]
	l.loads = l.segs[2 : n-1]
	return nil
}

// checkLoads applies the boot protocols' rules to the PT_LOADs.
func (l *layout) checkLoads() error {
	for j, s := range l.loads {
		if s.paddr != s.vaddr {
			return layoutErrf(KindPaddr, "PT_LOAD #%d has paddr %#x != vaddr %#x", s.idx, s.paddr, s.vaddr)
		}
		if s.filesz > s.memsz {
			return errf(KindSegmentSize, "PT_LOAD #%d has filesz %#x > memsz %#x", s.idx, s.filesz, s.memsz)
		}
		if s.vaddr < minLoadAddr || s.memsz > maxLoadAddr || s.vaddr > maxLoadAddr-s.memsz {
			return errf(KindSegmentRange, "PT_LOAD #%d [%#x, +%#x) is outside [1 MiB, 4 GiB)", s.idx, s.vaddr, s.memsz)
		}
		if s.align == 0 || s.align&(s.align-1) != 0 || s.vaddr%s.align != s.off%s.align {
			return errf(KindSegmentAlign, "PT_LOAD #%d has align %#x, vaddr %#x, offset %#x: expected a power-of-two align with vaddr ≡ offset", s.idx, s.align, s.vaddr, s.off)
		}
		if j > 0 {
			p := l.loads[j-1]
			if s.vaddr < p.vaddr+p.memsz {
				return errf(KindSegmentOrder, "PT_LOAD #%d starts at %#x, before the end %#x of PT_LOAD #%d: segments must be sorted and non-overlapping", s.idx, s.vaddr, p.vaddr+p.memsz, p.idx)
			}
			if s.filesz > 0 && s.off < p.off+p.filesz {
				return errf(KindSegmentOrder, "PT_LOAD #%d starts at file offset %#x, before the end %#x of PT_LOAD #%d: segments must be sorted and non-overlapping", s.idx, s.off, p.off+p.filesz, p.idx)
			}
		}
	}
	first := l.loads[0]
	if first.off != 0 {
		return layoutErrf(KindFirstLoad, "the first PT_LOAD (#%d) starts at file offset %#x, expected 0 (ELF headers loaded)", first.idx, first.off)
	}
	if first.filesz < textFileOffset {
		return layoutErrf(KindFirstLoad, "the first PT_LOAD (#%d) has filesz %#x, expected at least %#x (headers page plus text)", first.idx, first.filesz, textFileOffset)
	}
	if first.flags&elf.PF_X == 0 {
		return layoutErrf(KindFirstLoad, "the first PT_LOAD (#%d) has flags %v, expected PF_X (it holds .text)", first.idx, first.flags)
	}
	last := l.loads[len(l.loads)-1]
	l.loadLow = first.vaddr
	l.loadHigh = last.vaddr + last.memsz
	return nil
}

// checkPhdrSegment checks that PT_PHDR describes the program headers as
// loaded by the first PT_LOAD.
func (l *layout) checkPhdrSegment() error {
	s := l.segs[0]
	want := l.phnum * phdrSize
	if s.off != l.phoff || s.filesz != want || s.memsz != want {
		return layoutErrf(KindPhdrSegment, "PT_PHDR covers file [%#x, +%#x) memsz %#x, expected [%#x, +%#x)", s.off, s.filesz, s.memsz, l.phoff, want)
	}
	if wantAddr := l.loads[0].vaddr + l.phoff; s.vaddr != wantAddr || s.paddr != wantAddr {
		return layoutErrf(KindPhdrSegment, "PT_PHDR has vaddr %#x paddr %#x, expected %#x", s.vaddr, s.paddr, wantAddr)
	}
	return nil
}

// checkSections checks the section headers the tool relies on and
// returns .text.
func (l *layout) checkSections() (*section, error) {
	if len(l.secs) < 2 {
		return nil, layoutErrf(KindSections, "%d section headers, expected at least 2 (SHT_NULL, %s)", len(l.secs), goBuildIDSection)
	}
	if s := l.secs[0]; s.typ != elf.SHT_NULL || s.size != 0 || s.off != 0 {
		return nil, layoutErrf(KindSections, "section #0 has type %v size %#x, expected an empty SHT_NULL", s.typ, s.size)
	}
	if s := l.secs[1]; s.name != goBuildIDSection || s.typ != elf.SHT_NOTE {
		return nil, layoutErrf(KindSections, "section #1 is %q (%v), expected %s (SHT_NOTE)", s.name, s.typ, goBuildIDSection)
	}
	var text *section
	for i := range l.secs {
		s := &l.secs[i]
		if s.name == ".text" {
			if text != nil {
				return nil, layoutErrf(KindText, "two .text sections (#%d and #%d)", text.idx, s.idx)
			}
			text = s
		}
		if s.flags&elf.SHF_ALLOC == 0 || s.size == 0 {
			continue
		}
		// Every allocated section must be inside one PT_LOAD, at the
		// same offset in the file as in memory.
		var in *segment
		for j := range l.loads {
			p := &l.loads[j]
			if s.addr >= p.vaddr && s.addr-p.vaddr <= p.memsz && s.size <= p.memsz-(s.addr-p.vaddr) {
				in = p
				break
			}
			// A bss section may run past the last PT_LOAD when Patch has
			// trimmed that segment's memsz (the lazy tail): it must start
			// inside the segment and nothing file-backed may lie past it.
			if j == len(l.loads)-1 && s.typ == elf.SHT_NOBITS && s.addr >= p.vaddr && s.addr-p.vaddr <= p.memsz && s.addr+s.size > p.vaddr+p.memsz {
				in = p
				if end := s.addr + s.size; end > l.bssEnd {
					l.bssEnd = end
				}
				break
			}
		}
		if in == nil {
			return nil, layoutErrf(KindSections, "allocated section #%d %s [%#x, +%#x) is not inside any PT_LOAD", s.idx, s.name, s.addr, s.size)
		}
		if s.typ != elf.SHT_NOBITS {
			rel := s.addr - in.vaddr
			if s.off != in.off+rel || rel > in.filesz || s.size > in.filesz-rel {
				return nil, layoutErrf(KindSections, "allocated section #%d %s at %#x has file offset %#x, expected %#x inside the file part of PT_LOAD #%d", s.idx, s.name, s.addr, s.off, in.off+rel, in.idx)
			}
		}
	}
	if text == nil {
		return nil, layoutErrf(KindText, "no .text section")
	}
	if text.typ != elf.SHT_PROGBITS || text.flags&(elf.SHF_ALLOC|elf.SHF_EXECINSTR) != elf.SHF_ALLOC|elf.SHF_EXECINSTR {
		return nil, layoutErrf(KindText, ".text has type %v flags %v, expected SHT_PROGBITS with SHF_ALLOC|SHF_EXECINSTR", text.typ, text.flags)
	}
	if wantAddr := l.loads[0].vaddr + textFileOffset; text.off != textFileOffset || text.addr != wantAddr {
		return nil, layoutErrf(KindText, ".text is at file offset %#x address %#x, expected offset %#x address %#x (first PT_LOAD + one header page)", text.off, text.addr, textFileOffset, wantAddr)
	}
	if text.size == 0 || text.size > l.loads[0].filesz-textFileOffset {
		return nil, layoutErrf(KindText, ".text size %#x does not fit the first PT_LOAD's file part (%#x bytes)", text.size, l.loads[0].filesz)
	}
	return text, nil
}

// checkNoteSegment checks that PT_NOTE covers exactly .note.go.buildid
// in the header page and, for an unpatched image, holds the Go build-id
// note and has room for the PVH note.
func (l *layout) checkNoteSegment(raw []byte, patched bool) error {
	n := l.note
	sec := l.secs[1]
	if n.off != sec.off || n.filesz != sec.size || n.vaddr != sec.addr {
		return layoutErrf(KindNote, "PT_NOTE covers file [%#x, +%#x) at %#x, expected %s [%#x, +%#x) at %#x", n.off, n.filesz, n.vaddr, goBuildIDSection, sec.off, sec.size, sec.addr)
	}
	if n.paddr != n.vaddr || n.memsz != n.filesz {
		return layoutErrf(KindNote, "PT_NOTE has paddr %#x vaddr %#x filesz %#x memsz %#x, expected paddr == vaddr and filesz == memsz", n.paddr, n.vaddr, n.filesz, n.memsz)
	}
	if n.align != noteAlign {
		return layoutErrf(KindNote, "PT_NOTE has align %d, expected %d", n.align, noteAlign)
	}
	if n.off%noteAlign != 0 || n.off < l.shoff+l.shnum*shdrSize || n.off+n.filesz > textFileOffset {
		return layoutErrf(KindNote, "PT_NOTE [%#x, +%#x) is not 4-aligned between the section headers (end %#x) and .text (%#x)", n.off, n.filesz, l.shoff+l.shnum*shdrSize, textFileOffset)
	}
	if patched {
		return nil
	}
	if n.filesz < pvhNoteSize {
		return errf(KindNoteSize, "PT_NOTE is %d bytes, expected at least %d for the PVH note", n.filesz, pvhNoteSize)
	}
	if r := n.filesz - pvhNoteSize; r != 0 && (r < noteHeaderSize || r%noteAlign != 0) {
		return errf(KindNoteSize, "PT_NOTE is %d bytes: the %d bytes after the PVH note cannot hold a padding note (need 0 or a multiple of %d that is at least %d)", n.filesz, r, noteAlign, noteHeaderSize)
	}
	data := raw[n.off : n.off+n.filesz]
	notes, err := parseNotes(data)
	if err != nil {
		return errf(KindNoteContent, "PT_NOTE does not parse: %v", err)
	}
	if len(notes) > 0 && notes[0].name == xenNoteName {
		return errf(KindNoteContent, "PT_NOTE already holds a %q note of type %d: the image is already patched", notes[0].name, notes[0].typ)
	}
	if len(notes) != 1 || notes[0].name != "Go" || notes[0].typ != goBuildIDNoteType {
		var got string
		if len(notes) > 0 {
			got = notes[0].name
		}
		return layoutErrf(KindNoteContent, "PT_NOTE holds %d notes (first owner %q), expected one Go build-id note (owner \"Go\", type %d)", len(notes), got, goBuildIDNoteType)
	}
	return nil
}

// checkEntry requires e_entry below 4 GiB, in the file part of an
// executable PT_LOAD, inside .text.
func (l *layout) checkEntry(text *section) error {
	e := l.entry
	if e >= maxLoadAddr {
		return errf(KindEntryRange, "e_entry %#x is not below 4 GiB: the 32-bit PVH and multiboot entries cannot reach it", e)
	}
	ok := false
	for _, s := range l.loads {
		if s.flags&elf.PF_X != 0 && e >= s.vaddr && e-s.vaddr < s.filesz {
			ok = true
			break
		}
	}
	if !ok {
		return errf(KindEntryRange, "e_entry %#x is not inside the file part of an executable PT_LOAD", e)
	}
	if e < text.addr || e-text.addr >= text.size {
		return errf(KindEntryRange, "e_entry %#x is not inside .text [%#x, +%#x)", e, text.addr, text.size)
	}
	return nil
}

// checkSymbol looks the entry symbol up in .symtab. The Go linker names
// an assembly function that also has a Go ABIInternal wrapper
// "<sym>.abi0"; -E resolves to the ABI0 symbol, so either name counts.
func (l *layout) checkSymbol(raw []byte, name string) error {
	var symtab *section
	for i := range l.secs {
		if l.secs[i].typ == elf.SHT_SYMTAB {
			if symtab != nil {
				return errf(KindSymtab, "two SHT_SYMTAB sections (#%d and #%d)", symtab.idx, i)
			}
			symtab = &l.secs[i]
		}
	}
	if symtab == nil {
		return errf(KindSymtab, "no .symtab section (was the kernel linked with -s?): cannot check e_entry against %s", name)
	}
	if symtab.entsize != symSize || symtab.size%symSize != 0 {
		return errf(KindSymtab, ".symtab has entsize %d size %#x, expected entsize %d and a multiple of it", symtab.entsize, symtab.size, symSize)
	}
	if uint64(symtab.link) == 0 || uint64(symtab.link) >= l.shnum || l.secs[symtab.link].typ != elf.SHT_STRTAB {
		return errf(KindSymtab, ".symtab links to section #%d, expected a SHT_STRTAB", symtab.link)
	}
	strs := &l.secs[symtab.link]
	if !fits(symtab.off, symtab.size, l.size) || !fits(strs.off, strs.size, l.size) {
		return errf(KindTruncated, ".symtab [%#x, +%#x) or its string table [%#x, +%#x) extends past the end of the file (%d bytes)", symtab.off, symtab.size, strs.off, strs.size, l.size)
	}
	strtab := raw[strs.off : strs.off+strs.size]
	syms := raw[symtab.off : symtab.off+symtab.size]
	abi0 := name + ".abi0"
	// Values of the ABI0 symbol and of the plain-named one. When both
	// exist the plain one is the Go ABIInternal wrapper (64-bit code),
	// which must not count.
	var abi0Vals, plainVals []uint64
	for off := 0; off+symSize <= len(syms); off += symSize {
		s := syms[off : off+symSize]
		n, ok := cstring(strtab, uint64(le.Uint32(s[0:])))
		switch {
		case !ok:
		case n == abi0:
			abi0Vals = append(abi0Vals, le.Uint64(s[8:]))
		case n == name:
			plainVals = append(plainVals, le.Uint64(s[8:]))
		}
	}
	symName, vals := abi0, abi0Vals
	if len(vals) == 0 {
		symName, vals = name, plainVals
	}
	if len(vals) == 0 {
		return errf(KindSymbolMissing, "entry symbol %s (or %s) not found in .symtab", name, abi0)
	}
	if slices.Contains(vals, l.entry) {
		l.symName = symName
		return nil
	}
	return errf(KindEntryMismatch, "e_entry is %#x but symbol %s is %#x", l.entry, symName, vals[0])
}
