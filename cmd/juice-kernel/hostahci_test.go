package main

import (
	"strings"
	"testing"

	"juice/drivers/partition"
	"juice/vmm/bundle"
	vblk "juice/vmm/virtio/blk"
)

// TestHostDiskAHCINames: an AHCI disk (sda) is claimed by name like a
// virtio one, each disk's regions checked on their own disk.
func TestHostDiskAHCINames(t *testing.T) {
	fake := func(name string, size uint64, tb *partition.Table) *hostDisk {
		return &hostDisk{name: name, size: size, block: 512, table: tb,
			region: func(off, n uint64, ro bool) (vblk.Backend, error) {
				return &fakeRegion{RAMDisk: vblk.NewRAMDisk(int64(n)), off: off}, nil
			}}
	}
	saved := hostDisks
	hostDisks = []*hostDisk{
		fake("vda", 16<<20, &partition.Table{Scheme: partition.None}),
		fake("sda", 64<<20, &partition.Table{Scheme: partition.MBR, Partitions: []partition.Partition{
			{Number: 1, Offset: 1 << 20, Size: 56 << 20, Type: "0x83"}}}),
	}
	hostClaims.list = nil
	t.Cleanup(func() { hostDisks, hostClaims.list = saved, nil })

	bes, err := claimHostDisks("a", []bundle.DiskSpec{{Host: "sda", Partition: 1}, {Host: "vda", Offset: 1 << 20, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := bes[0].(*fakeRegion); !ok || r.off != 1<<20 || r.Size() != 56<<20 {
		t.Errorf("sda partition 1: %#v", bes[0])
	}
	if r, ok := bes[1].(*fakeRegion); !ok || r.off != 1<<20 || r.Size() != 1<<20 {
		t.Errorf("vda range: %#v", bes[1])
	}
	// The same bytes on the other disk are free; on sda they are taken.
	if _, err := claimHostDisks("b", []bundle.DiskSpec{{Host: "vda", Offset: 4 << 20, Size: 1 << 20}}); err != nil {
		t.Error(err)
	}
	if _, err := claimHostDisks("c", []bundle.DiskSpec{{Host: "sda", Offset: 4 << 20, Size: 1 << 20}}); err == nil ||
		!strings.Contains(err.Error(), "disk 0 (sda bytes 0x400000-0x4fffff) overlaps vm a's disk 0 (sda partition 1)") {
		t.Errorf("overlap on sda: %v", err)
	}
	if _, err := claimHostDisks("d", []bundle.DiskSpec{{Host: "sdb"}}); err == nil ||
		!strings.Contains(err.Error(), "no host disk sdb (host disks: vda, sda)") {
		t.Errorf("missing sdb: %v", err)
	}
}
