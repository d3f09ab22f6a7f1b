package main

// Guest disks on host disks. A manifest disk with "host" is a region of
// one of the disks juice brought up at boot (hostdev.go): the whole disk,
// one of its partitions, or a byte range. The guest's virtio-blk device
// (juice/vmm/virtio/blk) serves it through a virtio.Region of the host
// disk's driver (juice/drivers/virtio):
//
//   - A guest read or write becomes host requests for the same bytes,
//     shifted by the region's offset; the guest's request completes (its
//     used-ring entry and interrupt) only after every host request has,
//     so juice caches nothing: a write the guest saw complete has reached
//     the host device, and the guest's FLUSH is a host FLUSH that
//     returns once the device has put its write cache on stable storage.
//     What a guest flushed therefore survives a power cycle of the whole
//     machine.
//   - The host driver runs one request at a time per host disk, under
//     the driver's own lock (virtio.Blk), so guest disks of several VMs
//     may share a host disk; the lock is held only while a host request
//     is in flight, never across a VM entry.
//   - The guest's requests are served synchronously on the VM-exit path
//     of the guest's queue notification (vmm/virtio/blk), so the vCPU
//     that kicked waits in the exit handler while the host disk works:
//     the host driver polls its used ring (spinning for 200 us, yielding
//     the processor, then sleeping with a growing interval up to 1 ms)
//     and allocates nothing. The work is bounded: one notification moves
//     at most vmm/virtio/blk's MaxNotifyBytes (64 MiB, as host requests of
//     at most 64 KiB each), and each host request times out after
//     virtio.DefaultTimeout (30 s), after which the host disk is marked
//     failed and every guest request on it fails at once (the guest sees
//     I/O errors). Other VMs' vCPUs run on their own threads meanwhile; a
//     VM on the same host disk waits for the lock at most for the host
//     request in flight.
//
// Regions are checked when the VMs are built: the host disk must exist,
// the partition must be in its table, the range must lie on the disk, and
// no two guest disks (of any VMs) may share host-disk bytes unless both
// are read-only. A VM whose disks fail these checks is refused with a
// message naming it and the disk; the other VMs still run. A region stays
// claimed for as long as juice runs, across the VM's reboots.

import (
	"fmt"
	"log"
	"strings"
	"sync"

	"juice/vmm/bundle"
	"juice/vmm/virtio/blk"
)

// hostClaim is a region of a host disk that a guest disk uses.
type hostClaim struct {
	vm        string
	disk      int
	host      string
	off, size uint64
	ro        bool
	region    blk.Backend
	what      string // "vda partition 1" or "vda bytes ..."
}

// overlaps reports whether the claims share host-disk bytes that at
// least one of them may write.
func (c *hostClaim) overlaps(o *hostClaim) bool {
	return c.host == o.host && c.off < o.off+o.size && o.off < c.off+c.size && !(c.ro && o.ro)
}

// hostClaims are the regions given to the bundle's VMs so far.
var hostClaims struct {
	sync.Mutex
	list []*hostClaim
}

// findHostDisk returns the host disk named name.
func findHostDisk(name string) *hostDisk {
	for _, d := range hostDisks {
		if d.name == name {
			return d
		}
	}
	return nil
}

// hostDiskNames lists the host disks for messages.
func hostDiskNames() string {
	if len(hostDisks) == 0 {
		return "juice found no host disks"
	}
	names := make([]string, len(hostDisks))
	for i, d := range hostDisks {
		names[i] = d.name
	}
	return "host disks: " + strings.Join(names, ", ")
}

// resolveHostDisk finds the region disk i of a VM names and opens it.
func resolveHostDisk(vm string, i int, spec bundle.DiskSpec) (*hostClaim, error) {
	hd := findHostDisk(spec.Host)
	if hd == nil {
		return nil, fmt.Errorf("disk %d: no host disk %s (%s)", i, spec.Host, hostDiskNames())
	}
	size := hd.size
	c := &hostClaim{vm: vm, disk: i, host: hd.name, off: spec.Offset, size: spec.Size, ro: spec.ReadOnly || hd.ro}
	if spec.Partition != 0 {
		switch {
		case hd.tblErr != nil:
			return nil, fmt.Errorf("disk %d: partition %d of host disk %s: its partition table could not be read: %v", i, spec.Partition, hd.name, hd.tblErr)
		case len(hd.table.Partitions) == 0:
			return nil, fmt.Errorf("disk %d: host disk %s has no partition %d (%s)", i, hd.name, spec.Partition, hd.table.Summary())
		}
		p, ok := hd.table.Find(spec.Partition)
		if !ok {
			return nil, fmt.Errorf("disk %d: host disk %s has no partition %d (its %v has partitions %s)", i, hd.name, spec.Partition, hd.table.Scheme, hd.table.Numbers())
		}
		c.off, c.size = p.Offset, p.Size
		c.what = fmt.Sprintf("%s partition %d", hd.name, spec.Partition)
	} else {
		if c.off >= size {
			return nil, fmt.Errorf("disk %d: offset %#x is not inside host disk %s (%d bytes)", i, c.off, hd.name, size)
		}
		if c.size == 0 {
			c.size = size - c.off
		}
		if c.size > size-c.off {
			return nil, fmt.Errorf("disk %d: bytes %#x-%#x run past the end of host disk %s (%d bytes)", i, c.off, c.off+c.size-1, hd.name, size)
		}
		if c.off == 0 && c.size == size {
			c.what = hd.name
		} else {
			c.what = fmt.Sprintf("%s bytes %#x-%#x", hd.name, c.off, c.off+c.size-1)
		}
	}
	if bs := uint64(hd.block); bs > 512 && (c.off%bs != 0 || c.size%bs != 0) {
		return nil, fmt.Errorf("disk %d: %s is not aligned to host disk %s's %d-byte blocks", i, c.what, hd.name, bs)
	}
	r, err := hd.region(c.off, c.size, c.ro)
	if err != nil {
		return nil, fmt.Errorf("disk %d: %s: %v", i, c.what, err)
	}
	c.region = r
	return c, nil
}

// claimHostDisks resolves the host-disk regions of a VM's disks and
// claims them, all or none. It returns the back-ends by disk index.
func claimHostDisks(vm string, disks []bundle.DiskSpec) (map[int]blk.Backend, error) {
	var mine []*hostClaim
	for i, d := range disks {
		if d.Host == "" {
			continue
		}
		c, err := resolveHostDisk(vm, i, d)
		if err != nil {
			return nil, err
		}
		mine = append(mine, c)
	}
	if len(mine) == 0 {
		return nil, nil
	}
	hostClaims.Lock()
	defer hostClaims.Unlock()
	clash := func(c, o *hostClaim) error {
		if !c.overlaps(o) {
			return nil
		}
		owner := "this VM's"
		if o.vm != vm {
			owner = fmt.Sprintf("vm %s's", o.vm)
		}
		return fmt.Errorf("disk %d (%s) overlaps %s disk %d (%s): guest disks may share host-disk bytes only when all are read-only",
			c.disk, c.what, owner, o.disk, o.what)
	}
	for k, c := range mine {
		for _, o := range hostClaims.list {
			if err := clash(c, o); err != nil {
				return nil, err
			}
		}
		for _, o := range mine[:k] {
			if err := clash(c, o); err != nil {
				return nil, err
			}
		}
	}
	out := map[int]blk.Backend{}
	for _, c := range mine {
		hostClaims.list = append(hostClaims.list, c)
		out[c.disk] = c.region
		note := ""
		if c.ro && !disks[c.disk].ReadOnly {
			note = ", read-only: the host disk is"
		} else if c.ro {
			note = ", read-only"
		}
		log.Printf("juice: vm %s: disk %d is %s: sectors %d-%d (%s%s)", vm, c.disk, c.what,
			c.off/512, (c.off+c.size)/512-1, sizeString(c.size), note)
	}
	return out, nil
}

// sizeString writes a byte count in the largest binary unit that divides
// it (MiB, KiB, bytes).
func sizeString(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
