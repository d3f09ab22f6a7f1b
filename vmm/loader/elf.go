package loader

import (
	"encoding/binary"
	"fmt"
)

// ELF constants (System V gABI, Tool Interface Standard ELF 1.2).
const (
	elfClass32   = 1
	elfClass64   = 2
	elfDataLSB   = 1
	elfTypeExec  = 2
	elfTypeDyn   = 3
	emI386       = 3
	emX86_64     = 62
	ptLoad       = 1
	ptNote       = 4
	elf32Ehdr    = 52
	elf64Ehdr    = 64
	elf32Phdr    = 32
	elf64Phdr    = 56
	maxLoadSegs  = 64
	xenNoteEntry = 18 // XEN_ELFNOTE_PHYS32_ENTRY
)

// segment is one piece of the kernel to place in guest RAM: data at addr,
// followed by zeros up to memsz.
type segment struct {
	addr  uint64
	data  []byte
	memsz uint64
}

// elfPhdr is a program header in class-independent form.
type elfPhdr struct {
	typ                  uint32
	off, vaddr, paddr    uint64
	filesz, memsz, align uint64
}

// elfFile is a parsed ELF executable.
type elfFile struct {
	class uint8
	entry uint64
	phdrs []elfPhdr
}

// isELF reports whether b starts with the ELF magic.
func isELF(b []byte) bool {
	return len(b) >= 4 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F'
}

// parseELF decodes the ELF header and program headers of a little-endian
// x86 executable (ELF32 EM_386 or ELF64 EM_X86_64).
func parseELF(b []byte) (*elfFile, error) {
	if !isELF(b) {
		return nil, fmt.Errorf("elf: bad magic")
	}
	if len(b) < elf32Ehdr {
		return nil, fmt.Errorf("elf: file of %d bytes is shorter than an ELF header", len(b))
	}
	if b[5] != elfDataLSB {
		return nil, fmt.Errorf("elf: not little-endian (EI_DATA %d)", b[5])
	}
	le := binary.LittleEndian
	f := &elfFile{class: b[4]}
	typ, mach := le.Uint16(b[16:]), le.Uint16(b[18:])
	if typ != elfTypeExec && typ != elfTypeDyn {
		return nil, fmt.Errorf("elf: e_type %d is not an executable", typ)
	}
	var phoff, phentsize, phnum, minEnt uint64
	switch f.class {
	case elfClass32:
		if mach != emI386 {
			return nil, fmt.Errorf("elf: ELF32 e_machine %d is not EM_386", mach)
		}
		f.entry = uint64(le.Uint32(b[24:]))
		phoff = uint64(le.Uint32(b[28:]))
		phentsize, phnum = uint64(le.Uint16(b[42:])), uint64(le.Uint16(b[44:]))
		minEnt = elf32Phdr
	case elfClass64:
		if len(b) < elf64Ehdr {
			return nil, fmt.Errorf("elf: file of %d bytes is shorter than an ELF64 header", len(b))
		}
		if mach != emX86_64 {
			return nil, fmt.Errorf("elf: ELF64 e_machine %d is not EM_X86_64", mach)
		}
		f.entry = le.Uint64(b[24:])
		phoff = le.Uint64(b[32:])
		phentsize, phnum = uint64(le.Uint16(b[54:])), uint64(le.Uint16(b[56:]))
		minEnt = elf64Phdr
	default:
		return nil, fmt.Errorf("elf: unknown class %d", f.class)
	}
	if phnum == 0 {
		return nil, fmt.Errorf("elf: no program headers")
	}
	if phentsize < minEnt {
		return nil, fmt.Errorf("elf: e_phentsize %d is smaller than %d", phentsize, minEnt)
	}
	size := uint64(len(b))
	if phoff > size || phnum*phentsize > size-phoff {
		return nil, fmt.Errorf("elf: program headers (%d at %#x) run past the %d-byte file", phnum, phoff, size)
	}
	f.phdrs = make([]elfPhdr, phnum)
	for i := range f.phdrs {
		p := b[phoff+uint64(i)*phentsize:]
		ph := &f.phdrs[i]
		if f.class == elfClass32 {
			ph.typ = le.Uint32(p[0:])
			ph.off = uint64(le.Uint32(p[4:]))
			ph.vaddr = uint64(le.Uint32(p[8:]))
			ph.paddr = uint64(le.Uint32(p[12:]))
			ph.filesz = uint64(le.Uint32(p[16:]))
			ph.memsz = uint64(le.Uint32(p[20:]))
			ph.align = uint64(le.Uint32(p[28:]))
		} else {
			ph.typ = le.Uint32(p[0:])
			ph.off = le.Uint64(p[8:])
			ph.vaddr = le.Uint64(p[16:])
			ph.paddr = le.Uint64(p[24:])
			ph.filesz = le.Uint64(p[32:])
			ph.memsz = le.Uint64(p[40:])
			ph.align = le.Uint64(p[48:])
		}
	}
	return f, nil
}

// fileRange returns b[off:off+n] or an error naming what it is.
func fileRange(b []byte, off, n uint64, what string) ([]byte, error) {
	size := uint64(len(b))
	if off > size || n > size-off {
		return nil, fmt.Errorf("%s: bytes [%#x, +%#x) run past the %d-byte file", what, off, n, size)
	}
	return b[off : off+n], nil
}

// loadSegments returns the PT_LOAD segments of f (by physical address)
// with their file bytes. Segments with p_memsz 0 are skipped.
func (f *elfFile) loadSegments(b []byte) ([]segment, error) {
	var segs []segment
	for i, ph := range f.phdrs {
		if ph.typ != ptLoad || ph.memsz == 0 {
			continue
		}
		if len(segs) == maxLoadSegs {
			return nil, fmt.Errorf("elf: more than %d PT_LOAD segments", maxLoadSegs)
		}
		if ph.filesz > ph.memsz {
			return nil, fmt.Errorf("elf: PT_LOAD %d: p_filesz %#x > p_memsz %#x", i, ph.filesz, ph.memsz)
		}
		data, err := fileRange(b, ph.off, ph.filesz, fmt.Sprintf("elf: PT_LOAD %d", i))
		if err != nil {
			return nil, err
		}
		segs = append(segs, segment{addr: ph.paddr, data: data, memsz: ph.memsz})
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("elf: no PT_LOAD segment")
	}
	return segs, nil
}

// physEntry translates the ELF entry point to a physical address: an entry
// inside a PT_LOAD's virtual range moves with that segment's p_paddr
// (higher-half kernels); any other entry is taken as physical.
func (f *elfFile) physEntry() uint64 {
	for _, ph := range f.phdrs {
		if ph.typ != ptLoad || ph.memsz == 0 {
			continue
		}
		if f.entry >= ph.vaddr && f.entry-ph.vaddr < ph.memsz {
			return ph.paddr + (f.entry - ph.vaddr)
		}
	}
	return f.entry
}

// xenNote looks for the Xen XEN_ELFNOTE_PHYS32_ENTRY note in the PT_NOTE
// segments and returns its value. found is false when there is no such
// note; err is set when a note segment is malformed.
func (f *elfFile) xenNote(b []byte) (entry uint64, found bool, err error) {
	le := binary.LittleEndian
	for i, ph := range f.phdrs {
		if ph.typ != ptNote {
			continue
		}
		notes, err := fileRange(b, ph.off, ph.filesz, fmt.Sprintf("elf: PT_NOTE %d", i))
		if err != nil {
			return 0, false, err
		}
		align := uint64(4)
		if ph.align == 8 {
			align = 8
		}
		for off := uint64(0); off < uint64(len(notes)); {
			if uint64(len(notes))-off < 12 {
				return 0, false, fmt.Errorf("elf: PT_NOTE %d: truncated note header at %#x", i, off)
			}
			namesz := uint64(le.Uint32(notes[off:]))
			descsz := uint64(le.Uint32(notes[off+4:]))
			typ := le.Uint32(notes[off+8:])
			off += 12
			nameEnd, ok1 := alignUp(off+namesz, align)
			descEnd, ok2 := alignUp(nameEnd+descsz, align)
			if !ok1 || !ok2 || nameEnd > uint64(len(notes)) || nameEnd+descsz > uint64(len(notes)) {
				return 0, false, fmt.Errorf("elf: PT_NOTE %d: note runs past the segment", i)
			}
			name := notes[off : off+namesz]
			desc := notes[nameEnd : nameEnd+descsz]
			if typ == xenNoteEntry && namesz == 4 && string(name) == "Xen\x00" {
				switch descsz {
				case 4:
					return uint64(le.Uint32(desc)), true, nil
				case 8:
					return le.Uint64(desc), true, nil
				default:
					return 0, false, fmt.Errorf("elf: XEN_ELFNOTE_PHYS32_ENTRY has %d-byte value", descsz)
				}
			}
			off = descEnd
		}
	}
	return 0, false, nil
}
