package pci

// This test uses juice's guest-side PCI model (juice/vmm/pci) as a
// configuration-space generator: drivers/pci must find what juice itself
// offers its guests. Only tests import vmm packages.

import (
	"testing"

	"juice/vmm"
	vpci "juice/vmm/pci"
	"juice/vmm/virtio"
	"juice/vmm/virtio/blk"
	"juice/vmm/virtiopci"
)

// vmmECAM is a ConfigSpace over a vmm/pci bus's ECAM device (bus 0).
type vmmECAM struct{ dev vmm.MMIODevice }

func (e vmmECAM) Read32(a Addr, off uint16) uint32 {
	if a.Bus != 0 || !a.valid() || off >= 0x1000 {
		return Absent
	}
	return uint32(e.dev.Read(uint64(a.Dev)<<15|uint64(a.Fn)<<12|uint64(off&^3), 4))
}

func (e vmmECAM) Write32(a Addr, off uint16, v uint32) {
	if a.Bus == 0 && a.valid() && off < 0x1000 {
		e.dev.Write(uint64(a.Dev)<<15|uint64(a.Fn)<<12|uint64(off&^3), 4, uint64(v))
	}
}

func TestScanJuiceGuestModel(t *testing.T) {
	mem := vmm.NewGuestMemory(make([]byte, 1<<20), 0)
	bus := vpci.NewBus(nil, nil)
	var d *virtiopci.Device
	s := virtio.NewState(blk.New(blk.NewRAMDisk(1<<20), blk.Options{}), mem, func(k virtio.IRQKind, q int) { d.Interrupt(k, q) }, nil)
	d, err := virtiopci.New(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Add(3, d.Function()); err != nil {
		t.Fatal(err)
	}
	cs := vmmECAM{bus.ECAM()}
	fns := Scan(cs, 0, 0)
	if len(fns) != 2 {
		t.Fatalf("found %d functions", len(fns))
	}
	if got := fns[0].Describe(cs); got != "00:00.0 1b36:0008 PCIe host bridge" {
		t.Errorf("host bridge: %s", got)
	}
	f := &fns[1]
	if got := f.Describe(cs); got != "00:03.0 1af4:1042 virtio-blk (modern) BAR0 mem64 0x0+0x8000 msix 2" {
		t.Errorf("virtio-blk: %s", got)
	}
	mx, ok := FindMSIX(cs, f)
	if !ok || mx.TableBAR != 0 || mx.TableOffset != virtiopci.TableOffset || mx.PBAOffset != virtiopci.PBAOffset {
		t.Errorf("MSI-X %+v %v", mx, ok)
	}
	vendor := 0
	for _, c := range f.Caps {
		if c.ID == CapVendor {
			vendor++
		}
	}
	if vendor != 4 {
		t.Errorf("%d vendor capabilities, want 4 (common, notify, ISR, device)", vendor)
	}
	// Enabling decoding and bus mastering reaches the model.
	Enable(cs, f.Addr, CmdMemory|CmdBusMaster)
	if !d.Function().BusMaster() || d.Function().Command()&vpci.CommandMemory == 0 {
		t.Error("command register not written")
	}
}
