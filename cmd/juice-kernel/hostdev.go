package main

// Host devices: at boot juice enumerates the machine's PCI functions
// (juice/drivers/pci), prints one line per function, and brings up the
// virtio block devices it finds (juice/drivers/virtio) as host disks
// vda, vdb, ... in PCI order.

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"juice/cpu"
	"juice/drivers/acpi"
	"juice/drivers/partition"
	"juice/drivers/pci"
	"juice/drivers/portio"
	"juice/drivers/virtio"
	"juice/kernel"
	"juice/mm/phys"
	"juice/vmm"
	vblk "juice/vmm/virtio/blk"
)

// hostDisk is a virtio block device juice drives.
type hostDisk struct {
	name   string // vda, vdb, ...
	fn     pci.Function
	blk    *virtio.Blk
	size   uint64 // bytes
	block  uint32 // logical block size: regions start and end on one
	ro     bool
	table  *partition.Table // nil when it could not be read (tblErr)
	tblErr error
	// region opens bytes [off, off+size) as a guest disk's back-end
	// (blk.Region; a seam for tests).
	region func(off, size uint64, ro bool) (vblk.Backend, error)
}

// hostDisks are the disks hostDevices brought up.
var hostDisks []*hostDisk

// selftestScratchSerial marks a disk the self-test may overwrite: in
// self-test mode juice writes, flushes and reads back a pattern at
// scratchOffset of a host disk with this serial, and of no other.
const (
	selftestScratchSerial = "juice-scratch"
	scratchOffset         = 1 << 20
	scratchBytes          = 96 << 10
)

// mapDevice maps device registers at physical [pa, pa+n) uncached into
// the direct map (nil: BARs outside the ranges the firmware's memory map
// lists are reached through virtio's configuration access capability).
var mapDevice = kernel.MapDevice

// hostPorts are the port-I/O primitives for the legacy configuration
// mechanism and I/O BARs.
var hostPorts = portio.Ports{
	In8: cpu.Inb, Out8: cpu.Outb, In16: cpu.Inw, Out16: cpu.Outw, In32: cpu.Inl, Out32: cpu.Outl,
}

// hostDevices enumerates PCI, prints the functions, and brings up the
// virtio block devices. Failures are reported and leave the device out;
// they never stop juice.
func hostDevices() {
	h := kernel.Host()
	cs, first, last, how := configSpace(h.Mem)
	fns := pci.Scan(cs, first, last)
	log.Printf("pci: %d functions, configuration space %s", len(fns), how)
	for i := range fns {
		log.Printf("pci: %s", fns[i].Describe(cs))
	}
	for i := range fns {
		f := &fns[i]
		if typ, _, ok := pci.VirtioType(f); !ok || typ != virtio.TypeBlock {
			continue
		}
		name := fmt.Sprintf("vd%c", 'a'+len(hostDisks))
		d, err := openDisk(h, cs, f, name)
		if err != nil {
			log.Printf("hostdisk: %v: %v", f.Addr, err)
			continue
		}
		hostDisks = append(hostDisks, d)
		if len(hostDisks) == 26 {
			break
		}
	}
}

// configSpace picks the configuration mechanism: ECAM from the ACPI MCFG
// when its window is mapped, else the legacy ports.
func configSpace(mem *phys.Mem) (cs pci.ConfigSpace, first, last uint8, how string) {
	legacy := &pci.Legacy{Ports: &hostPorts}
	rsdp, st := acpi.FindRSDP(mem, kernel.RSDP())
	if st != acpi.StatusOK {
		return legacy, 0, 255, "through ports 0xcf8/0xcfc (no ACPI RSDP)"
	}
	t := new(acpi.Tables)
	acpi.Parse(mem, rsdp, t)
	if t.Found&acpi.HaveMCFG == 0 || t.MCFGSegment != 0 || t.MCFGBusEnd < t.MCFGBusStart {
		return legacy, 0, 255, "through ports 0xcf8/0xcfc (no usable MCFG)"
	}
	start := t.MCFGBase + uint64(t.MCFGBusStart)<<20
	size := (uint64(t.MCFGBusEnd) - uint64(t.MCFGBusStart) + 1) << 20
	if !deviceMapped(mem, start, size) {
		return legacy, 0, 255, fmt.Sprintf("through ports 0xcf8/0xcfc (the MCFG window %#x is not mapped)", start)
	}
	e := &pci.ECAM{Mem: mem, Base: t.MCFGBase, StartBus: t.MCFGBusStart, EndBus: t.MCFGBusEnd}
	return e, t.MCFGBusStart, t.MCFGBusEnd, fmt.Sprintf("ECAM at %#x, buses %02x-%02x", start, t.MCFGBusStart, t.MCFGBusEnd)
}

// openDisk brings up the virtio block device f. Its registers are
// reached directly (MMIO through the direct map, port I/O for an I/O BAR)
// when they are mapped, else through virtio's PCI configuration access
// capability.
func openDisk(h *vmm.Host, cs pci.ConfigSpace, f *pci.Function, name string) (*hostDisk, error) {
	dm := &directMapper{mem: h.Mem, f: f}
	how := ""
	t, err := virtio.Open(cs, f, dm.mapBAR)
	if errors.Is(err, errUnmapped) {
		m, cerr := virtio.CfgMapper(cs, f)
		if cerr != nil {
			return nil, fmt.Errorf("%v, and %v", err, cerr)
		}
		t, err = virtio.Open(cs, f, m)
		how = "through the PCI configuration access capability (BARs not mapped)"
	}
	if err != nil {
		return nil, err
	}
	if how == "" {
		how = dm.how()
	}
	b, err := virtio.NewBlk(t, h.Mem, frameDMA{h}, virtio.BlkOptions{})
	if err != nil {
		return nil, err
	}
	d := &hostDisk{name: name, fn: *f, blk: b, size: b.Size(), block: b.BlockSize(), ro: b.ReadOnly(),
		region: func(off, size uint64, ro bool) (vblk.Backend, error) { return b.Region(off, size, ro) }}
	serial, err := b.ID()
	if err != nil {
		serial = "?"
	}
	var feats string
	if b.ReadOnly() {
		feats += ", read-only"
	}
	if b.CanFlush() {
		feats += ", write cache (flush)"
	}
	log.Printf("hostdisk: %s %v %d sectors (%d MiB), block %d%s, serial %q, registers %s",
		name, f.Addr, b.Capacity(), b.Size()>>20, b.BlockSize(), feats, serial, how)
	d.table, d.tblErr = partition.Read(b, b.Size(), b.BlockSize())
	if d.tblErr != nil {
		log.Printf("hostdisk: %s: partition table: %v", name, d.tblErr)
	} else {
		log.Printf("hostdisk: %s: %s", name, d.table.Summary())
		for _, p := range d.table.Partitions {
			var label string
			if p.Name != "" {
				label = fmt.Sprintf(" %q", p.Name)
			}
			log.Printf("hostdisk: %s%d: sectors %d-%d (%d MiB), type %s%s", name, p.Number,
				p.Offset/virtio.SectorSize, p.End()/virtio.SectorSize-1, p.Size>>20, p.Type, label)
		}
	}
	if kernel.SelftestMode() && serial == selftestScratchSerial {
		if err := scratchTest(b); err != nil {
			log.Printf("hostdisk: %s: write, flush, read-back FAILED: %v", name, err)
		} else {
			log.Printf("hostdisk: %s: write, flush, read-back ok (%d KiB at %#x)", name, scratchBytes>>10, scratchOffset)
		}
	}
	return d, nil
}

// errUnmapped is directMapper's answer for a register block the direct
// map does not cover.
var errUnmapped = errors.New("registers not mapped")

// directMapper maps a function's register blocks directly: memory BARs
// through the direct map (asking the kernel to map them, once it can),
// I/O BARs through the ports.
type directMapper struct {
	mem       *phys.Mem
	f         *pci.Function
	mmio, pio bool // kinds handed out
}

func (d *directMapper) mapBAR(bar uint8, off, n uint32) (pci.Regs, error) {
	b := d.f.BARs[bar]
	pa := b.Base + uint64(off)
	switch {
	case b.Base == 0:
		return nil, fmt.Errorf("BAR %d is not assigned", bar)
	case b.Kind == pci.BARIO:
		if pa+uint64(n) > 0x10000 {
			return nil, fmt.Errorf("I/O BAR %d beyond port 0xffff", bar)
		}
		d.pio = true
		return &pci.PortRegs{Ports: &hostPorts, Base: uint16(pa), Size: n}, nil
	}
	if mapDevice != nil && !deviceMapped(d.mem, pa, uint64(n)) {
		if err := mapDevice(pa, uint64(n)); err != nil {
			return nil, fmt.Errorf("mapping BAR %d at %#x: %w", bar, pa, err)
		}
	}
	if !deviceMapped(d.mem, pa, uint64(n)) {
		return nil, fmt.Errorf("BAR %d at %#x: %w", bar, pa, errUnmapped)
	}
	d.mmio = true
	return pci.NewMMIO(d.mem, pa, uint64(n))
}

// how names the access methods handed out.
func (d *directMapper) how() string {
	switch {
	case d.mmio && d.pio:
		return "by MMIO and port I/O"
	case d.pio:
		return "by port I/O"
	}
	return "by MMIO"
}

// frameDMA hands out DMA memory from juice's frame allocator.
type frameDMA struct{ h *vmm.Host }

func (d frameDMA) Alloc(n uint64) (uint64, bool) {
	pages := (n + 4095) / 4096
	if pages == 0 {
		return 0, false
	}
	s := d.h.IRQOff()
	pa, ok := d.h.Frames.AllocContig(pages)
	d.h.IRQRestore(s)
	return pa, ok
}

// deviceMapped reports whether physical [pa, pa+n) is reachable through
// the direct map: inside the physical-memory window and mapped by the
// page tables (the kernel maps RAM and the ranges the firmware's memory
// map lists; device ranges it does not list, like most BARs, are not).
// It walks the live page tables read-only.
func deviceMapped(mem *phys.Mem, pa, n uint64) bool {
	if n == 0 || !mem.In(pa, n) {
		return false
	}
	base := uint64(phys.DirectBase())
	for va, end := base+pa&^4095, base+pa+n; va < end; {
		size, ok := pageMapped(mem, va)
		if !ok {
			return false
		}
		va = (va &^ (size - 1)) + size
	}
	return true
}

// pageMapped walks the 4-level page tables at CR3 for va and returns the
// size of the page mapping it (x86-64 4-level paging: Intel SDM volume
// 3, section 4.5).
func pageMapped(mem *phys.Mem, va uint64) (size uint64, ok bool) {
	const addrMask = 0x000F_FFFF_FFFF_F000
	table := cpu.ReadCR3() & addrMask
	for level := 3; level >= 0; level-- {
		shift := 12 + 9*uint(level)
		e, ok := mem.Load64(table + (va>>shift&511)*8)
		if !ok || e&1 == 0 {
			return 0, false
		}
		if level == 0 || (level <= 2 && e&(1<<7) != 0) {
			return 1 << shift, true
		}
		table = e & addrMask
	}
	return 0, false
}

// scratchPattern fills p with the self-test's pattern: each sector says
// which it is.
func scratchPattern(p []byte, firstSector uint64) {
	for i := 0; i < len(p); i += virtio.SectorSize {
		s := p[i : i+virtio.SectorSize]
		line := fmt.Appendf(nil, "juice hostdisk self-test sector %d\n", firstSector+uint64(i/virtio.SectorSize))
		for j := 0; j < len(s); j += len(line) {
			copy(s[j:], line)
		}
	}
}

// scratchTest writes the pattern, flushes, and reads it back.
func scratchTest(b *virtio.Blk) error {
	if b.ReadOnly() || b.Size() < scratchOffset+scratchBytes {
		return fmt.Errorf("the disk is read-only or smaller than %d bytes", scratchOffset+scratchBytes)
	}
	w := make([]byte, scratchBytes)
	scratchPattern(w, scratchOffset/virtio.SectorSize)
	if _, err := b.WriteAt(w, scratchOffset); err != nil {
		return err
	}
	if err := b.Flush(); err != nil {
		return err
	}
	r := make([]byte, scratchBytes)
	if _, err := b.ReadAt(r, scratchOffset); err != nil {
		return err
	}
	if !bytes.Equal(r, w) {
		return fmt.Errorf("read back other data")
	}
	return nil
}
