package pci

import (
	"sync"
	"sync/atomic"

	"juice/vmm"
)

// Configuration mechanism #1 address register (PCI 3.0 section 3.2.2.3.2).
const (
	cf8Enable   = 1 << 31
	cf8Writable = 0x80FF_FFFC // enable, bus, device, function, register; reserved and low bits read 0
)

// Bus is PCI bus 0 (segment 0): the host bridge in slot 0 and the
// functions added to slots 1-31, reachable through
//
//	ConfigPorts()  configuration mechanism #1: register the address
//	               device at ConfigAddressPort and the data device at
//	               ConfigDataPort, ConfigPortLen ports each
//	ECAM()         register at ECAMBase, ECAMSize bytes
//	Window()       register at WindowBase, WindowSize bytes
//
// Each slot holds one function (function 0; the multi-function bit is
// clear). Configuration reads of absent functions, of functions 1-7 and
// of buses other than 0 return all ones; writes to them are ignored.
type Bus struct {
	irq func(gsi int, level bool)
	msi func(addr uint64, data uint32)

	slots [Slots]atomic.Pointer[Function]

	mu    sync.Mutex // guards addr, reset and Add
	addr  uint32     // the 0xCF8 latch
	reset vmm.PortDevice

	lineMu   sync.Mutex // serializes INTx line changes; held across irq
	asserted [4]uint32  // per INTx line: slots asserting it
	lineOut  [4]bool    // per INTx line: last level given to irq

	dropped atomic.Uint64 // MSIs dropped (bad address, bad vector)

	addrDev addrPort
	dataDev dataPort
	ecamDev ecam
	winDev  window
}

// NewBus returns a bus with its host bridge in slot 0
// (HostBridgeVendorID:HostBridgeDeviceID, class HostBridgeClass, no BARs,
// no interrupt). irq(gsi, level) drives an I/O APIC pin (called only when
// a line's level changes, with the Bus's line mutex held, so it must not
// call back into the bus); msi(addr, data) delivers a message signalled
// interrupt (called with no lock held; the address is always in
// 0xFEEx_xxxx). Either may be nil to drop those interrupts.
func NewBus(irq func(gsi int, level bool), msi func(addr uint64, data uint32)) *Bus {
	b := &Bus{irq: irq, msi: msi}
	b.addrDev.b, b.dataDev.b, b.ecamDev.b, b.winDev.b = b, b, b, b
	hb, err := NewFunction(FunctionConfig{
		VendorID:  HostBridgeVendorID,
		DeviceID:  HostBridgeDeviceID,
		ClassCode: HostBridgeClass,
	})
	if err != nil {
		panic("pci: host bridge: " + err.Error()) // a constant configuration
	}
	hb.bus, hb.slot = b, 0
	b.slots[0].Store(hb)
	return b
}

// Add puts f in slot (1..31). It fails if the slot is taken or f is
// already on a bus. Call it while building the VM.
func (b *Bus) Add(slot int, f *Function) error {
	if f == nil || slot < 1 || slot >= Slots {
		return bad("slot %d not in 1..%d (or nil function)", slot, Slots-1)
	}
	b.mu.Lock()
	if b.slots[slot].Load() != nil {
		b.mu.Unlock()
		return bad("slot %d is taken", slot)
	}
	f.mu.Lock()
	if f.bus != nil {
		other := f.slot
		f.mu.Unlock()
		b.mu.Unlock()
		return bad("function is already on a bus (slot %d)", other)
	}
	f.bus, f.slot = b, slot
	f.mu.Unlock()
	b.slots[slot].Store(f)
	b.mu.Unlock()
	f.updateINTx() // a level set before Add
	return nil
}

// SetResetControl hands 1-byte accesses to port 0xCF9, which lies inside
// the configuration address register's ports, to dev as accesses at its
// offset 0 (the PIIX/ICH reset control register,
// juice/vmm/devices.Reset.Control()). Call it while building the VM.
func (b *Bus) SetResetControl(dev vmm.PortDevice) {
	b.mu.Lock()
	b.reset = dev
	b.mu.Unlock()
}

// DroppedMSIs counts MSI-X messages dropped: signals of vectors outside
// the table, and messages whose address is not in 0xFEEx_xxxx.
func (b *Bus) DroppedMSIs() uint64 { return b.dropped.Load() }

// Function returns the function in slot (0 is the host bridge), or nil.
func (b *Bus) Function(slot int) *Function {
	if slot < 0 || slot >= Slots {
		return nil
	}
	return b.slots[slot].Load()
}

// sendMSI validates and delivers a message.
func (b *Bus) sendMSI(addr uint64, data uint32) {
	if addr&MSIAddrMask != MSIAddrBase {
		b.dropped.Add(1)
		return
	}
	if b.msi != nil {
		b.msi(addr, data)
	}
}

// fn returns the function at device dev, function fn of bus 0, or nil.
func (b *Bus) fn(dev, fn uint64) *Function {
	if fn != 0 || dev >= Slots {
		return nil
	}
	return b.slots[dev].Load()
}

// ConfigPorts returns configuration mechanism #1's address register
// device (register at ConfigAddressPort) and data window device (at
// ConfigDataPort), ConfigPortLen ports each.
//
// The address register takes 4-byte writes at 0xCF8 (bit 31 enable,
// bus 23:16, device 15:11, function 10:8, register 7:2; other bits read
// 0); narrower writes are ignored, except 1-byte accesses at 0xCF9,
// which go to the SetResetControl device. With the enable bit set and
// bus 0 selected, an access of size bytes at 0xCFC+k reaches register
// (register & 0xFC) + k of the selected function.
func (b *Bus) ConfigPorts() (addr vmm.PortDevice, data vmm.PortDevice) {
	return &b.addrDev, &b.dataDev
}

// ECAM returns the ECAM (MMCONFIG) device for bus 0: register it at
// ECAMBase, ECAMSize bytes. Offset dev<<15 | fn<<12 | reg reaches register
// reg (0-0xFFF; 0x100 and up read 0) of function fn of device dev.
// Accesses must stay inside a dword, or be aligned 8-byte accesses (two
// dwords); others read all ones and are ignored.
func (b *Bus) ECAM() vmm.MMIODevice { return &b.ecamDev }

// Window returns the BAR window device: register it at WindowBase,
// WindowSize bytes. An access reaches the first BAR, in slot order then
// BAR order, that contains it wholly, among the BARs of functions with
// Command.Memory set that lie wholly inside the window (so when the guest
// programs overlapping BARs, the lower slot and BAR win). Accesses to the
// MSI-X table and PBA are served by the function itself, the rest by the
// BAR's Handler. Accesses that hit no BAR, or straddle a BAR's end, read
// all ones and are ignored.
func (b *Bus) Window() vmm.MMIODevice { return &b.winDev }

// addrPort is the 0xCF8 address register.
type addrPort struct{ b *Bus }

// In returns the address register (its bytes for narrower reads), or the
// reset control register for a 1-byte read at 0xCF9.
func (p *addrPort) In(off uint16, size uint8) uint32 {
	b := p.b
	b.mu.Lock()
	a, reset := b.addr, b.reset
	b.mu.Unlock()
	if off == 1 && size == 1 && reset != nil {
		return reset.In(0, 1) & 0xFF
	}
	if off > 3 {
		return uint32(ones(size))
	}
	return a >> (8 * off) & uint32(ones(size))
}

// Out latches a 4-byte write at offset 0; passes a 1-byte write at 0xCF9
// to the reset control device; ignores the rest.
func (p *addrPort) Out(off uint16, size uint8, value uint32) {
	b := p.b
	b.mu.Lock()
	if off == 0 && size == 4 {
		b.addr = value & cf8Writable
		b.mu.Unlock()
		return
	}
	reset := b.reset
	b.mu.Unlock()
	if off == 1 && size == 1 && reset != nil {
		reset.Out(0, 1, value&0xFF)
	}
}

// dataPort is the 0xCFC-0xCFF data window.
type dataPort struct{ b *Bus }

// target returns the function and register the latch selects for an
// access at data-port offset off, or nil.
func (p *dataPort) target(off uint16, size uint8) (*Function, uint64) {
	b := p.b
	b.mu.Lock()
	a := b.addr
	b.mu.Unlock()
	if a&cf8Enable == 0 || a>>16&0xFF != 0 || uint32(off)+uint32(size) > ConfigPortLen {
		return nil, 0
	}
	return b.fn(uint64(a>>11&0x1F), uint64(a>>8&7)), uint64(a&0xFC) + uint64(off)
}

// In reads the selected configuration register.
func (p *dataPort) In(off uint16, size uint8) uint32 {
	f, reg := p.target(off, size)
	if f == nil || size > 4 {
		return uint32(ones(size))
	}
	return uint32(f.readConfig(reg, size))
}

// Out writes the selected configuration register.
func (p *dataPort) Out(off uint16, size uint8, value uint32) {
	if f, reg := p.target(off, size); f != nil && size <= 4 {
		f.writeConfig(reg, size, uint64(value))
	}
}

// ecam is the ECAM region of bus 0.
type ecam struct{ b *Bus }

// target returns the function and register at ECAM offset off, or nil.
func (e *ecam) target(off uint64) (*Function, uint64) {
	if off >= ECAMSize {
		return nil, 0
	}
	return e.b.fn(off>>15&0x1F, off>>12&7), off & (cfgSize - 1)
}

// Read reads a configuration register.
func (e *ecam) Read(off uint64, size uint8) uint64 {
	f, reg := e.target(off)
	if f == nil {
		return ones(size)
	}
	return f.readConfig(reg, size)
}

// Write writes a configuration register.
func (e *ecam) Write(off uint64, size uint8, value uint64) {
	if f, reg := e.target(off); f != nil {
		f.writeConfig(reg, size, value)
	}
}

// window is the BAR window.
type window struct{ b *Bus }

// decode returns the function, BAR and BAR offset the access of size
// bytes at guest-physical address gpa hits, or nil.
func (w *window) decode(gpa uint64, size uint8) (*Function, int, uint64) {
	end := gpa + uint64(size)
	for s := 1; s < Slots; s++ {
		f := w.b.slots[s].Load()
		if f == nil {
			continue
		}
		for i := range f.bars {
			sz := f.bars[i].size
			if sz == 0 {
				continue
			}
			base := f.dec[i].Load()
			if base != 0 && gpa >= base && gpa-base < sz {
				if end-base > sz {
					return nil, 0, 0 // straddles the BAR's end
				}
				return f, i, gpa - base
			}
		}
	}
	return nil, 0, 0
}

// Read serves a read in the window.
func (w *window) Read(off uint64, size uint8) uint64 {
	if off >= WindowSize || !validSize(size) {
		return ones(size)
	}
	f, bar, boff := w.decode(WindowBase+off, size)
	if f == nil {
		return ones(size)
	}
	switch r := f.msixRegion(bar, boff, size); {
	case r < 0:
		return ones(size)
	case r > 0:
		return f.msixRead(r, boff, size)
	}
	h := f.bars[bar].handler
	if h == nil {
		return ones(size)
	}
	return h.BARRead(boff, size) & ones(size)
}

// Write serves a write in the window.
func (w *window) Write(off uint64, size uint8, value uint64) {
	if off >= WindowSize || !validSize(size) {
		return
	}
	f, bar, boff := w.decode(WindowBase+off, size)
	if f == nil {
		return
	}
	switch r := f.msixRegion(bar, boff, size); {
	case r < 0:
		return
	case r > 0:
		f.msixWrite(r, boff, size, value)
		return
	}
	if h := f.bars[bar].handler; h != nil {
		h.BARWrite(boff, size, value&ones(size))
	}
}

// validSize reports whether size is 1, 2, 4 or 8.
func validSize(size uint8) bool { return size == 1 || size == 2 || size == 4 || size == 8 }
