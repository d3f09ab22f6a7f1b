package image

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"juice/boot/image/testkernel"
)

// Program header indices of the Go linker's layout.
const (
	phPHDR  = 0
	phNOTE  = 1
	phText  = 2 // PT_LOAD R E: headers, notes, .text
	phRO    = 3 // PT_LOAD R: .rodata ...
	phData  = 4 // PT_LOAD RW: data and bss
	phStack = 5
)

// Program header field offsets.
const (
	pType   = 0
	pOffset = 8
	pVaddr  = 16
	pPaddr  = 24
	pFilesz = 32
	pMemsz  = 40
	pAlign  = 48
)

var le64 = binary.LittleEndian

func ph(i, field int) int { return 64 + 56*i + field }

func getPh(b []byte, i, field int) uint64 { return le64.Uint64(b[ph(i, field):]) }
func setPh(b []byte, i, field int, v uint64) {
	if field == pType {
		le64.PutUint32(b[ph(i, field):], uint32(v))
		return
	}
	le64.PutUint64(b[ph(i, field):], v)
}

// shdr returns the offset of the section header named name.
func shdr(t *testing.T, b []byte, name string) int {
	t.Helper()
	f := openELF(t, b)
	for i, s := range f.Sections {
		if s.Name == name {
			return int(le64.Uint64(b[40:])) + 64*i
		}
	}
	t.Fatalf("no section %s", name)
	return 0
}

func TestPatchRefuses(t *testing.T) {
	base := kernel(t)
	f := openELF(t, base)
	shEnd := 64 + 56*len(f.Progs) + 64*len(f.Sections)
	if len(f.Progs) != 6 {
		t.Fatalf("test kernel has %d program headers, the cases assume 6", len(f.Progs))
	}
	entry := f.Entry

	// notFlat moves the data PT_LOAD (and its sections) up one page in
	// memory but not in the file.
	notFlat := func(t *testing.T, b []byte) []byte {
		lo, hi := getPh(b, phData, pVaddr), getPh(b, phData, pVaddr)+getPh(b, phData, pMemsz)
		setPh(b, phData, pVaddr, lo+0x1000)
		setPh(b, phData, pPaddr, lo+0x1000)
		shoff := int(le64.Uint64(b[40:]))
		for i := range int(le64.Uint16(b[60:])) {
			s := shoff + 64*i
			if a := le64.Uint64(b[s+16:]); a >= lo && a < hi {
				le64.PutUint64(b[s+16:], a+0x1000)
			}
		}
		return b
	}

	type tc struct {
		name   string
		mutate func(t *testing.T, b []byte) []byte
		opts   Options
		kind   Kind
		substr string
	}
	cases := []tc{
		{"not ELF", func(t *testing.T, b []byte) []byte { b[0] = 0; return b }, testOpts, KindNotELF, "ELF magic"},
		{"ELF32", func(t *testing.T, b []byte) []byte { b[4] = 1; return b }, testOpts, KindClass, "EI_CLASS is 1"},
		{"big-endian", func(t *testing.T, b []byte) []byte { b[5] = 2; return b }, testOpts, KindData, "EI_DATA is 2"},
		{"OSABI", func(t *testing.T, b []byte) []byte { b[7] = 3; return b }, testOpts, KindIdent, "EI_OSABI is 3"},
		{"ET_DYN", func(t *testing.T, b []byte) []byte { le64.PutUint16(b[16:], 3); return b }, testOpts, KindType, "e_type is 3 (ET_DYN), expected 2"},
		{"EM_386", func(t *testing.T, b []byte) []byte { le64.PutUint16(b[18:], 3); return b }, testOpts, KindMachine, "e_machine is 3 (EM_386), expected 62 (EM_X86_64)"},
		{"e_flags", func(t *testing.T, b []byte) []byte { le64.PutUint32(b[48:], 0x10002); return b }, testOpts, KindFlags, "e_flags is 0x10002"},
		{"phentsize", func(t *testing.T, b []byte) []byte { le64.PutUint16(b[54:], 32); return b }, testOpts, KindHeaderSize, "e_phentsize is 32"},
		{"phoff", func(t *testing.T, b []byte) []byte { le64.PutUint64(b[32:], 0x80); return b }, testOpts, KindPhdrTable, "e_phoff is 0x80"},
		{"shoff", func(t *testing.T, b []byte) []byte { le64.PutUint64(b[40:], le64.Uint64(b[40:])+8); return b }, testOpts, KindShdrTable, "e_shoff is"},
		{"paddr != vaddr", func(t *testing.T, b []byte) []byte { setPh(b, phRO, pPaddr, 0); return b }, testOpts, KindPaddr,
			fmt.Sprintf("PT_LOAD #3 has paddr 0x0 != vaddr %#x: the Go linker's layout changed", getPh(base, phRO, pVaddr))},
		{"filesz > memsz", func(t *testing.T, b []byte) []byte {
			setPh(b, phRO, pMemsz, getPh(b, phRO, pFilesz)-1)
			return b
		}, testOpts, KindSegmentSize, "PT_LOAD #3 has filesz"},
		{"below 1 MiB", func(t *testing.T, b []byte) []byte {
			setPh(b, phRO, pVaddr, 0x80000)
			setPh(b, phRO, pPaddr, 0x80000)
			return b
		}, testOpts, KindSegmentRange, "PT_LOAD #3 [0x80000"},
		{"above 4 GiB", func(t *testing.T, b []byte) []byte {
			setPh(b, phData, pVaddr, 0xffff_f000)
			setPh(b, phData, pPaddr, 0xffff_f000)
			return b
		}, testOpts, KindSegmentRange, "outside [1 MiB, 4 GiB)"},
		{"overlap", func(t *testing.T, b []byte) []byte {
			setPh(b, phData, pVaddr, getPh(b, phRO, pVaddr))
			setPh(b, phData, pPaddr, getPh(b, phRO, pVaddr))
			return b
		}, testOpts, KindSegmentOrder, "sorted and non-overlapping"},
		{"misaligned", func(t *testing.T, b []byte) []byte {
			setPh(b, phRO, pVaddr, getPh(b, phRO, pVaddr)+0x10)
			setPh(b, phRO, pPaddr, getPh(b, phRO, pPaddr)+0x10)
			return b
		}, testOpts, KindSegmentAlign, "PT_LOAD #3 has align 0x1000"},
		{"first PT_LOAD not at offset 0", func(t *testing.T, b []byte) []byte {
			setPh(b, phText, pOffset, 0x1000)
			setPh(b, phText, pFilesz, getPh(b, phText, pFilesz)-0x1000)
			return b
		}, testOpts, KindFirstLoad, "starts at file offset 0x1000, expected 0"},
		{"no PT_NOTE", func(t *testing.T, b []byte) []byte { setPh(b, phNOTE, pType, uint64(elf.PT_NULL)); return b }, testOpts, KindNote, "no PT_NOTE"},
		{"PT_NOTE moved", func(t *testing.T, b []byte) []byte {
			setPh(b, phNOTE, pOffset, getPh(b, phNOTE, pOffset)+4)
			return b
		}, testOpts, KindNote, "PT_NOTE covers file"},
		{"PT_NOTE too small", func(t *testing.T, b []byte) []byte {
			setPh(b, phNOTE, pFilesz, 16)
			setPh(b, phNOTE, pMemsz, 16)
			le64.PutUint64(b[shdr(t, b, ".note.go.buildid")+32:], 16)
			return b
		}, testOpts, KindNoteSize, "PT_NOTE is 16 bytes, expected at least 20"},
		{"PT_TLS", func(t *testing.T, b []byte) []byte { setPh(b, phStack, pType, uint64(elf.PT_TLS)); return b }, testOpts, KindProgHeaders, "program header #5 is PT_TLS, expected PT_GNU_STACK"},
		{"PT_PHDR", func(t *testing.T, b []byte) []byte { setPh(b, phPHDR, pVaddr, getPh(b, phPHDR, pVaddr)+8); return b }, testOpts, KindPhdrSegment, "PT_PHDR has vaddr"},
		{".text moved", func(t *testing.T, b []byte) []byte {
			s := shdr(t, b, ".text")
			le64.PutUint64(b[s+16:], le64.Uint64(b[s+16:])+0x40)
			le64.PutUint64(b[s+24:], le64.Uint64(b[s+24:])+0x40)
			le64.PutUint64(b[s+32:], le64.Uint64(b[s+32:])-0x40)
			return b
		}, testOpts, KindText, ".text is at file offset 0x1040"},
		{"no .symtab", func(t *testing.T, b []byte) []byte {
			le64.PutUint32(b[shdr(t, b, ".symtab")+4:], uint32(elf.SHT_PROGBITS))
			return b
		}, testOpts, KindSymtab, "no .symtab"},
		{"entry symbol missing", func(t *testing.T, b []byte) []byte { return b },
			Options{EntrySymbol: "main.nope"}, KindSymbolMissing, "entry symbol main.nope (or main.nope.abi0) not found"},
		{"entry mismatch", func(t *testing.T, b []byte) []byte { le64.PutUint64(b[24:], entry+4); return b }, testOpts, KindEntryMismatch,
			fmt.Sprintf("e_entry is %#x but symbol %s.abi0 is %#x", entry+4, testkernel.EntrySymbol, entry)},
		{"entry above 4 GiB", func(t *testing.T, b []byte) []byte { le64.PutUint64(b[24:], 1<<32); return b }, testOpts, KindEntryRange, "not below 4 GiB"},
		{"entry not executable", func(t *testing.T, b []byte) []byte { le64.PutUint64(b[24:], getPh(b, phRO, pVaddr)); return b }, testOpts, KindEntryRange, "executable PT_LOAD"},
		{"non-zero gap", func(t *testing.T, b []byte) []byte { b[shEnd+0x10] = 0xff; return b }, testOpts, KindGapNotZero,
			fmt.Sprintf("byte at %#x is 0xff", shEnd+0x10)},
		{"multiboot v1 header already present", func(t *testing.T, b []byte) []byte {
			o := (shEnd + 0x20) &^ 3
			le64.PutUint32(b[o:], wantMB1Magic)
			m := uint32(wantMB1Magic)
			le64.PutUint32(b[o+8:], -m)
			return b
		}, testOpts, KindBootConflict, "multiboot v1 header"},
		{"multiboot v1 not flat", notFlat, Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: true}, KindNotFlat, "PT_LOAD #4 maps file offset"},
	}
	for _, n := range []int{0, 3, 63, 64, 0x100, 0x300, 0x800, 0x1000, 0x8000, len(base) / 2, len(base) - 1} {
		substr := "past the end of the file"
		if n < 64 {
			substr = "shorter than the 64-byte ELF header"
		}
		cases = append(cases, tc{fmt.Sprintf("truncated to %d", n), func(t *testing.T, b []byte) []byte { return b[:n] }, testOpts, KindTruncated, substr})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(t, kernel(t))
			out, _, err := Patch(b, c.opts)
			if err == nil {
				t.Fatalf("Patch accepted the image (%d bytes out)", len(out))
			}
			if k := kindOf(err); k != c.kind {
				t.Fatalf("error kind %v (%v), want %v", k, err, c.kind)
			}
			if !strings.HasPrefix(err.Error(), "postlink: ") || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("error %q does not contain %q", err, c.substr)
			}
			if out != nil {
				t.Error("output returned with an error")
			}
		})
	}

	// The not-flat mutation is fine for PVH + multiboot2.
	t.Run("not flat without multiboot v1", func(t *testing.T) {
		b := notFlat(t, kernel(t))
		if _, _, err := Patch(b, testOpts); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckNoBootHeaders(t *testing.T) {
	b := make([]byte, 0x1000)
	if err := checkNoBootHeaders(b); err != nil {
		t.Fatal(err)
	}
	copy(b[0x202:], "HdrS")
	if kindOf(checkNoBootHeaders(b)) != KindBootConflict {
		t.Error("HdrS not refused")
	}
	b = make([]byte, 0x9000)
	le64.PutUint32(b[0x7ff0:], wantMB2Magic)
	le64.PutUint32(b[0x7ff0+8:], 16)
	sum := uint32(wantMB2Magic + 16)
	le64.PutUint32(b[0x7ff0+12:], -sum)
	if err := checkNoBootHeaders(b); kindOf(err) != KindBootConflict || !strings.Contains(err.Error(), "0x7ff0") {
		t.Errorf("multiboot2 header not refused: %v", err)
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindTruncated; k <= KindVerify; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "Kind(") || seen[s] {
			t.Errorf("Kind %d has name %q", int(k), s)
		}
		seen[s] = true
	}
	if Kind(999).String() != "Kind(999)" {
		t.Error(Kind(999).String())
	}
}
