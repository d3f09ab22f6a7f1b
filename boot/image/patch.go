// Package image turns the ELF that the stock Go linker produces for the
// juice kernel into an image that boots through both PVH (QEMU
// -kernel, Firecracker, Cloud Hypervisor) and multiboot2 (GRUB).
//
// The kernel is linked with
//
//	go build -ldflags "-E juice/boot.entry32 -T 0x200000 -R 0x1000"
//
// which yields an ET_EXEC whose first PT_LOAD maps the ELF headers, whose
// .text starts one page into the file, and whose PT_NOTE covers the Go
// build-id note in the header page. Patch validates exactly that layout,
// refusing anything else with an *Error that names the field, the value
// found and the value expected, and then:
//
//   - rewrites the PT_NOTE's bytes into a Xen XEN_ELFNOTE_PHYS32_ENTRY note
//     (the PVH entry, = e_entry) followed by a padding note;
//   - writes a multiboot2 header (with an optional information request for
//     cmdline, modules, memory maps and ACPI RSDPs) into the zero-filled gap
//     between the section header table and the notes;
//   - optionally (Options.Multiboot1Test) also writes a multiboot v1 header
//     with a.out-kludge address fields, so that QEMU's multiboot v1 loader
//     takes the image; this exists only to test that juice refuses a
//     loader it does not support.
//
// Program headers, section headers and all other bytes are left
// unchanged. Verify re-checks a patched image. In messages, "PT_LOAD #n"
// and "program header #n" use the index in the program header table.
//
// The Go build-id note is overwritten, so `go tool buildid` cannot read
// the patched image (the section keeps its name .note.go.buildid but
// holds the Xen and padding notes); .note.gnu.build-id is untouched.
package image

import (
	"bytes"
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
)

// DefaultEntrySymbol is the kernel's 32-bit entry point, reached by both
// PVH and multiboot2.
const DefaultEntrySymbol = "juice/boot.entry32"

// Options controls Patch and Verify.
type Options struct {
	// EntrySymbol is the symbol e_entry must equal (the -E linker flag).
	// Empty means DefaultEntrySymbol.
	EntrySymbol string
	// Multiboot1Test also writes a multiboot v1 header with a.out-kludge
	// address fields (for the unsupported-loader integration test only).
	Multiboot1Test bool
}

func (o Options) entrySymbol() string {
	if o.EntrySymbol == "" {
		return DefaultEntrySymbol
	}
	return o.EntrySymbol
}

// Report describes a patched image.
type Report struct {
	Entry       uint64 // e_entry, also the PVH and multiboot entry
	EntrySymbol string // the .symtab name e_entry matched (may carry ".abi0")
	Size        int    // image size in bytes
	LoadStart   uint64 // lowest PT_LOAD physical address
	LoadEnd     uint64 // end of the last PT_LOAD's memory image (bss included)
	NoteOffset  uint64 // file offset of the PT_NOTE holding the PVH note
	NoteSize    uint64 // its size in bytes
	MB2Offset   uint64 // file offset of the multiboot2 header
	MB2Size     uint64 // its header_length
	HasMB1      bool   // whether a multiboot v1 header was written
	MB1Offset   uint64 // file offset of the multiboot v1 header, if HasMB1
	// LazyTail is [LoadEnd, LazyEnd): bss that the last PT_LOAD no longer
	// covers, so that loaders neither reserve nor zero it; the kernel maps
	// it itself, backing pages on first touch. LazyEnd is 0 if none.
	LazyEnd uint64
}

// String is the one-line summary printed by cmd/postlink.
func (r Report) String() string {
	s := fmt.Sprintf("entry %#x (%s), %d bytes, load [%#x, %#x), PVH note at file %#x (%d bytes), multiboot2 header at file %#x (%d bytes)",
		r.Entry, r.EntrySymbol, r.Size, r.LoadStart, r.LoadEnd, r.NoteOffset, r.NoteSize, r.MB2Offset, r.MB2Size)
	if r.HasMB1 {
		s += fmt.Sprintf(", multiboot1 test header at file %#x (%d bytes)", r.MB1Offset, mb1HeaderSize)
	}
	if r.LazyEnd != 0 {
		s += fmt.Sprintf(", lazy bss [%#x, %#x) left to the kernel", r.LoadEnd, r.LazyEnd)
	}
	return s
}

// linuxHdrSOffset is where QEMU looks for the Linux boot protocol magic
// "HdrS"; an image with it there would be booted as a bzImage.
const linuxHdrSOffset = 0x202

// Patch validates raw (the Go linker's ELF) and returns a copy with the
// PVH note and the multiboot2 header (and, with Multiboot1Test, the
// multiboot v1 header) written in, after re-validating the result with
// Verify and checking that no other byte changed. raw is not modified.
// Errors are *Error values.
func Patch(raw []byte, opts Options) ([]byte, Report, error) {
	sym := opts.entrySymbol()
	l, err := inspect(raw, sym, false)
	if err != nil {
		return nil, Report{}, err
	}
	if err := checkNoBootHeaders(raw); err != nil {
		return nil, Report{}, err
	}

	// Trim the lazy tail first: the multiboot v1 fields follow memsz.
	out := bytes.Clone(raw)
	trimOff, trimmed, err := trimLazyTail(out, l)
	if err != nil {
		return nil, Report{}, err
	}
	if trimmed {
		if l, err = inspect(out, sym, false); err != nil {
			return nil, Report{}, err
		}
	}

	need := uint64(mb2HeaderLen)
	var mb1 mb1Fields
	if opts.Multiboot1Test {
		mb1, err = l.mb1Fields()
		if err != nil {
			return nil, Report{}, err
		}
		need = uint64(mb2HeaderLen) + mb1HeaderSize // mb2HeaderLen is 8-aligned
	}
	gap, err := l.findGap(raw, need)
	if err != nil {
		return nil, Report{}, err
	}
	mb1Off := gap + mb2HeaderLen
	if opts.Multiboot1Test && mb1Off+mb1HeaderSize > MB1SearchLimit {
		return nil, Report{}, errf(KindNoGap, "the multiboot v1 header would be at file [%#x, %#x), beyond the first %d bytes", mb1Off, mb1Off+mb1HeaderSize, MB1SearchLimit)
	}

	n := l.note
	writePVHNote(out[n.off:n.off+n.filesz], uint32(l.entry))
	copy(out[gap:], buildMB2Header())
	if opts.Multiboot1Test {
		mb1.HeaderAddr = uint32(l.loads[0].vaddr + mb1Off)
		copy(out[mb1Off:], buildMB1Header(mb1))
	}

	rep, err := Verify(out, opts)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, Report{}, errf(KindVerify, "re-validation of the patched image failed: %s", e.Msg)
		}
		return nil, Report{}, errf(KindVerify, "re-validation of the patched image failed: %v", err)
	}
	if rep.Entry != l.entry || rep.MB2Offset != gap || rep.NoteOffset != n.off || (opts.Multiboot1Test && rep.MB1Offset != mb1Off) {
		return nil, Report{}, errf(KindVerify, "re-validation found entry %#x, note at %#x, multiboot2 at %#x; wrote entry %#x, note at %#x, multiboot2 at %#x", rep.Entry, rep.NoteOffset, rep.MB2Offset, l.entry, n.off, gap)
	}
	// Only the note span and the header gap may differ.
	hdrEnd := gap + need
	changed := [][2]uint64{{n.off, n.off + n.filesz}, {gap, hdrEnd}}
	if trimmed {
		changed = append(changed, [2]uint64{trimOff, trimOff + 8})
	}
	slices.SortFunc(changed, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	prev := uint64(0)
	for _, c := range append(changed, [2]uint64{l.size, l.size}) {
		if !bytes.Equal(raw[prev:c[0]], out[prev:c[0]]) {
			return nil, Report{}, errf(KindVerify, "patched image differs from the input outside the note and header ranges in [%#x, %#x)", prev, c[0])
		}
		prev = c[1]
	}
	return out, rep, nil
}

// checkNoBootHeaders refuses an input that already carries a boot header
// QEMU or GRUB would pick up before (or instead of) the ones Patch writes.
func checkNoBootHeaders(raw []byte) error {
	if offs := findMB1(raw); len(offs) > 0 {
		return errf(KindBootConflict, "input already has a multiboot v1 header at file %#x: QEMU would boot it through multiboot v1 instead of PVH", offs[0])
	}
	if offs := findMB2(raw); len(offs) > 0 {
		return errf(KindBootConflict, "input already has a multiboot2 header at file %#x (already patched?)", offs[0])
	}
	if len(raw) >= linuxHdrSOffset+4 && string(raw[linuxHdrSOffset:linuxHdrSOffset+4]) == "HdrS" {
		return errf(KindBootConflict, "input has the Linux boot magic \"HdrS\" at file %#x: QEMU would boot it as a bzImage", linuxHdrSOffset)
	}
	return nil
}

// usedRanges lists the file ranges in use: ELF header, program and
// section header tables, every section's bytes and every non-PT_LOAD
// segment's bytes (PT_LOAD covers everything and says nothing about use).
func (l *layout) usedRanges() [][2]uint64 {
	r := [][2]uint64{
		{0, ehdrSize},
		{l.phoff, l.phoff + l.phnum*phdrSize},
		{l.shoff, l.shoff + l.shnum*shdrSize},
	}
	for _, s := range l.secs {
		if s.fileBacked() {
			r = append(r, [2]uint64{s.off, s.off + s.size})
		}
	}
	for _, s := range l.segs {
		if s.typ != elf.PT_LOAD && s.filesz > 0 {
			r = append(r, [2]uint64{s.off, s.off + s.filesz})
		}
	}
	return r
}

// findGap returns the lowest 8-aligned file offset of need unused bytes
// inside the first 32 KiB, and checks that those bytes are all zero.
func (l *layout) findGap(raw []byte, need uint64) (uint64, error) {
	limit := min(l.size, MB2SearchLimit)
	used := l.usedRanges()
	cand := uint64(0)
	for {
		if cand+need > limit {
			return 0, errf(KindNoGap, "no unused %d-byte gap, %d-aligned, in the first %d bytes of the file for the multiboot headers", need, MB2Align, limit)
		}
		moved := false
		for _, u := range used {
			if u[0] < cand+need && cand < u[1] { // overlap
				next, _ := alignUp(u[1], MB2Align) // u[1] <= file size: no overflow
				cand = next
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	for i := cand; i < cand+need; i++ {
		if raw[i] != 0 {
			return 0, errf(KindGapNotZero, "the gap [%#x, %#x) for the multiboot headers is not zero-filled: byte at %#x is %#x, expected 0", cand, cand+need, i, raw[i])
		}
	}
	return cand, nil
}

// mb1Fields computes the multiboot v1 a.out-kludge fields. They describe
// the file as a flat binary, so every file-backed PT_LOAD must map file
// offset to address by the same delta, and every PT_LOAD but the last
// must have no bss (the flat load would fill it with file bytes).
func (l *layout) mb1Fields() (mb1Fields, error) {
	first := l.loads[0]
	delta := first.vaddr - first.off
	var fileEnd uint64
	for i, s := range l.loads {
		if s.filesz == 0 {
			continue
		}
		if s.vaddr < s.off || s.vaddr-s.off != delta {
			return mb1Fields{}, errf(KindNotFlat, "PT_LOAD #%d maps file offset %#x to %#x (delta %#x), expected delta %#x like PT_LOAD #%d: multiboot v1 needs a flat file-to-memory mapping", s.idx, s.off, s.vaddr, s.vaddr-s.off, delta, first.idx)
		}
		if i != len(l.loads)-1 && s.memsz != s.filesz {
			return mb1Fields{}, errf(KindNotFlat, "PT_LOAD #%d has memsz %#x > filesz %#x but is not the last PT_LOAD: a flat multiboot v1 load would not zero its bss", s.idx, s.memsz, s.filesz)
		}
		fileEnd = s.off + s.filesz
	}
	return mb1Fields{
		Flags:       MB1FlagAOutKludge,
		LoadAddr:    uint32(delta),
		LoadEndAddr: uint32(delta + fileEnd),
		BSSEndAddr:  uint32(l.loadHigh),
		EntryAddr:   uint32(l.entry),
	}, nil
}

// LazyTailMin is the least size of a trailing bss symbol that Patch
// leaves out of the last PT_LOAD.
const LazyTailMin = 1 << 20

// trimLazyTail shortens the last PT_LOAD's memsz so that it ends before
// the last bss symbol when that symbol is at least LazyTailMin bytes: Go
// 1.26's crypto/internal/fips140/drbg.memory is a 32 MiB array touched
// only in FIPS 140 mode. Loaders then neither need nor zero that memory,
// and juice's kernel backs those pages on first touch (it finds the tail
// by comparing its program headers with runtime.end). It returns the
// file offset of the p_memsz field it changed.
func trimLazyTail(img []byte, l *layout) (uint64, bool, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return 0, false, errf(KindVerify, "debug/elf cannot open the image: %v", err)
	}
	syms, err := f.Symbols()
	if err != nil {
		return 0, false, errf(KindSymtab, "debug/elf cannot read .symtab: %v", err)
	}
	last := l.loads[len(l.loads)-1]
	end := last.vaddr + last.memsz
	var top elf.Symbol
	for _, s := range syms {
		if s.Size == 0 || s.Value < last.vaddr+last.filesz || s.Value+s.Size > end {
			continue
		}
		if s.Value+s.Size > top.Value+top.Size || (s.Value+s.Size == top.Value+top.Size && s.Size > top.Size) {
			top = s
		}
	}
	if top.Size < LazyTailMin || end-(top.Value+top.Size) >= 4096 {
		return 0, false, nil
	}
	newEnd := (top.Value + 4095) &^ 4095
	if newEnd < last.vaddr+last.filesz || newEnd >= end {
		return 0, false, nil
	}
	off := l.phoff + uint64(last.idx)*56 + 40
	le.PutUint64(img[off:], newEnd-last.vaddr)
	return off, true, nil
}
