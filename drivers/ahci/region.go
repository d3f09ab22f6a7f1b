package ahci

import (
	"juice/drivers/disk"
)

// Region is a byte range of an AHCI disk, served to a guest as a disk of
// its own (disk.Region).
type Region = disk.Region

// diskErrs are the errors a Disk's regions return.
var diskErrs = disk.Errors{Range: ErrRange, ReadOnly: ErrReadOnly, Align: ErrAlign}

// Region returns [off, off+size) of d as a disk; readOnly refuses writes.
func (d *Disk) Region(off, size uint64, readOnly bool) (*Region, error) {
	return disk.NewRegion(d, d.String(), &diskErrs, off, size, readOnly)
}
