package image

import (
	"bytes"
	"debug/elf"
	"slices"
)

// Verify checks an image written by Patch with the same Options: the Go
// linker layout is intact, debug/elf opens it, every note in the PT_NOTE
// parses and the first is the Xen PHYS32_ENTRY note holding e_entry,
// e_entry still equals the entry symbol, exactly one multiboot2 header
// with a valid checksum and the expected tags lies 8-aligned in the
// first 32 KiB, and a multiboot v1 header is present (with correct
// address fields) exactly when opts.Multiboot1Test is set. Layout errors
// keep their own Kind; the other failures are KindVerify.
func Verify(img []byte, opts Options) (Report, error) {
	l, err := inspect(img, opts.entrySymbol(), true)
	if err != nil {
		return Report{}, err
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return Report{}, errf(KindVerify, "debug/elf cannot open the image: %v", err)
	}
	if f.Entry != l.entry {
		return Report{}, errf(KindVerify, "debug/elf reads e_entry %#x, expected %#x", f.Entry, l.entry)
	}

	// The PVH note, found the way QEMU finds it: through PT_NOTE.
	var np *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			if np != nil {
				return Report{}, errf(KindVerify, "more than one PT_NOTE")
			}
			np = p
		}
	}
	if np == nil {
		return Report{}, errf(KindVerify, "debug/elf finds no PT_NOTE")
	}
	if np.Off != l.note.off || np.Filesz != l.note.filesz {
		return Report{}, errf(KindVerify, "debug/elf reads PT_NOTE [%#x, +%#x), expected [%#x, +%#x)", np.Off, np.Filesz, l.note.off, l.note.filesz)
	}
	data := make([]byte, np.Filesz)
	if _, err := np.ReadAt(data, 0); err != nil {
		return Report{}, errf(KindVerify, "reading PT_NOTE: %v", err)
	}
	notes, err := parseNotes(data)
	if err != nil {
		return Report{}, errf(KindVerify, "PT_NOTE does not parse: %v", err)
	}
	if len(notes) == 0 || notes[0].name != xenNoteName || notes[0].typ != XenElfnotePhys32Entry || len(notes[0].desc) != 4 {
		return Report{}, errf(KindVerify, "the first note in PT_NOTE is not a %q note of type %d with a 4-byte descriptor", xenNoteName, XenElfnotePhys32Entry)
	}
	if pvh := le.Uint32(notes[0].desc); uint64(pvh) != l.entry {
		return Report{}, errf(KindVerify, "PVH entry note holds %#x, expected e_entry %#x", pvh, l.entry)
	}

	// The entry symbol, through debug/elf's symbol table reader.
	syms, err := f.Symbols()
	if err != nil {
		return Report{}, errf(KindVerify, "debug/elf cannot read .symtab: %v", err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool { return s.Name == l.symName && s.Value == l.entry }) {
		return Report{}, errf(KindVerify, "debug/elf finds no symbol %s = %#x", l.symName, l.entry)
	}

	// The multiboot2 header.
	mb2 := findMB2(img)
	if len(mb2) != 1 {
		return Report{}, errf(KindVerify, "found %d multiboot2 headers in the first %d bytes, expected 1", len(mb2), MB2SearchLimit)
	}
	p, err := parseMB2(img, mb2[0])
	if err != nil {
		return Report{}, errf(KindVerify, "multiboot2 header: %v", err)
	}
	if p.arch != MB2ArchI386 {
		return Report{}, errf(KindVerify, "multiboot2 header architecture is %d, expected %d (i386 protected mode)", p.arch, MB2ArchI386)
	}
	if !slices.Equal(p.tags, []uint16{mb2TagInfoRequest, mb2TagEnd}) || !p.optional || !slices.Equal(p.requests, MB2RequestedTags[:]) {
		return Report{}, errf(KindVerify, "multiboot2 header has tags %v (information request %v, optional %v), expected [1 0] requesting %v optionally", p.tags, p.requests, p.optional, MB2RequestedTags)
	}

	// The multiboot v1 header: only in the test variant.
	mb1 := findMB1(img)
	rep := Report{
		Entry:       l.entry,
		EntrySymbol: l.symName,
		Size:        len(img),
		LoadStart:   l.loadLow,
		LoadEnd:     l.loadHigh,
		LazyEnd:     l.bssEnd,
		NoteOffset:  l.note.off,
		NoteSize:    l.note.filesz,
		MB2Offset:   uint64(mb2[0]),
		MB2Size:     uint64(p.length),
	}
	if opts.Multiboot1Test {
		if len(mb1) != 1 {
			return Report{}, errf(KindVerify, "found %d multiboot v1 headers in the first %d bytes, expected 1", len(mb1), MB1SearchLimit)
		}
		off := mb1[0]
		if off+mb1HeaderSize > min(len(img), MB1SearchLimit) {
			return Report{}, errf(KindVerify, "multiboot v1 header at %#x does not end within the first %d bytes", off, MB1SearchLimit)
		}
		want, err := l.mb1Fields()
		if err != nil {
			return Report{}, err
		}
		want.HeaderAddr = uint32(l.loads[0].vaddr + uint64(off))
		if got := buildMB1Header(want); !bytes.Equal(img[off:off+mb1HeaderSize], got) {
			return Report{}, errf(KindVerify, "multiboot v1 header at %#x is % x, expected % x", off, img[off:off+mb1HeaderSize], got)
		}
		rep.HasMB1, rep.MB1Offset = true, uint64(off)
	} else if len(mb1) > 0 {
		return Report{}, errf(KindVerify, "found a multiboot v1 header at %#x: QEMU would use multiboot v1 instead of PVH", mb1[0])
	}
	if len(img) >= linuxHdrSOffset+4 && string(img[linuxHdrSOffset:linuxHdrSOffset+4]) == "HdrS" {
		return Report{}, errf(KindVerify, "the Linux boot magic \"HdrS\" is at file %#x: QEMU would boot the image as a bzImage", linuxHdrSOffset)
	}
	return rep, nil
}
