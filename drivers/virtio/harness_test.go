package virtio

// The test harness wires the driver to juice's own device models: the
// guest-side PCI bus (juice/vmm/pci), the virtio-pci transport
// (juice/vmm/virtiopci) and the virtio-blk device (juice/vmm/virtio/blk).
// One byte slice is both the driver's "physical memory" (phys.FromSlice)
// and the device's "guest RAM" (vmm.NewGuestMemory), so the rings the
// driver writes are the rings the device model reads, and each side
// checks the other: the model validates every descriptor and would put
// the device into NEEDS_RESET (logging why) on a malformed chain. Only
// tests import vmm packages.

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"juice/drivers/pci"
	"juice/mm/phys"
	"juice/vmm"
	vpci "juice/vmm/pci"
	vvirtio "juice/vmm/virtio"
	vblk "juice/vmm/virtio/blk"
	"juice/vmm/virtiopci"
)

const (
	ramSize = 8 << 20
	devSlot = 3
	barAt   = vpci.WindowBase + 0x100000 // where the "firmware" puts BAR 0
	dmaFrom = 1 << 20                    // the DMA allocator's first address
)

// ecamCS is a pci.ConfigSpace over a vmm/pci bus's ECAM device (bus 0).
type ecamCS struct{ dev vmm.MMIODevice }

func (e ecamCS) Read32(a pci.Addr, off uint16) uint32 {
	if a.Bus != 0 || a.Dev >= 32 || a.Fn >= 8 || off >= 0x1000 {
		return pci.Absent
	}
	return uint32(e.dev.Read(uint64(a.Dev)<<15|uint64(a.Fn)<<12|uint64(off&^3), 4))
}

func (e ecamCS) Write32(a pci.Addr, off uint16, v uint32) {
	if a.Bus == 0 && a.Dev < 32 && a.Fn < 8 && off < 0x1000 {
		e.dev.Write(uint64(a.Dev)<<15|uint64(a.Fn)<<12|uint64(off&^3), 4, uint64(v))
	}
}

// windowRegs is a pci.Regs over part of the bus's BAR window: what MMIO
// to the BAR would reach.
type windowRegs struct {
	r    *rig
	base uint64 // guest-physical address of the block
	size uint32
}

func (w *windowRegs) in(off, n uint32) bool { return off%n == 0 && off < w.size && n <= w.size-off }

func (w *windowRegs) read(off uint32, n uint8) uint64 {
	if !w.in(off, uint32(n)) {
		return 1<<(8*n) - 1
	}
	return w.r.win.Read(w.base+uint64(off)-vpci.WindowBase, n)
}

func (w *windowRegs) write(off uint32, n uint8, v uint64) {
	if !w.in(off, uint32(n)) {
		return
	}
	gpa := w.base + uint64(off)
	if w.r.notifyHook != nil && gpa >= barAt+virtiopci.NotifyOffset && gpa < barAt+virtiopci.TableOffset {
		if w.r.notifyHook(func() { w.r.win.Write(gpa-vpci.WindowBase, n, v) }) {
			return
		}
	}
	w.r.win.Write(gpa-vpci.WindowBase, n, v)
}

func (w *windowRegs) Read8(off uint32) uint8       { return uint8(w.read(off, 1)) }
func (w *windowRegs) Read16(off uint32) uint16     { return uint16(w.read(off, 2)) }
func (w *windowRegs) Read32(off uint32) uint32     { return uint32(w.read(off, 4)) }
func (w *windowRegs) Write8(off uint32, v uint8)   { w.write(off, 1, uint64(v)) }
func (w *windowRegs) Write16(off uint32, v uint16) { w.write(off, 2, uint64(v)) }
func (w *windowRegs) Write32(off uint32, v uint32) { w.write(off, 4, uint64(v)) }

// bump is a DMA allocator handing out the slice's memory upward from
// dmaFrom, page-aligned.
type bump struct {
	next, end uint64
}

func (b *bump) Alloc(n uint64) (uint64, bool) {
	n = (n + 4095) &^ 4095
	if n == 0 || b.next+n > b.end {
		return 0, false
	}
	pa := b.next
	b.next += n
	return pa, true
}

// rig is one modelled machine: RAM, a PCI bus with a virtio-blk device,
// and the driver-side seams over them.
type rig struct {
	ram  []byte
	mem  phys.Mem
	gmem *vmm.GuestMemory
	bus  *vpci.Bus
	dev  *virtiopci.Device
	disk *countingDisk
	win  vmm.MMIODevice
	cs   pci.ConfigSpace
	dma  *bump
	fn   pci.Function
	mu   sync.Mutex
	logs []string
	// notifyHook, if set, sees every write to the notify area; it gets
	// the write as a function and returns true when it has taken it
	// over (to delay or drop it).
	notifyHook func(write func()) bool
}

// countingDisk is a RAM disk that counts flushes.
type countingDisk struct {
	*vblk.RAMDisk
	mu      sync.Mutex
	flushes int
}

func (c *countingDisk) Flush() error {
	c.mu.Lock()
	c.flushes++
	c.mu.Unlock()
	return nil
}

func (c *countingDisk) Flushes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushes
}

// newRig builds the machine with a RAM disk of diskSize bytes (read-only
// if ro) and serial, plays firmware (puts BAR 0 at barAt) and scans the
// bus.
func newRig(t *testing.T, diskSize int64, ro bool, serial string) *rig {
	t.Helper()
	disk := &countingDisk{RAMDisk: vblk.NewRAMDisk(diskSize)}
	var be vblk.Backend = disk
	if ro {
		be = vblk.NewReadOnly(disk)
	}
	return newRigWith(t, be, serial, disk)
}

// newRigWith is newRig with back-end be; disk is what the tests inspect.
func newRigWith(t *testing.T, be vblk.Backend, serial string, disk *countingDisk) *rig {
	t.Helper()
	r := &rig{ram: make([]byte, ramSize), disk: disk}
	r.mem = phys.FromSlice(r.ram)
	r.gmem = vmm.NewGuestMemory(r.ram, 0)
	r.bus = vpci.NewBus(nil, nil)
	var d *virtiopci.Device
	s := vvirtio.NewState(vblk.New(be, vblk.Options{Serial: serial}), r.gmem,
		func(k vvirtio.IRQKind, q int) { d.Interrupt(k, q) },
		func(msg string) { r.mu.Lock(); r.logs = append(r.logs, msg); r.mu.Unlock() })
	d, err := virtiopci.New(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Add(devSlot, d.Function()); err != nil {
		t.Fatal(err)
	}
	r.dev, r.win = d, r.bus.Window()
	r.cs = ecamCS{r.bus.ECAM()}
	r.dma = &bump{next: dmaFrom, end: ramSize}
	a := pci.Addr{Dev: devSlot}
	r.cs.Write32(a, pci.RegBAR0, barAt)
	r.cs.Write32(a, pci.RegBAR0+4, 0)
	for _, f := range pci.Scan(r.cs, 0, 0) {
		if f.Addr == a {
			r.fn = f
		}
	}
	if r.fn.VendorID != pci.VendorRedHat {
		t.Fatal("virtio-blk not found by pci.Scan")
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, l := range r.logs {
			t.Logf("device model: %s", l)
		}
	})
	return r
}

// mapper maps BAR regions onto the window at the BAR's address.
func (r *rig) mapper(bar uint8, off, n uint32) (pci.Regs, error) {
	b := r.fn.BARs[bar]
	if !b.IsMem() || b.Base == 0 {
		return nil, fmt.Errorf("BAR %d not mapped", bar)
	}
	return &windowRegs{r: r, base: b.Base + uint64(off), size: n}, nil
}

// open runs Open and NewBlk.
func (r *rig) open(t *testing.T, o BlkOptions) *Blk {
	t.Helper()
	tr, err := Open(r.cs, &r.fn, r.mapper)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBlk(tr, &r.mem, r.dma, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deviceLogs returns what the device model complained about.
func (r *rig) deviceLogs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

// delayNotify makes every notification reach the device d later, from
// another goroutine, as a real device's completion would.
func (r *rig) delayNotify(d time.Duration) {
	r.notifyHook = func(write func()) bool {
		go func() {
			time.Sleep(d)
			write()
		}()
		return true
	}
}

// pattern fills p with bytes derived from seed.
func pattern(p []byte, seed uint32) {
	for i := 0; i < len(p); i += 4 {
		var w [4]byte
		binary.LittleEndian.PutUint32(w[:], seed*2654435761+uint32(i))
		copy(p[i:], w[:])
	}
}
