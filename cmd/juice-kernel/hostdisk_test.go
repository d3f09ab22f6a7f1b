package main

import (
	"errors"
	"strings"
	"testing"

	"juice/drivers/partition"
	"juice/vmm/bundle"
	"juice/vmm/netswitch"
	vblk "juice/vmm/virtio/blk"
)

// fakeHostDisks installs host disks for the test: vda (64 MiB, an MBR
// with partitions 1 and 2), vdb (16 MiB, read-only, no table), vdc
// (32 MiB, an unreadable table), vdd (8 MiB of 4 KiB blocks). Region back-ends are RAM disks of the
// region's size that remember where they are.
func fakeHostDisks(t *testing.T) {
	t.Helper()
	mk := func(name string, size uint64, ro bool, tb *partition.Table, tblErr error) *hostDisk {
		return &hostDisk{name: name, size: size, ro: ro, table: tb, tblErr: tblErr,
			region: func(off, n uint64, ro bool) (vblk.Backend, error) {
				var be vblk.Backend = &fakeRegion{RAMDisk: vblk.NewRAMDisk(int64(n)), off: off}
				if ro {
					be = vblk.NewReadOnly(be)
				}
				return be, nil
			}}
	}
	saved := hostDisks
	hostDisks = []*hostDisk{
		mk("vda", 64<<20, false, &partition.Table{Scheme: partition.MBR, Partitions: []partition.Partition{
			{Number: 1, Offset: 1 << 20, Size: 8 << 20, Type: "0x83"},
			{Number: 2, Offset: 9 << 20, Size: 8 << 20, Type: "0x83"},
		}}, nil),
		mk("vdb", 16<<20, true, &partition.Table{Scheme: partition.None}, nil),
		mk("vdc", 32<<20, false, nil, errors.New("partition: corrupt partition table: two extended partitions")),
		mk("vdd", 8<<20, false, &partition.Table{Scheme: partition.None}, nil),
	}
	hostDisks[3].block = 4096
	hostClaims.list = nil
	t.Cleanup(func() { hostDisks, hostClaims.list = saved, nil })
}

type fakeRegion struct {
	*vblk.RAMDisk
	off uint64
}

func TestHostDiskRegions(t *testing.T) {
	fakeHostDisks(t)
	ok := func(vm string, disks ...bundle.DiskSpec) map[int]vblk.Backend {
		t.Helper()
		bes, err := claimHostDisks(vm, disks)
		if err != nil {
			t.Fatalf("vm %s: %v", vm, err)
		}
		return bes
	}
	refused := func(vm, want string, disks ...bundle.DiskSpec) {
		t.Helper()
		if _, err := claimHostDisks(vm, disks); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("vm %s: %v, want an error containing %q", vm, err, want)
		}
	}
	// A partition, and a raw range before it (the MBR's first MiB).
	bes := ok("a", bundle.DiskSpec{Size: 1 << 20}, bundle.DiskSpec{Host: "vda", Partition: 1})
	if r, isRegion := bes[1].(*fakeRegion); len(bes) != 1 || !isRegion || r.off != 1<<20 || r.Size() != 8<<20 || r.ReadOnly() {
		t.Fatalf("vm a: back-ends %#v", bes)
	}
	ok("b", bundle.DiskSpec{Host: "vda", Offset: 512, Size: 1<<20 - 512})
	// Overlaps, with another VM's region and within one VM.
	refused("c", "disk 0 (vda bytes 0x0-0x1fffff) overlaps vm a's disk 1 (vda partition 1)",
		bundle.DiskSpec{Host: "vda", Size: 2 << 20})
	refused("c", "disk 0 (vda) overlaps vm a's disk 1", bundle.DiskSpec{Host: "vda", ReadOnly: true})
	refused("c", "disk 1 (vda bytes 0x1000000-0x10fffff) overlaps this VM's disk 0 (vda partition 2)",
		bundle.DiskSpec{Host: "vda", Partition: 2}, bundle.DiskSpec{Host: "vda", Offset: 16 << 20, Size: 1 << 20})
	// Missing disks, partitions and ranges.
	refused("d", "disk 0: no host disk vdz (host disks: vda, vdb, vdc, vdd)", bundle.DiskSpec{Host: "vdz"})
	refused("d", "disk 0: vdd bytes 0x200-0x7fffff is not aligned to host disk vdd's 4096-byte blocks", bundle.DiskSpec{Host: "vdd", Offset: 512})
	refused("d", "not aligned to host disk vdd's 4096-byte blocks", bundle.DiskSpec{Host: "vdd", Size: 6144})
	refused("d", "disk 0: host disk vda has no partition 3 (its MBR has partitions 1, 2)", bundle.DiskSpec{Host: "vda", Partition: 3})
	refused("d", "disk 0: host disk vdb has no partition 1 (no partition table)", bundle.DiskSpec{Host: "vdb", Partition: 1})
	refused("d", "partition 1 of host disk vdc: its partition table could not be read: partition: corrupt", bundle.DiskSpec{Host: "vdc", Partition: 1})
	refused("d", "disk 0: offset 0x2000000 is not inside host disk vdc (33554432 bytes)", bundle.DiskSpec{Host: "vdc", Offset: 32 << 20})
	refused("d", "disk 0: bytes 0x1f00000-0x20fffff run past the end of host disk vdc", bundle.DiskSpec{Host: "vdc", Offset: 31 << 20, Size: 2 << 20})
	// All or none: a refused VM claims nothing, so its good disk's
	// region is free for the next VM.
	refused("e", "disk 1: no host disk vdy", bundle.DiskSpec{Host: "vda", Offset: 20 << 20, Size: 1 << 20}, bundle.DiskSpec{Host: "vdy"})
	ok("f", bundle.DiskSpec{Host: "vda", Offset: 20 << 20, Size: 1 << 20})
	// Read-only regions may overlap; a read-only host disk makes its
	// regions read-only whatever the manifest says.
	bes = ok("g", bundle.DiskSpec{Host: "vdb"})
	if !bes[0].ReadOnly() || bes[0].Size() != 16<<20 {
		t.Errorf("vm g: vdb back-end read-only %v, size %d", bes[0].ReadOnly(), bes[0].Size())
	}
	ok("h", bundle.DiskSpec{Host: "vdb", Offset: 4096, ReadOnly: true})
	// The rest of vda from 21 MiB, then nothing is left there.
	bes = ok("i", bundle.DiskSpec{Host: "vda", Offset: 21 << 20})
	if bes[0].Size() != 43<<20 {
		t.Errorf("to the end of vda: %d bytes", bes[0].Size())
	}
	refused("j", "overlaps vm i's disk 0", bundle.DiskSpec{Host: "vda", Offset: 63 << 20})
	if len(hostClaims.list) != 6 {
		t.Errorf("%d claims, want 6 (a, b, f, g, h, i: the refused VMs claim nothing)", len(hostClaims.list))
	}
}

// TestDeviceBackendsHostDisk: deviceBackends puts a host-disk region
// where the manifest has it among the VM's other disks, and refuses the
// VM as a whole when a region cannot be had.
func TestDeviceBackendsHostDisk(t *testing.T) {
	fakeHostDisks(t)
	sw := map[string]*netswitch.Switch{}
	spec := bundle.VMSpec{Name: "web", Devices: &bundle.DeviceSpec{Transport: "pci", Disks: []bundle.DiskSpec{
		{Size: 1 << 20, Serial: "ram"},
		{Host: "vda", Partition: 2, ReadOnly: true, Serial: "root"},
		{Host: "vda", Offset: 40 << 20, Size: 4 << 20, Serial: "data"},
	}}}
	devs, err := deviceBackends(spec, sw)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs.Disks) != 3 {
		t.Fatalf("disks %+v", devs.Disks)
	}
	if _, isRAM := devs.Disks[0].Backend.(*vblk.RAMDisk); !isRAM || devs.Disks[0].Serial != "ram" {
		t.Errorf("disk 0: %#v", devs.Disks[0])
	}
	if be := devs.Disks[1].Backend; !be.ReadOnly() || be.Size() != 8<<20 || devs.Disks[1].Serial != "root" {
		t.Errorf("disk 1: read-only %v, %d bytes", be.ReadOnly(), be.Size())
	}
	if r, ok := devs.Disks[2].Backend.(*fakeRegion); !ok || r.off != 40<<20 || r.Size() != 4<<20 || r.ReadOnly() {
		t.Errorf("disk 2: %#v", devs.Disks[2].Backend)
	}
	spec.Name = "db"
	if devs, err := deviceBackends(spec, sw); err == nil || devs != nil || !strings.Contains(err.Error(), "disk 2 (vda bytes 0x2800000-0x2bfffff) overlaps vm web's disk 2") {
		t.Errorf("second VM on the same regions: %v, %v", devs, err)
	}
}
