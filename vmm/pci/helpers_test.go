package pci_test

import (
	"sync"
	"testing"

	"juice/vmm/pci"
)

// irqEvent and msiEvent are what the recording callbacks saw.
type irqEvent struct {
	gsi   int
	level bool
}

type msiEvent struct {
	addr uint64
	data uint32
}

// recorder records irq and msi calls.
type recorder struct {
	mu   sync.Mutex
	irqs []irqEvent
	msis []msiEvent
}

func (r *recorder) irq(gsi int, level bool) {
	r.mu.Lock()
	r.irqs = append(r.irqs, irqEvent{gsi, level})
	r.mu.Unlock()
}

func (r *recorder) msi(addr uint64, data uint32) {
	r.mu.Lock()
	r.msis = append(r.msis, msiEvent{addr, data})
	r.mu.Unlock()
}

// takeIRQs returns and clears the recorded irq calls.
func (r *recorder) takeIRQs() []irqEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.irqs
	r.irqs = nil
	return e
}

// takeMSIs returns and clears the recorded msi calls.
func (r *recorder) takeMSIs() []msiEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.msis
	r.msis = nil
	return e
}

// fakeBAR is a BAR handler that remembers its last access and reads back
// a value derived from the offset. It does not allocate.
type fakeBAR struct {
	mu     sync.Mutex
	id     uint64
	reads  int
	writes int
	off    uint64
	size   uint8
	val    uint64
}

func (h *fakeBAR) BARRead(off uint64, size uint8) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	h.off, h.size = off, size
	return h.id<<48 | off
}

func (h *fakeBAR) BARWrite(off uint64, size uint8, value uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes++
	h.off, h.size, h.val = off, size, value
}

func (h *fakeBAR) last() (reads, writes int, off uint64, size uint8, val uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads, h.writes, h.off, h.size, h.val
}

// ecamOff is the ECAM offset of register reg of device dev, function fn.
func ecamOff(dev, fn int, reg uint64) uint64 { return uint64(dev)<<15 | uint64(fn)<<12 | reg }

// cfg reads and writes configuration space through ECAM.
type cfg struct {
	b *pci.Bus
}

func (c cfg) r(dev int, reg uint64, size uint8) uint64 {
	return c.b.ECAM().Read(ecamOff(dev, 0, reg), size)
}

func (c cfg) w(dev int, reg uint64, size uint8, v uint64) {
	c.b.ECAM().Write(ecamOff(dev, 0, reg), size, v)
}

// cf8 reads and writes through configuration mechanism #1.
func cf8Read(b *pci.Bus, bus, dev, fn int, reg uint64, size uint8) uint32 {
	a, d := b.ConfigPorts()
	a.Out(0, 4, 1<<31|uint32(bus)<<16|uint32(dev)<<11|uint32(fn)<<8|uint32(reg&0xFC))
	return d.In(uint16(reg&3), size)
}

func cf8Write(b *pci.Bus, bus, dev, fn int, reg uint64, size uint8, v uint32) {
	a, d := b.ConfigPorts()
	a.Out(0, 4, 1<<31|uint32(bus)<<16|uint32(dev)<<11|uint32(fn)<<8|uint32(reg&0xFC))
	d.Out(uint16(reg&3), size, v)
}

// virtioLike is a function shaped like a virtio-pci device: a 64-bit
// BAR 4 of 16 KiB holding the MSI-X table at 0x3000 and PBA at 0x3800,
// a 32-bit BAR 0, INTA, and two vendor capabilities.
func virtioLike(h0, h4 pci.BARHandler, vectors int) pci.FunctionConfig {
	c := pci.FunctionConfig{
		VendorID: 0x1af4, DeviceID: 0x1041, SubsystemVendorID: 0x1af4, SubsystemID: 0x0001,
		ClassCode: 0x020000, Revision: 1, InterruptPin: 1,
		VendorCaps: [][]byte{
			{0, 1, 4, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0},          // cap_len, cfg_type, bar, id, pad[2], offset, length
			{0, 2, 4, 0, 0, 0, 0, 0x10, 0, 0x10, 0, 0, 4, 0, 0, 0}, // + notify_off_multiplier
		},
	}
	c.BARs[0] = pci.BARConfig{Size: 0x1000, Handler: h0}
	c.BARs[4] = pci.BARConfig{Size: 0x4000, Is64: true, Prefetchable: true, Handler: h4}
	if vectors > 0 {
		c.MSIXVectors, c.MSIXBAR, c.MSIXTableOffset, c.MSIXPBAOffset = vectors, 4, 0x3000, 0x3800
	}
	return c
}

func newFunction(t testing.TB, c pci.FunctionConfig) *pci.Function {
	t.Helper()
	f, err := pci.NewFunction(c)
	if err != nil {
		t.Fatalf("NewFunction: %v", err)
	}
	return f
}

func add(t testing.TB, b *pci.Bus, slot int, f *pci.Function) {
	t.Helper()
	if err := b.Add(slot, f); err != nil {
		t.Fatalf("Add(%d): %v", slot, err)
	}
}
