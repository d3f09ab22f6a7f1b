package pci

import "errors"

// MSI describes a function's MSI capability (PCI Local Bus 3.0 section
// 6.8.1).
type MSI struct {
	Off           uint16 // capability offset
	Is64          bool   // 64-bit message address capable
	PerVectorMask bool   // per-vector masking capable
	Vectors       int    // multiple message capable: 1, 2, 4, ... 32
}

// MSI message control bits.
const (
	msiEnable  = 1 << 0
	msiMMEMask = 7 << 4 // multiple message enable
	msi64      = 1 << 7
	msiPVM     = 1 << 8
)

// FindMSI decodes f's MSI capability.
func FindMSI(cs ConfigSpace, f *Function) (MSI, bool) {
	off := f.Cap(CapMSI)
	if off == 0 || off > 0x100-0x18 {
		return MSI{}, false
	}
	ctl := Read16(cs, f.Addr, off+2)
	mmc := int(ctl>>1) & 7
	if mmc > 5 {
		mmc = 5 // 110 and 111 are reserved
	}
	return MSI{Off: off, Is64: ctl&msi64 != 0, PerVectorMask: ctl&msiPVM != 0, Vectors: 1 << mmc}, true
}

// ErrMSIAddress is returned when a message address needs 64 bits and the
// function has only 32.
var ErrMSIAddress = errors.New("pci: MSI address above 4 GiB on a 32-bit MSI capability")

// EnableMSI programs one message (address, data) into m, enables MSI
// with a single vector, and disables INTx.
func EnableMSI(cs ConfigSpace, a Addr, m MSI, addr uint64, data uint16) error {
	if !m.Is64 && addr>>32 != 0 {
		return ErrMSIAddress
	}
	h := cs.Read32(a, m.Off)
	ctl := uint16(h>>16) &^ (msiEnable | msiMMEMask)
	cs.Write32(a, m.Off, h&0xFFFF|uint32(ctl)<<16) // disabled while reprogrammed
	cs.Write32(a, m.Off+4, uint32(addr))
	dataReg := m.Off + 8
	if m.Is64 {
		cs.Write32(a, m.Off+8, uint32(addr>>32))
		dataReg = m.Off + 12
	}
	cs.Write32(a, dataReg, uint32(data)) // the upper half is reserved (or extended data, off)
	cs.Write32(a, m.Off, h&0xFFFF|uint32(ctl|msiEnable)<<16)
	Enable(cs, a, CmdINTxDisable)
	return nil
}

// DisableMSI turns m off.
func DisableMSI(cs ConfigSpace, a Addr, m MSI) {
	h := cs.Read32(a, m.Off)
	cs.Write32(a, m.Off, h&^(msiEnable<<16))
}

// MSIX describes a function's MSI-X capability (PCI Local Bus 3.0 section
// 6.8.2): the vector table and pending-bit array live in memory BARs.
type MSIX struct {
	Off         uint16 // capability offset
	TableSize   int    // vectors, 1-2048
	TableBAR    uint8  // BAR holding the table
	TableOffset uint32 // the table's offset in it (8-byte aligned)
	PBABAR      uint8
	PBAOffset   uint32
}

// MSI-X message control bits and table layout.
const (
	msixFuncMask   = 1 << 14
	msixEnable     = 1 << 15
	msixSizeMask   = 0x7FF
	MSIXEntrySize  = 16
	msixVectorMask = 1 // vector control: masked
)

// FindMSIX decodes f's MSI-X capability. It refuses one whose table or
// pending-bit array is not inside a memory BAR of f.
func FindMSIX(cs ConfigSpace, f *Function) (MSIX, bool) {
	off := f.Cap(CapMSIX)
	if off == 0 || off > 0x100-12 {
		return MSIX{}, false
	}
	ctl := Read16(cs, f.Addr, off+2)
	t := cs.Read32(f.Addr, off+4)
	p := cs.Read32(f.Addr, off+8)
	m := MSIX{
		Off: off, TableSize: int(ctl&msixSizeMask) + 1,
		TableBAR: uint8(t & 7), TableOffset: t &^ 7,
		PBABAR: uint8(p & 7), PBAOffset: p &^ 7,
	}
	inBAR := func(bar uint8, off, n uint64) bool {
		if bar > 5 {
			return false
		}
		b := f.BARs[bar]
		return b.IsMem() && off <= b.Size && n <= b.Size-off
	}
	if !inBAR(m.TableBAR, uint64(m.TableOffset), uint64(m.TableSize)*MSIXEntrySize) ||
		!inBAR(m.PBABAR, uint64(m.PBAOffset), uint64(m.TableSize+63)/64*8) {
		return MSIX{}, false
	}
	return m, true
}

// SetMSIX sets m's enable and function-mask bits; enabling also disables
// INTx.
func SetMSIX(cs ConfigSpace, a Addr, m MSIX, enable, maskAll bool) {
	h := cs.Read32(a, m.Off)
	ctl := uint16(h>>16) &^ (msixEnable | msixFuncMask)
	if enable {
		ctl |= msixEnable
	}
	if maskAll {
		ctl |= msixFuncMask
	}
	cs.Write32(a, m.Off, h&0xFFFF|uint32(ctl)<<16)
	if enable {
		Enable(cs, a, CmdINTxDisable)
	}
}

// WriteMSIXEntry programs vector i of the table whose registers are table
// (the table BAR from TableOffset on): the entry is masked while its
// address and data change and left masked if masked is set.
func WriteMSIXEntry(table Regs, i int, addr uint64, data uint32, masked bool) {
	e := uint32(i) * MSIXEntrySize
	table.Write32(e+12, msixVectorMask)
	table.Write32(e, uint32(addr))
	table.Write32(e+4, uint32(addr>>32))
	table.Write32(e+8, data)
	if !masked {
		table.Write32(e+12, 0)
	}
}

// MSIMessage returns the x86 message for a fixed, edge-triggered
// interrupt with vector vector to the local APIC with ID apicID (physical
// destination mode): Intel SDM volume 3, section 11.11.
func MSIMessage(apicID, vector uint8) (addr uint64, data uint32) {
	return 0xFEE0_0000 | uint64(apicID)<<12, uint32(vector)
}
