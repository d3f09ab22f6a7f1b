package loader

import (
	"encoding/binary"
	"fmt"

	"juice/vmm"
)

// This file implements the Linux x86 boot protocol (bzImage, protocol
// 2.12 and later) with the 64-bit entry: the loader fills struct
// boot_params (the "zero page"), copies the protected-mode kernel to its
// preferred address and starts the vCPU in long mode at load address +
// 0x200 with RSI pointing at boot_params. The kernel's 16-bit setup code is
// not run.

// FormatLinux is Image.Format for a bzImage loaded by the Linux boot
// protocol's 64-bit entry.
const FormatLinux = "linux"

// Guest-physical layout of the Linux boot structures in low memory.
const (
	// LinuxGDT is where the boot GDT lives (null, unused, __BOOT_CS,
	// __BOOT_DS, a 16-byte TSS descriptor).
	LinuxGDT = 0x5000
	// LinuxStackTop is the initial RSP (the kernel sets its own stack; this
	// only gives it a harmless one). The stack grows down below LinuxGDT.
	LinuxStackTop = LinuxGDT
	// LinuxZeroPage is where struct boot_params (4 KiB) is built.
	LinuxZeroPage = 0x7000
	// LinuxPageTables is where the identity-map page tables start: PML4,
	// PDPT and four page directories of 2 MiB pages (6 pages).
	LinuxPageTables = 0x9000
	// LinuxCmdline is where the kernel command line is copied.
	LinuxCmdline = 0x20000
)

// Boot protocol constants (Documentation/arch/x86/boot.rst).
const (
	bootSelCode = 0x10 // __BOOT_CS
	bootSelData = 0x18 // __BOOT_DS
	bootSelTSS  = 0x20

	linuxMinProtocol = 0x020c // 2.12: xloadflags, 64-bit entry, ext_ fields

	loadedHigh  = 1 << 0 // loadflags LOADED_HIGH
	xlfKernel64 = 1 << 0 // xloadflags XLF_KERNEL_64

	hdrStart    = 0x1f1 // setup header offset in file and in boot_params
	hdrMaxEnd   = 0x290 // end of struct setup_header's room in boot_params
	hdrMinEnd   = 0x264 // we read up to init_size (0x260, 4 bytes)
	zeroPageLen = 4096

	// boot_params fields the loader fills.
	bpExtRamdiskImage = 0x0c0
	bpExtRamdiskSize  = 0x0c4
	bpExtCmdLinePtr   = 0x0c8
	bpE820Entries     = 0x1e8
	bpE820Table       = 0x2d0
	bpE820Max         = 128
	e820EntrySize     = 20

	// setup_header fields (offsets in the file and in boot_params).
	shSetupSects     = 0x1f1
	shSyssize        = 0x1f4
	shBootFlag       = 0x1fe
	shJump           = 0x200
	shHeader         = 0x202
	shVersion        = 0x206
	shTypeOfLoader   = 0x210
	shLoadflags      = 0x211
	shRamdiskImage   = 0x218
	shRamdiskSize    = 0x21c
	shCmdLinePtr     = 0x228
	shInitrdAddrMax  = 0x22c
	shKernelAlign    = 0x230
	shRelocatable    = 0x234
	shXloadflags     = 0x236
	shCmdlineSize    = 0x238
	shSetupData      = 0x250
	shPrefAddress    = 0x258
	shInitSize       = 0x260
	linuxEntry64Skew = 0x200 // 64-bit entry = load address + 0x200

	// Page-table entry bits.
	ptePresent = 1 << 0
	pteWrite   = 1 << 1
	ptePS      = 1 << 7

	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10

	attrCode64 = vmm.SegP | vmm.SegS | vmm.SegL | vmm.SegG | 0xb // 64-bit execute/read, accessed
	attrTSS64  = vmm.SegP | 0xb                                  // 64-bit busy TSS

	defaultInitrdMax = 0x37ffffff // boot.rst: initrd_addr_max when the field is 0
)

// isBzImage reports whether b looks like a Linux boot-protocol image: boot
// sector signature 0xAA55 at 0x1FE and "HdrS" at 0x202.
func isBzImage(b []byte) bool {
	return len(b) >= shHeader+4 && b[shBootFlag] == 0x55 && b[shBootFlag+1] == 0xaa &&
		string(b[shHeader:shHeader+4]) == "HdrS"
}

// linuxHeader is the part of a bzImage's setup header the loader uses.
type linuxHeader struct {
	version      uint16
	setupBytes   uint64 // (setup_sects+1)*512
	kernelBytes  uint64 // syssize*16
	hdrEnd       uint64 // end of the setup header (0x202 + jump byte)
	initrdMax    uint64 // last byte an initrd may occupy
	align        uint64 // kernel_alignment
	relocatable  bool
	cmdlineSize  uint64
	prefAddress  uint64
	initSize     uint64
	loadflags    uint8
	xloadflags   uint16
	pmFileLength uint64 // bytes after the setup code in the file
}

// parseLinuxHeader checks a bzImage's setup header.
func parseLinuxHeader(b []byte) (linuxHeader, error) {
	le := binary.LittleEndian
	var h linuxHeader
	if !isBzImage(b) {
		return h, fmt.Errorf("linux: not a bzImage (no 0xAA55 at 0x1fe and \"HdrS\" at 0x202)")
	}
	if len(b) < shVersion+2 {
		return h, fmt.Errorf("linux: truncated setup header")
	}
	h.version = le.Uint16(b[shVersion:])
	if h.version < linuxMinProtocol {
		return h, fmt.Errorf("linux: boot protocol %d.%02d is too old: need 2.12 or later (64-bit entry)", h.version>>8, h.version&0xff)
	}
	if len(b) < hdrMinEnd {
		return h, fmt.Errorf("linux: truncated: setup header needs %d bytes, file has %d", hdrMinEnd, len(b))
	}
	h.hdrEnd = shHeader + uint64(b[shJump+1])
	if b[shJump] != 0xeb || h.hdrEnd < hdrMinEnd || h.hdrEnd > hdrMaxEnd {
		return h, fmt.Errorf("linux: setup header end %#x (jump %#02x %#02x at 0x200) is not in [%#x, %#x]", h.hdrEnd, b[shJump], b[shJump+1], hdrMinEnd, hdrMaxEnd)
	}
	sects := uint64(b[shSetupSects])
	if sects == 0 {
		sects = 4
	}
	h.setupBytes = (sects + 1) * 512
	h.kernelBytes = uint64(le.Uint32(b[shSyssize:])) * 16
	if h.hdrEnd > h.setupBytes {
		return h, fmt.Errorf("linux: setup header end %#x is past the %d-byte setup code", h.hdrEnd, h.setupBytes)
	}
	flen := uint64(len(b))
	if flen <= h.setupBytes || flen-h.setupBytes < h.kernelBytes {
		return h, fmt.Errorf("linux: truncated: setup says %d bytes (%d setup + %d kernel), file has %d",
			h.setupBytes+h.kernelBytes, h.setupBytes, h.kernelBytes, flen)
	}
	h.pmFileLength = flen - h.setupBytes
	h.loadflags = b[shLoadflags]
	if h.loadflags&loadedHigh == 0 {
		return h, fmt.Errorf("linux: loadflags %#x lack LOADED_HIGH: a zImage must be loaded at 0x10000, which is not supported", h.loadflags)
	}
	h.xloadflags = le.Uint16(b[shXloadflags:])
	if h.xloadflags&xlfKernel64 == 0 {
		return h, fmt.Errorf("linux: xloadflags %#x lack XLF_KERNEL_64: the kernel has no 64-bit entry point", h.xloadflags)
	}
	h.initrdMax = uint64(le.Uint32(b[shInitrdAddrMax:]))
	if h.initrdMax == 0 {
		h.initrdMax = defaultInitrdMax
	}
	h.align = uint64(le.Uint32(b[shKernelAlign:]))
	h.relocatable = b[shRelocatable] != 0
	if h.relocatable && (h.align < pageSize || h.align > 1<<30 || h.align&(h.align-1) != 0) {
		return h, fmt.Errorf("linux: kernel_alignment %#x is not a power of two in [4 KiB, 1 GiB]", h.align)
	}
	h.cmdlineSize = uint64(le.Uint32(b[shCmdlineSize:]))
	h.prefAddress = le.Uint64(b[shPrefAddress:])
	h.initSize = uint64(le.Uint32(b[shInitSize:]))
	if h.initSize == 0 {
		return h, fmt.Errorf("linux: init_size is 0")
	}
	return h, nil
}

// mibString formats n bytes as MiB ("63 MiB", "1.5 MiB").
func mibString(n uint64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// LoadLinux loads a bzImage (Linux boot protocol 2.12 or later) for its
// 64-bit entry. The protected-mode kernel goes to pref_address (or, for a
// relocatable kernel that does not fit there, 16 MiB or 1 MiB aligned to
// kernel_alignment) with init_size bytes reserved and zeroed; boot_params
// goes to LinuxZeroPage, the command line to LinuxCmdline, the initrd (if
// non-empty) page-aligned as high as it fits below initrd_addr_max, 4 GiB
// and the end of RAM without touching the kernel's init_size region. The
// loader builds a GDT (LinuxGDT) and 4 GiB identity-mapping page tables
// with 2 MiB pages (LinuxPageTables) and sets v to the 64-bit entry state:
// long mode, CS=0x10, DS=ES=SS=0x18, interrupts off, RSI=boot_params,
// RIP=load address+0x200. The Image's Entry is that RIP, BootInfo the
// boot_params address and KernelEnd the end of the init_size region.
//
// Nothing is written before every check has passed; on error v is
// untouched and mem is unchanged. No ACPI RSDP address is passed
// (acpi_rsdp_addr is 0).
func LoadLinux(mem *vmm.GuestMemory, v *vmm.VCPU, kernel []byte, cmdline string, initrd []byte) (Image, error) {
	if mem == nil || v == nil {
		return Image{}, fmt.Errorf("linux: nil guest memory or vCPU")
	}
	if err := checkCString("command line", cmdline); err != nil {
		return Image{}, err
	}
	h, err := parseLinuxHeader(kernel)
	if err != nil {
		return Image{}, err
	}
	ramSize := mem.Size()
	limit := min(ramSize, 1<<32)

	// Command line.
	clen := uint64(len(cmdline))
	if clen > h.cmdlineSize {
		return Image{}, fmt.Errorf("linux: command line is %d bytes, the kernel accepts at most %d (cmdline_size)", clen, h.cmdlineSize)
	}
	if clen+1 > LowMemEnd-LinuxCmdline {
		return Image{}, fmt.Errorf("linux: command line of %d bytes does not fit in low memory at %#x", clen, LinuxCmdline)
	}
	if ramSize < HighMemStart {
		return Image{}, fmt.Errorf("linux: guest has %d KiB of RAM, need more than 1 MiB", ramSize>>10)
	}

	// Kernel placement.
	need := max(h.initSize, h.pmFileLength)
	kaddr, err := h.placeKernel(need, limit)
	if err != nil {
		return Image{}, err
	}
	kend := kaddr + need

	// Initrd placement.
	var iaddr, isize uint64
	if len(initrd) > 0 {
		isize = uint64(len(initrd))
		if iaddr, err = placeInitrd(isize, min(limit, h.initrdMax+1), kaddr, kend, ramSize); err != nil {
			return Image{}, err
		}
	}

	// Everything checked: write.
	kdst, ok1 := mem.Slice(kaddr, need)
	zp, ok2 := mem.Slice(LinuxZeroPage, zeroPageLen)
	cl, ok3 := mem.Slice(LinuxCmdline, clen+1)
	gdt, ok4 := mem.Slice(LinuxGDT, gdtLen)
	pt, ok5 := mem.Slice(LinuxPageTables, 6*pageSize)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return Image{}, fmt.Errorf("linux: boot structures are outside %d bytes of guest RAM", ramSize)
	}
	var idst []byte
	if isize > 0 {
		var ok bool
		if idst, ok = mem.Slice(iaddr, isize); !ok {
			return Image{}, fmt.Errorf("linux: initrd at %#x is outside guest RAM", iaddr)
		}
	}

	n := copy(kdst, kernel[h.setupBytes:])
	clear(kdst[n:])
	copy(idst, initrd)
	copy(cl, cmdline)
	cl[clen] = 0
	h.writeZeroPage(zp, kernel, iaddr, isize, ramSize)
	writeGDT(gdt)
	writePageTables(pt, LinuxPageTables)

	img := Image{Format: FormatLinux, Entry: kaddr + linuxEntry64Skew, BootInfo: LinuxZeroPage, KernelEnd: kend}
	setLinuxBootState(v, img)
	return img, nil
}

// placeKernel picks the load address of a kernel needing need bytes below
// limit: pref_address, then (relocatable only) 16 MiB and 1 MiB rounded
// up to kernel_alignment.
func (h *linuxHeader) placeKernel(need, limit uint64) (uint64, error) {
	var cands []uint64
	pref := h.prefAddress
	if pref == 0 {
		pref = HighMemStart
	}
	if !h.relocatable || pref%h.align == 0 {
		cands = append(cands, pref)
	}
	if h.relocatable {
		for _, base := range []uint64{16 << 20, HighMemStart} {
			if c, ok := alignUp(base, h.align); ok {
				cands = append(cands, c)
			}
		}
	}
	for _, c := range cands {
		if c >= HighMemStart && c%pageSize == 0 && c <= limit && need <= limit-c {
			return c, nil
		}
	}
	what := "at pref_address"
	if h.relocatable {
		what = "at any candidate address"
	}
	return 0, fmt.Errorf("linux: kernel needs %s (init_size) at %#x; it does not fit %s in %s of RAM (limit %#x)",
		mibString(need), pref, what, mibString(limit), limit)
}

// placeInitrd places n bytes page-aligned as high as possible ending at or
// below top, above 1 MiB, outside the kernel region [klo, khi).
func placeInitrd(n, top, klo, khi, ramSize uint64) (uint64, error) {
	fail := func() (uint64, error) {
		return 0, fmt.Errorf("linux: initrd of %s does not fit below %#x in %s of RAM beside the kernel [%#x, %#x)",
			mibString(n), top, mibString(ramSize), klo, khi)
	}
	if n > top || top-n < HighMemStart {
		return fail()
	}
	at := (top - n) &^ (pageSize - 1)
	if at < khi && klo < at+n { // overlaps the kernel: go below it
		if n > klo {
			return fail()
		}
		at = (klo - n) &^ (pageSize - 1)
	}
	if at < HighMemStart || (at < khi && klo < at+n) {
		return fail()
	}
	return at, nil
}

// writeZeroPage fills boot_params: zero, the file's setup header, then the
// loader's fields.
func (h *linuxHeader) writeZeroPage(zp, kernel []byte, iaddr, isize, ramSize uint64) {
	le := binary.LittleEndian
	clear(zp)
	copy(zp[hdrStart:h.hdrEnd], kernel[hdrStart:h.hdrEnd])
	zp[shTypeOfLoader] = 0xff
	le.PutUint32(zp[shCmdLinePtr:], uint32(LinuxCmdline))
	le.PutUint32(zp[bpExtCmdLinePtr:], uint32(uint64(LinuxCmdline)>>32))
	le.PutUint32(zp[shRamdiskImage:], uint32(iaddr))
	le.PutUint32(zp[shRamdiskSize:], uint32(isize))
	le.PutUint32(zp[bpExtRamdiskImage:], uint32(iaddr>>32))
	le.PutUint32(zp[bpExtRamdiskSize:], uint32(isize>>32))
	le.PutUint64(zp[shSetupData:], 0)
	e820 := E820(ramSize)
	if len(e820) > bpE820Max {
		e820 = e820[:bpE820Max]
	}
	zp[bpE820Entries] = byte(len(e820))
	for i, e := range e820 {
		d := zp[bpE820Table+i*e820EntrySize:]
		le.PutUint64(d[0:], e.Addr)
		le.PutUint64(d[8:], e.Size)
		le.PutUint32(d[16:], e.Type)
	}
}

// gdtLen is the boot GDT's size: four 8-byte descriptors and a 16-byte
// TSS descriptor.
const gdtLen = 0x30

// writeGDT writes the boot GDT: 0x00 null, 0x08 null, 0x10 flat 64-bit
// code (__BOOT_CS), 0x18 flat data (__BOOT_DS), 0x20 a busy 64-bit TSS
// (base 0, limit 0x67) for TR.
func writeGDT(g []byte) {
	le := binary.LittleEndian
	clear(g)
	le.PutUint64(g[bootSelCode:], 0x00af9b000000ffff) // G, L, P, S, type 0xb, limit 0xfffff
	le.PutUint64(g[bootSelData:], 0x00cf93000000ffff) // G, D/B, P, S, type 0x3, limit 0xfffff
	le.PutUint64(g[bootSelTSS:], 0x00008b0000000067)  // P, type 0xb (busy 64-bit TSS), limit 0x67
}

// writePageTables writes a PML4, a PDPT and four page directories mapping
// guest-virtual [0, 4 GiB) to the same physical addresses with 2 MiB
// pages into pt (6 pages), which lives at guest-physical base.
func writePageTables(pt []byte, base uint64) {
	le := binary.LittleEndian
	clear(pt)
	pdpt := base + pageSize
	le.PutUint64(pt[0:], pdpt|ptePresent|pteWrite)
	for i := range uint64(4) {
		pd := base + (2+i)*pageSize
		le.PutUint64(pt[pageSize+8*i:], pd|ptePresent|pteWrite)
		for j := range uint64(512) {
			phys := (i<<30 | j<<21)
			le.PutUint64(pt[(2+i)*pageSize+8*j:], phys|ptePresent|pteWrite|ptePS)
		}
	}
}

// setLinuxBootState sets v to the 64-bit boot protocol's entry state.
func setLinuxBootState(v *vmm.VCPU, img Image) {
	v.Regs = vmm.Regs{RIP: img.Entry, RSI: img.BootInfo, RSP: LinuxStackTop, RFLAGS: 0x2}
	code := vmm.Segment{Selector: bootSelCode, Attr: attrCode64, Limit: 0xffffffff}
	data := vmm.Segment{Selector: bootSelData, Attr: attrData, Limit: 0xffffffff}
	v.SRegs = vmm.SRegs{
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   vmm.Segment{Selector: bootSelTSS, Attr: attrTSS64, Limit: 0x67},
		LDTR: vmm.Segment{Attr: attrLDT, Limit: 0xffff},
		GDTR: vmm.Table{Base: LinuxGDT, Limit: gdtLen - 1},
		CR0:  cr0PE | cr0ET | cr0PG,
		CR3:  LinuxPageTables,
		CR4:  cr4PAE,
		EFER: eferLME | eferLMA,
	}
	v.SRegsValid = true
	v.SRegsDirty = true
}

// linuxInitrd joins boot modules into one initrd for a bzImage: each
// module starts 4-byte aligned (zero padding between them), which the
// kernel's initramfs unpacker accepts for concatenated cpio archives.
// Module command lines are ignored: the Linux protocol has no place for
// them.
func linuxInitrd(mods []Module) []byte {
	switch len(mods) {
	case 0:
		return nil
	case 1:
		return mods[0].Data
	}
	var out []byte
	for _, m := range mods {
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
		out = append(out, m.Data...)
	}
	return out
}
