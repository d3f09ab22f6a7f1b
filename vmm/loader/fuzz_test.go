package loader

import (
	"bytes"
	"testing"

	"juice/vmm"
)

// FuzzLoad feeds arbitrary kernel images to Load: it must never panic and
// never write outside the guest RAM slice (guard bytes on both sides).
func FuzzLoad(f *testing.F) {
	text := append(mbHeaderBytes(3), pattern(0x100, 1)...)
	f.Add(buildELF(32, 0x100000, []tSeg{{typ: ptLoad, vaddr: 0x100000, paddr: 0x100000, data: text, memsz: 0x2000}}), "c", []byte("mod"))
	f.Add(aoutImage(0x200800, 0x201000, 0x1000), "", []byte{})
	f.Add(aoutImage(0, 0, 0x800), "x", []byte{1})
	f.Add(buildELF(64, 0, []tSeg{
		{typ: ptNote, data: xenNoteBytes(0x100100, 4), align: 4},
		{typ: ptLoad, paddr: 0x100000, data: pattern(0x300, 2), memsz: 0x2000},
	}), "console=ttyS0", pattern(100, 3))
	f.Add(buildELF(32, 0, []tSeg{
		{typ: ptNote, data: xenNoteBytes(0x100100, 8), align: 8},
		{typ: ptLoad, paddr: 0x1ff000, data: pattern(0x30, 2)},
	}), "", []byte{})
	f.Add([]byte("\x7fELF"), "", []byte{})

	const guard = 4096
	// One buffer per worker: the fuzz function runs sequentially in it.
	buf := bytes.Repeat([]byte{0xa5}, testRAM+2*guard)
	f.Fuzz(func(t *testing.T, kernel []byte, cmdline string, mod []byte) {
		ram := buf[guard : guard+testRAM : guard+testRAM]
		mem := vmm.NewGuestMemory(ram, 0)
		v := &vmm.VCPU{}
		img, err := Load(mem, v, kernel, cmdline, []Module{{Data: mod, Cmdline: "m"}})
		for i := range guard {
			if buf[i] != 0xa5 || buf[guard+testRAM+i] != 0xa5 {
				t.Fatalf("wrote outside guest RAM (guard byte %d)", i)
			}
		}
		if err != nil {
			return
		}
		if img.Entry >= testRAM || img.BootInfo >= testRAM || v.Regs.RIP != img.Entry || !v.SRegsValid {
			t.Fatalf("bad image %+v / state", img)
		}
	})
}
