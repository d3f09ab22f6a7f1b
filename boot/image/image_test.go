package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"juice/boot/image/testkernel"
)

// Independent constants (not the package's) so the tests can catch a
// wrong constant in the implementation.
const (
	wantMB2Magic = 0xe85250d6
	wantMB1Magic = 0x1badb002
	wantXenType  = 18
)

var testOpts = Options{EntrySymbol: testkernel.EntrySymbol}

// kernel returns a fresh copy of the test kernel ELF built by the Go
// toolchain with the juice kernel's linker flags.
func kernel(t testing.TB) []byte {
	t.Helper()
	b, err := testkernel.ELF()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}

func openELF(t testing.TB, b []byte) *elf.File {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("debug/elf: %v", err)
	}
	return f
}

func u32(b []byte, off uint64) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// testNote is the test's own ELF note parser.
type testNote struct {
	name string
	typ  uint32
	desc []byte
}

func parseTestNotes(t *testing.T, b []byte) []testNote {
	t.Helper()
	var out []testNote
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("trailing %d bytes in PT_NOTE", len(b))
		}
		nsz, dsz, typ := int(u32(b, 0)), int(u32(b, 4)), u32(b, 8)
		nal, dal := (nsz+3)&^3, (dsz+3)&^3
		if 12+nal+dal > len(b) {
			t.Fatalf("note namesz %d descsz %d overruns PT_NOTE (%d bytes left)", nsz, dsz, len(b))
		}
		name := strings.TrimRight(string(b[12:12+nsz]), "\x00")
		out = append(out, testNote{name, typ, b[12+nal : 12+nal+dsz]})
		b = b[12+nal+dal:]
	}
	return out
}

func TestPatchRealKernel(t *testing.T) {
	raw := kernel(t)
	orig := bytes.Clone(raw)
	in := openELF(t, raw)

	out, rep, err := Patch(raw, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, orig) {
		t.Fatal("Patch modified its input")
	}
	if len(out) != len(raw) {
		t.Fatalf("output is %d bytes, input %d", len(out), len(raw))
	}
	f := openELF(t, out)

	// Entry unchanged and equal to the entry symbol.
	if f.Entry != in.Entry || rep.Entry != in.Entry {
		t.Fatalf("entry: out %#x rep %#x, want %#x", f.Entry, rep.Entry, in.Entry)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool {
		return (s.Name == testkernel.EntrySymbol || s.Name == testkernel.EntrySymbol+".abi0") && s.Value == f.Entry
	}) {
		t.Fatalf("no symbol %s at e_entry %#x", testkernel.EntrySymbol, f.Entry)
	}
	if rep.EntrySymbol != testkernel.EntrySymbol && rep.EntrySymbol != testkernel.EntrySymbol+".abi0" {
		t.Errorf("Report.EntrySymbol = %q", rep.EntrySymbol)
	}

	// Segments and sections unchanged.
	if len(f.Progs) != len(in.Progs) {
		t.Fatalf("%d program headers, want %d", len(f.Progs), len(in.Progs))
	}
	lastLoad := -1
	for i := range in.Progs {
		if in.Progs[i].Type == elf.PT_LOAD {
			lastLoad = i
		}
	}
	for i := range f.Progs {
		want := in.Progs[i].ProgHeader
		if i == lastLoad {
			// The only change: the lazy bss tail is left out of memsz.
			want.Memsz = rep.LoadEnd - want.Vaddr
		}
		if f.Progs[i].ProgHeader != want {
			t.Errorf("program header #%d changed: %+v -> %+v", i, in.Progs[i].ProgHeader, f.Progs[i].ProgHeader)
		}
	}
	for i := range f.Sections {
		if f.Sections[i].SectionHeader != in.Sections[i].SectionHeader {
			t.Errorf("section header #%d changed", i)
		}
	}

	// The PVH note: first note of the (only) PT_NOTE, all notes parse.
	var note *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			note = p
		}
	}
	if note == nil {
		t.Fatal("no PT_NOTE")
	}
	data := out[note.Off : note.Off+note.Filesz]
	notes := parseTestNotes(t, data)
	if len(notes) < 1 || notes[0].name != "Xen" || notes[0].typ != wantXenType || len(notes[0].desc) != 4 {
		t.Fatalf("first note = %+v, want Xen type 18 with 4-byte desc", notes)
	}
	if got := binary.LittleEndian.Uint32(notes[0].desc); uint64(got) != f.Entry {
		t.Fatalf("PVH entry %#x, want %#x", got, f.Entry)
	}
	if note.Filesz != note.Memsz || rep.NoteOffset != note.Off || rep.NoteSize != note.Filesz {
		t.Errorf("PT_NOTE filesz %d memsz %d, report %+v", note.Filesz, note.Memsz, rep)
	}

	// The multiboot2 header.
	off := rep.MB2Offset
	if off%8 != 0 || off+rep.MB2Size > 32768 {
		t.Fatalf("multiboot2 header at %#x (+%d) is not 8-aligned in the first 32 KiB", off, rep.MB2Size)
	}
	shEnd := uint64(64 + len(in.Progs)*56 + len(in.Sections)*64)
	if off < shEnd || off+rep.MB2Size > note.Off {
		t.Errorf("multiboot2 header [%#x, +%d) not in the gap [%#x, %#x)", off, rep.MB2Size, shEnd, note.Off)
	}
	if u32(out, off) != wantMB2Magic || u32(out, off+4) != 0 {
		t.Fatalf("multiboot2 magic/arch = %#x/%d", u32(out, off), u32(out, off+4))
	}
	hlen := u32(out, off+8)
	if uint64(hlen) != rep.MB2Size {
		t.Errorf("header_length %d, report %d", hlen, rep.MB2Size)
	}
	if sum := u32(out, off) + u32(out, off+4) + u32(out, off+8) + u32(out, off+12); sum != 0 {
		t.Fatalf("multiboot2 checksum: sum = %#x", sum)
	}
	var types []uint32
	var requested []uint32
	for p := off + 16; p < off+uint64(hlen); {
		typ, flags, size := binary.LittleEndian.Uint16(out[p:]), binary.LittleEndian.Uint16(out[p+2:]), u32(out, p+4)
		types = append(types, uint32(typ))
		if typ == 1 {
			if flags&1 == 0 {
				t.Error("information request tag is not optional")
			}
			for q := p + 8; q < p+uint64(size); q += 4 {
				requested = append(requested, u32(out, q))
			}
		}
		if typ == 0 {
			if size != 8 || p+8 != off+uint64(hlen) {
				t.Errorf("end tag at %#x size %d, header ends at %#x", p, size, off+uint64(hlen))
			}
			break
		}
		p = (p + uint64(size) + 7) &^ 7
	}
	if !slices.Equal(types, []uint32{1, 0}) {
		t.Errorf("multiboot2 tags %v, want [1 0]", types)
	}
	if !slices.Equal(requested, []uint32{1, 3, 6, 14, 15, 17}) {
		t.Errorf("information request %v, want [1 3 6 14 15 17]", requested)
	}

	// No multiboot v1 header: QEMU would prefer it to PVH.
	for o := 0; o+4 <= 8192; o += 4 {
		if u32(out, uint64(o)) == wantMB1Magic {
			t.Fatalf("multiboot v1 magic at %#x in the PVH image", o)
		}
	}
	if rep.HasMB1 {
		t.Error("Report.HasMB1 without Multiboot1Test")
	}

	// Nothing else changed (but the last PT_LOAD's p_memsz).
	memszOff := uint64(64 + 56*lastLoad + 40)
	for i := range out {
		u := uint64(i)
		inNote := u >= note.Off && u < note.Off+note.Filesz
		inHdr := u >= off && u < off+rep.MB2Size
		inMemsz := u >= memszOff && u < memszOff+8
		if !inNote && !inHdr && !inMemsz && out[i] != raw[i] {
			t.Fatalf("byte %#x changed outside the note and header", i)
		}
	}

	// The load range is the PT_LOADs'.
	var lo, hi uint64 = ^uint64(0), 0
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			lo, hi = min(lo, p.Paddr), max(hi, p.Paddr+p.Memsz)
		}
	}
	if rep.LoadStart != lo || rep.LoadEnd != hi || rep.Size != len(out) {
		t.Errorf("report load [%#x, %#x) size %d, want [%#x, %#x) %d", rep.LoadStart, rep.LoadEnd, rep.Size, lo, hi, len(out))
	}
	if s := rep.String(); !strings.Contains(s, "multiboot2 header at file") || strings.Contains(s, "multiboot1") {
		t.Errorf("summary %q", s)
	}

	// Verify accepts the output, refuses the unpatched input.
	if vrep, err := Verify(out, testOpts); err != nil || vrep != rep {
		t.Errorf("Verify(out) = %+v, %v; want %+v", vrep, err, rep)
	}
	if _, err := Verify(raw, testOpts); err == nil {
		t.Error("Verify accepted the unpatched input")
	}
	// Verify with Multiboot1Test expects a multiboot v1 header.
	if _, err := Verify(out, Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: true}); err == nil {
		t.Error("Verify with Multiboot1Test accepted an image without a multiboot v1 header")
	}
	// Patching twice is refused.
	if _, _, err := Patch(out, testOpts); kindOf(err) != KindNoteContent {
		t.Errorf("Patch(patched) error %v, want kind %v", err, KindNoteContent)
	}
}

func TestPatchMultiboot1(t *testing.T) {
	raw := kernel(t)
	in := openELF(t, raw)
	out, rep, err := Patch(raw, Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HasMB1 || !strings.Contains(rep.String(), "multiboot1") {
		t.Fatalf("report %+v", rep)
	}
	off := rep.MB1Offset
	if off%4 != 0 || off+32 > 8192 {
		t.Fatalf("multiboot v1 header at %#x not 4-aligned in the first 8 KiB", off)
	}
	var found []uint64
	for o := uint64(0); o+12 <= 8192; o += 4 {
		if u32(out, o) == wantMB1Magic {
			found = append(found, o)
		}
	}
	if !slices.Equal(found, []uint64{off}) {
		t.Fatalf("multiboot v1 magic at %v, want only %#x", found, off)
	}
	magic, flags, sum := u32(out, off), u32(out, off+4), u32(out, off+8)
	if magic+flags+sum != 0 {
		t.Errorf("multiboot v1 checksum: sum %#x", magic+flags+sum)
	}
	if flags&(1<<16) == 0 {
		t.Errorf("flags %#x lack bit 16 (address fields valid)", flags)
	}
	headerAddr, loadAddr, loadEnd, bssEnd, entry := u32(out, off+12), u32(out, off+16), u32(out, off+20), u32(out, off+24), u32(out, off+28)

	var loads []*elf.Prog
	for _, p := range in.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p)
		}
	}
	first, last := loads[0], loads[len(loads)-1]
	fileBacked := last.Off + last.Filesz // from file offset 0
	if uint64(loadAddr) != first.Paddr {
		t.Errorf("load_addr %#x, want %#x", loadAddr, first.Paddr)
	}
	if uint64(headerAddr-loadAddr) != off {
		t.Errorf("header_addr - load_addr = %#x, want the header's file offset %#x", headerAddr-loadAddr, off)
	}
	if uint64(loadEnd-loadAddr) != fileBacked {
		t.Errorf("load_end_addr - load_addr = %#x, want the file-backed size %#x", loadEnd-loadAddr, fileBacked)
	}
	// The lazy tail is not the loader's business: bss ends with the
	// trimmed last PT_LOAD.
	if uint64(bssEnd) != rep.LoadEnd {
		t.Errorf("bss_end_addr %#x, want the trimmed load end %#x (untrimmed %#x)", bssEnd, rep.LoadEnd, last.Paddr+last.Memsz)
	}
	if uint64(entry) != in.Entry {
		t.Errorf("entry_addr %#x, want %#x", entry, in.Entry)
	}
	// Every file-backed segment is where the flat load puts it.
	for _, p := range loads {
		if p.Filesz > 0 && p.Paddr-uint64(loadAddr) != p.Off {
			t.Errorf("PT_LOAD at %#x offset %#x is not flat from load_addr %#x", p.Paddr, p.Off, loadAddr)
		}
	}
	// It does not overlap the multiboot2 header.
	if off < rep.MB2Offset+rep.MB2Size && rep.MB2Offset < off+32 {
		t.Errorf("multiboot v1 header at %#x overlaps the multiboot2 header at %#x", off, rep.MB2Offset)
	}
	if _, err := Verify(out, Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: true}); err != nil {
		t.Error(err)
	}
	// Without the option, Verify refuses a multiboot v1 header.
	if _, err := Verify(out, testOpts); kindOf(err) != KindVerify {
		t.Errorf("Verify without Multiboot1Test: %v", err)
	}
}

func TestDefaultEntrySymbol(t *testing.T) {
	_, _, err := Patch(kernel(t), Options{})
	if kindOf(err) != KindSymbolMissing || !strings.Contains(err.Error(), "juice/boot.entry32") {
		t.Fatalf("error %v, want a missing juice/boot.entry32", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "juice.elf")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new contents"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new contents" {
		t.Fatalf("read back %q, %v", got, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the output", len(ents))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func kindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// The large trailing bss symbol is left out of the last PT_LOAD: loaders
// neither reserve nor zero it, and Verify accepts the trimmed layout.
func TestLazyTailTrimmed(t *testing.T) {
	raw, err := testkernel.ELF()
	if err != nil {
		t.Fatal(err)
	}
	out, rep, err := Patch(raw, Options{EntrySymbol: testkernel.EntrySymbol})
	if err != nil {
		t.Fatal(err)
	}
	if rep.LazyEnd == 0 || rep.LazyEnd-rep.LoadEnd < testkernel.BigBSS-4096 {
		t.Fatalf("lazy tail [%#x, %#x), want at least %d bytes", rep.LoadEnd, rep.LazyEnd, testkernel.BigBSS-4096)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var last *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			last = p
		}
	}
	if end := last.Vaddr + last.Memsz; end != rep.LoadEnd || end%4096 != 0 {
		t.Errorf("last PT_LOAD ends at %#x, report says %#x (want page-aligned)", end, rep.LoadEnd)
	}
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Name == "main.big" && (s.Value+4095)&^4095 != rep.LoadEnd {
			t.Errorf("main.big at %#x: the segment should end at its first page boundary, ends at %#x", s.Value, rep.LoadEnd)
		}
	}
	if _, err := Verify(out, Options{EntrySymbol: testkernel.EntrySymbol}); err != nil {
		t.Fatalf("Verify rejects the trimmed image: %v", err)
	}
}
