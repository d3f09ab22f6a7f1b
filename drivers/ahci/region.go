package ahci

import "fmt"

// Region is a byte range of an AHCI disk, [off, off+size) of a Disk,
// seen as a disk of its own: the storage behind a guest's disk (it
// satisfies juice/vmm/virtio/blk.Backend), so that a guest disk can be a
// partition or a byte range of a SATA disk. Offsets are relative to the
// region and, like the region's bounds, multiples of 512. Flush flushes
// the whole disk, so a guest's flush reaches the device's stable
// storage. Requests from the guest device's VM-exit path allocate
// nothing (the Disk's commands do not) and are bounded by its timeout.
type Region struct {
	d         *Disk
	off, size uint64
	ro        bool
}

// Region returns [off, off+size) of d as a disk; readOnly refuses writes.
func (d *Disk) Region(off, size uint64, readOnly bool) (*Region, error) {
	if off%SectorSize != 0 || size%SectorSize != 0 || size == 0 {
		return nil, fmt.Errorf("%v: region %#x+%#x: %w", d, off, size, ErrAlign)
	}
	if off > d.Size() || size > d.Size()-off {
		return nil, fmt.Errorf("%v: region %#x+%#x of a %#x-byte disk: %w", d, off, size, d.Size(), ErrRange)
	}
	return &Region{d: d, off: off, size: size, ro: readOnly || d.ReadOnly()}, nil
}

// Size is the region's size in bytes.
func (r *Region) Size() uint64 { return r.size }

// Offset is where the region starts on the disk.
func (r *Region) Offset() uint64 { return r.off }

// ReadOnly reports whether writes are refused.
func (r *Region) ReadOnly() bool { return r.ro }

// span checks [off, off+n) against the region.
func (r *Region) span(off int64, n int) error {
	if off < 0 || uint64(off) > r.size || uint64(n) > r.size-uint64(off) {
		return ErrRange
	}
	return nil
}

// ReadAt reads len(p) bytes at off in the region.
func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	if err := r.span(off, len(p)); err != nil {
		return 0, err
	}
	return r.d.ReadAt(p, int64(r.off)+off)
}

// WriteAt writes p at off in the region.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if r.ro {
		return 0, ErrReadOnly
	}
	if err := r.span(off, len(p)); err != nil {
		return 0, err
	}
	return r.d.WriteAt(p, int64(r.off)+off)
}

// Flush puts every write the disk completed on stable storage.
func (r *Region) Flush() error { return r.d.Flush() }

// Discard accepts the hint and does nothing (no TRIM is sent; a
// discarded range's contents are unspecified, so keeping them is
// allowed).
func (r *Region) Discard(off, n int64) error {
	if r.ro {
		return ErrReadOnly
	}
	if n < 0 || n > int64(^uint(0)>>1) {
		return ErrRange
	}
	return r.span(off, int(n))
}
