package vmm

import (
	"fmt"
	"sync/atomic"
)

// PortDevice is a device on the port-I/O bus. It sees offsets from the
// base of the range it was registered at, never absolute ports, and
// accesses of 1, 2 or 4 bytes that lie wholly inside that range. Its
// methods run on the vCPU's exit path: they must not block for long and
// should not allocate. Several vCPUs may call a device concurrently.
type PortDevice interface {
	// In returns the value read from offset off (only the low size
	// bytes are used).
	In(off uint16, size uint8) uint32
	// Out writes the low size bytes of value at offset off.
	Out(off uint16, size uint8, value uint32)
}

// MMIODevice is a device on the MMIO bus. It sees offsets from the base of
// the range it was registered at and accesses of 1, 2, 4 or 8 bytes that
// lie wholly inside that range. Same rules as PortDevice.
type MMIODevice interface {
	// Read returns the value read at offset off (only the low size bytes
	// are used).
	Read(off uint64, size uint8) uint64
	// Write writes the low size bytes of value at offset off.
	Write(off uint64, size uint8, value uint64)
}

type ioRange struct {
	base, end uint32 // [base, end)
	dev       PortDevice
}

// IOBus is a VM's port-I/O space: device ranges registered before the VM
// starts, looked up by binary search on every access. A port with no
// device reads as all ones and ignores writes (an ISA bus with nothing
// on it); such accesses are counted. An access that spans the end of a
// device's range is treated the same way.
type IOBus struct {
	ranges    []ioRange // sorted by base, disjoint
	sealed    bool
	unhandled atomic.Uint64
}

// Register attaches dev to ports [base, base+n). It fails for an empty
// range, a range past port 0xFFFF, an overlap, or once the VM has started.
func (b *IOBus) Register(base uint16, n uint32, dev PortDevice) error {
	end := uint32(base) + n
	switch {
	case dev == nil:
		return fmt.Errorf("io bus: nil device at port %#x", base)
	case n == 0 || end > 0x10000:
		return fmt.Errorf("io bus: bad port range %#x+%#x", base, n)
	case b.sealed:
		return fmt.Errorf("io bus: ports %#x-%#x: the VM has started", base, end-1)
	}
	i := 0
	for i < len(b.ranges) && b.ranges[i].base < uint32(base) {
		i++
	}
	if i > 0 && b.ranges[i-1].end > uint32(base) || i < len(b.ranges) && b.ranges[i].base < end {
		return fmt.Errorf("io bus: ports %#x-%#x overlap a registered device", base, end-1)
	}
	b.ranges = append(b.ranges, ioRange{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = ioRange{base: uint32(base), end: end, dev: dev}
	return nil
}

// find returns the range holding [port, port+size).
func (b *IOBus) find(port uint16, size uint8) (*ioRange, bool) {
	p := uint32(port)
	lo, hi := 0, len(b.ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.ranges[m].end <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(b.ranges) {
		r := &b.ranges[lo]
		if r.base <= p && p+uint32(size) <= r.end {
			return r, true
		}
	}
	return nil, false
}

// In reads size (1, 2 or 4) bytes from port.
func (b *IOBus) In(port uint16, size uint8) uint32 {
	mask := sizeMask32(size)
	if r, ok := b.find(port, size); ok && mask != 0 {
		return r.dev.In(uint16(uint32(port)-r.base), size) & mask
	}
	b.unhandled.Add(1)
	if mask == 0 {
		return 0xffffffff
	}
	return mask
}

// Out writes the low size (1, 2 or 4) bytes of value to port.
func (b *IOBus) Out(port uint16, size uint8, value uint32) {
	mask := sizeMask32(size)
	if r, ok := b.find(port, size); ok && mask != 0 {
		r.dev.Out(uint16(uint32(port)-r.base), size, value&mask)
		return
	}
	b.unhandled.Add(1)
}

// Unhandled counts accesses to ports with no device.
func (b *IOBus) Unhandled() uint64 { return b.unhandled.Load() }

func sizeMask32(size uint8) uint32 {
	switch size {
	case 1:
		return 0xff
	case 2:
		return 0xffff
	case 4:
		return 0xffffffff
	}
	return 0
}

func sizeMask64(size uint8) uint64 {
	switch size {
	case 1:
		return 0xff
	case 2:
		return 0xffff
	case 4:
		return 0xffffffff
	case 8:
		return ^uint64(0)
	}
	return 0
}

type mmioRange struct {
	base, end uint64 // [base, end)
	dev       MMIODevice
}

// MMIOBus is a VM's memory-mapped device space: guest-physical ranges
// outside RAM, registered before the VM starts. A guest access to a
// guest-physical address that is neither RAM nor a registered device
// stops the VM (Fault).
type MMIOBus struct {
	ranges  []mmioRange // sorted by base, disjoint
	ramSize uint64      // [0, ramSize) is RAM: no device may sit there
	sealed  bool
}

// Register attaches dev to guest-physical [base, base+n). It fails for an
// empty or wrapping range, an overlap with RAM or another device, or once
// the VM has started.
func (b *MMIOBus) Register(base, n uint64, dev MMIODevice) error {
	end := base + n
	switch {
	case dev == nil:
		return fmt.Errorf("mmio bus: nil device at %#x", base)
	case n == 0 || end < base:
		return fmt.Errorf("mmio bus: bad range %#x+%#x", base, n)
	case base < b.ramSize:
		return fmt.Errorf("mmio bus: %#x-%#x overlaps guest RAM [0, %#x)", base, end-1, b.ramSize)
	case b.sealed:
		return fmt.Errorf("mmio bus: %#x-%#x: the VM has started", base, end-1)
	}
	i := 0
	for i < len(b.ranges) && b.ranges[i].base < base {
		i++
	}
	if i > 0 && b.ranges[i-1].end > base || i < len(b.ranges) && b.ranges[i].base < end {
		return fmt.Errorf("mmio bus: %#x-%#x overlaps a registered device", base, end-1)
	}
	b.ranges = append(b.ranges, mmioRange{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = mmioRange{base: base, end: end, dev: dev}
	return nil
}

// find returns the range holding [gpa, gpa+size).
func (b *MMIOBus) find(gpa uint64, size uint8) (*mmioRange, bool) {
	lo, hi := 0, len(b.ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.ranges[m].end <= gpa {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(b.ranges) {
		r := &b.ranges[lo]
		if r.base <= gpa && uint64(size) <= r.end-gpa {
			return r, true
		}
	}
	return nil, false
}

// Has reports whether a device covers guest-physical address gpa.
func (b *MMIOBus) Has(gpa uint64) bool {
	_, ok := b.find(gpa, 1)
	return ok
}

// Read reads size (1, 2, 4 or 8) bytes at gpa; ok is false when no device
// covers the whole access.
func (b *MMIOBus) Read(gpa uint64, size uint8) (uint64, bool) {
	mask := sizeMask64(size)
	r, ok := b.find(gpa, size)
	if !ok || mask == 0 {
		return 0, false
	}
	return r.dev.Read(gpa-r.base, size) & mask, true
}

// Write writes the low size (1, 2, 4 or 8) bytes of value at gpa; it
// reports false when no device covers the whole access.
func (b *MMIOBus) Write(gpa uint64, size uint8, value uint64) bool {
	mask := sizeMask64(size)
	r, ok := b.find(gpa, size)
	if !ok || mask == 0 {
		return false
	}
	r.dev.Write(gpa-r.base, size, value&mask)
	return true
}
