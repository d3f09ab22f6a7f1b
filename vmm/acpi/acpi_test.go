package acpi_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	hostacpi "juice/drivers/acpi"
	"juice/mm/phys"
	"juice/vmm/acpi"
)

const ramSize = 2 << 20

// guestRAM copies the blobs into a byte slice standing in for guest RAM
// and returns a phys window over it.
func guestRAM(t testing.TB, tb acpi.Tables, size uint64) *phys.Mem {
	t.Helper()
	ram := make([]byte, size)
	for _, b := range tb.Blobs {
		if b.GPA+uint64(len(b.Data)) > size {
			t.Fatalf("blob at %#x (+%d) outside RAM", b.GPA, len(b.Data))
		}
		copy(ram[b.GPA:], b.Data)
	}
	m := phys.FromSlice(ram)
	return &m
}

func sum(b []byte) byte {
	var s byte
	for _, v := range b {
		s += v
	}
	return s
}

func build(t testing.TB, c acpi.Config) acpi.Tables {
	t.Helper()
	tb, err := acpi.Build(c)
	if err != nil {
		t.Fatalf("Build(%+v): %v", c, err)
	}
	return tb
}

// parse runs juice's host ACPI parser over the generated tables: it must
// find the RSDP by scanning the BIOS area (no hint) and parse cleanly.
func parse(t testing.TB, tb acpi.Tables, size uint64) *hostacpi.Tables {
	t.Helper()
	mem := guestRAM(t, tb, size)
	pa, st := hostacpi.FindRSDP(mem, 0)
	if st != hostacpi.StatusOK || pa != tb.RSDPAddr {
		t.Fatalf("FindRSDP = %#x, %v; want %#x, ok", pa, st, tb.RSDPAddr)
	}
	var out hostacpi.Tables
	if st := hostacpi.Parse(mem, pa, &out); st != hostacpi.StatusOK {
		t.Fatalf("Parse: %v", st)
	}
	return &out
}

func TestParseBack(t *testing.T) {
	c := acpi.DefaultConfig(4, ramSize)
	c.IOAPICID = 7
	tb := build(t, c)
	p := parse(t, tb, ramSize)

	if p.Revision != 2 || string(p.OEM[:]) != "JUICE " {
		t.Errorf("RSDP revision %d OEM %q", p.Revision, p.OEM)
	}
	want := hostacpi.HaveFADT | hostacpi.HaveDSDT | hostacpi.HaveMADT
	if p.Found != uint16(want) || p.Bad != 0 || p.NBad != 0 {
		t.Errorf("Found %#x Bad %#x NBad %d; want Found %#x", p.Found, p.Bad, p.NBad, want)
	}
	// FADT.
	if p.FADTRevision != 6 || p.HWReduced {
		t.Errorf("FADT revision %d HWReduced %v", p.FADTRevision, p.HWReduced)
	}
	if p.PM1aEvt != 0x600 || p.PM1aCnt != 0x604 || p.PMTimer != 0x608 || p.PM1bEvt != 0 || p.PM1bCnt != 0 {
		t.Errorf("ports evt %#x cnt %#x tmr %#x (b %#x %#x)", p.PM1aEvt, p.PM1aCnt, p.PMTimer, p.PM1bEvt, p.PM1bCnt)
	}
	if p.PMTimer32 || p.FADTFlags&hostacpi.FlagTmrValExt != 0 {
		t.Error("default PM timer is not 24-bit")
	}
	if p.SCIInt != 9 || p.SMICmd != 0 || p.ACPIEnable != 0 {
		t.Errorf("SCI %d SMI_CMD %#x ACPI_ENABLE %#x", p.SCIInt, p.SMICmd, p.ACPIEnable)
	}
	if !p.ResetSupported || p.ResetReg != (hostacpi.GAS{Space: hostacpi.SpaceIO, Width: 8, AccessSize: 1, Address: 0xCF9}) || p.ResetValue != 6 {
		t.Errorf("reset %v %+v %#x", p.ResetSupported, p.ResetReg, p.ResetValue)
	}
	if p.BootArchFlags != hostacpi.BootLegacyDevices|hostacpi.BootNoVGA {
		t.Errorf("IAPC_BOOT_ARCH %#x", p.BootArchFlags)
	}
	// DSDT \_S5_.
	if !p.S5Valid || p.SlpTypA != acpi.SlpTypS5 || p.SlpTypB != acpi.SlpTypS5 {
		t.Errorf("S5 %v %d %d", p.S5Valid, p.SlpTypA, p.SlpTypB)
	}
	// MADT.
	if p.LAPICAddr != 0xFEE00000 || !p.PCATCompat || !p.LINT1NMI {
		t.Errorf("LAPIC %#x PCAT %v LINT1NMI %v", p.LAPICAddr, p.PCATCompat, p.LINT1NMI)
	}
	if p.NCPU != 4 {
		t.Fatalf("NCPU %d", p.NCPU)
	}
	for i := 0; i < p.NCPU; i++ {
		if p.CPUAPICID[i] != uint32(i) {
			t.Errorf("CPU %d APIC ID %d", i, p.CPUAPICID[i])
		}
	}
	if p.NIOAPIC != 1 || p.IOAPIC[0] != (hostacpi.IOAPIC{ID: 7, Addr: 0xFEC00000, GSIBase: 0}) {
		t.Errorf("IOAPICs %d %+v", p.NIOAPIC, p.IOAPIC[0])
	}
	wantOv := []hostacpi.Override{
		{Bus: 0, Source: 0, GSI: 2, Flags: 0},
		{Bus: 0, Source: 9, GSI: 9, Flags: 0x0D},
	}
	if p.NOverride != len(wantOv) {
		t.Fatalf("NOverride %d", p.NOverride)
	}
	for i, o := range wantOv {
		if p.Overrides[i] != o {
			t.Errorf("override %d = %+v, want %+v", i, p.Overrides[i], o)
		}
	}
	if p.MADTDropped != 0 {
		t.Errorf("MADTDropped %d", p.MADTDropped)
	}
}

func TestCustomConfig(t *testing.T) {
	c := acpi.DefaultConfig(2, ramSize)
	c.PM1aEvtPort, c.PM1aCntPort, c.PMTimerPort = 0xB000, 0xB004, 0xB008
	c.SCIIRQ = 10
	c.ResetPort, c.ResetValue = 0x92, 0x01
	c.Has8042, c.NoCMOSRTC, c.PMTimer32 = true, true, true
	c.Base = 0xF0000
	c.TableBase = 0x80000
	tb := build(t, c)
	p := parse(t, tb, ramSize)
	if p.PM1aEvt != 0xB000 || p.PM1aCnt != 0xB004 || p.PMTimer != 0xB008 {
		t.Errorf("ports %#x %#x %#x", p.PM1aEvt, p.PM1aCnt, p.PMTimer)
	}
	if !p.PMTimer32 {
		t.Error("PMTimer32 not reflected in TMR_VAL_EXT")
	}
	if p.SCIInt != 10 || p.ResetReg.Address != 0x92 || p.ResetValue != 1 {
		t.Errorf("SCI %d reset %#x/%#x", p.SCIInt, p.ResetReg.Address, p.ResetValue)
	}
	if p.BootArchFlags != hostacpi.BootLegacyDevices|hostacpi.Boot8042|hostacpi.BootNoVGA|hostacpi.BootNoCMOSRTC {
		t.Errorf("IAPC_BOOT_ARCH %#x", p.BootArchFlags)
	}
	if p.NOverride != 2 || p.Overrides[1] != (hostacpi.Override{Source: 10, GSI: 10, Flags: 0x0D}) {
		t.Errorf("SCI override %+v", p.Overrides[1])
	}
	if tb.RSDPAddr != 0xF0000 {
		t.Errorf("RSDPAddr %#x", tb.RSDPAddr)
	}
	for _, b := range tb.Blobs {
		if b.GPA != tb.RSDPAddr && (b.GPA < 0x80000 || b.GPA >= 0x81000) {
			t.Errorf("table at %#x not at TableBase", b.GPA)
		}
	}
	if s, e := tb.Extent(); s != 0x80000 || e != 0xF0000+36 {
		t.Errorf("Extent = %#x, %#x", s, e)
	}
}

// TestChecksumsAndLayout checks every table with this test's own code:
// checksums, lengths, signatures, alignment, ordering and no overlap, for
// 1..64 CPUs.
func TestChecksumsAndLayout(t *testing.T) {
	for n := 1; n <= 64; n++ {
		tb := build(t, acpi.DefaultConfig(n, ramSize))
		if len(tb.Blobs) != 6 {
			t.Fatalf("n=%d: %d blobs", n, len(tb.Blobs))
		}
		sigs := map[string]acpi.Blob{}
		var prevEnd uint64
		for i, b := range tb.Blobs {
			if i > 0 && b.GPA < prevEnd {
				t.Errorf("n=%d: blob %d at %#x overlaps previous (end %#x)", n, i, b.GPA, prevEnd)
			}
			prevEnd = b.GPA + uint64(len(b.Data))
			if prevEnd > 0x100000 || b.GPA < 0xE0000 {
				t.Errorf("n=%d: blob %d [%#x, %#x) outside the BIOS area", n, i, b.GPA, prevEnd)
			}
			if b.GPA%16 != 0 {
				t.Errorf("n=%d: blob %d at %#x not 16-byte aligned", n, i, b.GPA)
			}
			d := b.Data
			switch {
			case bytes.HasPrefix(d, []byte("RSD PTR ")):
				if len(d) != 36 || sum(d[:20]) != 0 || sum(d) != 0 || d[15] != 2 ||
					binary.LittleEndian.Uint32(d[20:]) != 36 || string(d[9:15]) != "JUICE " {
					t.Errorf("n=%d: bad RSDP % x", n, d)
				}
				sigs["RSDP"] = b
			case bytes.HasPrefix(d, []byte("FACS")):
				if len(d) != 64 || binary.LittleEndian.Uint32(d[4:]) != 64 || b.GPA%64 != 0 {
					t.Errorf("n=%d: bad FACS at %#x", n, b.GPA)
				}
				sigs["FACS"] = b
			default:
				if len(d) < 36 || binary.LittleEndian.Uint32(d[4:]) != uint32(len(d)) {
					t.Fatalf("n=%d: blob %d length field wrong", n, i)
				}
				if sum(d) != 0 {
					t.Errorf("n=%d: %s checksum %#x", n, d[:4], sum(d))
				}
				if string(d[10:16]) != "JUICE " {
					t.Errorf("n=%d: %s OEM %q", n, d[:4], d[10:16])
				}
				sigs[string(d[:4])] = b
			}
		}
		for _, s := range []string{"RSDP", "FACS", "XSDT", "FACP", "APIC", "DSDT"} {
			if _, ok := sigs[s]; !ok {
				t.Fatalf("n=%d: no %s", n, s)
			}
		}
		le := binary.LittleEndian
		if got := le.Uint64(sigs["RSDP"].Data[24:]); got != sigs["XSDT"].GPA {
			t.Errorf("n=%d: RSDP XSDT %#x", n, got)
		}
		x := sigs["XSDT"].Data
		if len(x) != 52 || le.Uint64(x[36:]) != sigs["FACP"].GPA || le.Uint64(x[44:]) != sigs["APIC"].GPA {
			t.Errorf("n=%d: XSDT entries % x", n, x[36:])
		}
		f := sigs["FACP"].Data
		if len(f) != 276 || f[8] != 6 {
			t.Errorf("n=%d: FADT len %d rev %d", n, len(f), f[8])
		}
		if le.Uint64(f[132:]) != sigs["FACS"].GPA || le.Uint32(f[36:]) != 0 {
			t.Errorf("n=%d: FACS pointers %#x/%#x", n, le.Uint64(f[132:]), le.Uint32(f[36:]))
		}
		if le.Uint64(f[140:]) != sigs["DSDT"].GPA || uint64(le.Uint32(f[40:])) != sigs["DSDT"].GPA {
			t.Errorf("n=%d: DSDT pointers", n)
		}
		if m := sigs["APIC"].Data; len(m) != 44+8*n+12+20+6 {
			t.Errorf("n=%d: MADT length %d", n, len(m))
		}
		p := parse(t, tb, ramSize)
		if p.NCPU != n {
			t.Errorf("n=%d: parsed NCPU %d", n, p.NCPU)
		}
	}
}

func TestMaxCPUs(t *testing.T) {
	tb := build(t, acpi.DefaultConfig(acpi.MaxCPUs, ramSize))
	p := parse(t, tb, ramSize)
	if p.NCPU != acpi.MaxCPUs || p.CPUAPICID[acpi.MaxCPUs-1] != acpi.MaxCPUs-1 {
		t.Errorf("NCPU %d last ID %d", p.NCPU, p.CPUAPICID[acpi.MaxCPUs-1])
	}
}

func TestDSDTAML(t *testing.T) {
	c := acpi.DefaultConfig(1, ramSize)
	extra := []byte{0x10, 0x05, '_', 'S', 'B', '_'} // Scope (_SB_) {}
	c.DSDTAML = extra
	tb := build(t, c)
	p := parse(t, tb, ramSize)
	if !p.S5Valid || p.DSDTLen != 36+14+uint32(len(extra)) {
		t.Errorf("S5 %v DSDT len %d", p.S5Valid, p.DSDTLen)
	}
	for _, b := range tb.Blobs {
		if bytes.HasPrefix(b.Data, []byte("DSDT")) && !bytes.HasSuffix(b.Data, extra) {
			t.Error("extra AML not at the end of the DSDT")
		}
	}
}

func TestBadConfigs(t *testing.T) {
	for name, mod := range map[string]func(*acpi.Config){
		"ncpu0":        func(c *acpi.Config) { c.NCPU = 0 },
		"ncpu256":      func(c *acpi.Config) { c.NCPU = 256 },
		"unaligned":    func(c *acpi.Config) { c.Base = 0xE0008 },
		"base0":        func(c *acpi.Config) { c.Base = 0 },
		"tablebase":    func(c *acpi.Config) { c.TableBase = 0x80001 },
		"lapic64":      func(c *acpi.Config) { c.LAPICAddr = 1 << 32 },
		"ioapic0":      func(c *acpi.Config) { c.IOAPICAddr = 0 },
		"pm0":          func(c *acpi.Config) { c.PMTimerPort = 0 },
		"pmoverlap":    func(c *acpi.Config) { c.PM1aCntPort = 0x602 },
		"resetoverlap": func(c *acpi.Config) { c.ResetPort = 0x609 },
		"portwrap":     func(c *acpi.Config) { c.PMTimerPort = 0xFFFE },
		"sci2":         func(c *acpi.Config) { c.SCIIRQ = 2 },
		"sci16":        func(c *acpi.Config) { c.SCIIRQ = 16 },
		"reset0":       func(c *acpi.Config) { c.ResetPort = 0 },
		"smallram":     func(c *acpi.Config) { c.RAMBytes = 0xE0000 },
		"past1M":       func(c *acpi.Config) { c.Base = 0xFFF00; c.NCPU = 64 },
		"overlap":      func(c *acpi.Config) { c.TableBase = 0xDFFF0 },
		"bigaml":       func(c *acpi.Config) { c.DSDTAML = make([]byte, 128<<10) },
	} {
		c := acpi.DefaultConfig(4, ramSize)
		mod(&c)
		if _, err := acpi.Build(c); !errors.Is(err, acpi.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// TestTableBaseAbove puts the tables above 1 MiB, the RSDP staying in the
// BIOS area: the guest still finds everything and the blobs stay sorted.
func TestTableBaseAbove(t *testing.T) {
	c := acpi.DefaultConfig(8, ramSize)
	c.TableBase = 0x100000
	tb := build(t, c)
	p := parse(t, tb, ramSize)
	if p.DSDTAddr < 0x100000 || p.NCPU != 8 {
		t.Errorf("DSDT at %#x NCPU %d", p.DSDTAddr, p.NCPU)
	}
	if tb.Blobs[0].GPA != tb.RSDPAddr {
		t.Errorf("blobs not in GPA order: first %#x", tb.Blobs[0].GPA)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(uint8(1), uint16(0x600), uint16(0x604), uint16(0x608), uint8(9), uint16(0xCF9), uint32(0), []byte(nil))
	f.Add(uint8(64), uint16(0xB000), uint16(0xB004), uint16(0xB008), uint8(10), uint16(0x92), uint32(0x80000), []byte{0x10, 0x05, '_', 'S', 'B', '_'})
	f.Fuzz(func(t *testing.T, ncpu uint8, evt, cnt, tmr uint16, sci uint8, reset uint16, tableBase uint32, aml []byte) {
		c := acpi.DefaultConfig(int(ncpu), ramSize)
		c.PM1aEvtPort, c.PM1aCntPort, c.PMTimerPort = evt, cnt, tmr
		c.SCIIRQ, c.ResetPort = sci, reset
		c.TableBase = uint64(tableBase)
		c.DSDTAML = aml
		tb, err := acpi.Build(c)
		if err != nil {
			if !errors.Is(err, acpi.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		var prevEnd uint64
		for i, b := range tb.Blobs {
			if i > 0 && b.GPA < prevEnd {
				t.Fatalf("blob %d overlaps", i)
			}
			prevEnd = b.GPA + uint64(len(b.Data))
		}
		p := parse(t, tb, ramSize)
		if p.NCPU != int(ncpu) || p.PM1aEvt != uint32(evt) || p.PM1aCnt != uint32(cnt) ||
			p.PMTimer != uint32(tmr) || p.SCIInt != uint16(sci) || p.ResetReg.Address != uint64(reset) {
			t.Fatalf("parsed back %+v", p)
		}
	})
}
