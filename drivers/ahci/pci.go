package ahci

import (
	"fmt"

	"juice/drivers/pci"
	"juice/mm/phys"
)

// ClassAHCI is an AHCI HBA's PCI class: mass storage (01), SATA (06),
// programming interface AHCI 1.0 (01).
const ClassAHCI = 0x010601

// abarIndex is the BAR holding the HBA's registers (section 2.1.11).
const abarIndex = 5

// abarMax is the most of the ABAR the driver uses: the generic registers
// and 32 ports.
const abarMax = portBase + portStride*MaxPorts

// IsAHCI reports whether f is an AHCI HBA.
func IsAHCI(f *pci.Function) bool { return f.Class == ClassAHCI && f.Header == pci.HeaderNormal }

// ABAR returns f's register BAR (BAR 5), which must be an assigned
// memory BAR of at least 256 bytes.
func ABAR(f *pci.Function) (pci.BAR, error) {
	b := f.BARs[abarIndex]
	switch {
	case !b.IsMem():
		return b, fmt.Errorf("ahci %v: BAR 5 is not a memory BAR (%v)", f.Addr, b)
	case b.Base == 0:
		return b, fmt.Errorf("ahci %v: BAR 5 is not assigned", f.Addr)
	case b.Size < portBase:
		return b, fmt.Errorf("ahci %v: BAR 5 is %d bytes, too small for AHCI registers", f.Addr, b.Size)
	}
	return b, nil
}

// Mapper returns the registers [off, off+n) of BAR bar of the function
// being attached (the shape of juice/drivers/virtio.BARMapper).
type Mapper func(bar uint8, off, n uint32) (pci.Regs, error)

// Attach brings up the AHCI HBA f: it maps the ABAR through m, enables
// memory decoding and bus mastering with INTx off (the driver polls),
// and opens the HBA (Open) with o.Name defaulting to f's address.
func Attach(cs pci.ConfigSpace, f *pci.Function, m Mapper, mem *phys.Mem, dma DMA, o Options) (*HBA, error) {
	if !IsAHCI(f) {
		return nil, fmt.Errorf("ahci %v: class %#06x: %w", f.Addr, f.Class, ErrNoHBA)
	}
	b, err := ABAR(f)
	if err != nil {
		return nil, err
	}
	size := uint32(min(b.Size, abarMax))
	regs, err := m(abarIndex, 0, size)
	if err != nil {
		return nil, fmt.Errorf("ahci %v: %w", f.Addr, err)
	}
	pci.Enable(cs, f.Addr, pci.CmdMemory|pci.CmdBusMaster|pci.CmdINTxDisable)
	if o.Name == "" {
		o.Name = f.Addr.String()
	}
	return Open(regs, size, mem, dma, o)
}
