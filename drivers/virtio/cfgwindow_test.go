package virtio

import (
	"bytes"
	"testing"

	"juice/drivers/pci"
	vpci "juice/vmm/pci"
)

// pciCfgCS adds a VIRTIO_PCI_CAP_PCI_CFG capability to the modelled
// device (juice's own virtio-pci model has none): it links one in at
// capAt after the last capability and performs the BAR accesses the
// capability asks for, as QEMU does.
type pciCfgCS struct {
	pci.ConfigSpace
	r        *rig
	a        pci.Addr
	last     uint16 // the last capability of the model's list
	bar      uint8
	off, len uint32
	accesses int // BAR accesses done through the capability
}

const capAt = 0xC0

func newPCICfgCS(r *rig) *pciCfgCS {
	c := &pciCfgCS{ConfigSpace: r.cs, r: r, a: r.fn.Addr}
	c.last = r.fn.Caps[len(r.fn.Caps)-1].Off
	return c
}

func (c *pciCfgCS) Read32(a pci.Addr, off uint16) uint32 {
	off &^= 3
	switch {
	case a != c.a:
	case off == c.last:
		v := c.ConfigSpace.Read32(a, off)
		return v&^0xFF00 | capAt<<8
	case off == capAt:
		return 0x05_14_00_09 // vndr 0x09, next 0, len 20, cfg_type PCI_CFG
	case off == capAt+capBAR:
		return uint32(c.bar)
	case off == capAt+capOffset:
		return c.off
	case off == capAt+capLength:
		return c.len
	case off == capAt+capCfgData:
		c.accesses++
		if c.len != 1 && c.len != 2 && c.len != 4 {
			return 0
		}
		return uint32(c.r.win.Read(c.r.fn.BARs[c.bar].Base+uint64(c.off)-vpci.WindowBase, uint8(c.len)))
	}
	return c.ConfigSpace.Read32(a, off)
}

func (c *pciCfgCS) Write32(a pci.Addr, off uint16, v uint32) {
	off &^= 3
	switch {
	case a != c.a:
	case off == capAt+capBAR:
		c.bar = uint8(v)
		return
	case off == capAt+capOffset:
		c.off = v
		return
	case off == capAt+capLength:
		c.len = v
		return
	case off == capAt+capCfgData:
		c.accesses++
		if c.len == 1 || c.len == 2 || c.len == 4 {
			c.r.win.Write(c.r.fn.BARs[c.bar].Base+uint64(c.off)-vpci.WindowBase, uint8(c.len), uint64(v)&(1<<(8*c.len)-1))
		}
		return
	}
	c.ConfigSpace.Write32(a, off, v)
}

// TestCfgWindow runs the block driver with every register access going
// through the PCI configuration access capability.
func TestCfgWindow(t *testing.T) {
	r := newRig(t, 1<<20, false, "through-cfg")
	if _, err := CfgMapper(r.cs, &r.fn); err != ErrNoPCICfg {
		t.Fatalf("CfgMapper without the capability: %v", err)
	}
	cs := newPCICfgCS(r)
	var fn pci.Function
	for _, f := range pci.Scan(cs, 0, 0) {
		if f.Addr == r.fn.Addr {
			fn = f
		}
	}
	if fn.Caps[len(fn.Caps)-1] != (pci.Cap{ID: pci.CapVendor, Off: capAt}) {
		t.Fatalf("capability list %v", fn.Caps)
	}
	m, err := CfgMapper(cs, &fn)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(cs, &fn, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBlk(tr, &r.mem, r.dma, BlkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Capacity() != 2048 {
		t.Fatalf("capacity %d", b.Capacity())
	}
	if id, err := b.ID(); err != nil || id != "through-cfg" {
		t.Fatalf("ID = %q, %v", id, err)
	}
	w := make([]byte, 70<<10)
	pattern(w, 5)
	if _, err := b.WriteAt(w, 512); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(w))
	r.disk.ReadAt(got, 512)
	if !bytes.Equal(got, w) || r.disk.Flushes() != 1 {
		t.Fatalf("disk contents differ or not flushed (%d flushes)", r.disk.Flushes())
	}
	if cs.accesses == 0 {
		t.Fatal("no access went through the capability")
	}
	// Accesses outside a region read all ones and write nothing.
	regs, _ := m(0, 0, 4)
	before := cs.accesses
	if regs.Read32(4) != pci.Absent || regs.Read16(1) != 0xFFFF {
		t.Error("out-of-region read")
	}
	regs.Write8(4, 1)
	if cs.accesses != before {
		t.Error("an out-of-region access reached the device")
	}
	if logs := r.deviceLogs(); len(logs) != 0 {
		t.Errorf("the device model complained: %v", logs)
	}
}
