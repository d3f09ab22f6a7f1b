package kernel

import (
	"errors"

	"juice/boot/bootinfo"
)

// MaxDeviceMap bounds one MapDevice call (a device's register BAR).
const MaxDeviceMap = 1 << 30

// Errors of MapDevice.
var (
	ErrDeviceRange = errors.New("device range is empty, too large or beyond the direct map")
	ErrDeviceRAM   = errors.New("device range overlaps RAM")
)

// MapDevice maps a device's registers at physical [pa, pa+n) uncached
// into the direct map (pages already mapped are left alone) and widens
// the physical-memory window over them, so drivers reach them through
// the same phys.Mem as RAM. It refuses ranges that overlap RAM in the
// boot memory map (RAM is mapped write-back; an uncached alias of it
// would be a memory-type conflict) and ranges above the direct map's 512
// GiB. Interrupts are off while the page tables change (the page-fault
// handler maps too). Not for interrupt context.
func MapDevice(pa, n uint64) error {
	if n == 0 || n > MaxDeviceMap || pa+n < pa || pa+n > 1<<39 {
		return ErrDeviceRange
	}
	for i := 0; i < bootInfo.NMem; i++ {
		r := bootInfo.Mem[i]
		if r.Type == bootinfo.RegionRAM && pa < r.End() && r.Base < pa+n {
			return ErrDeviceRAM
		}
	}
	f := irqOff()
	for p := pa &^ 4095; p < pa+n; p += 4096 {
		mapMMIO(p)
	}
	irqRestore(f)
	return nil
}

// RSDP is the ACPI RSDP's physical address the loader handed over (PVH's
// rsdp_paddr, multiboot2's RSDP tags: under UEFI the only way to find it),
// or 0 if it gave none (then the BIOS areas are searched).
func RSDP() uint64 { return bootInfo.RSDP }
