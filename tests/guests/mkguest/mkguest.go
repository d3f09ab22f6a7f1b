// Package mkguest builds juice's test guests (package juice/tests/guests)
// and turns each linked program into a multiboot v1 kernel.
//
// The Go linker writes an ordinary ELF32 executable for linux/386 whose
// first loadable segment starts with the ELF and program headers, a page
// below the text (-T 0x100000 puts the text at 1 MiB and the headers at
// 0xff000). Convert writes a new ELF32 with the same entry point and the
// same loadable bytes, clipped so that nothing is loaded below a minimum
// address, plus a multiboot v1 header (magic 0x1BADB002, flags, checksum)
// right after the program headers, well inside the first 8 KiB where a
// multiboot loader looks for it. No section headers or symbols are kept.
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
	"sort"
	"strings"
)

// Names are the guests of package juice/tests/guests: each is the
// assembly function main.NAME in NAME_386.s.
var Names = []string{"hello", "modes", "cpuid", "mmio", "timer", "hypercall", "triplefault", "outside", "spin", "bench", "hostile", "hog", "ipi"}

// Multiboot v1 header constants.
const (
	// HeaderMagic is the multiboot v1 header magic.
	HeaderMagic = 0x1BADB002
	// FlagPageAlign asks the loader to page-align modules.
	FlagPageAlign = 1 << 0
	// FlagMemInfo asks the loader for the memory fields and map.
	FlagMemInfo = 1 << 1
	// Flags are the header flags Convert writes: page-aligned modules and
	// memory information; no a.out kludge (the image is ELF).
	Flags = FlagPageAlign | FlagMemInfo
	// HeaderSearch is how far into the file a loader looks for the header.
	HeaderSearch = 8192
)

// Build constants.
const (
	// Package is the import path of the guests.
	Package = "juice/tests/guests"
	// TextAddr is the link address of the guests' text (the -T flag) and
	// the lowest address Build's images load at.
	TextAddr = 0x100000
	// pageSize is the segment alignment of the output.
	pageSize = 0x1000
	ehdrSize = 52
	phdrSize = 32
	mbSize   = 12
)

// Convert turns in, a linked ELF32 i386 executable, into a multiboot v1
// ELF32 kernel: the entry point and the bytes of every PT_LOAD segment at
// or above minAddr are kept (the part of a segment below minAddr, such as
// the ELF header the Go linker maps a page below its text, is dropped);
// other program headers are dropped. The entry point must lie in a kept
// segment.
func Convert(in []byte, minAddr uint32) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(in))
	if err != nil {
		return nil, fmt.Errorf("mkguest: %w", err)
	}
	if f.Class != elf.ELFCLASS32 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_386 {
		return nil, fmt.Errorf("mkguest: want a little-endian ELF32 for i386, got %v %v %v", f.Class, f.Data, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("mkguest: want an executable (ET_EXEC), got %v", f.Type)
	}
	segs, err := loadSegments(f, in, minAddr)
	if err != nil {
		return nil, err
	}
	entry := f.Entry
	inside := false
	for _, s := range segs {
		if entry >= uint64(s.addr) && entry < uint64(s.addr)+uint64(len(s.data)) {
			inside = true
		}
	}
	if !inside {
		return nil, fmt.Errorf("mkguest: entry point %#x is not in a loaded segment at or above %#x", entry, minAddr)
	}
	return write(uint32(entry), segs)
}

// segment is one loadable segment of the output.
type segment struct {
	addr  uint32 // load (physical = virtual) address
	data  []byte // file bytes
	memsz uint32 // ≥ len(data): the rest is zero (bss)
	flags elf.ProgFlag
}

// loadSegments reads f's PT_LOAD segments from in, clipped to minAddr,
// sorted by address and checked for overlap.
func loadSegments(f *elf.File, in []byte, minAddr uint32) ([]segment, error) {
	var segs []segment
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("mkguest: segment at %#x: file size %#x exceeds memory size %#x", p.Vaddr, p.Filesz, p.Memsz)
		}
		if p.Off > uint64(len(in)) || p.Filesz > uint64(len(in))-p.Off {
			return nil, fmt.Errorf("mkguest: segment at %#x: file range [%#x, +%#x) is outside the file", p.Vaddr, p.Off, p.Filesz)
		}
		if p.Vaddr > 1<<32 || p.Memsz > 1<<32-p.Vaddr {
			return nil, fmt.Errorf("mkguest: segment at %#x (+%#x) runs past 4 GiB", p.Vaddr, p.Memsz)
		}
		if p.Paddr != p.Vaddr {
			return nil, fmt.Errorf("mkguest: segment at %#x has physical address %#x: want them equal", p.Vaddr, p.Paddr)
		}
		addr, data, memsz := p.Vaddr, in[p.Off:p.Off+p.Filesz], p.Memsz
		if addr+memsz <= uint64(minAddr) {
			continue
		}
		if addr < uint64(minAddr) {
			cut := uint64(minAddr) - addr
			data = data[min(cut, uint64(len(data))):]
			addr, memsz = uint64(minAddr), memsz-cut
		}
		segs = append(segs, segment{addr: uint32(addr), data: data, memsz: uint32(memsz), flags: p.Flags})
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("mkguest: no loadable segment at or above %#x", minAddr)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].addr < segs[j].addr })
	for i := 1; i < len(segs); i++ {
		if prev := segs[i-1]; uint64(prev.addr)+uint64(prev.memsz) > uint64(segs[i].addr) {
			return nil, fmt.Errorf("mkguest: segments at %#x and %#x overlap", prev.addr, segs[i].addr)
		}
	}
	return segs, nil
}

// write lays out the output ELF: header, program headers, multiboot
// header, then each segment at a file offset congruent to its address
// modulo the page size.
func write(entry uint32, segs []segment) ([]byte, error) {
	le := binary.LittleEndian
	phoff := uint32(ehdrSize)
	mbOff := phoff + uint32(len(segs))*phdrSize // a multiple of 4
	if mbOff+mbSize > HeaderSearch {
		return nil, fmt.Errorf("mkguest: %d segments leave no room for the multiboot header in the first %d bytes", len(segs), HeaderSearch)
	}
	offs := make([]uint32, len(segs))
	end := uint64(mbOff + mbSize)
	for i, s := range segs {
		off := (end+pageSize-1)&^(pageSize-1) + uint64(s.addr%pageSize)
		if off < end {
			off += pageSize
		}
		end = off + uint64(len(s.data))
		if end > 1<<31 {
			return nil, errors.New("mkguest: output larger than 2 GiB")
		}
		offs[i] = uint32(off)
	}
	out := make([]byte, end)

	// ELF header.
	copy(out, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(out[16:], uint16(elf.ET_EXEC))
	le.PutUint16(out[18:], uint16(elf.EM_386))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint32(out[24:], entry)
	le.PutUint32(out[28:], phoff)
	le.PutUint32(out[32:], 0) // no section headers
	le.PutUint32(out[36:], 0) // e_flags
	le.PutUint16(out[40:], ehdrSize)
	le.PutUint16(out[42:], phdrSize)
	le.PutUint16(out[44:], uint16(len(segs)))
	le.PutUint16(out[46:], 40) // e_shentsize
	le.PutUint16(out[48:], 0)  // e_shnum
	le.PutUint16(out[50:], 0)  // e_shstrndx

	for i, s := range segs {
		ph := out[phoff+uint32(i)*phdrSize:]
		le.PutUint32(ph[0:], uint32(elf.PT_LOAD))
		le.PutUint32(ph[4:], offs[i])
		le.PutUint32(ph[8:], s.addr)  // p_vaddr
		le.PutUint32(ph[12:], s.addr) // p_paddr: what a multiboot loader uses
		le.PutUint32(ph[16:], uint32(len(s.data)))
		le.PutUint32(ph[20:], s.memsz)
		le.PutUint32(ph[24:], uint32(s.flags))
		le.PutUint32(ph[28:], pageSize)
		copy(out[offs[i]:], s.data)
	}

	le.PutUint32(out[mbOff:], HeaderMagic)
	le.PutUint32(out[mbOff+4:], Flags)
	sum := uint32(HeaderMagic + Flags)
	le.PutUint32(out[mbOff+8:], -sum) // magic + flags + checksum = 0
	return out, nil
}

// Builder links guests with the Go toolchain.
type Builder struct {
	// Go is the go command; empty means "go" from $PATH.
	Go string
	// Dir is the directory the go command runs in: any directory inside
	// module juice. Empty means the current directory.
	Dir string
}

// Link links guest name (one of Names) for linux/386 with its entry point
// main.NAME and its text at TextAddr, and returns the linked ELF.
func (b Builder) Link(ctx context.Context, name string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "mkguest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	goCmd := b.Go
	if goCmd == "" {
		goCmd = "go"
	}
	out := filepath.Join(tmp, name+".raw.elf")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath",
		"-ldflags", fmt.Sprintf("-E main.%s -T %#x", name, TextAddr),
		"-o", out, Package)
	cmd.Dir = b.Dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=386", "CGO_ENABLED=0", "GOFLAGS=")
	if log, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkguest: go build %s: %v\n%s", name, err, strings.TrimSpace(string(log)))
	}
	return os.ReadFile(out)
}

// Build links guest name and converts it (Convert with minAddr TextAddr).
func (b Builder) Build(ctx context.Context, name string) ([]byte, error) {
	raw, err := b.Link(ctx, name)
	if err != nil {
		return nil, err
	}
	img, err := Convert(raw, TextAddr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return img, nil
}

// BuildAll builds every guest of names (all of Names when empty) into
// dir/NAME.elf and returns the paths in the same order.
func (b Builder) BuildAll(ctx context.Context, dir string, names ...string) ([]string, error) {
	if len(names) == 0 {
		names = Names
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, n := range names {
		if !known(n) {
			return nil, fmt.Errorf("mkguest: unknown guest %q (want one of %s)", n, strings.Join(Names, ", "))
		}
		img, err := b.Build(ctx, n)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, n+".elf")
		// Write then rename, so that a reader never sees half a file.
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, img, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// known reports whether name is one of Names.
func known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}
