package loader

import (
	"encoding/binary"
	"testing"
)

func TestSetRSDP(t *testing.T) {
	ram, mem, v := newGuest(64 << 20)
	img, err := LoadLinux(mem, v, buildBzImage(debianOpts()), "console=ttyS0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetRSDP(mem, img, 0xe0000); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(ram[LinuxZeroPage+0x70:]); got != 0xe0000 {
		t.Errorf("boot_params.acpi_rsdp_addr = %#x, want 0xe0000", got)
	}

	kernel := buildELF(64, 0x100000, []tSeg{
		{typ: ptNote, data: xenNoteBytes(0x100100, 4), align: 4},
		{typ: ptLoad, vaddr: 0x100000, paddr: 0x100000, data: pattern(0x300, 2), memsz: 0x2000},
	})
	ram, mem, v = newGuest(testRAM)
	img, err = Load(mem, v, kernel, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetRSDP(mem, img, 0xe0010); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(ram[img.BootInfo+32:]); got != 0xe0010 {
		t.Errorf("hvm_start_info.rsdp_paddr = %#x, want 0xe0010", got)
	}
	if got := binary.LittleEndian.Uint32(ram[img.BootInfo:]); got != pvhMagic {
		t.Errorf("start info magic clobbered: %#x", got)
	}
	// Out of RAM: an error, no write.
	if err := SetRSDP(mem, Image{Format: FormatLinux, BootInfo: uint64(testRAM)}, 1); err == nil {
		t.Error("boot information outside RAM accepted")
	}
	// Multiboot: nothing to do.
	if err := SetRSDP(mem, Image{Format: FormatMultiboot, BootInfo: 1 << 40}, 1); err != nil {
		t.Error(err)
	}
}
