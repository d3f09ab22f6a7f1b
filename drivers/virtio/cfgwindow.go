package virtio

import (
	"errors"
	"sync"

	"juice/drivers/pci"
)

// ErrNoPCICfg: the device has no PCI configuration access capability.
var ErrNoPCICfg = errors.New("virtio: no VIRTIO_PCI_CAP_PCI_CFG capability")

// CfgMapper returns a BARMapper that reaches f's BARs through its PCI
// configuration access capability (VIRTIO_PCI_CAP_PCI_CFG, virtio 1.2
// section 4.1.4.9): the driver writes the BAR, offset and access width
// into the capability and then reads or writes pci_cfg_data, and the
// device performs the access. It needs nothing mapped, only
// configuration space, at the price of four configuration accesses per
// register access; juice uses it when the kernel cannot map the BAR.
func CfgMapper(cs pci.ConfigSpace, f *pci.Function) (BARMapper, error) {
	_, capOff := findRegions(cs, f)
	if capOff == 0 {
		return nil, ErrNoPCICfg
	}
	w := &cfgWindow{cs: cs, a: f.Addr, cap: capOff}
	return func(bar uint8, off, n uint32) (pci.Regs, error) {
		return &cfgRegs{w: w, bar: bar, base: off, size: n}, nil
	}, nil
}

// cfgWindow is one function's configuration access capability; its
// mutex keeps the select-then-access sequences of all its regions apart.
type cfgWindow struct {
	cs  pci.ConfigSpace
	a   pci.Addr
	cap uint16
	mu  sync.Mutex
}

// cfgRegs is one region reached through a cfgWindow.
type cfgRegs struct {
	w          *cfgWindow
	bar        uint8
	base, size uint32
}

// sel points the capability at [base+off, +width) of the region's BAR;
// it reports false for an access outside the region or misaligned.
// w.mu is held.
func (r *cfgRegs) sel(off, width uint32) bool {
	if off&(width-1) != 0 || off >= r.size || width > r.size-off {
		return false
	}
	w := r.w
	// bar is one byte of a dword whose other bytes (id, padding) are
	// read-only to the driver.
	h := w.cs.Read32(w.a, w.cap+capBAR)
	w.cs.Write32(w.a, w.cap+capBAR, h&^0xFF|uint32(r.bar))
	w.cs.Write32(w.a, w.cap+capOffset, r.base+off)
	w.cs.Write32(w.a, w.cap+capLength, width)
	return true
}

func (r *cfgRegs) read(off, width uint32) uint32 {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if !r.sel(off, width) {
		return pci.Absent
	}
	return r.w.cs.Read32(r.w.a, r.w.cap+capCfgData)
}

func (r *cfgRegs) write(off, width, v uint32) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.sel(off, width) {
		r.w.cs.Write32(r.w.a, r.w.cap+capCfgData, v)
	}
}

// Read8 implements pci.Regs.
func (r *cfgRegs) Read8(off uint32) uint8 { return uint8(r.read(off, 1)) }

// Read16 implements pci.Regs.
func (r *cfgRegs) Read16(off uint32) uint16 { return uint16(r.read(off, 2)) }

// Read32 implements pci.Regs.
func (r *cfgRegs) Read32(off uint32) uint32 { return r.read(off, 4) }

// Write8 implements pci.Regs.
func (r *cfgRegs) Write8(off uint32, v uint8) { r.write(off, 1, uint32(v)) }

// Write16 implements pci.Regs.
func (r *cfgRegs) Write16(off uint32, v uint16) { r.write(off, 2, uint32(v)) }

// Write32 implements pci.Regs.
func (r *cfgRegs) Write32(off uint32, v uint32) { r.write(off, 4, v) }
