package virtio

import "fmt"

// Region is a byte range of a host disk, [off, off+size) of a Blk, seen
// as a disk of its own: the storage behind a guest's disk (it satisfies
// juice/vmm/virtio/blk.Backend), so that a guest disk can be a partition
// or a file's extent on a host disk. Offsets are relative to the region
// and, like the region's bounds, whole sectors. Flush flushes the whole
// host disk, so a guest's flush reaches the device's stable storage.
// Requests from the guest device's VM-exit path allocate nothing (Blk's
// requests do not) and are bounded by the Blk's timeout.
type Region struct {
	b         *Blk
	off, size uint64
	ro        bool
}

// Region returns [off, off+size) of b as a disk; readOnly refuses writes
// even if b takes them.
func (b *Blk) Region(off, size uint64, readOnly bool) (*Region, error) {
	if off%SectorSize != 0 || size%SectorSize != 0 || size == 0 {
		return nil, fmt.Errorf("virtio-blk %v: region %#x+%#x: %w", b.t.Addr, off, size, ErrAlign)
	}
	if off > b.Size() || size > b.Size()-off {
		return nil, fmt.Errorf("virtio-blk %v: region %#x+%#x of a %#x-byte disk: %w", b.t.Addr, off, size, b.Size(), ErrRange)
	}
	return &Region{b: b, off: off, size: size, ro: readOnly || b.ReadOnly()}, nil
}

// Size is the region's size in bytes.
func (r *Region) Size() uint64 { return r.size }

// Offset is where the region starts on the host disk.
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
	return r.b.ReadAt(p, int64(r.off)+off)
}

// WriteAt writes p at off in the region.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if r.ro {
		return 0, ErrReadOnly
	}
	if err := r.span(off, len(p)); err != nil {
		return 0, err
	}
	return r.b.WriteAt(p, int64(r.off)+off)
}

// Flush puts every write the host disk completed on stable storage.
func (r *Region) Flush() error { return r.b.Flush() }

// Discard accepts the hint and does nothing (the host device's DISCARD
// is not negotiated; a discarded range's contents are unspecified, so
// keeping them is allowed).
func (r *Region) Discard(off, n int64) error {
	if r.ro {
		return ErrReadOnly
	}
	if n < 0 || n > int64(^uint(0)>>1) {
		return ErrRange
	}
	return r.span(off, int(n))
}
