package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"juice/boot/image/testkernel"
)

// synthKernel builds a small ELF (about 12 KiB) with the Go linker's
// layout: PT_PHDR, PT_NOTE over .note.go.buildid at 0xf78, three
// PT_LOADs from file offset 0 at 0x1ff000, PT_GNU_STACK; .text at file
// offset 0x1000 / address 0x200000; a .symtab with main.entry32.abi0. It
// gives the fuzzer a valid input small enough to mutate effectively.
func synthKernel(t testing.TB) []byte {
	t.Helper()
	const (
		base     = 0x1ff000
		phoff    = 64
		phnum    = 6
		shoff    = phoff + phnum*56
		shnum    = 8
		noteOff  = 0xf78
		noteSize = 0x64
		textOff  = 0x1000
		textSize = 0x40
		entry    = base + textOff + 0x10
		roOff    = 0x2000
		dataOff  = 0x3000
		dataSize = 0x20
		bssSize  = 0x100
		symOff   = dataOff + dataSize
	)
	shstr := "\x00.note.go.buildid\x00.text\x00.rodata\x00.data\x00.symtab\x00.strtab\x00.shstrtab\x00"
	nameOff := func(n string) uint32 { return uint32(bytes.Index([]byte(shstr), []byte("\x00"+n+"\x00")) + 1) }
	strtab := "\x00main.entry32.abi0\x00"
	strOff := uint64(symOff + 2*24)
	shstrOff := strOff + uint64(len(strtab))
	b := make([]byte, shstrOff+uint64(len(shstr)))
	put := func(off uint64, v any) {
		if _, err := binary.Encode(b[off:], binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1, Entry: entry,
		Phoff: phoff, Shoff: shoff, Ehsize: 64, Phentsize: 56, Phnum: phnum, Shentsize: 64, Shnum: shnum, Shstrndx: 7,
	}
	copy(h.Ident[:], "\x7fELF\x02\x01\x01")
	put(0, h)
	progs := []elf.Prog64{
		{Type: uint32(elf.PT_PHDR), Flags: uint32(elf.PF_R), Off: phoff, Vaddr: base + phoff, Paddr: base + phoff, Filesz: phnum * 56, Memsz: phnum * 56, Align: 0x1000},
		{Type: uint32(elf.PT_NOTE), Flags: uint32(elf.PF_R), Off: noteOff, Vaddr: base + noteOff, Paddr: base + noteOff, Filesz: noteSize, Memsz: noteSize, Align: 4},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: base, Paddr: base, Filesz: textOff + textSize, Memsz: textOff + textSize, Align: 0x1000},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R), Off: roOff, Vaddr: base + roOff, Paddr: base + roOff, Filesz: 0x20, Memsz: 0x20, Align: 0x1000},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W), Off: dataOff, Vaddr: base + dataOff, Paddr: base + dataOff, Filesz: dataSize, Memsz: dataSize + bssSize, Align: 0x1000},
		{Type: uint32(elf.PT_GNU_STACK), Flags: uint32(elf.PF_R | elf.PF_W), Align: 8},
	}
	for i, p := range progs {
		put(uint64(phoff+56*i), p)
	}
	secs := []elf.Section64{
		{},
		{Name: nameOff(".note.go.buildid"), Type: uint32(elf.SHT_NOTE), Flags: uint64(elf.SHF_ALLOC), Addr: base + noteOff, Off: noteOff, Size: noteSize, Addralign: 4},
		{Name: nameOff(".text"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_EXECINSTR), Addr: base + textOff, Off: textOff, Size: textSize, Addralign: 64},
		{Name: nameOff(".rodata"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Addr: base + roOff, Off: roOff, Size: 0x20, Addralign: 32},
		{Name: nameOff(".data"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE), Addr: base + dataOff, Off: dataOff, Size: dataSize, Addralign: 32},
		{Name: nameOff(".symtab"), Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: 2 * 24, Link: 6, Info: 1, Addralign: 8, Entsize: 24},
		{Name: nameOff(".strtab"), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1},
		{Name: nameOff(".shstrtab"), Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	for i, s := range secs {
		put(uint64(shoff+64*i), s)
	}
	// Go build-id note: namesz 4 "Go\0\0", type 4, 0x53-byte descriptor.
	put(noteOff, [3]uint32{4, 0x53, 4})
	copy(b[noteOff+12:], "Go\x00\x00")
	copy(b[noteOff+16:], bytes.Repeat([]byte("b"), 0x53))
	copy(b[textOff:textOff+textSize], bytes.Repeat([]byte{0xf4}, textSize)) // HLT
	put(symOff+24, elf.Sym64{Name: 1, Info: byte(elf.STB_GLOBAL)<<4 | byte(elf.STT_FUNC), Shndx: 2, Value: entry, Size: 0x10})
	copy(b[strOff:], strtab)
	copy(b[shstrOff:], shstr)
	return b
}

func TestSynthKernel(t *testing.T) {
	raw := synthKernel(t)
	for _, mb1 := range []bool{false, true} {
		out, rep, err := Patch(raw, Options{EntrySymbol: "main.entry32", Multiboot1Test: mb1})
		if err != nil {
			t.Fatalf("mb1=%v: %v", mb1, err)
		}
		if rep.MB2Offset != 0x390 || rep.Entry != 0x200010 || rep.HasMB1 != mb1 {
			t.Errorf("report %+v", rep)
		}
		if _, err := Verify(out, Options{EntrySymbol: "main.entry32", Multiboot1Test: mb1}); err != nil {
			t.Error(err)
		}
	}
}

// FuzzPatch feeds mutated ELF images to Patch and Verify: they must never
// panic, and whatever Patch accepts must re-verify and keep its size. The seeds are
// kilobytes to megabytes, so minimizing each new input by time (the
// default 60 s) stalls the engine; fuzz with a bounded minimization:
//
//	go test -run='^$' -fuzz=FuzzPatch -fuzztime=30s -fuzzminimizetime=100x ./boot/image
func FuzzPatch(f *testing.F) {
	synth := synthKernel(f)
	f.Add(synth, false)
	f.Add(synth, true)
	// Patched images seed Verify's deeper checks.
	for _, mb1 := range []bool{false, true} {
		out, _, err := Patch(synth, Options{EntrySymbol: "main.entry32", Multiboot1Test: mb1})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out, mb1)
	}
	for _, n := range []int{0, 4, 63, 64, 0x100, 0x190, 0x390, 0xf80, 0x1000, 0x2010, 0x3000, len(synth) - 1} {
		f.Add(synth[:n], false)
	}
	if real, err := kernelOrErr(); err == nil {
		f.Add(real, false)
		f.Add(real, true)
		for _, n := range []int{0x40, 0x810, 0xfdc, 0x1000, 0x8000, len(real) / 2, len(real) - 1} {
			f.Add(real[:n], false)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, mb1 bool) {
		in := bytes.Clone(raw)
		opts := Options{EntrySymbol: "main.entry32", Multiboot1Test: mb1}
		// Verify must not panic either; it accepts no unpatched input.
		if _, err := Verify(raw, opts); err == nil && len(findMB2(raw)) == 0 {
			t.Fatal("Verify accepted an image without a multiboot2 header")
		}
		out, rep, err := Patch(raw, opts)
		if !bytes.Equal(in, raw) {
			t.Fatal("Patch modified its input")
		}
		if err != nil {
			if kindOf(err) == 0 {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		if len(out) != len(raw) || rep.Size != len(raw) {
			t.Fatalf("output %d bytes, input %d", len(out), len(raw))
		}
		if _, err := Verify(out, opts); err != nil {
			t.Fatalf("Verify of Patch output: %v", err)
		}
	})
}

func kernelOrErr() ([]byte, error) {
	b, err := testkernel.ELF()
	return bytes.Clone(b), err
}
