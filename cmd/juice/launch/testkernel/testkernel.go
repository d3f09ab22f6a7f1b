// Package testkernel generates tiny 32-bit x86 ELF kernels for testing the
// boot tooling (QEMU command lines, GRUB ISOs, console capture, exit-status
// mapping) without juice itself. A test kernel carries a PVH ELF note (QEMU
// -kernel) and a multiboot2 header (GRUB), prints a fixed text and
// optionally its command line to COM1, then exits through QEMU's
// isa-debug-exit port, ends Bochs through its shutdown port, halts, or
// triple-faults.
package testkernel

import (
	"encoding/binary"
	"fmt"
	"os"
)

// Action is what a test kernel does after printing.
type Action int

// The actions.
const (
	// Exit writes Program.Status to the isa-debug-exit port 0xf4 (then
	// halts, in case the port is absent).
	Exit Action = iota
	// Halt stops the CPU with interrupts off; the emulator keeps running.
	Halt
	// TripleFault loads an empty IDT and raises an exception: the machine
	// resets (or QEMU exits, under -no-reboot; Bochs stops, with
	// reset_on_triple_fault=0).
	TripleFault
	// Shutdown writes the ASCII string "Shutdown" to port 0x8900, which
	// ends Bochs (then halts: QEMU has no such port). Put juice's
	// "juice: power off, status N" line in Output to mimic juice's
	// power-off under Bochs.
	Shutdown
)

// Program describes a test kernel.
type Program struct {
	// Output is printed to COM1 first, byte for byte (no NUL bytes).
	Output string
	// ShowCmdline prints "cmdline: [TEXT]\n" after Output, where TEXT is
	// the command line from the PVH start info or the multiboot2 tag.
	ShowCmdline bool
	// Action is what happens next.
	Action Action
	// Status is the value written to the debug-exit port for Exit.
	Status uint32
}

// Memory layout: the whole file is loaded at Base; headers first, then code
// and data, then a stack.
const (
	// Base is the physical load address.
	Base     = 0x100000
	ehdrSize = 52
	phdrSize = 32
	mb2Off   = ehdrSize + 2*phdrSize // 0x74, rounded up to 8 below
	fileSize = 4096                  // QEMU reads up to 8 KiB of header; pad
	stackLen = 4096
)

// Multiboot2 and PVH constants.
const (
	mb2HeaderMagic = 0xe85250d6
	mb2LoaderMagic = 0x36d76289
	pvhStartMagic  = 0x336ec578
	xenPhys32Entry = 18 // XEN_ELFNOTE_PHYS32_ENTRY
	// bochsShutdownPort ends Bochs when "Shutdown" is written to it.
	bochsShutdownPort = 0x8900
)

// ELF returns the kernel image for p.
func ELF(p Program) ([]byte, error) {
	for i := 0; i < len(p.Output); i++ {
		if p.Output[i] == 0 {
			return nil, fmt.Errorf("testkernel: NUL byte in output")
		}
	}
	img := make([]byte, fileSize)
	le := binary.LittleEndian

	mb2 := (mb2Off + 7) &^ 7
	mb2Len := 24 // fixed part (16) + end tag (8)
	le.PutUint32(img[mb2:], mb2HeaderMagic)
	le.PutUint32(img[mb2+4:], 0) // i386 protected mode
	le.PutUint32(img[mb2+8:], uint32(mb2Len))
	le.PutUint32(img[mb2+12:], -uint32(mb2HeaderMagic+uint32(mb2Len)))
	le.PutUint16(img[mb2+16:], 0) // end tag: type 0, flags 0, size 8
	le.PutUint32(img[mb2+20:], 8)

	note := mb2 + mb2Len
	noteLen := 20
	code := (note + noteLen + 15) &^ 15

	a := newAsm(Base + uint32(code))
	program(a, p)
	body, err := a.finish()
	if err != nil {
		return nil, err
	}
	if code+len(body) > fileSize {
		return nil, fmt.Errorf("testkernel: output too long (%d bytes of code and data)", len(body))
	}
	copy(img[code:], body)

	le.PutUint32(img[note:], 4)   // namesz
	le.PutUint32(img[note+4:], 4) // descsz
	le.PutUint32(img[note+8:], xenPhys32Entry)
	copy(img[note+12:], "Xen\x00")
	le.PutUint32(img[note+16:], Base+uint32(code))

	// ELF header.
	copy(img, "\x7fELF\x01\x01\x01")
	le.PutUint16(img[16:], 2)                 // ET_EXEC
	le.PutUint16(img[18:], 3)                 // EM_386
	le.PutUint32(img[20:], 1)                 // EV_CURRENT
	le.PutUint32(img[24:], Base+uint32(code)) // e_entry
	le.PutUint32(img[28:], ehdrSize)          // e_phoff
	le.PutUint16(img[40:], ehdrSize)          // e_ehsize
	le.PutUint16(img[42:], phdrSize)          // e_phentsize
	le.PutUint16(img[44:], 2)                 // e_phnum
	le.PutUint16(img[46:], 40)                // e_shentsize

	ph := img[ehdrSize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 0)
	le.PutUint32(ph[8:], Base)
	le.PutUint32(ph[12:], Base)
	le.PutUint32(ph[16:], fileSize)
	le.PutUint32(ph[20:], fileSize+stackLen)
	le.PutUint32(ph[24:], 7) // RWX
	le.PutUint32(ph[28:], 0x1000)
	ph = img[ehdrSize+phdrSize:]
	le.PutUint32(ph[0:], 4) // PT_NOTE
	le.PutUint32(ph[4:], uint32(note))
	le.PutUint32(ph[8:], Base+uint32(note))
	le.PutUint32(ph[12:], Base+uint32(note))
	le.PutUint32(ph[16:], uint32(noteLen))
	le.PutUint32(ph[20:], uint32(noteLen))
	le.PutUint32(ph[24:], 4) // R
	le.PutUint32(ph[28:], 4)
	return img, nil
}

// Write writes the kernel image for p to path.
func Write(path string, p Program) error {
	img, err := ELF(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, img, 0o644)
}

// program emits the code and data of p. Registers on entry: EAX = the
// multiboot2 loader magic (GRUB), EBX = the multiboot2 information or the
// PVH start info.
func program(a *asm, p Program) {
	a.emit(0xfa)                 // cli
	a.emit(0x89, 0xc7)           // mov edi, eax (loader magic)
	a.emit(0x89, 0xdd)           // mov ebp, ebx (boot information)
	a.emit(0xbc).abs32("stack")  // mov esp, stack
	a.emit(0xbe).abs32("output") // mov esi, output
	a.emit(0xe8).rel32("print")  // call print
	if p.ShowCmdline {
		a.emit(0xbe).abs32("clprefix") // mov esi, "cmdline: ["
		a.emit(0xe8).rel32("print")
		a.emit(0x89, 0xeb)                     // mov ebx, ebp
		a.emit(0x81, 0xff).u32(mb2LoaderMagic) // cmp edi, mb2 magic
		a.emit(0x74).rel8("mb2")               // je mb2
		a.emit(0x81, 0x3b).u32(pvhStartMagic)  // cmp dword [ebx], pvh magic
		a.emit(0x75).rel8("clsuffix")          // jne clsuffix
		a.emit(0x8b, 0x73, 0x18)               // mov esi, [ebx+24] (cmdline_paddr, low half)
		a.emit(0x85, 0xf6)                     // test esi, esi
		a.emit(0x74).rel8("clsuffix")          // jz clsuffix
		a.emit(0xeb).rel8("clprint")           // jmp clprint
		a.label("mb2")
		a.emit(0x8d, 0x73, 0x08) // lea esi, [ebx+8] (first tag)
		a.label("tag")
		a.emit(0x8b, 0x06) // mov eax, [esi] (tag type)
		a.emit(0x85, 0xc0) // test eax, eax
		a.emit(0x74).rel8("clsuffix")
		a.emit(0x83, 0xf8, 0x01) // cmp eax, 1 (command line)
		a.emit(0x74).rel8("found")
		a.emit(0x8b, 0x4e, 0x04) // mov ecx, [esi+4] (tag size)
		a.emit(0x83, 0xc1, 0x07) // add ecx, 7
		a.emit(0x83, 0xe1, 0xf8) // and ecx, ~7
		a.emit(0x01, 0xce)       // add esi, ecx
		a.emit(0xeb).rel8("tag")
		a.label("found")
		a.emit(0x83, 0xc6, 0x08) // add esi, 8 (the string)
		a.label("clprint")
		a.emit(0xe8).rel32("print")
		a.label("clsuffix")
		a.emit(0xbe).abs32("clsuffixstr") // mov esi, "]\n"
		a.emit(0xe8).rel32("print")
	}
	// Wait until COM1 has sent everything (LSR bit 6, transmitter
	// empty): Bochs drops what is still in flight when it stops.
	a.emit(0x66, 0xba).u16(0x3fd) // mov dx, 0x3fd (LSR)
	a.label("twait")
	a.emit(0xec)       // in al, dx
	a.emit(0xa8, 0x40) // test al, 0x40
	a.emit(0x74).rel8("twait")
	switch p.Action {
	case Exit:
		a.emit(0x66, 0xba).u16(0xf4) // mov dx, 0xf4
		a.emit(0xb8).u32(p.Status)   // mov eax, status
		a.emit(0xef)                 // out dx, eax
	case TripleFault:
		a.emit(0x0f, 0x01, 0x1d).abs32("emptyidt") // lidt [emptyidt]
		a.emit(0xcc)                               // int3
	case Shutdown:
		a.emit(0x66, 0xba).u16(bochsShutdownPort) // mov dx, 0x8900
		a.emit(0xbe).abs32("shutdownstr")         // mov esi, "Shutdown"
		a.label("sloop")
		a.emit(0xac)       // lodsb
		a.emit(0x84, 0xc0) // test al, al
		a.emit(0x74).rel8("halt")
		a.emit(0xee) // out dx, al
		a.emit(0xeb).rel8("sloop")
	}
	a.label("halt")
	a.emit(0xf4)              // hlt
	a.emit(0xeb).rel8("halt") // jmp halt

	// print: write the NUL-terminated string at ESI to COM1, each byte
	// once the transmitter holding register is empty (LSR bit 5): Bochs
	// models the line speed and drops bytes written too fast.
	a.label("print")
	a.label("ploop")
	a.emit(0xac)       // lodsb
	a.emit(0x84, 0xc0) // test al, al
	a.emit(0x74).rel8("pdone")
	a.emit(0x88, 0xc4)            // mov ah, al
	a.emit(0x66, 0xba).u16(0x3fd) // mov dx, 0x3fd (LSR)
	a.label("pwait")
	a.emit(0xec)       // in al, dx
	a.emit(0xa8, 0x20) // test al, 0x20
	a.emit(0x74).rel8("pwait")
	a.emit(0x88, 0xe0)            // mov al, ah
	a.emit(0x66, 0xba).u16(0x3f8) // mov dx, 0x3f8
	a.emit(0xee)                  // out dx, al
	a.emit(0xeb).rel8("ploop")
	a.label("pdone")
	a.emit(0xc3) // ret

	a.align(8)
	a.label("emptyidt")
	a.emit(0, 0, 0, 0, 0, 0) // limit 0, base 0
	a.label("output")
	a.emit([]byte(p.Output)...)
	a.emit(0)
	a.label("clprefix")
	a.emit([]byte("cmdline: [")...)
	a.emit(0)
	a.label("clsuffixstr")
	a.emit([]byte("]\n")...)
	a.emit(0)
	a.label("shutdownstr")
	a.emit([]byte("Shutdown")...)
	a.emit(0)
	a.labelAt("stack", Base+fileSize+stackLen)
}
