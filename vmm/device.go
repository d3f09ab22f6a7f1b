package vmm

// PortDevice is a device on the port-I/O bus. Size is 1, 2 or 4; In's
// result is truncated to Size bytes. Both run on the exit path: no
// allocation, bounded work.
type PortDevice interface {
	In(port uint16, size uint8) uint32
	Out(port uint16, size uint8, value uint32)
}

// MMIODevice is a device on the MMIO bus (guest-physical addresses that
// are not RAM). Size is 1, 2, 4 or 8. Exit path: no allocation.
type MMIODevice interface {
	Read(gpa uint64, size uint8) uint64
	Write(gpa uint64, size uint8, value uint64)
}
