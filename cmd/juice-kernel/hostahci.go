package main

// AHCI host disks: every AHCI HBA among the PCI functions (QEMU q35's
// ICH9 at 00:1f.2, a server's SATA controller) is taken over by
// juice/drivers/ahci, and each ATA disk on its ports becomes a host disk
// sda, sdb, ... (in PCI order, then port order), beside the virtio-blk
// disks vda, vdb, ...: a manifest disk may then be `"host": "sda"` with a
// partition or a byte range exactly as for vda. The guest's requests go
// through an ahci.Region, on the guest's VM-exit path like a virtio host
// disk's (see hostdisk.go): one command at a time per disk under the
// driver's lock, polled, bounded by the driver's 30 s timeout, no
// allocation; a failed command is an I/O error for the guest, and the
// driver recovers the port (or, when it cannot, fails the disk).

import (
	"fmt"
	"log"

	"juice/drivers/ahci"
	"juice/drivers/pci"
	"juice/vmm"
	vblk "juice/vmm/virtio/blk"
)

// maxAHCIDisks is how many AHCI disks get names (sda to sdz).
const maxAHCIDisks = 26

// ahciDevices brings up the AHCI HBAs among fns and names their disks.
// Failures are reported and leave the HBA or port out; they never stop
// juice.
func ahciDevices(h *vmm.Host, cs pci.ConfigSpace, fns []pci.Function) {
	n := 0
	for i := range fns {
		f := &fns[i]
		if !ahci.IsAHCI(f) {
			continue
		}
		dm := &directMapper{mem: h.Mem, f: f}
		hba, err := ahci.Attach(cs, f, dm.mapBAR, h.Mem, frameDMA{h}, ahci.Options{})
		if err != nil {
			log.Printf("ahci: %v", err)
			continue
		}
		log.Printf("ahci: %v %s, registers %s", f.Addr, hba.Describe(), dm.how())
		for k := range hba.Ports {
			p := &hba.Ports[k]
			if p.Disk == nil {
				if p.Err != nil {
					log.Printf("ahci: %v %s", f.Addr, p.Describe())
				}
				continue
			}
			if n == maxAHCIDisks {
				log.Printf("ahci: %v port %d: more than %d AHCI disks, left out", f.Addr, p.Num, maxAHCIDisks)
				continue
			}
			hostDisks = append(hostDisks, ahciDisk(fmt.Sprintf("sd%c", 'a'+n), f, p.Disk))
			n++
		}
	}
}

// ahciDisk makes d a host disk called name, prints its hostdisk lines
// and reads its partition table.
func ahciDisk(name string, f *pci.Function, d *ahci.Disk) *hostDisk {
	hd := &hostDisk{name: name, fn: *f, dev: d, size: d.Size(), block: d.BlockSize(), ro: d.ReadOnly(),
		region: func(off, size uint64, ro bool) (vblk.Backend, error) { return d.Region(off, size, ro) }}
	id := d.Identity()
	var feats string
	if id.PhysicalSize != id.LogicalSize {
		feats += fmt.Sprintf(" (physical %d)", id.PhysicalSize)
	}
	switch {
	case id.WriteCacheOn && d.CanFlush():
		feats += ", write cache (flush)"
	case id.WriteCacheOn:
		feats += ", write cache (no flush command)"
	}
	log.Printf("hostdisk: %s %v port %d %d sectors (%d MiB), block %d%s, serial %q, model %q, firmware %q",
		name, f.Addr, d.Port(), d.Size()/512, d.Size()>>20, d.BlockSize(), feats, id.Serial, id.Model, id.Firmware)
	hd.readTable()
	hd.scratch(id.Serial)
	return hd
}
