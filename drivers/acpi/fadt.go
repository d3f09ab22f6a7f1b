package acpi

import "juice/mm/phys"

// FADT field offsets (ACPI 6.5 §5.2.9).
const (
	fadtDSDT        = 40
	fadtSCIInt      = 46
	fadtSMICmd      = 48
	fadtACPIEnable  = 52
	fadtPM1aEvt     = 56
	fadtPM1bEvt     = 60
	fadtPM1aCnt     = 64
	fadtPM1bCnt     = 68
	fadtPMTmr       = 76
	fadtPMTmrLen    = 91
	fadtCentury     = 108
	fadtBootArch    = 109
	fadtFlags       = 112
	fadtResetReg    = 116
	fadtResetValue  = 128
	fadtXDSDT       = 140
	fadtXPM1aEvt    = 148
	fadtXPM1bEvt    = 160
	fadtXPM1aCnt    = 172
	fadtXPM1bCnt    = 184
	fadtXPMTmr      = 208
	fadtSleepCtl    = 244
	fadtSleepStatus = 256

	// fadtMinLen is the ACPI 1.0 FADT's length: everything up to and
	// including Flags. Shorter FADTs are unusable.
	fadtMinLen = 116
)

// ioPort picks an I/O port from the FADT: the X_ GAS at xOff when it is
// inside the table, nonzero and in I/O space, else the 32-bit field at
// legacyOff. A value that cannot be a port (> 0xFFFF) gives 0.
//
//go:nosplit
func ioPort(f []byte, legacyOff, xOff uint) uint32 {
	g := gas(f, xOff)
	if g.Address != 0 && g.Space == SpaceIO {
		if g.Address <= 0xFFFF {
			return uint32(g.Address)
		}
		return 0
	}
	v := u32(f, legacyOff)
	if v > 0xFFFF {
		return 0
	}
	return v
}

// parseFADT fills the FADT fields of t from f, which is at least
// fadtMinLen bytes; fields past f's length read as zero.
//
//go:nosplit
func (t *Tables) parseFADT(f []byte) {
	t.FADTRevision = u8(f, 8)
	t.FADTFlags = u32(f, fadtFlags)
	t.SCIInt = u16(f, fadtSCIInt)
	t.SMICmd = u32(f, fadtSMICmd)
	if t.SMICmd > 0xFFFF {
		t.SMICmd = 0
	}
	t.ACPIEnable = u8(f, fadtACPIEnable)
	t.PM1aEvt = ioPort(f, fadtPM1aEvt, fadtXPM1aEvt)
	t.PM1bEvt = ioPort(f, fadtPM1bEvt, fadtXPM1bEvt)
	t.PM1aCnt = ioPort(f, fadtPM1aCnt, fadtXPM1aCnt)
	t.PM1bCnt = ioPort(f, fadtPM1bCnt, fadtXPM1bCnt)
	if u8(f, fadtPMTmrLen) == 4 {
		t.PMTimer = ioPort(f, fadtPMTmr, fadtXPMTmr)
	}
	t.PMTimer32 = t.FADTFlags&FlagTmrValExt != 0
	t.Century = u8(f, fadtCentury)
	if t.FADTRevision >= 2 { // reserved in ACPI 1.0
		t.BootArchFlags = u16(f, fadtBootArch)
	}
	t.HWReduced = t.FADTFlags&FlagHWReduced != 0
	if len(f) > fadtResetValue {
		t.ResetReg = gas(f, fadtResetReg)
		t.ResetValue = f[fadtResetValue]
		t.ResetSupported = t.FADTFlags&FlagResetRegSup != 0
	}
	t.SleepControl = gas(f, fadtSleepCtl)
	t.SleepStatus = gas(f, fadtSleepStatus)
}

// findDSDT locates the DSDT named by the FADT at fadt (X_DSDT preferred,
// DSDT if X_DSDT is zero or not a valid DSDT), records it in t, and
// returns its AML (the bytes after the header); nil if there is none.
//
//go:nosplit
func (t *Tables) findDSDT(mem *phys.Mem, fadt uint64) []byte {
	f, _, ok := table(mem, fadt)
	if !ok {
		return nil
	}
	x, d := u64(f, fadtXDSDT), uint64(u32(f, fadtDSDT))
	for i := 0; i < 2; i++ {
		pa := x
		if i == 1 {
			pa = d
		}
		if pa == 0 {
			continue
		}
		b, sig, ok := table(mem, pa)
		if !ok || sig != sigDSDT || len(b) < headerLen {
			t.Bad |= HaveDSDT
			continue
		}
		t.Found |= HaveDSDT
		t.Bad &^= HaveDSDT
		t.DSDTAddr = pa
		t.DSDTLen = uint32(len(b))
		return b[headerLen:]
	}
	return nil
}
