package virtiopci

import (
	"testing"

	"juice/vmm"
	"juice/vmm/pci"
	"juice/vmm/virtio"
	"juice/vmm/virtio/rng"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	slot   = 3
	barAt  = pci.WindowBase + 0x10000
	ringAt = 0x1000
	bufAt  = 0x100000
)

type msg struct {
	addr uint64
	data uint32
}

type rig struct {
	mem   *vmm.GuestMemory
	bus   *pci.Bus
	dev   *Device
	msis  []msg
	intx  map[int]bool
	ecam  vmm.MMIODevice
	win   vmm.MMIODevice
	fills int
}

func newRig(t *testing.T) *rig {
	t.Helper()
	g := &rig{mem: vmm.NewGuestMemory(make([]byte, 4<<20), 0), intx: map[int]bool{}}
	g.bus = pci.NewBus(func(gsi int, level bool) { g.intx[gsi] = level }, func(a uint64, d uint32) { g.msis = append(g.msis, msg{a, d}) })
	var d *Device
	s := virtio.NewState(rng.New(func(p []byte) {
		for i := range p {
			p[i] = 0x5a
		}
		g.fills++
	}), g.mem, func(k virtio.IRQKind, q int) { d.Interrupt(k, q) }, nil)
	var err error
	if d, err = New(s, 2); err != nil {
		t.Fatal(err)
	}
	if err := g.bus.Add(slot, d.Function()); err != nil {
		t.Fatal(err)
	}
	g.dev, g.ecam, g.win = d, g.bus.ECAM(), g.bus.Window()
	return g
}

func (g *rig) cfg(off uint64, size uint8) uint64 { return g.ecam.Read(slot<<15|off, size) }
func (g *rig) setCfg(off uint64, size uint8, v uint64) {
	g.ecam.Write(slot<<15|off, size, v)
}
func (g *rig) r(off uint64, size uint8) uint64 { return g.win.Read(barAt-pci.WindowBase+off, size) }
func (g *rig) w(off uint64, size uint8, v uint64) {
	g.win.Write(barAt-pci.WindowBase+off, size, v)
}

// caps walks the capability list: virtio cfg_type -> (offset, length).
func (g *rig) caps(t *testing.T) (map[uint8][2]uint32, uint64) {
	found := map[uint8][2]uint32{}
	var msix uint64
	for p := g.cfg(0x34, 1); p != 0; p = g.cfg(p+1, 1) {
		switch g.cfg(p, 1) {
		case 0x09:
			typ := uint8(g.cfg(p+3, 1))
			if bar := g.cfg(p+4, 1); bar != 0 {
				t.Errorf("cap type %d in BAR %d", typ, bar)
			}
			found[typ] = [2]uint32{uint32(g.cfg(p+8, 4)), uint32(g.cfg(p+12, 4))}
			if typ == capNotify && g.cfg(p+16, 4) != NotifyMult {
				t.Errorf("notify_off_multiplier %d", g.cfg(p+16, 4))
			}
		case 0x11:
			msix = p
		}
	}
	return found, msix
}

// TestLinuxSequence drives the device as Linux's virtio_pci_modern and
// virtio_rng do: identify, find the capabilities, assign the BAR, enable
// MSI-X, negotiate, set up the queue with a vector, post a buffer, kick,
// and take the interrupt.
func TestLinuxSequence(t *testing.T) {
	g := newRig(t)
	if g.cfg(0, 2) != VendorID || g.cfg(2, 2) != DeviceIDBase+virtio.IDEntropy || g.cfg(0x2c, 2) != VendorID || g.cfg(8, 1) != 1 {
		t.Fatalf("identity %#x %#x", g.cfg(0, 4), g.cfg(8, 4))
	}
	caps, msix := g.caps(t)
	if caps[capCommon] != [2]uint32{CommonOffset, CommonSize} || caps[capISR][0] != ISROffset || caps[capNotify][0] != NotifyOffset {
		t.Fatalf("capabilities %v", caps)
	}
	if _, ok := caps[capDevice]; ok {
		t.Error("rng has no device configuration, but a DEVICE capability was offered")
	}
	if msix == 0 || g.cfg(msix+2, 2)&0x7ff != 1 {
		t.Fatalf("MSI-X capability at %#x", msix)
	}
	// BAR 0: 64-bit, 32 KiB.
	g.setCfg(0x10, 4, 0xffffffff)
	if sz := ^(g.cfg(0x10, 4) &^ 0xf) + 1; uint32(sz) != BARSize || g.cfg(0x10, 4)&0x6 != 0x4 {
		t.Fatalf("BAR sizing %#x", g.cfg(0x10, 4))
	}
	g.setCfg(0x10, 4, barAt)
	g.setCfg(0x14, 4, 0)
	g.setCfg(4, 2, pci.CommandMemory|pci.CommandBusMaster)
	// MSI-X: vector 0 config, vector 1 the queue.
	for v := 0; v < 2; v++ {
		g.w(TableOffset+uint64(v)*16, 4, 0xfee00000)
		g.w(TableOffset+uint64(v)*16+8, 4, uint64(0x40+v))
		g.w(TableOffset+uint64(v)*16+12, 4, 0)
	}
	g.setCfg(msix+2, 2, 1<<15)

	g.w(regDeviceStatus, 1, 0)
	if g.r(regDeviceStatus, 1) != 0 {
		t.Fatal("reset")
	}
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver)
	g.w(regDeviceFeatureSelect, 4, 1)
	hi := g.r(regDeviceFeature, 4)
	if hi&1 == 0 {
		t.Fatal("VERSION_1 not offered")
	}
	g.w(regDriverFeatureSelect, 4, 1)
	g.w(regDriverFeature, 4, 1)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
	if g.r(regDeviceStatus, 1)&virtio.StatusFeaturesOK == 0 {
		t.Fatal("FEATURES_OK refused")
	}
	g.w(regMSIXConfig, 2, 0)
	if g.r(regNumQueues, 2) != 1 {
		t.Fatal("num_queues")
	}
	r := vt.NewRing(g.mem, 16, ringAt)
	g.w(regQueueSelect, 2, 0)
	g.w(regQueueSize, 2, 16)
	g.w(regQueueMSIXVector, 2, 1)
	if g.r(regQueueMSIXVector, 2) != 1 {
		t.Fatal("queue vector refused")
	}
	desc, avail, used := r.Desc, r.Avail, r.Used
	for _, a := range []struct {
		reg uint64
		v   uint64
	}{{regQueueDesc, desc}, {regQueueDriver, avail}, {regQueueDevice, used}} {
		g.w(a.reg, 4, a.v&0xffffffff)
		g.w(a.reg+4, 4, a.v>>32)
	}
	notifyOff := g.r(regQueueNotifyOff, 2)
	g.w(regQueueEnable, 2, 1)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK)

	r.Add(vt.Buf{Addr: bufAt, Len: 32, Write: true})
	g.w(NotifyOffset+notifyOff*NotifyMult, 2, 0)
	if _, ln, ok := r.PopUsed(); !ok || ln != 32 || g.fills == 0 {
		t.Fatalf("request not served: %v %d", ok, ln)
	}
	if len(g.msis) != 1 || g.msis[0] != (msg{0xfee00000, 0x41}) {
		t.Fatalf("MSIs %v, want one to vector 0x41", g.msis)
	}
	if k, i := g.dev.state.Notifications(0); k != 1 || i != 1 {
		t.Errorf("notification counters: %d kicks, %d interrupts; want 1 and 1", k, i)
	}
	if g.intx[pci.INTxGSIBase+((slot+0)&3)] {
		t.Error("INTx asserted with MSI-X on")
	}
	// Width and hole rules: a 4-byte read of a 2-byte register reads 0.
	if g.r(regNumQueues, 4) != 0 || g.r(0x7f0, 4) != 0 {
		t.Error("odd accesses not refused")
	}
}

// Without MSI-X the notification raises INTx until the ISR is read.
func TestINTx(t *testing.T) {
	g := newRig(t)
	g.setCfg(0x10, 4, barAt)
	g.setCfg(0x14, 4, 0)
	g.setCfg(4, 2, pci.CommandMemory|pci.CommandBusMaster)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver)
	g.w(regDriverFeatureSelect, 4, 1)
	g.w(regDriverFeature, 4, 1)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
	r := vt.NewRing(g.mem, 16, ringAt)
	desc, avail, used := r.Desc, r.Avail, r.Used
	g.w(regQueueSize, 2, 16)
	g.w(regQueueDesc, 4, desc)
	g.w(regQueueDriver, 4, avail)
	g.w(regQueueDevice, 4, used)
	g.w(regQueueEnable, 2, 1)
	g.w(regDeviceStatus, 1, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK)
	r.Add(vt.Buf{Addr: bufAt, Len: 8, Write: true})
	g.w(NotifyOffset, 2, 0)
	gsi := pci.INTxGSIBase + ((slot + 0) & 3)
	if !g.intx[gsi] {
		t.Fatal("INTx not raised")
	}
	if isr := g.r(ISROffset, 1); isr != virtio.ISRQueue || g.intx[gsi] {
		t.Fatalf("ISR %#x, line %v after the read", isr, g.intx[gsi])
	}
}

func TestBARAllocs(t *testing.T) {
	g := newRig(t)
	g.setCfg(0x10, 4, barAt)
	g.setCfg(0x14, 4, 0)
	g.setCfg(4, 2, pci.CommandMemory)
	if a := testing.AllocsPerRun(1000, func() {
		g.r(regDeviceStatus, 1)
		g.w(regQueueSelect, 2, 0)
		g.r(regQueueSize, 2)
		g.r(ISROffset, 1)
	}); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
