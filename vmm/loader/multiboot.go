package loader

import (
	"encoding/binary"
	"fmt"
)

// Multiboot version 1 (the GNU Multiboot Specification 0.6.96).
const (
	mbHeaderMagic = 0x1BADB002
	mbSearch      = 8192 // the header lies within the first 8 KiB

	mbFlagPageAlign = 1 << 0  // modules page-aligned
	mbFlagMemInfo   = 1 << 1  // mem_* and mmap required
	mbFlagVideo     = 1 << 2  // video mode wanted (ignored: no framebuffer)
	mbFlagAout      = 1 << 16 // the address fields are valid (a.out kludge)
	mbKnownRequired = mbFlagPageAlign | mbFlagMemInfo | mbFlagVideo

	// multiboot_info flags.
	mbiMem      = 1 << 0
	mbiCmdline  = 1 << 2
	mbiMods     = 1 << 3
	mbiMmap     = 1 << 6
	mbiLoader   = 1 << 9
	mbiSize     = 116 // through the framebuffer fields
	mbModSize   = 16  // mod_start, mod_end, string, reserved
	mbMmapEntry = 24  // size (=20), base_addr, length, type

	// LoaderName is the boot_loader_name juice gives multiboot kernels.
	LoaderName = "juice"
)

// mbHeader is a multiboot v1 header found in an image.
type mbHeader struct {
	off                                          uint64 // file offset of the magic
	flags                                        uint32
	headerAddr, loadAddr, loadEnd, bssEnd, entry uint32
}

// findMultiboot looks for a multiboot header (magic, flags and checksum
// summing to 0) at a 4-aligned offset in the first 8 KiB of b. A header
// whose required flags juice does not know, or whose address fields run
// past the 8 KiB, is an error.
func findMultiboot(b []byte) (mbHeader, bool, error) {
	le := binary.LittleEndian
	limit := min(len(b), mbSearch)
	for off := 0; off+12 <= limit; off += 4 {
		if le.Uint32(b[off:]) != mbHeaderMagic {
			continue
		}
		flags, sum := le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
		if mbHeaderMagic+flags+sum != 0 {
			continue
		}
		h := mbHeader{off: uint64(off), flags: flags}
		if unknown := flags & 0xffff &^ mbKnownRequired; unknown != 0 {
			return h, false, fmt.Errorf("multiboot: header requires unsupported features (flags %#x)", unknown)
		}
		if flags&mbFlagAout != 0 {
			if off+32 > limit {
				return h, false, fmt.Errorf("multiboot: header address fields at %#x run past the first %d bytes", off, limit)
			}
			h.headerAddr = le.Uint32(b[off+12:])
			h.loadAddr = le.Uint32(b[off+16:])
			h.loadEnd = le.Uint32(b[off+20:])
			h.bssEnd = le.Uint32(b[off+24:])
			h.entry = le.Uint32(b[off+28:])
		}
		return h, true, nil
	}
	return mbHeader{}, false, nil
}

// aoutSegments returns the single segment the a.out kludge describes: the
// file from (header offset - (header_addr - load_addr)) loaded at
// load_addr, load_end_addr - load_addr bytes (the rest of the file when
// load_end_addr is 0), followed by bss up to bss_end_addr.
func aoutSegments(b []byte, h mbHeader) ([]segment, error) {
	if h.loadAddr > h.headerAddr {
		return nil, fmt.Errorf("multiboot: load_addr %#x is above header_addr %#x", h.loadAddr, h.headerAddr)
	}
	delta := uint64(h.headerAddr - h.loadAddr)
	if delta > h.off {
		return nil, fmt.Errorf("multiboot: header_addr - load_addr (%#x) is more than the header's file offset %#x", delta, h.off)
	}
	start := h.off - delta
	var n uint64
	if h.loadEnd == 0 {
		n = uint64(len(b)) - start
	} else {
		if h.loadEnd < h.loadAddr {
			return nil, fmt.Errorf("multiboot: load_end_addr %#x is below load_addr %#x", h.loadEnd, h.loadAddr)
		}
		n = uint64(h.loadEnd - h.loadAddr)
	}
	data, err := fileRange(b, start, n, "multiboot: load_addr..load_end_addr")
	if err != nil {
		return nil, err
	}
	memsz := n
	if h.bssEnd != 0 {
		loadEnd := uint64(h.loadAddr) + n
		if uint64(h.bssEnd) < loadEnd {
			return nil, fmt.Errorf("multiboot: bss_end_addr %#x is below the end of the loaded image %#x", h.bssEnd, loadEnd)
		}
		memsz = uint64(h.bssEnd) - uint64(h.loadAddr)
	}
	if memsz == 0 {
		return nil, fmt.Errorf("multiboot: a.out kludge loads nothing")
	}
	return []segment{{addr: uint64(h.loadAddr), data: data, memsz: memsz}}, nil
}

// multiboot loads a multiboot v1 kernel.
func (l *loadState) multiboot(kernel []byte, h mbHeader, cmdline string, mods []Module) (Image, error) {
	img := Image{Format: FormatMultiboot}
	var segs []segment
	var err error
	if h.flags&mbFlagAout != 0 {
		img.Format = FormatMultibootAout
		img.Entry = uint64(h.entry)
		segs, err = aoutSegments(kernel, h)
	} else {
		var f *elfFile
		if !isELF(kernel) {
			return Image{}, fmt.Errorf("multiboot: kernel is not ELF and its header has no address fields (flags bit 16)")
		}
		f, err = parseELF(kernel)
		if err != nil {
			return Image{}, fmt.Errorf("multiboot: %w", err)
		}
		if f.class != elfClass32 {
			return Image{}, fmt.Errorf("multiboot: ELF64 kernel needs the a.out kludge (header flags bit 16)")
		}
		img.Entry = f.physEntry()
		segs, err = f.loadSegments(kernel)
	}
	if err != nil {
		return Image{}, err
	}
	if img.KernelEnd, err = l.placeKernel(segs, 1<<32); err != nil {
		return Image{}, err
	}
	if err := l.checkEntry(img.Entry); err != nil {
		return Image{}, err
	}
	placed, err := l.placeModules(mods, img.KernelEnd)
	if err != nil {
		return Image{}, err
	}
	img.BootInfo, err = l.multibootInfo(cmdline, mods, placed)
	return img, err
}

// multibootInfo builds the multiboot information structure, its module
// list, memory map and strings in one area of low memory (or wherever
// there is room) and returns its address.
func (l *loadState) multibootInfo(cmdline string, mods []Module, placed []placedModule) (uint64, error) {
	le := binary.LittleEndian
	e820 := E820(l.mem.Size())
	var bl blob
	mbi := bl.reserve(mbiSize)
	modTab := bl.reserve(mbModSize * len(mods))
	mmap := bl.reserve(mbMmapEntry * len(e820))
	cmdOff := bl.str(cmdline)
	nameOff := bl.str(LoaderName)
	modStr := make([]int, len(mods))
	for i, m := range mods {
		modStr[i] = bl.str(m.Cmdline)
	}
	// Addresses are relative until the area is placed; reserve the room
	// first, then fix them up and copy.
	base, err := l.arena.place(uint64(len(bl.b)), 8, pageSize, "multiboot: boot information")
	if err != nil {
		return 0, err
	}
	at := func(off int) uint32 { return uint32(base + uint64(off)) } // base+len < 4 GiB (arena limit)

	lower := min(l.mem.Size(), LowMemEnd) / 1024
	var upper uint64
	if l.mem.Size() > HighMemStart {
		upper = min((l.mem.Size()-HighMemStart)/1024, 0xffffffff)
	}
	b := bl.b
	le.PutUint32(b[mbi+0:], mbiMem|mbiCmdline|mbiMods|mbiMmap|mbiLoader)
	le.PutUint32(b[mbi+4:], uint32(lower))
	le.PutUint32(b[mbi+8:], uint32(upper))
	le.PutUint32(b[mbi+16:], at(cmdOff))
	le.PutUint32(b[mbi+20:], uint32(len(mods)))
	le.PutUint32(b[mbi+24:], at(modTab))
	le.PutUint32(b[mbi+44:], uint32(mbMmapEntry*len(e820)))
	le.PutUint32(b[mbi+48:], at(mmap))
	le.PutUint32(b[mbi+64:], at(nameOff))
	for i, p := range placed {
		e := b[modTab+i*mbModSize:]
		le.PutUint32(e[0:], uint32(p.start))
		le.PutUint32(e[4:], uint32(p.end))
		le.PutUint32(e[8:], at(modStr[i]))
	}
	for i, r := range e820 {
		e := b[mmap+i*mbMmapEntry:]
		le.PutUint32(e[0:], mbMmapEntry-4)
		le.PutUint64(e[4:], r.Addr)
		le.PutUint64(e[12:], r.Size)
		le.PutUint32(e[20:], r.Type)
	}
	dst, ok := l.mem.Slice(base, uint64(len(b)))
	if !ok {
		return 0, fmt.Errorf("multiboot: boot information at %#x is outside guest RAM", base)
	}
	copy(dst, b)
	return base, nil
}
