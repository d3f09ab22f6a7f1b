package loader

import (
	"encoding/binary"
	"fmt"
	"math"
)

// hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1.
const (
	pvhMagic      = 0x336ec578
	pvhVersion    = 1
	pvhInfoSize   = 56 // magic, version, flags, nr_modules, modlist, cmdline, rsdp, memmap, memmap_entries, reserved
	pvhModSize    = 32 // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved
	pvhMemmapSize = 24 // hvm_memmap_table_entry: addr, size, type, reserved
)

// pvh loads an ELF kernel by its XEN_ELFNOTE_PHYS32_ENTRY note.
func (l *loadState) pvh(kernel []byte, cmdline string, mods []Module) (Image, error) {
	f, err := parseELF(kernel)
	if err != nil {
		return Image{}, err
	}
	entry, found, err := f.xenNote(kernel)
	if err != nil {
		return Image{}, err
	}
	if !found {
		return Image{}, fmt.Errorf("loader: ELF kernel has neither a multiboot header nor a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")
	}
	segs, err := f.loadSegments(kernel)
	if err != nil {
		return Image{}, err
	}
	img := Image{Format: FormatPVH, Entry: entry}
	if img.KernelEnd, err = l.placeKernel(segs, math.MaxUint64); err != nil {
		return Image{}, err
	}
	if err := l.checkEntry(entry); err != nil {
		return Image{}, err
	}
	placed, err := l.placeModules(mods, img.KernelEnd)
	if err != nil {
		return Image{}, err
	}
	img.BootInfo, err = l.startInfo(cmdline, mods, placed)
	return img, err
}

// startInfo builds hvm_start_info, its module list, memory map and strings
// in one area and returns its address. rsdp_paddr is 0: no ACPI tables.
func (l *loadState) startInfo(cmdline string, mods []Module, placed []placedModule) (uint64, error) {
	le := binary.LittleEndian
	e820 := E820(l.mem.Size())
	var bl blob
	si := bl.reserve(pvhInfoSize)
	modTab := bl.reserve(pvhModSize * len(mods))
	memmap := bl.reserve(pvhMemmapSize * len(e820))
	cmdOff := bl.str(cmdline)
	modStr := make([]int, len(mods))
	for i, m := range mods {
		modStr[i] = bl.str(m.Cmdline)
	}
	base, err := l.arena.place(uint64(len(bl.b)), 8, pageSize, "pvh: start info")
	if err != nil {
		return 0, err
	}
	at := func(off int) uint64 { return base + uint64(off) }

	b := bl.b
	le.PutUint32(b[si+0:], pvhMagic)
	le.PutUint32(b[si+4:], pvhVersion)
	le.PutUint32(b[si+12:], uint32(len(mods)))
	if len(mods) > 0 {
		le.PutUint64(b[si+16:], at(modTab))
	}
	le.PutUint64(b[si+24:], at(cmdOff))
	le.PutUint64(b[si+40:], at(memmap))
	le.PutUint32(b[si+48:], uint32(len(e820)))
	for i, p := range placed {
		e := b[modTab+i*pvhModSize:]
		le.PutUint64(e[0:], p.start)
		le.PutUint64(e[8:], p.end-p.start)
		le.PutUint64(e[16:], at(modStr[i]))
	}
	for i, r := range e820 {
		e := b[memmap+i*pvhMemmapSize:]
		le.PutUint64(e[0:], r.Addr)
		le.PutUint64(e[8:], r.Size)
		le.PutUint32(e[16:], r.Type)
	}
	dst, ok := l.mem.Slice(base, uint64(len(b)))
	if !ok {
		return 0, fmt.Errorf("pvh: start info at %#x is outside guest RAM", base)
	}
	copy(dst, b)
	return base, nil
}
