// Package loader places a guest kernel, its boot modules, its command line
// and the boot information its protocol defines into a VM's RAM, and sets
// the boot vCPU's initial state. It speaks two protocols:
//
//   - Multiboot version 1: ELF32 kernels, or any image with the a.out
//     kludge (header flag bit 16); the vCPU starts with EAX=0x2BADB002 and
//     EBX pointing at the multiboot information structure.
//   - PVH (Xen's direct-boot ABI): ELF32/ELF64 kernels with a
//     XEN_ELFNOTE_PHYS32_ENTRY note; EBX points at hvm_start_info.
//   - Linux bzImage (boot protocol 2.12+, "HdrS" at 0x202): LoadLinux
//     (linux.go) fills boot_params and starts the vCPU at the 64-bit entry
//     in long mode; Load uses it for a bzImage, joining the modules into
//     one initrd.
//
// Multiboot and PVH start the vCPU in 32-bit protected mode with paging off and flat
// 4 GiB segments. A kernel with a valid multiboot header is loaded as
// multiboot even if it also has a PVH note (QEMU's -kernel order).
//
// Kernel images come from VM bundles and are hostile: every offset, size
// and address is checked against the file and the guest RAM, nothing is
// ever written outside the VM's memory, and a bad image is an error, never
// a panic. Load runs at VM creation, not on the exit path: it allocates.
package loader

import (
	"bytes"
	"fmt"

	"juice/vmm"
)

const pageSize = 4096

// Module is a boot module (an initrd, a config blob) with its own command
// line.
type Module struct {
	Data    []byte
	Cmdline string
}

// Image formats reported in Image.Format.
const (
	FormatMultiboot     = "multiboot"      // multiboot v1, ELF32 loaded by PT_LOAD
	FormatMultibootAout = "multiboot-aout" // multiboot v1, loaded by the header's address fields
	FormatPVH           = "pvh"            // PVH entry from XEN_ELFNOTE_PHYS32_ENTRY
)

// Image describes a loaded kernel.
type Image struct {
	// Format is FormatMultiboot, FormatMultibootAout or FormatPVH.
	Format string
	// Entry is the guest-physical entry point (the vCPU's initial RIP).
	Entry uint64
	// BootInfo is the guest-physical address of the multiboot information
	// structure or of hvm_start_info (the vCPU's initial RBX).
	BootInfo uint64
	// KernelEnd is the first guest-physical address above the kernel
	// image, bss included.
	KernelEnd uint64
}

// Load places kernel (and modules, command line, boot information) into
// guest RAM mem and sets the boot vCPU's initial state: v.Regs, and
// v.SRegs with SRegsValid and SRegsDirty set. mem is written only through
// its bounds-checked Slice; on error v is untouched, though mem may hold
// part of the image.
func Load(mem *vmm.GuestMemory, v *vmm.VCPU, kernel []byte, cmdline string, mods []Module) (Image, error) {
	if mem == nil || v == nil {
		return Image{}, fmt.Errorf("loader: nil guest memory or vCPU")
	}
	if err := checkCString("command line", cmdline); err != nil {
		return Image{}, err
	}
	for i, m := range mods {
		if err := checkCString(fmt.Sprintf("module %d command line", i), m.Cmdline); err != nil {
			return Image{}, err
		}
	}
	if len(mods) > MaxModules {
		return Image{}, fmt.Errorf("loader: %d modules, at most %d", len(mods), MaxModules)
	}
	l := &loadState{mem: mem, arena: newArena(mem.Size())}

	var (
		img Image
		err error
	)
	if hdr, ok, herr := findMultiboot(kernel); herr != nil {
		return Image{}, herr
	} else if ok {
		img, err = l.multiboot(kernel, hdr, cmdline, mods)
	} else if isBzImage(kernel) && !isELF(kernel) {
		return LoadLinux(mem, v, kernel, cmdline, linuxInitrd(mods))
	} else if isELF(kernel) {
		img, err = l.pvh(kernel, cmdline, mods)
	} else {
		return Image{}, fmt.Errorf("loader: unknown kernel format: no multiboot header in the first %d bytes and not an ELF file", mbSearch)
	}
	if err != nil {
		return Image{}, err
	}
	setBootState(v, img)
	return img, nil
}

// MaxModules is the most boot modules Load accepts.
const MaxModules = 64

// checkCString rejects strings that cannot be passed as C strings.
func checkCString(what, s string) error {
	if i := bytes.IndexByte([]byte(s), 0); i >= 0 {
		return fmt.Errorf("loader: %s has a NUL byte at %d", what, i)
	}
	return nil
}

// loadState is one Load call's guest memory and allocation state.
type loadState struct {
	mem   *vmm.GuestMemory
	arena *arena
}

// placeKernel checks the kernel's segments against guest RAM and each
// other, copies them in, zeroes their bss and marks them used. It returns
// the end of the highest segment.
func (l *loadState) placeKernel(segs []segment, limit uint64) (uint64, error) {
	size := min(l.mem.Size(), limit)
	var end uint64
	for i, s := range segs {
		if s.memsz > size || s.addr > size-s.memsz {
			return 0, fmt.Errorf("loader: kernel segment %d [%#x, +%#x) is outside guest RAM (%#x bytes)", i, s.addr, s.memsz, size)
		}
		if s.addr < pageSize {
			return 0, fmt.Errorf("loader: kernel segment %d at %#x overlaps page 0", i, s.addr)
		}
		hi := s.addr + s.memsz
		if s.addr < HighMemStart && hi > LowMemEnd {
			return 0, fmt.Errorf("loader: kernel segment %d [%#x, %#x) overlaps the legacy hole [%#x, %#x)", i, s.addr, hi, LowMemEnd, HighMemStart)
		}
		for j := range i {
			o := segs[j]
			if s.addr < o.addr+o.memsz && o.addr < hi {
				return 0, fmt.Errorf("loader: kernel segments %d and %d overlap", j, i)
			}
		}
		end = max(end, hi)
	}
	for _, s := range segs {
		dst, ok := l.mem.Slice(s.addr, s.memsz)
		if !ok { // checked above; never trust it blindly
			return 0, fmt.Errorf("loader: kernel segment at %#x is outside guest RAM", s.addr)
		}
		n := copy(dst, s.data)
		clear(dst[n:])
		l.arena.take(s.addr, s.addr+s.memsz)
	}
	return end, nil
}

// checkEntry checks that the entry point is in guest RAM below 4 GiB.
func (l *loadState) checkEntry(entry uint64) error {
	if entry >= l.mem.Size() || entry >= 1<<32 {
		return fmt.Errorf("loader: entry point %#x is outside guest RAM (%#x bytes, 32-bit entry)", entry, l.mem.Size())
	}
	return nil
}

// placedModule is a module's guest-physical location.
type placedModule struct{ start, end uint64 }

// placeModules copies the modules, page-aligned, above the kernel.
func (l *loadState) placeModules(mods []Module, kernelEnd uint64) ([]placedModule, error) {
	out := make([]placedModule, len(mods))
	for i, m := range mods {
		n := uint64(len(m.Data))
		at, err := l.arena.place(n, pageSize, kernelEnd, fmt.Sprintf("loader: module %d", i))
		if err != nil {
			return nil, err
		}
		dst, ok := l.mem.Slice(at, n)
		if !ok {
			return nil, fmt.Errorf("loader: module %d at %#x is outside guest RAM", i, at)
		}
		copy(dst, m.Data)
		out[i] = placedModule{at, at + n}
	}
	return out, nil
}

// blob builds a boot-information area: fixed structures first, then NUL-
// terminated strings, all addressed relative to a base chosen at the end.
type blob struct{ b []byte }

// reserve appends n zero bytes aligned to 8 and returns their offset.
func (bl *blob) reserve(n int) int {
	for len(bl.b)%8 != 0 {
		bl.b = append(bl.b, 0)
	}
	off := len(bl.b)
	bl.b = append(bl.b, make([]byte, n)...)
	return off
}

// str appends s and a NUL and returns its offset.
func (bl *blob) str(s string) int {
	off := len(bl.b)
	bl.b = append(bl.b, s...)
	bl.b = append(bl.b, 0)
	return off
}

// Initial segment state shared by multiboot and PVH: flat 4 GiB 32-bit
// code and data, a busy 32-bit TSS in TR (VM entry needs a usable TR) and
// an empty LDT, as KVM gives a reset vCPU.
const (
	bootCodeSel = 0x08
	bootDataSel = 0x10
	bootTSSSel  = 0x18

	attrCode = vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0xb // execute/read, accessed
	attrData = vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0x3 // read/write, accessed
	attrTSS  = vmm.SegP | 0xb                                   // 32-bit busy TSS
	attrLDT  = vmm.SegP | 0x2                                   // LDT

	cr0PE = 1 << 0
	cr0ET = 1 << 4

	multibootMagicEAX = 0x2BADB002
)

// setBootState sets v to the protocol's entry state for img.
func setBootState(v *vmm.VCPU, img Image) {
	v.Regs = vmm.Regs{RIP: img.Entry, RBX: img.BootInfo, RFLAGS: 0x2}
	if img.Format != FormatPVH {
		v.Regs.RAX = multibootMagicEAX
	}
	code := vmm.Segment{Selector: bootCodeSel, Attr: attrCode, Limit: 0xffffffff}
	data := vmm.Segment{Selector: bootDataSel, Attr: attrData, Limit: 0xffffffff}
	v.SRegs = vmm.SRegs{
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   vmm.Segment{Selector: bootTSSSel, Attr: attrTSS, Limit: 0x67},
		LDTR: vmm.Segment{Attr: attrLDT, Limit: 0xffff},
		CR0:  cr0PE | cr0ET,
	}
	v.SRegsValid = true
	v.SRegsDirty = true
}
