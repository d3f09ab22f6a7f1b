package acpi

import (
	"fmt"
	"testing"

	"juice/drivers/portio"
	"juice/mm/phys"
)

func mustParse(t *testing.T, im *image, rsdp uint64) *Tables {
	t.Helper()
	var tb Tables
	if st := Parse(im.mem(), rsdp, &tb); st != StatusOK {
		t.Fatalf("Parse = %v", st)
	}
	return &tb
}

func TestStandardPlatform(t *testing.T) {
	im := stdImage(t)
	rsdp, st := FindRSDP(im.mem(), 0)
	if st != StatusOK || rsdp != rsdpAt {
		t.Fatalf("FindRSDP = %#x, %v; want %#x", rsdp, st, rsdpAt)
	}
	tb := mustParse(t, im, rsdp)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Revision", tb.Revision, uint8(2)},
		{"OEM", string(tb.OEM[:]), "JUICE "},
		{"FADTRevision", tb.FADTRevision, uint8(6)},
		{"SCIInt", tb.SCIInt, uint16(9)},
		{"PM1aEvt", tb.PM1aEvt, uint32(0x400)},
		{"PM1aCnt", tb.PM1aCnt, uint32(0x404)},
		{"PM1bCnt", tb.PM1bCnt, uint32(0)},
		{"PMTimer", tb.PMTimer, uint32(0x408)},
		{"PMTimer32", tb.PMTimer32, true},
		{"SMICmd", tb.SMICmd, uint32(0xB2)},
		{"ACPIEnable", tb.ACPIEnable, uint8(0xA0)},
		{"ResetReg", tb.ResetReg, GAS{SpaceIO, 8, 0, 1, 0xCF9}},
		{"ResetValue", tb.ResetValue, uint8(6)},
		{"ResetSupported", tb.ResetSupported, true},
		{"BootArchFlags", tb.BootArchFlags, uint16(3)},
		{"Century", tb.Century, uint8(0x32)},
		{"HWReduced", tb.HWReduced, false},
		{"DSDTAddr", tb.DSDTAddr, uint64(dsdtAt)},
		{"S5", fmt.Sprint(tb.S5Valid, tb.SlpTypA, tb.SlpTypB), "true 5 5"},
		{"LAPICAddr", tb.LAPICAddr, uint64(0xFEE00000)},
		{"PCATCompat", tb.PCATCompat, true},
		{"LINT1NMI", tb.LINT1NMI, true},
		{"CPUs", fmt.Sprint(tb.CPUAPICID[:tb.NCPU]), "[0 2 256]"},
		{"IOAPIC", fmt.Sprint(tb.IOAPIC[:tb.NIOAPIC]), "[{8 4273995776 0}]"},
		{"Overrides", fmt.Sprint(tb.Overrides[:tb.NOverride]), "[{0 0 2 0} {0 9 9 13}]"},
		{"HPETAddr", tb.HPETAddr, uint64(0xFED00000)},
		{"MCFG", fmt.Sprint(tb.MCFGBase, tb.MCFGSegment, tb.MCFGBusStart, tb.MCFGBusEnd), "3758096384 0 0 63"},
		{"Found", tb.Found, uint16(HaveFADT | HaveDSDT | HaveMADT | HaveHPET | HaveMCFG)},
		{"Bad", tb.Bad, uint16(0)},
		{"NBad", tb.NBad, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestFindRSDP(t *testing.T) {
	// Nothing anywhere.
	im := &image{t: t, buf: make([]byte, winSize)}
	if _, st := FindRSDP(im.mem(), 0); st != StatusNotFound {
		t.Fatalf("empty memory: %v", st)
	}
	// EBDA first: BDA word 0x40E = 0x9FC0 → EBDA at 0x9FC00.
	im = stdImage(t)
	put16(im.buf, 0x40E, 0x9FC0)
	im.place(0x9FC00+0x40, rsdpBytes(0, rsdtAt, 0))
	if pa, st := FindRSDP(im.mem(), 0); st != StatusOK || pa != 0x9FC40 {
		t.Fatalf("EBDA RSDP: %#x, %v", pa, st)
	}
	// Beyond the first KiB of the EBDA is not scanned.
	im = stdImage(t)
	put16(im.buf, 0x40E, 0x9FC0)
	im.place(0x9FC00+0x400, rsdpBytes(0, rsdtAt, 0))
	if pa, _ := FindRSDP(im.mem(), 0); pa != rsdpAt {
		t.Fatalf("RSDP past the EBDA's first KiB found at %#x", pa)
	}
	// A valid hint wins; an invalid one falls back to the scan.
	im = stdImage(t)
	im.place(0x1800, rsdpBytes(0, rsdtAt, 0))
	if pa, st := FindRSDP(im.mem(), 0x1800); st != StatusOK || pa != 0x1800 {
		t.Fatalf("hint: %#x, %v", pa, st)
	}
	for _, hint := range []uint64{0x1801, 0x10, winSize - 4, 1 << 62} {
		if pa, st := FindRSDP(im.mem(), hint); st != StatusOK || pa != rsdpAt {
			t.Errorf("bad hint %#x: %#x, %v", hint, pa, st)
		}
	}
	// Misaligned in the BIOS area: not found.
	im = &image{t: t, buf: make([]byte, winSize)}
	im.place(0xE0008, rsdpBytes(0, rsdtAt, 0))
	if _, st := FindRSDP(im.mem(), 0); st != StatusNotFound {
		t.Errorf("misaligned RSDP found")
	}
	// Bad v1 checksum, bad v2 extended checksum, absurd v2 length: skipped
	// in favour of a later good one.
	im = &image{t: t, buf: make([]byte, winSize)}
	bad1 := rsdpBytes(0, rsdtAt, 0)
	bad1[8]++
	bad2 := rsdpBytes(2, rsdtAt, xsdtAt)
	bad2[32]++
	bad3 := rsdpBytes(2, rsdtAt, xsdtAt)
	put32(bad3, 20, 0x10000)
	im.place(0xE0000, bad1)
	im.place(0xE0040, bad2)
	im.place(0xE0080, bad3)
	im.place(0xFFFF0, rsdpBytes(0, rsdtAt, 0)) // the last slot
	if pa, st := FindRSDP(im.mem(), 0); st != StatusOK || pa != 0xFFFF0 {
		t.Errorf("FindRSDP = %#x, %v; want the last slot", pa, st)
	}
	// A window that ends inside the BIOS area or is tiny.
	small := phys.FromSlice(make([]byte, 0xE0008))
	if _, st := FindRSDP(&small, 0); st != StatusNotFound {
		t.Errorf("small window: %v", st)
	}
	if _, st := FindRSDP(nil, 0); st != StatusNotFound {
		t.Errorf("nil window: %v", st)
	}
}

func TestRootSelection(t *testing.T) {
	// Revision 0: the RSDT is used even though an XSDT exists.
	im := stdImage(t)
	im.place(rsdpAt, rsdpBytes(0, rsdtAt, 0))
	im.tbl(xsdtAt)[9]++ // would be caught if used
	tb := mustParse(t, im, rsdpAt)
	if tb.Revision != 0 || tb.Found&HaveFADT == 0 {
		t.Fatalf("v1: revision %d found %#x", tb.Revision, tb.Found)
	}

	// XSDT and RSDT list different FADTs: XSDT wins when usable.
	im = stdImage(t)
	f2 := fadtBytes(276)
	put32(f2, fadtPM1aCnt, 0x804)
	putGAS(f2, fadtXPM1aCnt, SpaceIO, 16, 0x804)
	fixsum(f2, 9)
	im.place(0x106000, f2)
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, 0x106000, madtAt)))
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x804 {
		t.Fatalf("XSDT not preferred: PM1aCnt %#x", tb.PM1aCnt)
	}
	// Corrupt XSDT: fall back to the RSDT.
	im.buf[xsdtAt+9]++
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x404 {
		t.Fatalf("corrupt XSDT: PM1aCnt %#x, want the RSDT's FADT", tb.PM1aCnt)
	}
	im.buf[xsdtAt+9]--
	// Bad extended checksum in the RSDP: the XSDT address is not trusted.
	im.buf[rsdpAt+32]++
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x404 {
		t.Fatalf("bad extended checksum: PM1aCnt %#x, want the RSDT's FADT", tb.PM1aCnt)
	}
	im.buf[rsdpAt+32]--
	// XSDT address zero: RSDT.
	im.place(rsdpAt, rsdpBytes(2, rsdtAt, 0))
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x404 {
		t.Fatalf("zero XSDT address: PM1aCnt %#x", tb.PM1aCnt)
	}
	// The XSDT address points at a valid table that is not an XSDT.
	im.place(rsdpAt, rsdpBytes(2, rsdtAt, fadtAt))
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x404 {
		t.Fatalf("XSDT address at an FADT: PM1aCnt %#x", tb.PM1aCnt)
	}

	// Neither root usable.
	im = stdImage(t)
	im.buf[xsdtAt+9]++
	im.buf[rsdtAt+9]++
	var tb2 Tables
	if st := Parse(im.mem(), rsdpAt, &tb2); st != StatusNoRoot {
		t.Fatalf("no root: %v", st)
	}
	// Bad RSDP.
	im = stdImage(t)
	im.buf[rsdpAt+8]++
	if st := Parse(im.mem(), rsdpAt, &tb2); st != StatusBadRSDP {
		t.Fatalf("bad RSDP checksum: %v", st)
	}
	for _, pa := range []uint64{0, winSize - 10, 1 << 63} {
		if st := Parse(im.mem(), pa, &tb2); st != StatusBadRSDP {
			t.Errorf("RSDP at %#x: %v", pa, st)
		}
	}
	if st := Parse(nil, rsdpAt, &tb2); st != StatusBadRSDP {
		t.Errorf("nil window: %v", st)
	}
}

func TestBadEntries(t *testing.T) {
	im := stdImage(t)
	// Garbage XSDT: past the window, zero, wrapping, mid-table, a bad
	// checksum, a length past the window, an absurd length, then the good ones.
	im.place(0x107000, []byte("SSDT\xff\xff\xff\x7f")) // length 2 GiB
	im.place(0x108000, sdt("SSDT", 1, []byte{1, 2, 3}))
	im.buf[0x108000+9]++
	tail := sdt("FOO ", 1, make([]byte, 64))
	im.place(winSize-40, tail[:40]) // header says 100 bytes, window has 40
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true,
		1<<40, 0, ^uint64(0)-8, fadtAt+3, 0x107000, 0x108000, winSize-40,
		fadtAt, madtAt, hpetAt, mcfgAt)))
	tb := mustParse(t, im, rsdpAt)
	if tb.NBad != 7 {
		t.Errorf("NBad = %d, want 7", tb.NBad)
	}
	if string(tb.BadSig[4][:]) != "SSDT" || string(tb.BadSig[5][:]) != "SSDT" || string(tb.BadSig[6][:]) != "FOO " || tb.BadSig[0] != [4]byte{} {
		t.Errorf("BadSig = %q", tb.BadSig)
	}
	if tb.Found != HaveFADT|HaveDSDT|HaveMADT|HaveHPET|HaveMCFG || tb.Bad != 0 {
		t.Errorf("Found %#x Bad %#x", tb.Found, tb.Bad)
	}
	// More bad entries than BadSig holds.
	var many []uint64
	for i := 0; i < 20; i++ {
		many = append(many, 1<<40)
	}
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, append(many, fadtAt)...)))
	if tb := mustParse(t, im, rsdpAt); tb.NBad != 20 {
		t.Errorf("NBad = %d, want 20", tb.NBad)
	}
}

func TestFADTProblems(t *testing.T) {
	// Corrupt FADT: StatusBadFADT, but the MADT is still parsed.
	im := stdImage(t)
	im.buf[fadtAt+50]++
	var tb Tables
	if st := Parse(im.mem(), rsdpAt, &tb); st != StatusBadFADT {
		t.Fatalf("corrupt FADT: %v", st)
	}
	if tb.NCPU != 3 || tb.Bad&HaveFADT == 0 || tb.Found&HaveFADT != 0 || tb.S5Valid {
		t.Errorf("corrupt FADT: NCPU %d Found %#x Bad %#x S5 %v", tb.NCPU, tb.Found, tb.Bad, tb.S5Valid)
	}
	// A corrupt FADT followed by a good one: fine, and not reported bad.
	f2 := fadtBytes(276)
	im.place(0x106000, f2)
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, fadtAt, 0x106000, madtAt)))
	if st := Parse(im.mem(), rsdpAt, &tb); st != StatusOK || tb.Bad != 0 || tb.NBad != 1 {
		t.Fatalf("bad then good FADT: %v Bad %#x NBad %d", st, tb.Bad, tb.NBad)
	}
	// No FADT listed.
	im = stdImage(t)
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, madtAt)))
	if st := Parse(im.mem(), rsdpAt, &tb); st != StatusNoFADT || tb.NCPU != 3 {
		t.Fatalf("no FADT: %v NCPU %d", st, tb.NCPU)
	}
	// Too short to use.
	im = stdImage(t)
	im.place(fadtAt, fadtBytes(100))
	if st := Parse(im.mem(), rsdpAt, &tb); st != StatusBadFADT {
		t.Fatalf("100-byte FADT: %v", st)
	}
	// FADT extending past the window.
	im = stdImage(t)
	f := fadtBytes(276)
	im.place(winSize-200, f[:200])
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, winSize-200)))
	if st := Parse(im.mem(), rsdpAt, &tb); st != StatusBadFADT {
		t.Fatalf("truncated FADT: %v", st)
	}
}

func TestFADTVersions(t *testing.T) {
	// An ACPI 1.0 FADT (116 bytes): no reset register, no X_ fields, no
	// boot flags (reserved then), the 32-bit DSDT.
	im := stdImage(t)
	f := fadtBytes(116)
	f[8] = 1
	fixsum(f, 9)
	im.place(fadtAt, f)
	tb := mustParse(t, im, rsdpAt)
	if tb.ResetSupported || tb.ResetReg != (GAS{}) || tb.BootArchFlags != 0 || !tb.S5Valid || tb.PM1aCnt != 0x404 {
		t.Errorf("ACPI 1.0 FADT: reset %v %v boot %#x S5 %v PM1a %#x", tb.ResetSupported, tb.ResetReg, tb.BootArchFlags, tb.S5Valid, tb.PM1aCnt)
	}
	// X_PM1a_CNT in I/O space beats the legacy field.
	im = stdImage(t)
	f = im.tbl(fadtAt)
	putGAS(f, fadtXPM1aCnt, SpaceIO, 16, 0x1004)
	im.refix(fadtAt)
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x1004 {
		t.Errorf("X_PM1a_CNT ignored: %#x", tb.PM1aCnt)
	}
	// X_ in memory space: the legacy port stays.
	putGAS(f, fadtXPM1aCnt, SpaceMemory, 16, 0xFED80000)
	im.refix(fadtAt)
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0x404 {
		t.Errorf("memory-space X_PM1a_CNT: %#x", tb.PM1aCnt)
	}
	// An impossible port value reads as 0.
	putGAS(f, fadtXPM1aCnt, SpaceIO, 16, 0x12345)
	put32(f, fadtPM1bCnt, 0x10000)
	im.refix(fadtAt)
	if tb := mustParse(t, im, rsdpAt); tb.PM1aCnt != 0 || tb.PM1bCnt != 0 {
		t.Errorf("out-of-range ports: %#x %#x", tb.PM1aCnt, tb.PM1bCnt)
	}
	// No PM timer when PM_TMR_LEN is not 4; 24-bit without TMR_VAL_EXT.
	im = stdImage(t)
	f = im.tbl(fadtAt)
	f[fadtPMTmrLen] = 0
	put32(f, fadtFlags, 0)
	im.refix(fadtAt)
	if tb := mustParse(t, im, rsdpAt); tb.PMTimer != 0 || tb.PMTimer32 || tb.ResetSupported {
		t.Errorf("PM timer %#x 32 %v reset %v", tb.PMTimer, tb.PMTimer32, tb.ResetSupported)
	}
	// X_DSDT corrupt: the 32-bit DSDT is used.
	im = stdImage(t)
	im.place(0x106000, sdt("DSDT", 2, []byte{0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x01, 0x07}))
	im.buf[0x106000+9]++
	f = im.tbl(fadtAt)
	put64(f, fadtXDSDT, 0x106000)
	im.refix(fadtAt)
	tb = mustParse(t, im, rsdpAt)
	if tb.DSDTAddr != dsdtAt || !tb.S5Valid || tb.SlpTypA != 5 || tb.Found&HaveDSDT == 0 {
		t.Errorf("X_DSDT fallback: DSDT %#x S5 %v %d", tb.DSDTAddr, tb.S5Valid, tb.SlpTypA)
	}
	// Both corrupt: no S5, DSDT bad, but the FADT is fine.
	im.buf[dsdtAt+9]++
	var tb2 Tables
	if st := Parse(im.mem(), rsdpAt, &tb2); st != StatusOK || tb2.S5Valid || tb2.Bad&HaveDSDT == 0 {
		t.Errorf("no DSDT: %v S5 %v Bad %#x", st, tb2.S5Valid, tb2.Bad)
	}
	// HW-reduced FADT with sleep registers.
	im = stdImage(t)
	f = im.tbl(fadtAt)
	put32(f, fadtFlags, FlagHWReduced)
	putGAS(f, fadtSleepCtl, SpaceIO, 8, 0x3C0)
	putGAS(f, fadtSleepStatus, SpaceIO, 8, 0x3C1)
	im.refix(fadtAt)
	tb = mustParse(t, im, rsdpAt)
	if !tb.HWReduced || tb.SleepControl.Address != 0x3C0 || tb.SleepStatus.Address != 0x3C1 {
		t.Errorf("HW-reduced: %v %v %v", tb.HWReduced, tb.SleepControl, tb.SleepStatus)
	}
}

func TestMADTEdges(t *testing.T) {
	im := stdImage(t)
	// Local APIC address override; entry lengths too short for their type
	// are skipped; a zero-length entry stops the walk.
	lo := make([]byte, 12)
	lo[0], lo[1] = 5, 12
	put64(lo, 4, 0x1_FEE0_0000)
	im.place(madtAt, madtBytes(
		eLAPIC(0, 1, 1),
		lo,
		[]byte{0, 4, 0, 9},       // short LAPIC entry
		[]byte{1, 6, 0, 0, 0, 0}, // short IOAPIC entry
		eLAPIC(1, 3, 1),
		[]byte{0x30, 0}, // zero length: stop
		eLAPIC(2, 5, 1),
	))
	tb := mustParse(t, im, rsdpAt)
	if tb.LAPICAddr != 0x1_FEE0_0000 || fmt.Sprint(tb.CPUAPICID[:tb.NCPU]) != "[1 3]" || tb.NIOAPIC != 0 {
		t.Errorf("LAPIC %#x CPUs %v IOAPICs %d", tb.LAPICAddr, tb.CPUAPICID[:tb.NCPU], tb.NIOAPIC)
	}
	// An entry overrunning the table ends the walk.
	m := madtBytes(eLAPIC(0, 1, 1), eLAPIC(1, 2, 1))
	m[len(m)-7] = 30
	fixsum(m, 9)
	im.place(madtAt, m)
	if tb := mustParse(t, im, rsdpAt); tb.NCPU != 1 {
		t.Errorf("overrunning entry: NCPU %d", tb.NCPU)
	}
	// Overflowing every array.
	var es [][]byte
	for i := 0; i < 300; i++ {
		es = append(es, eX2APIC(uint32(i), 1, uint32(i)))
	}
	for i := 0; i < 10; i++ {
		es = append(es, eIOAPIC(uint8(i), 0xFEC00000+uint32(i)<<12, uint32(24*i)))
	}
	for i := 0; i < 20; i++ {
		es = append(es, eOverride(uint8(i), uint32(i), 0))
	}
	im.place(madtAt, madtBytes(es...))
	tb = mustParse(t, im, rsdpAt)
	if tb.NCPU != MaxCPUs || tb.NIOAPIC != MaxIOAPICs || tb.NOverride != MaxOverrides ||
		tb.MADTDropped != 300-MaxCPUs+10-MaxIOAPICs+20-MaxOverrides || tb.CPUAPICID[255] != 255 {
		t.Errorf("overflow: NCPU %d NIOAPIC %d NOverride %d dropped %d", tb.NCPU, tb.NIOAPIC, tb.NOverride, tb.MADTDropped)
	}
}

func TestS5Encodings(t *testing.T) {
	for _, tc := range []struct {
		name string
		aml  []byte
		a, b uint8
		ok   bool
	}{
		{"zero/zero (QEMU)", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00}, 0, 0, true},
		{"one/one", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x01, 0x01}, 1, 1, true},
		{"byte prefix", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 0x07, 0x0A, 0x03, 0x00, 0x00}, 7, 3, true},
		{"word/dword/qword", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x11, 0x03, 0x0B, 0x05, 0x00, 0x0C, 0x06, 0, 0, 0, 0x0E, 1, 0, 0, 0, 0, 0, 0, 0}, 5, 6, true},
		{"bare bytes", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x05, 0x05}, 5, 5, true},
		{"root prefix", []byte{0x08, '\\', '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0A, 0x02, 0x03}, 2, 3, true},
		{"parent prefix", []byte{0x08, '^', '^', '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x04, 0x03}, 4, 3, true},
		{"one element packs both", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x01, 0x0B, 0x05, 0x06}, 5, 6, true},
		{"ones", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0xFF, 0x00}, 0xFF, 0, true},
		{"two-byte pkglength", append([]byte{0x08, '_', 'S', '5', '_', 0x12, 0x48, 0x04, 0x04, 0x0A, 0x03, 0x0A, 0x04}, make([]byte, 0x48-7)...), 3, 4, true},
		{"not a name", []byte{0x70, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x05, 0x05}, 0, 0, false},
		{"method", []byte{0x14, 0x0A, '_', 'S', '5', '_', 0x00, 0xA4, 0x12, 0x04, 0x02, 0x05, 0x05}, 0, 0, false},
		{"not a package", []byte{0x08, '_', 'S', '5', '_', 0x0A, 0x05}, 0, 0, false},
		{"pkglength past end", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x3F, 0x02, 0x05, 0x05}, 0, 0, false},
		{"element past pkglength", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x03, 0x02, 0x05, 0x05}, 0, 0, false},
		{"word past pkglength", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x05, 0x0B, 0x06, 0x00}, 0, 0, false},
		{"truncated pkglength", []byte{0x08, '_', 'S', '5', '_', 0x12, 0xC0, 0x01}, 0, 0, false},
		{"no elements", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x02, 0x00}, 0, 0, false},
		{"string element", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 0x0D, 'a', 0x00, 0x05}, 0, 0, false},
		{"truncated", []byte{0x08, '_', 'S', '5'}, 0, 0, false},
		{"first bad, second good", []byte{0x08, '_', 'S', '5', '_', 0x0A, 0x01, 0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x06, 0x07}, 6, 7, true},
	} {
		a, b, ok := FindS5(tc.aml)
		if ok != tc.ok || a != tc.a || b != tc.b {
			t.Errorf("%s: FindS5 = %d, %d, %v; want %d, %d, %v", tc.name, a, b, ok, tc.a, tc.b, tc.ok)
		}
		// Every truncation must be safe (and never find more than the whole).
		for n := 0; n < len(tc.aml); n++ {
			FindS5(tc.aml[:n])
		}
	}
}

// fakePM models PM1 control registers and records port writes.
type fakePM struct {
	regs      map[uint16]uint16
	log       []string
	sciAfter  int // In16 reads of PM1a before SCI_EN appears after the SMI
	smiSeen   bool
	pm1a      uint16
	neverSCI  bool
	pm1aReads int
}

func (f *fakePM) ports() *portio.Ports {
	return &portio.Ports{
		In8: func(p uint16) uint8 { return 0 },
		Out8: func(p uint16, v uint8) {
			f.log = append(f.log, fmt.Sprintf("out8 %#x %#x", p, v))
			f.smiSeen = f.smiSeen || p == 0xB2
		},
		In16: func(p uint16) uint16 {
			if p == f.pm1a {
				f.pm1aReads++
				if f.smiSeen && !f.neverSCI {
					if f.sciAfter == 0 {
						f.regs[p] |= pm1SCIEN
					} else {
						f.sciAfter--
					}
				}
			}
			return f.regs[p]
		},
		Out16: func(p uint16, v uint16) {
			f.log = append(f.log, fmt.Sprintf("out16 %#x %#x", p, v))
			f.regs[p] = v &^ pm1SlpEn
		},
		Out32: func(p uint16, v uint32) { f.log = append(f.log, fmt.Sprintf("out32 %#x %#x", p, v)) },
	}
}

func TestPowerOff(t *testing.T) {
	im := stdImage(t)
	tb := mustParse(t, im, rsdpAt)

	// Already in ACPI mode: SLP_TYP first, then SLP_EN; SCI_EN kept, the
	// write-only and reserved bits (GBL_RLS 0x4, 0x100) written as zero.
	f := &fakePM{regs: map[uint16]uint16{0x404: pm1SCIEN | 0x4 | 0x100}, pm1a: 0x404}
	if !tb.PowerOff(f.ports(), nil) {
		t.Fatal("PowerOff did not try")
	}
	want := []string{"out16 0x404 0x1401", "out16 0x404 0x3401"}
	if fmt.Sprint(f.log) != fmt.Sprint(want) {
		t.Errorf("writes %q, want %q", f.log, want)
	}

	// Legacy mode: ACPI_ENABLE to SMI_CMD, wait for SCI_EN, then sleep.
	f = &fakePM{regs: map[uint16]uint16{0x404: 0, 0x504: 0}, pm1a: 0x404, sciAfter: 100}
	tb.PM1bCnt = 0x504
	tb.SlpTypB = 6
	tb.PowerOff(f.ports(), nil)
	want = []string{"out8 0xb2 0xa0", "out16 0x404 0x1401", "out16 0x504 0x1800", "out16 0x404 0x3401", "out16 0x504 0x3800"}
	if fmt.Sprint(f.log) != fmt.Sprint(want) {
		t.Errorf("legacy-mode writes %q, want %q", f.log, want)
	}
	// SCI_EN never appears: bounded wait, then it tries anyway.
	f = &fakePM{regs: map[uint16]uint16{0x404: 0, 0x504: 0}, pm1a: 0x404, neverSCI: true}
	if !tb.PowerOff(f.ports(), nil) || f.pm1aReads > MaxEnablePolls+3 {
		t.Errorf("never SCI_EN: %d PM1a reads", f.pm1aReads)
	}

	// Values above 7 are masked to SLP_TYP's 3 bits.
	tb.PM1bCnt = 0
	tb.SlpTypA = 0xFD
	f = &fakePM{regs: map[uint16]uint16{0x404: pm1SCIEN}, pm1a: 0x404}
	tb.PowerOff(f.ports(), nil)
	if f.log[1] != "out16 0x404 0x3401" {
		t.Errorf("masked SLP_TYP write %q", f.log[1])
	}

	// Cannot try: no \_S5_, no ports.
	tb2 := *tb
	tb2.S5Valid = false
	if tb2.PowerOff(f.ports(), nil) {
		t.Error("PowerOff without \\_S5_ tried")
	}
	if tb.PowerOff(nil, nil) || tb.PowerOff(&portio.Ports{}, nil) {
		t.Error("PowerOff without ports tried")
	}

	// HW-reduced: the sleep control register, in I/O or memory space.
	hw := Tables{S5Valid: true, SlpTypA: 5, SleepControl: GAS{Space: SpaceIO, Address: 0x3C0}}
	f = &fakePM{regs: map[uint16]uint16{}}
	if !hw.PowerOff(f.ports(), nil) || fmt.Sprint(f.log) != "[out8 0x3c0 0x34]" {
		t.Errorf("HW-reduced I/O: %q", f.log)
	}
	buf := make([]byte, 0x2000)
	mem := phys.FromSlice(buf)
	hw.SleepControl = GAS{Space: SpaceMemory, Address: 0x1800}
	if !hw.PowerOff(nil, &mem) || buf[0x1800] != 0x34 {
		t.Errorf("HW-reduced memory: %#x", buf[0x1800])
	}
	hw.SleepControl.Address = 0x2000
	if hw.PowerOff(nil, &mem) {
		t.Error("sleep control outside the window tried")
	}
}

func TestReset(t *testing.T) {
	im := stdImage(t)
	tb := mustParse(t, im, rsdpAt)
	f := &fakePM{regs: map[uint16]uint16{}}
	if !tb.Reset(f.ports(), nil) || fmt.Sprint(f.log) != "[out8 0xcf9 0x6]" {
		t.Errorf("I/O reset: %q", f.log)
	}
	buf := make([]byte, 0x1000)
	mem := phys.FromSlice(buf)
	tb.ResetReg = GAS{Space: SpaceMemory, Width: 8, Address: 0x800}
	if !tb.Reset(nil, &mem) || buf[0x800] != 6 {
		t.Errorf("memory reset: %#x", buf[0x800])
	}
	// PCI config space: device 0x1F, function 3, register 0x45.
	tb.ResetReg = GAS{Space: SpacePCI, Width: 8, Address: 0x1F<<32 | 3<<16 | 0x45}
	f.log = nil
	if !tb.Reset(f.ports(), nil) || fmt.Sprint(f.log) != "[out32 0xcf8 0x8000fb44 out8 0xcfd 0x6]" {
		t.Errorf("PCI reset: %q", f.log)
	}
	for _, g := range []GAS{
		{Space: SpacePCI, Address: 0x20 << 32},
		{Space: SpaceIO, Address: 0x10000},
		{Space: SpaceMemory, Address: 0x1000},
		{Space: 0x7F, Address: 0x10},
		{Space: SpaceIO},
	} {
		tb.ResetReg = g
		if tb.Reset(f.ports(), &mem) {
			t.Errorf("reset through %+v tried", g)
		}
	}
	tb.ResetReg = GAS{Space: SpaceIO, Address: 0xCF9}
	tb.ResetSupported = false
	if tb.Reset(f.ports(), &mem) {
		t.Error("reset without RESET_REG_SUP tried")
	}
}

// TestQEMU parses ACPI tables captured from QEMU 7.2 (SeaBIOS for q35 and
// pc, qboot for microvm) and checks them against QEMU's documented
// machine models.
func TestQEMU(t *testing.T) {
	t.Run("q35", func(t *testing.T) {
		im := loadDump(t, "q35.acpi")
		rsdp, st := FindRSDP(im.mem(), 0)
		if st != StatusOK || rsdp < 0xE0000 {
			t.Fatalf("FindRSDP: %#x %v", rsdp, st)
		}
		tb := mustParse(t, im, rsdp)
		// ICH9 LPC: PM base 0x600; SMI command port 0xB2; reset via 0xCF9.
		if tb.PM1aEvt != 0x600 || tb.PM1aCnt != 0x604 || tb.PMTimer != 0x608 || tb.PMTimer32 ||
			tb.SMICmd != 0xB2 || tb.ACPIEnable != 2 || tb.SCIInt != 9 || tb.Century != 0x32 {
			t.Errorf("PM: %#x %#x %#x %v SMI %#x/%#x SCI %d century %#x", tb.PM1aEvt, tb.PM1aCnt, tb.PMTimer, tb.PMTimer32, tb.SMICmd, tb.ACPIEnable, tb.SCIInt, tb.Century)
		}
		if !tb.ResetSupported || tb.ResetReg.Space != SpaceIO || tb.ResetReg.Address != 0xCF9 || tb.ResetValue != 0x0F {
			t.Errorf("reset: %v %+v %#x", tb.ResetSupported, tb.ResetReg, tb.ResetValue)
		}
		if !tb.S5Valid || tb.SlpTypA != 0 || tb.SlpTypB != 0 {
			t.Errorf("S5: %v %d %d", tb.S5Valid, tb.SlpTypA, tb.SlpTypB)
		}
		if fmt.Sprint(tb.CPUAPICID[:tb.NCPU]) != "[0 1]" || tb.LAPICAddr != 0xFEE00000 || tb.NIOAPIC != 1 ||
			tb.IOAPIC[0].Addr != 0xFEC00000 || tb.NOverride != 5 || tb.Overrides[0] != (Override{0, 0, 2, 0}) {
			t.Errorf("MADT: CPUs %v LAPIC %#x IOAPIC %v overrides %v", tb.CPUAPICID[:tb.NCPU], tb.LAPICAddr, tb.IOAPIC[:tb.NIOAPIC], tb.Overrides[:tb.NOverride])
		}
		if tb.HPETAddr != 0xFED00000 || tb.MCFGBase != 0xB0000000 || tb.MCFGBusEnd != 0xFF || tb.Bad != 0 || tb.NBad != 0 {
			t.Errorf("HPET %#x MCFG %#x bus end %#x Bad %#x NBad %d", tb.HPETAddr, tb.MCFGBase, tb.MCFGBusEnd, tb.Bad, tb.NBad)
		}
		f := &fakePM{regs: map[uint16]uint16{0x604: 0}, pm1a: 0x604}
		if !tb.PowerOff(f.ports(), nil) || fmt.Sprint(f.log) != "[out8 0xb2 0x2 out16 0x604 0x1 out16 0x604 0x2001]" {
			t.Errorf("q35 power-off writes %q", f.log)
		}
	})
	t.Run("pc", func(t *testing.T) {
		im := loadDump(t, "pc.acpi")
		rsdp, _ := FindRSDP(im.mem(), 0)
		tb := mustParse(t, im, rsdp)
		// PIIX4 PM; ACPI 1.0-sized FADT: no reset register; no MCFG.
		if tb.FADTRevision != 1 || tb.PM1aCnt != 0x604 || tb.PMTimer != 0x608 || tb.ResetSupported ||
			!tb.S5Valid || tb.Found&HaveMCFG != 0 || tb.NCPU != 2 || tb.HPETAddr != 0xFED00000 {
			t.Errorf("pc: %+v", *tb)
		}
	})
	t.Run("microvm", func(t *testing.T) {
		im := loadDump(t, "microvm.acpi")
		rsdp, st := FindRSDP(im.mem(), 0)
		if st != StatusOK {
			t.Fatal(st)
		}
		tb := mustParse(t, im, rsdp)
		// HW-reduced, XSDT, GED sleep/reset registers in MMIO at 0xFEA00200.
		if tb.Revision != 2 || !tb.HWReduced || tb.PM1aCnt != 0 || tb.PMTimer != 0 ||
			tb.SleepControl != (GAS{SpaceMemory, 8, 0, 0, 0xFEA00200}) || tb.ResetReg.Address != 0xFEA00202 ||
			!tb.S5Valid || tb.SlpTypA != 5 || tb.NIOAPIC != 2 || tb.NCPU != 2 {
			t.Errorf("microvm: %+v", *tb)
		}
	})
}

func TestNoAllocs(t *testing.T) {
	im := stdImage(t)
	mem := im.mem()
	var tb Tables
	if n := testing.AllocsPerRun(100, func() {
		rsdp, _ := FindRSDP(mem, 0)
		Parse(mem, rsdp, &tb)
		FindS5(im.tbl(dsdtAt)[headerLen:])
	}); n != 0 {
		t.Fatalf("FindRSDP/Parse allocate %v times", n)
	}
}

func TestStatusString(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusBadFADT; s++ {
		str := s.String()
		if seen[str] || str == Status(200).String() {
			t.Errorf("status %d: bad or duplicate name %q", s, str)
		}
		seen[str] = true
	}
}

// FuzzParse treats the input as the physical-memory window with the RSDP
// at offset 0 (and the BIOS area scanned when the window is large enough):
// nothing may panic, and the counts must stay within their arrays.
func FuzzParse(f *testing.F) {
	im := stdImage(f)
	// Seeds: the standard platform relocated to start at 0 (RSDP at 0).
	seed := make([]byte, 0x6000)
	r := rsdpBytes(2, 0x100, 0x200)
	copy(seed, r)
	fd := fadtBytes(276)
	put32(fd, fadtDSDT, 0x2000)
	put64(fd, fadtXDSDT, 0x2000)
	fixsum(fd, 9)
	copy(seed[0x100:], sdt("RSDT", 1, rootBody(false, 0x1000, 0x3000, 0x4000, 0x5000)))
	copy(seed[0x200:], sdt("XSDT", 1, rootBody(true, 0x1000, 0x3000, 0x4000, 0x5000)))
	copy(seed[0x1000:], fd)
	copy(seed[0x2000:], sdt("DSDT", 2, s5AML()))
	copy(seed[0x3000:], stdMADT())
	copy(seed[0x4000:], hpetBytes())
	copy(seed[0x5000:], mcfgBytes())
	f.Add(seed)
	f.Add(im.buf[rsdpAt : rsdpAt+36])
	f.Add([]byte("RSD PTR "))
	f.Fuzz(func(t *testing.T, window []byte) {
		mem := phys.FromSlice(window)
		var tb Tables
		Parse(&mem, 0, &tb)
		FindRSDP(&mem, 0)
		if tb.NCPU < 0 || tb.NCPU > MaxCPUs || tb.NIOAPIC < 0 || tb.NIOAPIC > MaxIOAPICs ||
			tb.NOverride < 0 || tb.NOverride > MaxOverrides || tb.NBad < 0 {
			t.Fatalf("counts out of range: %d %d %d %d", tb.NCPU, tb.NIOAPIC, tb.NOverride, tb.NBad)
		}
		if len(window) > 8 {
			FindS5(window[8:])
		}
	})
}

// FuzzS5 feeds arbitrary AML to the \_S5_ decoder.
func FuzzS5(f *testing.F) {
	f.Add(s5AML())
	f.Add([]byte{0x08, '_', 'S', '5', '_', 0x12, 0x48, 0x04, 0x04, 0x0A, 0x03, 0x0A, 0x04})
	f.Fuzz(func(t *testing.T, aml []byte) {
		FindS5(aml)
	})
}
