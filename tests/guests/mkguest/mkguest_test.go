package mkguest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"juice/vmm"
)

// The checks below read Convert's output with their own minimal parser
// (not debug/elf, not mkguest's writer), the way a multiboot loader does.

// mbImage is what a multiboot v1 loader sees in an ELF32 kernel.
type mbImage struct {
	entry  uint32
	hdrOff int    // file offset of the multiboot header
	flags  uint32 // its flags
	loads  []mbLoad
}

// mbLoad is one PT_LOAD program header and its bytes.
type mbLoad struct {
	off, paddr, filesz, memsz uint32
	data                      []byte
}

// parseMB finds the multiboot header (magic, flags and checksum summing
// to zero, 4-aligned, in the first 8 KiB) and the PT_LOAD segments of an
// ELF32 file.
func parseMB(b []byte) (mbImage, error) {
	le := binary.LittleEndian
	var img mbImage
	img.hdrOff = -1
	for off := 0; off+12 <= len(b) && off+12 <= 8192; off += 4 {
		m, f, c := le.Uint32(b[off:]), le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
		if m == 0x1BADB002 && m+f+c == 0 {
			img.hdrOff, img.flags = off, f
			break
		}
	}
	if img.hdrOff < 0 {
		return img, errors.New("no multiboot header in the first 8 KiB")
	}
	if len(b) < 52 || string(b[:4]) != "\x7fELF" || b[4] != 1 || b[5] != 1 {
		return img, errors.New("not a little-endian ELF32")
	}
	if le.Uint16(b[18:]) != 3 {
		return img, errors.New("not i386")
	}
	img.entry = le.Uint32(b[24:])
	phoff, phentsize, phnum := le.Uint32(b[28:]), le.Uint16(b[42:]), le.Uint16(b[44:])
	if phentsize != 32 {
		return img, fmt.Errorf("program header size %d", phentsize)
	}
	for i := 0; i < int(phnum); i++ {
		at := uint64(phoff) + uint64(i)*32
		if at+32 > uint64(len(b)) {
			return img, errors.New("program headers past the end")
		}
		ph := b[at:]
		if le.Uint32(ph[0:]) != 1 { // PT_LOAD
			continue
		}
		l := mbLoad{off: le.Uint32(ph[4:]), paddr: le.Uint32(ph[12:]), filesz: le.Uint32(ph[16:]), memsz: le.Uint32(ph[20:])}
		if uint64(l.off)+uint64(l.filesz) > uint64(len(b)) {
			return img, fmt.Errorf("segment %d past the end of the file", i)
		}
		l.data = b[l.off : l.off+l.filesz]
		img.loads = append(img.loads, l)
	}
	return img, nil
}

// byteAt returns the byte the image loads at addr (bss reads as zero),
// and whether anything is loaded there.
func (img mbImage) byteAt(addr uint32) (byte, bool) {
	for _, l := range img.loads {
		if addr >= l.paddr && addr-l.paddr < l.memsz {
			if addr-l.paddr < l.filesz {
				return l.data[addr-l.paddr], true
			}
			return 0, true
		}
	}
	return 0, false
}

// checkImage checks a Convert output against the segments of the input
// (read by debug/elf): same entry, the header right, every input byte at
// or above minAddr at its address, nothing loaded below minAddr or
// beyond the input's segments.
func checkImage(t *testing.T, in, out []byte, minAddr uint32) mbImage {
	t.Helper()
	img, err := parseMB(out)
	if err != nil {
		t.Fatalf("output: %v", err)
	}
	if img.hdrOff%4 != 0 || img.hdrOff+12 > 8192 {
		t.Errorf("multiboot header at %#x", img.hdrOff)
	}
	if img.flags != Flags || img.flags&(1<<16) != 0 {
		t.Errorf("flags %#x, want %#x (no a.out kludge)", img.flags, Flags)
	}
	f, err := elf.NewFile(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(img.entry) != f.Entry {
		t.Errorf("entry %#x, want %#x", img.entry, f.Entry)
	}
	var total uint64
	for _, l := range img.loads {
		if l.paddr < minAddr {
			t.Errorf("segment loads at %#x, below %#x", l.paddr, minAddr)
		}
		if l.off%0x1000 != l.paddr%0x1000 {
			t.Errorf("segment at %#x has file offset %#x: not congruent modulo the page size", l.paddr, l.off)
		}
		if l.filesz > l.memsz {
			t.Errorf("segment at %#x: filesz %#x > memsz %#x", l.paddr, l.filesz, l.memsz)
		}
		total += uint64(l.memsz)
	}
	var want uint64
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		for a := p.Paddr; a < p.Paddr+p.Memsz; a++ {
			if a < uint64(minAddr) {
				continue
			}
			want++
			var wb byte
			if a-p.Paddr < p.Filesz {
				wb = in[p.Off+a-p.Paddr]
			}
			got, ok := img.byteAt(uint32(a))
			if !ok || got != wb {
				t.Fatalf("byte at %#x: got %#x (loaded %v), want %#x", a, got, ok, wb)
			}
		}
	}
	if total != want {
		t.Errorf("output loads %d bytes, input %d at or above %#x", total, want, minAddr)
	}
	return img
}

// progSpec is one program header for elf32.
type progSpec struct {
	typ                       uint32
	off, vaddr, filesz, memsz uint32
	paddr                     uint32 // 0: same as vaddr
	flags                     uint32
}

// elf32 builds a little-endian ELF32 executable for machine with the
// given program headers; each segment's file bytes are filled with a
// pattern derived from its index and offset.
func elf32(entry uint32, progs []progSpec, size int, machine uint16) []byte {
	le := binary.LittleEndian
	b := make([]byte, size)
	copy(b, "\x7fELF\x01\x01\x01")
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint32(b[24:], entry)
	le.PutUint32(b[28:], 52)
	le.PutUint16(b[40:], 52)
	le.PutUint16(b[42:], 32)
	le.PutUint16(b[44:], uint16(len(progs)))
	le.PutUint16(b[46:], 40)
	for i, p := range progs {
		for j := uint32(0); j < p.filesz; j++ {
			if int(p.off+j) < len(b) && p.off+j >= 52+uint32(len(progs))*32 {
				b[p.off+j] = byte(i*31+int(j)) | 1
			}
		}
	}
	for i, p := range progs {
		ph := b[52+i*32:]
		paddr := p.paddr
		if paddr == 0 {
			paddr = p.vaddr
		}
		le.PutUint32(ph[0:], p.typ)
		le.PutUint32(ph[4:], p.off)
		le.PutUint32(ph[8:], p.vaddr)
		le.PutUint32(ph[12:], paddr)
		le.PutUint32(ph[16:], p.filesz)
		le.PutUint32(ph[20:], p.memsz)
		le.PutUint32(ph[24:], p.flags)
		le.PutUint32(ph[28:], 0x1000)
	}
	return b
}

// goLike is laid out like the Go linker's output: a first segment that
// starts with the headers a page below the text, a read-only one, and
// data with bss; plus a note.
func goLike() []byte {
	return elf32(0x100010, []progSpec{
		{typ: 4, off: 0xf00, vaddr: 0xfff00, filesz: 0x20, memsz: 0x20}, // PT_NOTE
		{typ: 1, off: 0, vaddr: 0xff000, filesz: 0x1800, memsz: 0x1800, flags: 5},
		{typ: 1, off: 0x2000, vaddr: 0x101000, filesz: 0x300, memsz: 0x300, flags: 4},
		{typ: 1, off: 0x3000, vaddr: 0x102000, filesz: 0x100, memsz: 0x5000, flags: 6},
	}, 0x3100, 3)
}

func TestConvertGoLayout(t *testing.T) {
	in := goLike()
	out, err := Convert(in, TextAddr)
	if err != nil {
		t.Fatal(err)
	}
	img := checkImage(t, in, out, TextAddr)
	if len(img.loads) != 3 || img.loads[0].paddr != TextAddr || img.loads[0].filesz != 0x800 {
		t.Errorf("segments %+v: want the first clipped to start at 1 MiB with 0x800 bytes", img.loads)
	}
	if img.loads[2].memsz != 0x5000 || img.loads[2].filesz != 0x100 {
		t.Errorf("bss segment %+v", img.loads[2])
	}
	// With no clipping, everything is kept, headers included.
	out, err = Convert(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if img := checkImage(t, in, out, 0); img.loads[0].paddr != 0xff000 {
		t.Errorf("unclipped first segment at %#x", img.loads[0].paddr)
	}
}

func TestConvertErrors(t *testing.T) {
	good := goLike()
	amd64 := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(amd64[18:], 62)
	cases := []struct {
		name string
		in   []byte
		min  uint32
		want string
	}{
		{"empty", nil, TextAddr, "mkguest"},
		{"not elf", []byte("#!/bin/sh\necho hi\n"), TextAddr, "mkguest"},
		{"x86-64", amd64, TextAddr, "i386"},
		{"all below", good, 0x200000, "no loadable segment"},
		{"entry clipped away", elf32(0xff100, []progSpec{{typ: 1, off: 0, vaddr: 0xff000, filesz: 0x1100, memsz: 0x1100}}, 0x1100, 3), TextAddr, "entry point"},
		{"entry in bss", elf32(0x100200, []progSpec{{typ: 1, off: 0x1000, vaddr: 0x100000, filesz: 0x100, memsz: 0x1000}}, 0x1100, 3), TextAddr, "entry point"},
		{"filesz > memsz", elf32(0x100000, []progSpec{{typ: 1, off: 0x1000, vaddr: 0x100000, filesz: 0x100, memsz: 0x10}}, 0x1100, 3), TextAddr, "exceeds"},
		{"past the file", elf32(0x100000, []progSpec{{typ: 1, off: 0x1000, vaddr: 0x100000, filesz: 0x200, memsz: 0x200}}, 0x1100, 3), TextAddr, "outside the file"},
		{"past 4 GiB", elf32(0xfffff000, []progSpec{{typ: 1, off: 0x1000, vaddr: 0xfffff000, filesz: 0x100, memsz: 0x2000}}, 0x1100, 3), TextAddr, "4 GiB"},
		{"paddr differs", elf32(0x100000, []progSpec{{typ: 1, off: 0x1000, vaddr: 0x100000, paddr: 0x200000, filesz: 0x100, memsz: 0x100}}, 0x1100, 3), TextAddr, "physical address"},
		{"overlap", elf32(0x100000, []progSpec{
			{typ: 1, off: 0x1000, vaddr: 0x100000, filesz: 0x100, memsz: 0x2000},
			{typ: 1, off: 0x1000, vaddr: 0x101000, filesz: 0x100, memsz: 0x100},
		}, 0x1100, 3), TextAddr, "overlap"},
	}
	for _, c := range cases {
		_, err := Convert(c.in, c.min)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// goCommand returns the go command for the build tests, or skips.
func goCommand(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on $PATH")
	}
	return p
}

// Build links a real guest with the Go toolchain (GOARCH=386) and the
// result is a multiboot kernel holding exactly the linked bytes from
// 1 MiB up, entered at the guest's first instruction (CLI, from SETUP).
func TestBuildHello(t *testing.T) {
	b := Builder{Go: goCommand(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	raw, err := b.Link(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var helloAddr uint64
	for _, s := range syms {
		if s.Name == "main.hello" {
			helloAddr = s.Value
		}
	}
	if helloAddr == 0 || f.Entry != helloAddr {
		t.Fatalf("entry %#x, main.hello at %#x", f.Entry, helloAddr)
	}
	if text := f.Section(".text"); text == nil || text.Addr != TextAddr {
		t.Fatalf(".text not at %#x: %+v", TextAddr, text)
	}
	img, err := Convert(raw, TextAddr)
	if err != nil {
		t.Fatal(err)
	}
	mb := checkImage(t, raw, img, TextAddr)
	if c, ok := mb.byteAt(mb.entry); !ok || c != 0xFA {
		t.Errorf("first instruction byte %#x (loaded %v), want CLI (0xfa)", c, ok)
	}

	dir := t.TempDir()
	paths, err := b.BuildAll(ctx, dir, "hello")
	if err != nil || len(paths) != 1 || paths[0] != filepath.Join(dir, "hello.elf") {
		t.Fatalf("BuildAll = %v, %v", paths, err)
	}
	onDisk, err := os.ReadFile(paths[0])
	if err != nil || !bytes.Equal(onDisk, img) {
		t.Errorf("BuildAll wrote a different image (%v)", err)
	}
	if _, err := b.BuildAll(ctx, dir, "nosuch"); err == nil || !strings.Contains(err.Error(), "unknown guest") {
		t.Errorf("BuildAll(nosuch) = %v", err)
	}
}

// Names lists exactly the guests that have a NAME_386.s defining
// ·NAME, and every guest's Go file declares it.
func TestNamesMatchSources(t *testing.T) {
	files, err := filepath.Glob("../*_386.s")
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, f := range files {
		n := strings.TrimSuffix(filepath.Base(f), "_386.s")
		if n != "lib" {
			onDisk[n] = true
		}
	}
	for _, n := range Names {
		if !onDisk[n] {
			t.Errorf("guest %q has no %s_386.s", n, n)
			continue
		}
		delete(onDisk, n)
		src, err := os.ReadFile(filepath.Join("..", n+"_386.s"))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^TEXT ·` + n + `\(SB\)`).Match(src) {
			t.Errorf("%s_386.s does not define ·%s", n, n)
		}
		decl, err := os.ReadFile(filepath.Join("..", n+"_386.go"))
		if err != nil || !regexp.MustCompile(`(?m)^func `+n+`\(\)$`).Match(decl) {
			t.Errorf("%s_386.go does not declare func %s() (%v)", n, n, err)
		}
	}
	for n := range onDisk {
		t.Errorf("%s_386.s is not in Names", n)
	}
}

// The cpuid guest checks for the signature juice's core returns.
func TestCPUIDSignature(t *testing.T) {
	src, err := os.ReadFile("../cpuid_386.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^var cpuidSignature = "([^"]*)"$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no cpuidSignature in cpuid_386.go")
	}
	if string(m[1]) != vmm.HypervisorSignature {
		t.Errorf("cpuid guest checks %q, juice returns %q", m[1], vmm.HypervisorSignature)
	}
}

// FuzzConvert: Convert never panics, and whatever it accepts is a
// multiboot image of the input's bytes.
func FuzzConvert(f *testing.F) {
	f.Add(goLike(), uint32(TextAddr))
	f.Add(goLike(), uint32(0))
	f.Add(elf32(0x100000, []progSpec{{typ: 1, off: 0x1000, vaddr: 0x100000, filesz: 0x100, memsz: 0x100}}, 0x1100, 3), uint32(0))
	f.Fuzz(func(t *testing.T, in []byte, minAddr uint32) {
		out, err := Convert(in, minAddr)
		if err != nil {
			return
		}
		img, err := parseMB(out)
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		var total uint64
		for _, l := range img.loads {
			total += uint64(l.memsz)
		}
		if total <= 1<<20 { // the byte-by-byte comparison is slow
			checkImage(t, in, out, minAddr)
		}
	})
}
