package acpi

import (
	"juice/drivers/portio"
	"juice/mm/phys"
)

// PM1 control register bits.
const (
	pm1SCIEN      = 1 << 0  // SCI_EN: ACPI mode (vs legacy SMM)
	pm1BMRLD      = 1 << 1  // BM_RLD
	pm1SlpTypMask = 7 << 10 // SLP_TYPx
	pm1SlpEn      = 1 << 13 // SLP_EN (write-only)
	pm1Keep       = pm1SCIEN | pm1BMRLD

	sleepCtlSlpEn    = 1 << 5 // HW-reduced SLEEP_CONTROL_REG: SLP_EN
	sleepCtlTypShift = 2      // HW-reduced SLEEP_CONTROL_REG: SLP_TYPx at bits 4:2
)

// MaxEnablePolls bounds the wait for SCI_EN after writing ACPI_ENABLE to
// SMI_CMD (firmware may take a while to hand over; an I/O read is about
// 1 µs, so this is about a second).
const MaxEnablePolls = 1 << 20

// PowerOff puts the machine into S5 (soft off). It needs \_S5_ (S5Valid).
//
// With PM1 control blocks (PM1aCnt nonzero and 16-bit port I/O
// available), it first switches the platform to ACPI mode if SCI_EN is
// clear and the FADT gives SMI_CMD and ACPI_ENABLE (waiting at most
// MaxEnablePolls reads for SCI_EN), then writes SLP_TYPa and SLP_TYPb to
// PM1a_CNT and PM1b_CNT, and finally sets SLP_EN in each — keeping SCI_EN
// and BM_RLD and writing zero to the other bits (GBL_RLS would raise an
// SMI).
//
// Without them (a hardware-reduced platform such as QEMU microvm), it
// writes SLP_TYPa<<2 | SLP_EN to the FADT's sleep control register, in
// I/O space (through p) or system memory (through mem).
//
// It returns false if it could not try; true means the writes were made —
// if it returns at all, the machine did not power off and the caller
// should halt.
//
//go:nosplit
func (t *Tables) PowerOff(p *portio.Ports, mem *phys.Mem) bool {
	if !t.S5Valid {
		return false
	}
	if t.PM1aCnt != 0 && t.PM1aCnt <= 0xFFFF && p.Has16() {
		a := uint16(t.PM1aCnt)
		if p.In16(a)&pm1SCIEN == 0 && t.SMICmd != 0 && t.SMICmd <= 0xFFFF && t.ACPIEnable != 0 && p.Out8 != nil {
			p.Out8(uint16(t.SMICmd), t.ACPIEnable)
			for i := 0; i < MaxEnablePolls; i++ {
				if p.In16(a)&pm1SCIEN != 0 {
					break
				}
			}
		}
		va := p.In16(a)&pm1Keep | uint16(t.SlpTypA&7)<<10
		p.Out16(a, va)
		var vb uint16
		b := uint16(0)
		if t.PM1bCnt != 0 && t.PM1bCnt <= 0xFFFF {
			b = uint16(t.PM1bCnt)
			vb = p.In16(b)&pm1Keep | uint16(t.SlpTypB&7)<<10
			p.Out16(b, vb)
		}
		p.Out16(a, va|pm1SlpEn)
		if b != 0 {
			p.Out16(b, vb|pm1SlpEn)
		}
		return true
	}
	return writeByte(&t.SleepControl, (t.SlpTypA&7)<<sleepCtlTypShift|sleepCtlSlpEn, p, mem)
}

// writeByte writes v to the byte register g in I/O space or system
// memory; false if g is absent, in another space, or unreachable.
//
//go:nosplit
func writeByte(g *GAS, v uint8, p *portio.Ports, mem *phys.Mem) bool {
	if g.Address == 0 {
		return false
	}
	switch g.Space {
	case SpaceIO:
		if g.Address > 0xFFFF || p == nil || p.Out8 == nil {
			return false
		}
		p.Out8(uint16(g.Address), v)
		return true
	case SpaceMemory:
		if mem == nil {
			return false
		}
		b, ok := mem.Bytes(g.Address, 1)
		if !ok {
			return false
		}
		b[0] = v
		return true
	}
	return false
}

// Reset resets the machine through the FADT reset register: ResetValue is
// written, as a byte, to ResetReg in I/O space, system memory (through
// mem) or PCI configuration space (bus 0, via configuration mechanism #1
// at ports 0xCF8/0xCFC). It needs ResetSupported and a nonzero address,
// and returns false if it could not try. If it returns true and the
// machine is still running, the caller should fall back to another method
// (the 8042 or a triple fault).
//
//go:nosplit
func (t *Tables) Reset(p *portio.Ports, mem *phys.Mem) bool {
	r := t.ResetReg
	if !t.ResetSupported || r.Address == 0 {
		return false
	}
	switch r.Space {
	case SpaceIO, SpaceMemory:
		return writeByte(&r, t.ResetValue, p, mem)
	case SpacePCI:
		// Address: device in bits 47:32, function in 31:16, register
		// offset in 15:0; segment and bus 0.
		dev, fn, off := (r.Address>>32)&0xFFFF, (r.Address>>16)&0xFFFF, r.Address&0xFFFF
		if r.Address>>48 != 0 || dev > 31 || fn > 7 || off > 0xFF || p == nil || p.Out32 == nil || p.Out8 == nil {
			return false
		}
		p.Out32(0xCF8, uint32(0x8000_0000|dev<<11|fn<<8|off&0xFC))
		p.Out8(uint16(0xCFC+off&3), t.ResetValue)
		return true
	}
	return false
}
