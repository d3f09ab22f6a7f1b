package virtio

import (
	"fmt"

	"juice/drivers/disk"
)

// Region is a byte range of a host disk driven by Blk, served to a guest
// as a disk of its own (disk.Region).
type Region = disk.Region

// blkErrs are the errors a Blk's regions return.
var blkErrs = disk.Errors{Range: ErrRange, ReadOnly: ErrReadOnly, Align: ErrAlign}

// Region returns [off, off+size) of b as a disk; readOnly refuses writes
// even if b takes them.
func (b *Blk) Region(off, size uint64, readOnly bool) (*Region, error) {
	return disk.NewRegion(b, fmt.Sprintf("virtio-blk %v", b.t.Addr), &blkErrs, off, size, readOnly)
}
