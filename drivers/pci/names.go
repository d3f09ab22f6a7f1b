package pci

import "fmt"

// Vendor IDs juice recognizes.
const (
	VendorRedHat = 0x1AF4 // virtio (also Red Hat's QEMU devices)
	VendorIntel  = 0x8086
)

// virtio device IDs (virtio 1.2 section 4.1.2): transitional devices are
// 0x1000-0x103F with the virtio device type in the subsystem ID; modern
// devices are 0x1040 + type.
const (
	VirtioTransitionalFirst = 0x1000
	VirtioTransitionalLast  = 0x103F
	VirtioModernBase        = 0x1040
	VirtioModernLast        = 0x107F
)

// VirtioType returns the virtio device type of f (1 network, 2 block, ...)
// and whether f is a modern-only device; ok is false when f is not a
// virtio-pci device.
func VirtioType(f *Function) (typ uint16, modern, ok bool) {
	if f.VendorID != VendorRedHat {
		return 0, false, false
	}
	switch id := f.DeviceID; {
	case id >= VirtioModernBase && id <= VirtioModernLast:
		return id - VirtioModernBase, true, true
	case id >= VirtioTransitionalFirst && id <= VirtioTransitionalLast:
		return f.SubsystemID, false, f.Header == HeaderNormal
	}
	return 0, false, false
}

// virtioNames are the virtio device types' short names.
var virtioNames = map[uint16]string{
	1: "virtio-net", 2: "virtio-blk", 3: "virtio-console", 4: "virtio-rng",
	5: "virtio-balloon", 8: "virtio-scsi", 9: "virtio-9p", 16: "virtio-gpu",
	18: "virtio-input", 19: "virtio-vsock", 26: "virtio-fs",
}

// knownDevices names common emulated and server devices by vendor<<16 |
// device.
var knownDevices = map[uint32]string{
	VendorIntel<<16 | 0x29C0: "q35 host bridge",
	VendorIntel<<16 | 0x2918: "ICH9 LPC bridge",
	VendorIntel<<16 | 0x2922: "ICH9 AHCI",
	VendorIntel<<16 | 0x2930: "ICH9 SMBus",
	VendorIntel<<16 | 0x1237: "i440FX host bridge",
	VendorIntel<<16 | 0x7000: "PIIX3 ISA bridge",
	VendorIntel<<16 | 0x7010: "PIIX3 IDE",
	VendorIntel<<16 | 0x7113: "PIIX4 ACPI",
	VendorIntel<<16 | 0x100E: "e1000 (82540EM)",
	VendorIntel<<16 | 0x10D3: "e1000e (82574L)",
	0x1234<<16 | 0x1111:      "bochs VGA",
	0x1B36<<16 | 0x0008:      "PCIe host bridge",
	0x1B36<<16 | 0x000C:      "PCIe root port",
	0x1B36<<16 | 0x0010:      "NVMe",
}

// classNames names functions by base class<<8 | subclass.
var classNames = map[uint32]string{
	0x0100: "SCSI controller", 0x0101: "IDE controller", 0x0106: "SATA controller",
	0x0108: "NVMe controller", 0x0180: "storage controller",
	0x0200: "Ethernet controller", 0x0280: "network controller",
	0x0300: "VGA controller", 0x0380: "display controller",
	0x0600: "host bridge", 0x0601: "ISA bridge", 0x0604: "PCI bridge", 0x0680: "bridge",
	0x0C03: "USB controller", 0x0C05: "SMBus controller",
}

// Name returns a short human name for f: its virtio type, a known device,
// or its class.
func Name(f *Function) string {
	if typ, modern, ok := VirtioType(f); ok {
		n, known := virtioNames[typ]
		if !known {
			n = fmt.Sprintf("virtio type %d", typ)
		}
		if modern {
			return n + " (modern)"
		}
		return n + " (transitional)"
	}
	if n, ok := knownDevices[uint32(f.VendorID)<<16|uint32(f.DeviceID)]; ok {
		return n
	}
	if n, ok := classNames[f.Class>>8]; ok {
		return n
	}
	return fmt.Sprintf("class %06x", f.Class)
}
