package testkernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
)

func TestELF(t *testing.T) {
	img, err := ELF(Program{Output: "hello\n", ShowCmdline: true, Action: TripleFault, Status: 3})
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Type != elf.ET_EXEC {
		t.Errorf("header: %v %v %v", f.Class, f.Machine, f.Type)
	}
	var load, note *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			load = p
		case elf.PT_NOTE:
			note = p
		}
	}
	if load == nil || note == nil {
		t.Fatalf("program headers: %v", f.Progs)
	}
	if load.Paddr != Base || load.Off != 0 || load.Filesz != uint64(len(img)) || load.Memsz <= load.Filesz {
		t.Errorf("PT_LOAD %+v", load.ProgHeader)
	}
	if f.Entry < Base || f.Entry >= Base+uint64(len(img)) {
		t.Errorf("entry %#x outside the image", f.Entry)
	}

	// PVH note: name "Xen", type 18, the entry point.
	n := img[note.Off : note.Off+note.Filesz]
	le := binary.LittleEndian
	if le.Uint32(n[0:]) != 4 || le.Uint32(n[4:]) != 4 || le.Uint32(n[8:]) != xenPhys32Entry || string(n[12:16]) != "Xen\x00" {
		t.Errorf("PVH note % x", n)
	}
	if got := le.Uint32(n[16:]); uint64(got) != f.Entry {
		t.Errorf("PVH entry %#x, e_entry %#x", got, f.Entry)
	}

	// Multiboot2 header: 8-aligned in the first 32 KiB, checksum zero.
	i := bytes.Index(img, le.AppendUint32(nil, mb2HeaderMagic))
	if i < 0 || i%8 != 0 || i > 32768-24 {
		t.Fatalf("multiboot2 header at %d", i)
	}
	var sum uint32
	for k := 0; k < 4; k++ {
		sum += le.Uint32(img[i+4*k:])
	}
	if sum != 0 || le.Uint32(img[i+8:]) != 24 {
		t.Errorf("multiboot2 header checksum %#x length %d", sum, le.Uint32(img[i+8:]))
	}

	// The output text is in the image, NUL-terminated.
	if !bytes.Contains(img, []byte("hello\n\x00")) {
		t.Error("output text missing")
	}
}

func TestELFErrors(t *testing.T) {
	if _, err := ELF(Program{Output: "a\x00b"}); err == nil {
		t.Error("NUL byte accepted")
	}
	if _, err := ELF(Program{Output: strings.Repeat("x", 5000)}); err == nil {
		t.Error("oversized output accepted")
	}
	if err := Write(filepath.Join(t.TempDir(), "no", "dir", "k.elf"), Program{}); err == nil {
		t.Error("Write to a missing directory succeeded")
	}
}

func TestAsmErrors(t *testing.T) {
	a := newAsm(0x1000)
	a.emit(0xeb).rel8("nowhere")
	if _, err := a.finish(); err == nil {
		t.Error("undefined label accepted")
	}
	a = newAsm(0x1000)
	a.emit(0xeb).rel8("far")
	a.emit(make([]byte, 200)...)
	a.label("far")
	if _, err := a.finish(); err == nil {
		t.Error("rel8 out of range accepted")
	}
	a = newAsm(0x1000)
	a.label("top")
	a.emit(0x90)
	a.emit(0xeb).rel8("top")
	a.emit(0xe8).rel32("top")
	a.emit(0xb8).abs32("top")
	b, err := a.finish()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x90, 0xeb, 0xfd, 0xe8, 0xf8, 0xff, 0xff, 0xff, 0xb8, 0x00, 0x10, 0x00, 0x00}
	if !bytes.Equal(b, want) {
		t.Errorf("assembled % x, want % x", b, want)
	}
}
