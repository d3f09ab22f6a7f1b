package loader

import (
	"encoding/binary"
	"fmt"

	"juice/vmm"
)

// Where the boot protocols carry the ACPI RSDP's address.
const (
	// bpACPIRSDPAddr is boot_params.acpi_rsdp_addr (protocol 2.14+).
	bpACPIRSDPAddr = 0x070
	// pvhRSDPOff is hvm_start_info.rsdp_paddr.
	pvhRSDPOff = 32
)

// SetRSDP tells a loaded kernel where the VM's ACPI RSDP is: Linux's
// boot_params.acpi_rsdp_addr for FormatLinux, hvm_start_info.rsdp_paddr
// for FormatPVH. Multiboot kernels find the RSDP by scanning the BIOS
// area, where juice puts it, so nothing is written for them. The boot
// structure must lie in RAM (it does, when img came from Load).
func SetRSDP(mem *vmm.GuestMemory, img Image, rsdp uint64) error {
	var at uint64
	switch img.Format {
	case FormatLinux:
		at = img.BootInfo + bpACPIRSDPAddr
	case FormatPVH:
		at = img.BootInfo + pvhRSDPOff
	default:
		return nil
	}
	b, ok := mem.Slice(at, 8)
	if !ok {
		return fmt.Errorf("loader: %s boot information at %#x is outside guest RAM", img.Format, img.BootInfo)
	}
	binary.LittleEndian.PutUint64(b, rsdp)
	return nil
}
