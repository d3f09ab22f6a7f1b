// Package disk holds what juice's host disk drivers (drivers/virtio's
// Blk, drivers/ahci's Disk) share above their command sets: Region, a
// byte range of a host disk served to a guest as a disk of its own.
package disk

import "fmt"

// SectorSize is the unit of a region's bounds and of every request.
const SectorSize = 512

// Device is a host disk as a driver presents it. ReadAt and WriteAt take
// whole sectors at sector-aligned offsets; none of the methods allocate
// (a Region's requests run on a guest's VM-exit path).
type Device interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Flush puts every completed write on stable storage.
	Flush() error
	// Size is the disk's size in bytes.
	Size() uint64
	// ReadOnly reports whether the device refuses writes.
	ReadOnly() bool
}

// Errors are the errors a Region returns, the driver's own, so that its
// callers match them with errors.Is against the driver's package.
type Errors struct {
	// Range: beyond the region; ReadOnly: a write to a read-only region;
	// Align: bounds not whole sectors.
	Range, ReadOnly, Align error
}

// Region is [off, off+size) of a Device, seen as a disk of its own: the
// storage behind a guest's disk (it satisfies juice/vmm/virtio/blk.Backend),
// so that a guest disk can be a partition or an extent of a host disk.
// Offsets are relative to the region. Flush flushes the whole host disk,
// so a guest's flush reaches the device's stable storage. Requests
// allocate nothing and do bounded work beyond the device's own.
type Region struct {
	d         Device
	errs      *Errors
	off, size uint64
	ro        bool
}

// NewRegion returns [off, off+size) of d as a disk; readOnly refuses
// writes even if d takes them. name (the device, for messages) and errs
// come from the driver.
func NewRegion(d Device, name string, errs *Errors, off, size uint64, readOnly bool) (*Region, error) {
	if off%SectorSize != 0 || size%SectorSize != 0 || size == 0 {
		return nil, fmt.Errorf("%s: region %#x+%#x: %w", name, off, size, errs.Align)
	}
	if off > d.Size() || size > d.Size()-off {
		return nil, fmt.Errorf("%s: region %#x+%#x of a %#x-byte disk: %w", name, off, size, d.Size(), errs.Range)
	}
	return &Region{d: d, errs: errs, off: off, size: size, ro: readOnly || d.ReadOnly()}, nil
}

// Size is the region's size in bytes.
func (r *Region) Size() uint64 { return r.size }

// Offset is where the region starts on the host disk.
func (r *Region) Offset() uint64 { return r.off }

// ReadOnly reports whether writes are refused.
func (r *Region) ReadOnly() bool { return r.ro }

// span checks [off, off+n) against the region.
func (r *Region) span(off int64, n int64) error {
	if off < 0 || n < 0 || uint64(off) > r.size || uint64(n) > r.size-uint64(off) {
		return r.errs.Range
	}
	return nil
}

// ReadAt reads len(p) bytes at off in the region.
func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	if err := r.span(off, int64(len(p))); err != nil {
		return 0, err
	}
	return r.d.ReadAt(p, int64(r.off)+off)
}

// WriteAt writes p at off in the region.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if r.ro {
		return 0, r.errs.ReadOnly
	}
	if err := r.span(off, int64(len(p))); err != nil {
		return 0, err
	}
	return r.d.WriteAt(p, int64(r.off)+off)
}

// Flush puts every write the host disk completed on stable storage.
func (r *Region) Flush() error { return r.d.Flush() }

// Discard accepts the hint and does nothing (no TRIM or DISCARD is sent
// to the host device; a discarded range's contents are unspecified, so
// keeping them is allowed). It checks the range like a write.
func (r *Region) Discard(off, n int64) error {
	if r.ro {
		return r.errs.ReadOnly
	}
	return r.span(off, n)
}
