package acpi_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	hostacpi "juice/drivers/acpi"
	"juice/mm/phys"
	"juice/vmm/acpi"
	"juice/vmm/pci"
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
		"pvpanictimer": func(c *acpi.Config) { c.PVPanicPort = 0x60B },
		"pvpanicreset": func(c *acpi.Config) { c.PVPanicPort = 0xCF9 },
		"pvpanicevt":   func(c *acpi.Config) { c.PVPanicPort = 0x600 },
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
	f.Add(uint8(1), uint16(0x600), uint16(0x604), uint16(0x608), uint8(9), uint16(0xCF9), uint32(0), []byte(nil), uint16(0))
	f.Add(uint8(64), uint16(0xB000), uint16(0xB004), uint16(0xB008), uint8(10), uint16(0x92), uint32(0x80000), []byte{0x10, 0x05, '_', 'S', 'B', '_'}, uint16(0x505))
	f.Add(uint8(2), uint16(0x600), uint16(0x604), uint16(0x608), uint8(9), uint16(0xCF9), uint32(0), []byte(nil), uint16(0xFFFF))
	f.Fuzz(func(t *testing.T, ncpu uint8, evt, cnt, tmr uint16, sci uint8, reset uint16, tableBase uint32, aml []byte, pvpanic uint16) {
		c := acpi.DefaultConfig(int(ncpu), ramSize)
		c.PM1aEvtPort, c.PM1aCntPort, c.PMTimerPort = evt, cnt, tmr
		c.SCIIRQ, c.ResetPort = sci, reset
		c.TableBase = uint64(tableBase)
		c.DSDTAML = aml
		c.PVPanicPort = pvpanic
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
		// Our own AML, before the caller's, decodes and holds the device
		// exactly when asked for.
		d := dsdtOf(t, tb)
		nodes, err := decodeTermList(d[36 : len(d)-len(aml)])
		if err != nil {
			t.Fatalf("decoding the DSDT: %v", err)
		}
		checkDSDT(t, nodes, pvpanic)
	})
}

// dsdtOf returns the DSDT blob after checking its length and checksum.
func dsdtOf(t testing.TB, tb acpi.Tables) []byte {
	t.Helper()
	for _, b := range tb.Blobs {
		if bytes.HasPrefix(b.Data, []byte("DSDT")) {
			d := b.Data
			if len(d) < 36 || binary.LittleEndian.Uint32(d[4:]) != uint32(len(d)) || sum(d) != 0 || d[8] != 2 {
				t.Fatalf("bad DSDT header % x", d[:min(len(d), 36)])
			}
			return d
		}
	}
	t.Fatal("no DSDT")
	return nil
}

// The rest of this file is a small AML decoder, written from the ACPI 6.5
// grammar (chapter 20) independently of the encoder: enough to read back
// Scope, Device and Name objects with integer, string, buffer and package
// data.

// amlNode is one decoded object.
type amlNode struct {
	op       string // "Scope", "Device" or "Name"
	name     string // the NameString, root prefix as '\\'
	value    any    // Name: uint64, string, []byte (buffer) or []any (package)
	children []amlNode
}

// decodePkgLength decodes the PkgLength at the start of b: the value and
// the number of bytes it took.
func decodePkgLength(b []byte) (length, used int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("PkgLength: no data")
	}
	follow := int(b[0] >> 6)
	if follow == 0 {
		return int(b[0] & 0x3F), 1, nil
	}
	if b[0]&0x30 != 0 {
		return 0, 0, fmt.Errorf("PkgLength lead %#x: reserved bits set", b[0])
	}
	if len(b) < 1+follow {
		return 0, 0, errors.New("PkgLength: truncated")
	}
	length = int(b[0] & 0x0F)
	for i := 1; i <= follow; i++ {
		length |= int(b[i]) << (4 + 8*(i-1))
	}
	return length, 1 + follow, nil
}

// pkg splits off a package: the PkgLength at b and the contents it
// covers, and the bytes after it.
func pkg(b []byte) (body, rest []byte, err error) {
	n, used, err := decodePkgLength(b)
	if err != nil {
		return nil, nil, err
	}
	if n < used || n > len(b) {
		return nil, nil, fmt.Errorf("PkgLength %d with %d bytes left", n, len(b))
	}
	return b[used:n], b[n:], nil
}

func isLeadNameChar(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool     { return isLeadNameChar(c) || c >= '0' && c <= '9' }

// decodeNameString decodes a NameString: root or parent prefixes, then a
// NameSeg, a dual or multi name path, or the null name.
func decodeNameString(b []byte) (string, int, error) {
	i := 0
	prefix := ""
	if i < len(b) && b[i] == '\\' {
		prefix, i = "\\", 1
	} else {
		for i < len(b) && b[i] == '^' {
			prefix += "^"
			i++
		}
	}
	if i >= len(b) {
		return "", 0, errors.New("NameString: truncated")
	}
	segs := 1
	switch b[i] {
	case 0x00:
		return prefix, i + 1, nil
	case 0x2E:
		segs, i = 2, i+1
	case 0x2F:
		if i+1 >= len(b) {
			return "", 0, errors.New("MultiNamePath: truncated")
		}
		segs, i = int(b[i+1]), i+2
	}
	name := prefix
	for s := 0; s < segs; s++ {
		if i+4 > len(b) || !isLeadNameChar(b[i]) || !isNameChar(b[i+1]) || !isNameChar(b[i+2]) || !isNameChar(b[i+3]) {
			return "", 0, fmt.Errorf("bad NameSeg at %d", i)
		}
		if s > 0 {
			name += "."
		}
		name += string(b[i : i+4])
		i += 4
	}
	return name, i, nil
}

// decodeData decodes a DataRefObject: an integer, string, buffer or
// package.
func decodeData(b []byte) (any, int, error) {
	if len(b) == 0 {
		return nil, 0, errors.New("data: truncated")
	}
	le := func(n int) (any, int, error) {
		if len(b) < 1+n {
			return nil, 0, errors.New("integer: truncated")
		}
		var v uint64
		for i := 0; i < n; i++ {
			v |= uint64(b[1+i]) << (8 * i)
		}
		return v, 1 + n, nil
	}
	switch b[0] {
	case 0x00:
		return uint64(0), 1, nil
	case 0x01:
		return uint64(1), 1, nil
	case 0xFF:
		return ^uint64(0), 1, nil
	case 0x0A:
		return le(1)
	case 0x0B:
		return le(2)
	case 0x0C:
		return le(4)
	case 0x0E:
		return le(8)
	case 0x0D:
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			return nil, 0, errors.New("string: no terminator")
		}
		for _, c := range b[1 : 1+end] {
			if c < 0x01 || c > 0x7F {
				return nil, 0, fmt.Errorf("string: byte %#x", c)
			}
		}
		return string(b[1 : 1+end]), 2 + end, nil
	case 0x11:
		body, rest, err := pkg(b[1:])
		if err != nil {
			return nil, 0, err
		}
		size, n, err := decodeData(body)
		if err != nil {
			return nil, 0, err
		}
		sz, ok := size.(uint64)
		if !ok || sz != uint64(len(body)-n) {
			return nil, 0, fmt.Errorf("BufferSize %v with %d bytes", size, len(body)-n)
		}
		return body[n:], len(b) - len(rest), nil
	case 0x12:
		body, rest, err := pkg(b[1:])
		if err != nil {
			return nil, 0, err
		}
		if len(body) < 1 {
			return nil, 0, errors.New("package: no NumElements")
		}
		var elems []any
		for r := body[1:]; len(r) > 0; {
			v, n, err := decodeData(r)
			if err != nil {
				return nil, 0, err
			}
			elems = append(elems, v)
			r = r[n:]
		}
		if len(elems) != int(body[0]) {
			return nil, 0, fmt.Errorf("package: %d elements, NumElements %d", len(elems), body[0])
		}
		return elems, len(b) - len(rest), nil
	}
	return nil, 0, fmt.Errorf("data: opcode %#x", b[0])
}

// decodeTermList decodes a list of Scope, Device and Name objects.
func decodeTermList(b []byte) ([]amlNode, error) {
	var nodes []amlNode
	for len(b) > 0 {
		switch {
		case b[0] == 0x08: // NameOp
			name, n, err := decodeNameString(b[1:])
			if err != nil {
				return nil, err
			}
			v, m, err := decodeData(b[1+n:])
			if err != nil {
				return nil, fmt.Errorf("Name(%s): %w", name, err)
			}
			nodes = append(nodes, amlNode{op: "Name", name: name, value: v})
			b = b[1+n+m:]
		case b[0] == 0x10, len(b) > 1 && b[0] == 0x5B && b[1] == 0x82: // ScopeOp, DeviceOp
			op, skip := "Scope", 1
			if b[0] == 0x5B {
				op, skip = "Device", 2
			}
			body, rest, err := pkg(b[skip:])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			name, n, err := decodeNameString(body)
			if err != nil {
				return nil, err
			}
			kids, err := decodeTermList(body[n:])
			if err != nil {
				return nil, fmt.Errorf("%s(%s): %w", op, name, err)
			}
			nodes = append(nodes, amlNode{op: op, name: name, children: kids})
			b = rest
		default:
			return nil, fmt.Errorf("opcode %#x", b[0])
		}
	}
	return nodes, nil
}

// ioResource is a decoded I/O port descriptor.
type ioResource struct {
	decode16      bool
	min, max      uint16
	align, length uint8
}

// decodeResources walks a resource template: small and large descriptors
// up to an end tag, which must be last and whose checksum must make the
// template sum to zero (or be zero). It returns the I/O descriptors and
// how many descriptors it saw in all (the end tag excluded).
func decodeResources(b []byte) (ios []ioResource, n int, err error) {
	for i := 0; i < len(b); {
		if b[i]&0x80 != 0 { // large item
			if i+3 > len(b) {
				return nil, 0, errors.New("large item: truncated")
			}
			i += 3 + int(binary.LittleEndian.Uint16(b[i+1:]))
			n++
			continue
		}
		name, size := b[i]>>3&0x0F, int(b[i]&7)
		if i+1+size > len(b) {
			return nil, 0, fmt.Errorf("small item %#x: truncated", name)
		}
		d := b[i+1 : i+1+size]
		switch name {
		case 0x0F: // end tag
			if size != 1 || i+2 != len(b) {
				return nil, 0, errors.New("end tag not last or wrong size")
			}
			if d[0] != 0 && sum(b) != 0 {
				return nil, 0, fmt.Errorf("resource checksum: sum %#x", sum(b))
			}
			return ios, n, nil
		case 0x08: // I/O port
			if size != 7 {
				return nil, 0, fmt.Errorf("I/O descriptor size %d", size)
			}
			ios = append(ios, ioResource{
				decode16: d[0]&1 != 0,
				min:      binary.LittleEndian.Uint16(d[1:]),
				max:      binary.LittleEndian.Uint16(d[3:]),
				align:    d[5],
				length:   d[6],
			})
		}
		n++
		i += 1 + size
	}
	return nil, 0, errors.New("no end tag")
}

// checkDSDT checks the decoded DSDT objects Build generates: \_S5_, then
// the pvpanic device at port (none for 0).
func checkDSDT(t testing.TB, nodes []amlNode, port uint16) {
	t.Helper()
	if len(nodes) == 0 || nodes[0].op != "Name" || nodes[0].name != "_S5_" ||
		fmt.Sprint(nodes[0].value) != fmt.Sprint([]any{uint64(5), uint64(5), uint64(0), uint64(0)}) {
		t.Fatalf("first object %+v, want _S5_ {5, 5, 0, 0}", nodes)
	}
	if port == 0 {
		if len(nodes) != 1 {
			t.Fatalf("objects %+v, want only _S5_", nodes)
		}
		return
	}
	if len(nodes) != 2 || nodes[1].op != "Scope" || nodes[1].name != "\\_SB_" || len(nodes[1].children) != 1 {
		t.Fatalf("objects %+v, want _S5_ and Scope (\\_SB)", nodes)
	}
	dev := nodes[1].children[0]
	if dev.op != "Device" || dev.name != "PEVT" || len(dev.children) != 3 {
		t.Fatalf("device %+v", dev)
	}
	vals := map[string]any{}
	for _, c := range dev.children {
		if c.op != "Name" {
			t.Fatalf("device child %+v", c)
		}
		vals[c.name] = c.value
	}
	if vals["_HID"] != "QEMU0001" {
		t.Errorf("_HID %v", vals["_HID"])
	}
	if vals["_STA"] != uint64(0x0F) {
		t.Errorf("_STA %v", vals["_STA"])
	}
	crs, ok := vals["_CRS"].([]byte)
	if !ok {
		t.Fatalf("_CRS %v is not a buffer", vals["_CRS"])
	}
	ios, n, err := decodeResources(crs)
	if err != nil {
		t.Fatalf("_CRS % x: %v", crs, err)
	}
	if crs[len(crs)-1] == 0 && sum(crs) != 0 {
		t.Errorf("_CRS end tag checksum not computed")
	}
	want := ioResource{decode16: true, min: port, max: port, align: 1, length: 1}
	if n != 1 || len(ios) != 1 || ios[0] != want {
		t.Errorf("_CRS resources %+v (%d), want %+v", ios, n, want)
	}
}

func TestPVPanicDevice(t *testing.T) {
	for _, port := range []uint16{0, acpi.DefaultPVPanicPort, 0x0100, 0xFFFF} {
		c := acpi.DefaultConfig(2, ramSize)
		c.PVPanicPort = port
		extra := []byte{0x10, 0x05, '_', 'S', 'B', '_'} // Scope (_SB_) {}
		c.DSDTAML = extra
		tb := build(t, c)
		p := parse(t, tb, ramSize)
		if !p.S5Valid || p.SlpTypA != acpi.SlpTypS5 {
			t.Errorf("port %#x: S5 %v", port, p.S5Valid)
		}
		d := dsdtOf(t, tb)
		if !bytes.HasSuffix(d, extra) {
			t.Errorf("port %#x: caller's AML not last", port)
		}
		nodes, err := decodeTermList(d[36:])
		if err != nil {
			t.Fatalf("port %#x: %v", port, err)
		}
		if last := nodes[len(nodes)-1]; last.op != "Scope" || last.name != "_SB_" || last.children != nil {
			t.Errorf("port %#x: last object %+v", port, last)
		}
		checkDSDT(t, nodes[:len(nodes)-1], port)
	}
	if acpi.DefaultPVPanicPort != 0x505 || acpi.DefaultConfig(1, ramSize).PVPanicPort != 0 {
		t.Error("pvpanic defaults")
	}
}

// TestPVPanicAMLBytes pins the exact encoding for QEMU's port, checked
// by hand against the ACPI 6.5 grammar and section 6.4.2.5.
func TestPVPanicAMLBytes(t *testing.T) {
	c := acpi.DefaultConfig(1, ramSize)
	c.PVPanicPort = 0x505
	d := dsdtOf(t, build(t, c))
	want := []byte{
		0x10, 0x36, '\\', '_', 'S', 'B', '_', // Scope (\_SB), PkgLength 54 = 1 + 5 + 2 + 46
		0x5B, 0x82, 0x2E, 'P', 'E', 'V', 'T', // Device (PEVT), PkgLength 46 = 1 + 4 + 15 + 7 + 19
		0x08, '_', 'H', 'I', 'D', 0x0D, 'Q', 'E', 'M', 'U', '0', '0', '0', '1', 0x00,
		0x08, '_', 'S', 'T', 'A', 0x0A, 0x0F,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x0D, 0x0A, 0x0A, // Buffer, PkgLength 13, size 10
		0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01, // IO (Decode16, 0x505, 0x505, 1, 1)
		0x79, 0x00, // end tag, checksum patched below
	}
	var s byte
	for _, b := range want[len(want)-10 : len(want)-1] {
		s += b
	}
	want[len(want)-1] = -s
	if got := d[36+14:]; !bytes.Equal(got, want) {
		t.Errorf("pvpanic AML\n got % x\nwant % x", got, want)
	}
}

func TestAMLPkgLength(t *testing.T) {
	for _, n := range []int{0, 1, 61, 62, 63, 64, 200, 4093, 4094, 4095, 1 << 12, 1<<20 - 4, 1<<20 - 3, 1 << 20, 1<<28 - 5} {
		enc := acpi.AMLPkgLength(n)
		v, used, err := decodePkgLength(enc)
		if err != nil || used != len(enc) || v != n+len(enc) {
			t.Errorf("n=%d: % x decodes to %d (%d bytes), %v", n, enc, v, used, err)
		}
		// Shortest form: one byte fewer could not hold it.
		if limits := []int{0x3F, 1<<12 - 1, 1<<20 - 1, 1<<28 - 1}; len(enc) > 1 && n+len(enc)-1 <= limits[len(enc)-2] {
			t.Errorf("n=%d: %d-byte encoding is not the shortest", n, len(enc))
		}
	}
}

// resDesc is one decoded resource descriptor (ACPI 6.5 section 6.4).
type resDesc struct {
	kind                        string // "io", "word", "dword", "mem32fixed", "extirq"
	rtype, gflags, tflags, info uint8  // address descriptors: type and flags; mem32fixed/extirq: information/flags byte
	gran, min, max, tra, length uint64
	irqs                        []uint32
}

// decodeAllResources decodes a resource template holding I/O port, Word
// and DWord address space, 32-bit fixed memory and extended interrupt
// descriptors; anything else, a truncated descriptor, an end tag that is
// not last or a bad checksum is an error.
func decodeAllResources(b []byte) ([]resDesc, error) {
	le := binary.LittleEndian
	var out []resDesc
	for i := 0; i < len(b); {
		if b[i]&0x80 == 0 { // small item
			name, size := b[i]>>3&0x0F, int(b[i]&7)
			if i+1+size > len(b) {
				return nil, fmt.Errorf("small item %#x truncated", name)
			}
			d := b[i+1 : i+1+size]
			switch {
			case name == 0x0F && size == 1:
				if i+2 != len(b) {
					return nil, errors.New("end tag not last")
				}
				if d[0] != 0 && sum(b) != 0 {
					return nil, fmt.Errorf("resource checksum: sum %#x", sum(b))
				}
				return out, nil
			case name == 0x08 && size == 7:
				out = append(out, resDesc{kind: "io", info: d[0], min: uint64(le.Uint16(d[1:])),
					max: uint64(le.Uint16(d[3:])), gran: uint64(d[5]), length: uint64(d[6])})
			default:
				return nil, fmt.Errorf("small item %#x size %d", name, size)
			}
			i += 1 + size
			continue
		}
		if i+3 > len(b) {
			return nil, errors.New("large item header truncated")
		}
		n := int(le.Uint16(b[i+1:]))
		if i+3+n > len(b) {
			return nil, fmt.Errorf("large item %#x truncated", b[i])
		}
		d := b[i+3 : i+3+n]
		switch {
		case b[i] == 0x88 && n == 13:
			out = append(out, resDesc{kind: "word", rtype: d[0], gflags: d[1], tflags: d[2],
				gran: uint64(le.Uint16(d[3:])), min: uint64(le.Uint16(d[5:])), max: uint64(le.Uint16(d[7:])),
				tra: uint64(le.Uint16(d[9:])), length: uint64(le.Uint16(d[11:]))})
		case b[i] == 0x87 && n == 23:
			out = append(out, resDesc{kind: "dword", rtype: d[0], gflags: d[1], tflags: d[2],
				gran: uint64(le.Uint32(d[3:])), min: uint64(le.Uint32(d[7:])), max: uint64(le.Uint32(d[11:])),
				tra: uint64(le.Uint32(d[15:])), length: uint64(le.Uint32(d[19:]))})
		case b[i] == 0x86 && n == 9:
			out = append(out, resDesc{kind: "mem32fixed", info: d[0], min: uint64(le.Uint32(d[1:])), length: uint64(le.Uint32(d[5:]))})
		case b[i] == 0x89 && n >= 2 && n == 2+4*int(d[1]):
			r := resDesc{kind: "extirq", info: d[0]}
			for k := 0; k < int(d[1]); k++ {
				r.irqs = append(r.irqs, le.Uint32(d[2+4*k:]))
			}
			out = append(out, r)
		default:
			return nil, fmt.Errorf("large item %#x length %d", b[i], n)
		}
		i += 3 + n
	}
	return nil, errors.New("no end tag")
}

// names collects a device's Name objects by name.
func names(t testing.TB, dev amlNode) map[string]any {
	t.Helper()
	m := map[string]any{}
	for _, c := range dev.children {
		if c.op != "Name" {
			t.Fatalf("%s: child %+v is not a Name", dev.name, c)
		}
		if _, dup := m[c.name]; dup {
			t.Fatalf("%s: %s defined twice", dev.name, c.name)
		}
		m[c.name] = c.value
	}
	return m
}

// crsOf decodes a device's _CRS buffer.
func crsOf(t testing.TB, dev amlNode, vals map[string]any) []resDesc {
	t.Helper()
	buf, ok := vals["_CRS"].([]byte)
	if !ok {
		t.Fatalf("%s: _CRS %v is not a buffer", dev.name, vals["_CRS"])
	}
	rs, err := decodeAllResources(buf)
	if err != nil {
		t.Fatalf("%s: _CRS % x: %v", dev.name, buf, err)
	}
	return rs
}

// deviceConfig is a config with PCI, two virtio-mmio devices sharing a
// GSI and one alone, and pvpanic.
func deviceConfig() acpi.Config {
	c := acpi.DefaultConfig(2, ramSize)
	p := acpi.DefaultPCIConfig()
	c.PCI = &p
	c.PVPanicPort = acpi.DefaultPVPanicPort
	c.VirtioMMIO = []acpi.MMIODevice{
		{Base: 0xFE000000, Size: 0x200, GSI: 16},
		{Base: 0xFE000200, Size: 0x200, GSI: 17},
		{Base: 0xFE000400, Size: 0x200, GSI: 17},
	}
	return c
}

// pciDevices returns the devices of the DSDT's PCI/virtio-mmio scope
// (the last object), after checking what comes before it.
func pciDevices(t testing.TB, tb acpi.Tables, port uint16) []amlNode {
	t.Helper()
	d := dsdtOf(t, tb)
	nodes, err := decodeTermList(d[36:])
	if err != nil {
		t.Fatalf("decoding the DSDT: %v", err)
	}
	if len(nodes) < 2 {
		t.Fatalf("DSDT objects %+v", nodes)
	}
	checkDSDT(t, nodes[:len(nodes)-1], port)
	last := nodes[len(nodes)-1]
	if last.op != "Scope" || last.name != "\\_SB_" {
		t.Fatalf("last object %+v, want Scope (\\_SB)", last)
	}
	for _, c := range last.children {
		if c.op != "Device" {
			t.Fatalf("\\_SB child %+v is not a device", c)
		}
	}
	return last.children
}

func TestEISAID(t *testing.T) {
	for id, want := range map[string]uint32{
		"PNP0A08": 0x080AD041,
		"PNP0A03": 0x030AD041,
		"PNP0C02": 0x020CD041,
		"PNP0501": 0x0105D041,
		"PNP0103": 0x0301D041,
	} {
		if got := acpi.EISAID(id); got != want {
			t.Errorf("EISAID(%q) = %#08x, want %#08x", id, got, want)
		}
	}
}

// TestPCITables builds tables with PCI and virtio-mmio devices and reads
// everything back: the MCFG through the host parser and by hand, the
// DSDT devices through the AML decoder.
func TestPCITables(t *testing.T) {
	c := deviceConfig()
	tb := build(t, c)
	p := parse(t, tb, ramSize)
	if p.Found&hostacpi.HaveMCFG == 0 || p.NBad != 0 || p.Bad != 0 {
		t.Errorf("Found %#x Bad %#x NBad %d: no clean MCFG", p.Found, p.Bad, p.NBad)
	}
	if p.MCFGBase != 0xE0000000 || p.MCFGSegment != 0 || p.MCFGBusStart != 0 || p.MCFGBusEnd != 0 {
		t.Errorf("MCFG %#x seg %d buses %d-%d", p.MCFGBase, p.MCFGSegment, p.MCFGBusStart, p.MCFGBusEnd)
	}
	if !p.S5Valid || p.NCPU != 2 {
		t.Errorf("S5 %v NCPU %d", p.S5Valid, p.NCPU)
	}
	// Blobs: 7, sorted, the XSDT listing FADT, MADT and MCFG.
	if len(tb.Blobs) != 7 {
		t.Fatalf("%d blobs", len(tb.Blobs))
	}
	byGPA := map[uint64][]byte{}
	var xsdt, mcfg []byte
	var mcfgAt uint64
	for i, b := range tb.Blobs {
		byGPA[b.GPA] = b.Data
		if i > 0 && b.GPA < tb.Blobs[i-1].GPA+uint64(len(tb.Blobs[i-1].Data)) {
			t.Errorf("blob %d overlaps", i)
		}
		switch string(b.Data[:4]) {
		case "XSDT":
			xsdt = b.Data
		case "MCFG":
			mcfg, mcfgAt = b.Data, b.GPA
		}
	}
	le := binary.LittleEndian
	if len(xsdt) != 36+24 || sum(xsdt) != 0 {
		t.Fatalf("XSDT length %d", len(xsdt))
	}
	for i, sig := range []string{"FACP", "APIC", "MCFG"} {
		if d := byGPA[le.Uint64(xsdt[36+8*i:])]; len(d) < 4 || string(d[:4]) != sig {
			t.Errorf("XSDT entry %d is not the %s", i, sig)
		}
	}
	want := []byte{
		0, 0, 0, 0, 0, 0, 0, 0, // reserved
		0, 0, 0, 0xE0, 0, 0, 0, 0, // base address
		0, 0, // segment
		0, 0, // buses 0-0
		0, 0, 0, 0, // reserved
	}
	if len(mcfg) != 60 || mcfg[8] != 1 || sum(mcfg) != 0 || le.Uint32(mcfg[4:]) != 60 || !bytes.Equal(mcfg[36:], want) || mcfgAt%16 != 0 {
		t.Errorf("MCFG at %#x: % x", mcfgAt, mcfg)
	}

	devs := pciDevices(t, tb, acpi.DefaultPVPanicPort)
	if len(devs) != 5 {
		t.Fatalf("%d devices", len(devs))
	}
	// \_SB.PCI0.
	pci0 := devs[0]
	v := names(t, pci0)
	if pci0.name != "PCI0" || len(v) != 7 || v["_HID"] != uint64(0x080AD041) || v["_CID"] != uint64(0x030AD041) ||
		v["_UID"] != uint64(0) || v["_SEG"] != uint64(0) || v["_BBN"] != uint64(0) {
		t.Errorf("PCI0 names %v", v)
	}
	crs := crsOf(t, pci0, v)
	wantCRS := []resDesc{
		{kind: "word", rtype: 2, gflags: 0x0C, min: 0, max: 0, length: 1},
		{kind: "io", info: 1, min: 0xCF8, max: 0xCF8, gran: 1, length: 8},
		{kind: "word", rtype: 1, gflags: 0x0C, tflags: 3, min: 0, max: 0xCF7, length: 0xCF8},
		{kind: "word", rtype: 1, gflags: 0x0C, tflags: 3, min: 0xD00, max: 0xFFFF, length: 0xF300},
		{kind: "dword", rtype: 0, gflags: 0x0C, tflags: 1, min: 0xC0000000, max: 0xDFFFFFFF, length: 0x20000000},
	}
	if fmt.Sprint(crs) != fmt.Sprint(wantCRS) {
		t.Errorf("PCI0 _CRS\n got %+v\nwant %+v", crs, wantCRS)
	}
	// The _PRT: every slot 1-31 and pin 0-3, once, to the swizzled GSI.
	prt, ok := v["_PRT"].([]any)
	if !ok || len(prt) != 31*4 {
		t.Fatalf("_PRT %v", v["_PRT"])
	}
	seen := map[[2]uint64]bool{}
	for _, e := range prt {
		el, ok := e.([]any)
		if !ok || len(el) != 4 {
			t.Fatalf("_PRT entry %v", e)
		}
		addr, pin, src, gsi := el[0].(uint64), el[1].(uint64), el[2], el[3].(uint64)
		slot := addr >> 16
		if addr&0xFFFF != 0xFFFF || slot < 1 || slot > 31 || pin > 3 || src != uint64(0) || seen[[2]uint64{slot, pin}] {
			t.Fatalf("_PRT entry %v", el)
		}
		seen[[2]uint64{slot, pin}] = true
		if want := 20 + (slot+pin)&3; gsi != want {
			t.Errorf("slot %d pin %d: GSI %d, want %d", slot, pin, gsi, want)
		}
	}
	// \_SB.MRES reserves the ECAM.
	mres := devs[1]
	v = names(t, mres)
	if mres.name != "MRES" || len(v) != 3 || v["_HID"] != uint64(0x020CD041) || v["_UID"] != uint64(0) {
		t.Errorf("MRES names %v", v)
	}
	if crs := crsOf(t, mres, v); fmt.Sprint(crs) != fmt.Sprint([]resDesc{{kind: "mem32fixed", info: 1, min: 0xE0000000, length: 1 << 20}}) {
		t.Errorf("MRES _CRS %+v", crs)
	}
	// \_SB.VR00-02.
	for i, d := range c.VirtioMMIO {
		dev := devs[2+i]
		v := names(t, dev)
		if dev.name != fmt.Sprintf("VR%02d", i) || len(v) != 4 || v["_HID"] != "LNRO0005" || v["_UID"] != uint64(i) || v["_CCA"] != uint64(1) {
			t.Errorf("%s names %v", dev.name, v)
		}
		flags := uint8(0x01) // consumer, level, active high, exclusive
		if i > 0 {
			flags |= 0x08 // VR01 and VR02 share GSI 17
		}
		want := []resDesc{
			{kind: "mem32fixed", info: 1, min: d.Base, length: d.Size},
			{kind: "extirq", info: flags, irqs: []uint32{d.GSI}},
		}
		if crs := crsOf(t, dev, v); fmt.Sprint(crs) != fmt.Sprint(want) {
			t.Errorf("%s _CRS %+v, want %+v", dev.name, crs, want)
		}
	}
}

// TestPCIMatchesBus checks the tables against the juice/vmm/pci model
// they describe: the default layout is the one the Bus decodes, and the
// _PRT routes each slot and pin to the GSI the Bus drives.
func TestPCIMatchesBus(t *testing.T) {
	p := acpi.DefaultPCIConfig()
	if p.ECAMBase != pci.ECAMBase || p.MMIOBase != pci.WindowBase || p.MMIOSize != pci.WindowSize ||
		p.INTxGSIBase != pci.INTxGSIBase || p.BusStart != 0 || p.BusEnd != 0 || pci.ECAMSize != 1<<20 {
		t.Fatalf("DefaultPCIConfig %+v does not match juice/vmm/pci", p)
	}
	c := acpi.DefaultConfig(1, ramSize)
	c.PCI = &p
	v := names(t, pciDevices(t, build(t, c), 0)[0])
	for _, e := range v["_PRT"].([]any) {
		el := e.([]any)
		slot, pin, gsi := int(el[0].(uint64)>>16), uint8(el[1].(uint64)), int(el[3].(uint64))
		got := -1
		b := pci.NewBus(func(g int, level bool) { got = g }, nil)
		f, err := pci.NewFunction(pci.FunctionConfig{VendorID: 1, InterruptPin: pin + 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Add(slot, f); err != nil {
			t.Fatal(err)
		}
		f.SetINTx(true)
		if got != gsi {
			t.Errorf("slot %d INT%c: bus drives GSI %d, _PRT says %d", slot, 'A'+pin, got, gsi)
		}
	}
}

// TestDeviceAMLBytes pins the encoding of MRES and one virtio-mmio
// device, checked by hand against ACPI 6.5 sections 6.4.3.4 and 6.4.3.6
// and against iasl's disassembly.
func TestDeviceAMLBytes(t *testing.T) {
	c := acpi.DefaultConfig(1, ramSize)
	p := acpi.DefaultPCIConfig()
	c.PCI = &p
	c.VirtioMMIO = []acpi.MMIODevice{{Base: 0xFE000000, Size: 0x200, GSI: 16}}
	d := dsdtOf(t, build(t, c))
	mres := []byte{
		0x5B, 0x82, 0x2C, 'M', 'R', 'E', 'S', // Device (MRES), PkgLength 44 = 1 + 4 + 10 + 6 + 23
		0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0C, 0x02, // EisaId ("PNP0C02")
		0x08, '_', 'U', 'I', 'D', 0x00,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x11, 0x0A, 0x0E, // Buffer, PkgLength 17, size 14
		0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xE0, 0x00, 0x00, 0x10, 0x00, // Memory32Fixed (ReadWrite, 0xE0000000, 0x100000)
		0x79, 0x00, // end tag, checksum patched below
	}
	vr := []byte{
		0x5B, 0x82, 0x41, 0x04, 'V', 'R', '0', '0', // Device (VR00), PkgLength 65 = 2 + 4 + 15 + 6 + 6 + 32
		0x08, '_', 'H', 'I', 'D', 0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00,
		0x08, '_', 'U', 'I', 'D', 0x00,
		0x08, '_', 'C', 'C', 'A', 0x01,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x1A, 0x0A, 0x17, // Buffer, PkgLength 26, size 23
		0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xFE, 0x00, 0x02, 0x00, 0x00, // Memory32Fixed (ReadWrite, 0xFE000000, 0x200)
		0x89, 0x06, 0x00, 0x01, 0x01, 0x10, 0x00, 0x00, 0x00, // Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {16}
		0x79, 0x00,
	}
	for _, b := range [][]byte{mres, vr} {
		n := bytes.IndexByte(b[8:], 0x79) + 8 // the end tag
		start := bytes.LastIndex(b[:n], []byte{0x86, 0x09})
		b[n+1] = -sum(b[start : n+1])
	}
	want := append(mres, vr...)
	if !bytes.HasSuffix(d, want) {
		t.Errorf("device AML\n got % x\nwant % x", d[len(d)-len(want):], want)
	}
}

func TestDeviceBadConfigs(t *testing.T) {
	for name, mod := range map[string]func(*acpi.Config){
		"ecam unaligned":   func(c *acpi.Config) { c.PCI.ECAMBase = 0xE0080000 },
		"ecam zero":        func(c *acpi.Config) { c.PCI.ECAMBase = 0 },
		"ecam in ram":      func(c *acpi.Config) { c.PCI.ECAMBase = 0x100000 },
		"ecam past 4G":     func(c *acpi.Config) { c.PCI.ECAMBase = 0xFFF00000; c.PCI.BusEnd = 1 },
		"ecam over ioapic": func(c *acpi.Config) { c.PCI.ECAMBase = 0xFEC00000 },
		"buses":            func(c *acpi.Config) { c.PCI.BusStart = 1 },
		"window empty":     func(c *acpi.Config) { c.PCI.MMIOSize = 0 },
		"window over ecam": func(c *acpi.Config) { c.PCI.MMIOSize = 0x20100000 },
		"window past 4G":   func(c *acpi.Config) { c.PCI.MMIOBase = 0xFFFFF000; c.PCI.MMIOSize = 0x2000 },
		"window wraps":     func(c *acpi.Config) { c.PCI.MMIOBase = 0xFFFFFFFFFFFFF000; c.PCI.MMIOSize = 0x2000 },
		"gsi low":          func(c *acpi.Config) { c.PCI.INTxGSIBase = 15 },
		"gsi high":         func(c *acpi.Config) { c.PCI.INTxGSIBase = 21 },
		"mmio size 0":      func(c *acpi.Config) { c.VirtioMMIO[0].Size = 0 },
		"mmio overlap":     func(c *acpi.Config) { c.VirtioMMIO[1].Base = 0xFE0001F0 },
		"mmio in window":   func(c *acpi.Config) { c.VirtioMMIO[0].Base = 0xD0000000 },
		"mmio over lapic":  func(c *acpi.Config) { c.VirtioMMIO[0].Base = 0xFEE00000 },
		"mmio in ram":      func(c *acpi.Config) { c.VirtioMMIO[0].Base = 0x1000 },
		"mmio gsi isa":     func(c *acpi.Config) { c.VirtioMMIO[0].GSI = 9 },
		"mmio gsi 24":      func(c *acpi.Config) { c.VirtioMMIO[0].GSI = 24 },
		"mmio gsi pci":     func(c *acpi.Config) { c.VirtioMMIO[0].GSI = 22 },
		"too many": func(c *acpi.Config) {
			for len(c.VirtioMMIO) <= acpi.MaxVirtioMMIO {
				n := uint64(len(c.VirtioMMIO))
				c.VirtioMMIO = append(c.VirtioMMIO, acpi.MMIODevice{Base: 0xFE000000 + n*0x200, Size: 0x200, GSI: 16})
			}
		},
	} {
		c := deviceConfig()
		p := *c.PCI
		c.PCI = &p
		c.VirtioMMIO = append([]acpi.MMIODevice(nil), c.VirtioMMIO...)
		mod(&c)
		if _, err := acpi.Build(c); !errors.Is(err, acpi.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	// The largest legal set: 32 virtio-mmio devices, 256 buses.
	c := deviceConfig()
	c.PCI.BusEnd = 255
	c.PCI.ECAMBase = 0xE0000000
	c.PCI.MMIOBase, c.PCI.MMIOSize = 0xC0000000, 0x10000000
	c.VirtioMMIO = nil
	for n := uint64(0); n < acpi.MaxVirtioMMIO; n++ {
		c.VirtioMMIO = append(c.VirtioMMIO, acpi.MMIODevice{Base: 0xD0000000 + n*0x200, Size: 0x200, GSI: 16 + uint32(n%4)})
	}
	tb := build(t, c)
	devs := pciDevices(t, tb, acpi.DefaultPVPanicPort)
	if len(devs) != 2+acpi.MaxVirtioMMIO || devs[len(devs)-1].name != "VR31" {
		t.Errorf("%d devices, last %s", len(devs), devs[len(devs)-1].name)
	}
	if crs := crsOf(t, devs[1], names(t, devs[1])); crs[0].length != 256<<20 {
		t.Errorf("ECAM reservation %+v", crs)
	}
	if p := parse(t, tb, ramSize); p.MCFGBusEnd != 255 {
		t.Errorf("MCFG end bus %d", p.MCFGBusEnd)
	}
}

// TestVirtioMMIOOnly describes virtio-mmio devices without PCI: no MCFG,
// XSDT unchanged.
func TestVirtioMMIOOnly(t *testing.T) {
	c := acpi.DefaultConfig(1, ramSize)
	c.VirtioMMIO = []acpi.MMIODevice{{Base: 0xFE000000, Size: 0x200, GSI: 20}}
	tb := build(t, c)
	if len(tb.Blobs) != 6 {
		t.Errorf("%d blobs", len(tb.Blobs))
	}
	if p := parse(t, tb, ramSize); p.Found&hostacpi.HaveMCFG != 0 {
		t.Error("MCFG without PCI")
	}
	devs := pciDevices(t, tb, 0)
	if len(devs) != 1 || devs[0].name != "VR00" {
		t.Errorf("devices %+v", devs)
	}
}

// TestIASL disassembles the DSDT and MCFG with ACPICA's iasl and checks
// what it prints. It runs only with JUICE_IASL=1 (and iasl installed), so
// the tests never depend on the tool.
func TestIASL(t *testing.T) {
	if os.Getenv("JUICE_IASL") != "1" {
		t.Skip("set JUICE_IASL=1 to disassemble with iasl")
	}
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skip("iasl not installed")
	}
	dir := t.TempDir()
	for _, b := range build(t, deviceConfig()).Blobs {
		if s := string(b.Data[:4]); s == "DSDT" || s == "MCFG" {
			if err := os.WriteFile(filepath.Join(dir, s+".dat"), b.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := exec.Command(iasl, "-d", filepath.Join(dir, "DSDT.dat"), filepath.Join(dir, "MCFG.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("iasl -d: %v\n%s", err, out)
	}
	t.Logf("iasl -d:\n%s", out)
	dsl, err := os.ReadFile(filepath.Join(dir, "DSDT.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	mcfg, err := os.ReadFile(filepath.Join(dir, "MCFG.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DSDT.dsl:\n%s", dsl)
	for _, want := range []string{
		`Device (PCI0)`,
		`Name (_HID, EisaId ("PNP0A08")`,
		`Name (_CID, EisaId ("PNP0A03")`,
		`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,`,
		`DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,`,
		`0xDFFFFFFF,         // Range Maximum`,
		`Name (_PRT, Package (0x7C)`,
		`Name (_HID, EisaId ("PNP0C02")`,
		`Memory32Fixed (ReadWrite,`,
		`0xE0000000,         // Address Base`,
		`Name (_HID, "LNRO0005")`,
		`Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )`,
		`Interrupt (ResourceConsumer, Level, ActiveHigh, Shared, ,, )`,
	} {
		if !strings.Contains(string(dsl), want) {
			t.Errorf("DSDT.dsl lacks %q", want)
		}
	}
	for _, want := range []string{"Base Address : 00000000E0000000", "Start Bus Number : 00", "End Bus Number : 00"} {
		if !strings.Contains(string(mcfg), want) {
			t.Errorf("MCFG.dsl lacks %q", want)
		}
	}
}

func FuzzDevices(f *testing.F) {
	f.Add(uint64(0xE0000000), uint8(0), uint8(0), uint64(0xC0000000), uint64(0x20000000), uint32(20), []byte{0, 0, 0xFE, 0, 2, 0, 16})
	f.Add(uint64(0xE0000000), uint8(0), uint8(255), uint64(0xC0000000), uint64(0x1000), uint32(16), []byte(nil))
	f.Fuzz(func(t *testing.T, ecam uint64, bus0, bus1 uint8, mmio, mmioSize uint64, gsi uint32, devs []byte) {
		c := acpi.DefaultConfig(1, ramSize)
		c.PCI = &acpi.PCIConfig{ECAMBase: ecam, BusStart: bus0, BusEnd: bus1, MMIOBase: mmio, MMIOSize: mmioSize, INTxGSIBase: gsi}
		if ecam&1 != 0 {
			c.PCI = nil
		}
		for len(devs) >= 7 { // base (4 bytes, big-endian), size (2), GSI (1)
			c.VirtioMMIO = append(c.VirtioMMIO, acpi.MMIODevice{
				Base: uint64(binary.BigEndian.Uint32(devs)), Size: uint64(binary.LittleEndian.Uint16(devs[4:])), GSI: uint32(devs[6]),
			})
			devs = devs[7:]
		}
		tb, err := acpi.Build(c)
		if err != nil {
			if !errors.Is(err, acpi.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		p := parse(t, tb, ramSize)
		if (c.PCI != nil) != (p.Found&hostacpi.HaveMCFG != 0) || c.PCI != nil && (p.MCFGBase != ecam || p.MCFGBusEnd != bus1) {
			t.Fatalf("MCFG %v %#x", p.Found&hostacpi.HaveMCFG != 0, p.MCFGBase)
		}
		want := len(c.VirtioMMIO)
		if c.PCI != nil {
			want += 2
		}
		if want == 0 {
			d := dsdtOf(t, tb)
			nodes, err := decodeTermList(d[36:])
			if err != nil {
				t.Fatal(err)
			}
			checkDSDT(t, nodes, 0) // \_S5_ alone
			return
		}
		nodes := pciDevices(t, tb, 0)
		if len(nodes) != want {
			t.Fatalf("%d devices, want %d", len(nodes), want)
		}
		for _, n := range nodes {
			v := names(t, n)
			for _, r := range crsOf(t, n, v) {
				if r.kind == "extirq" && (len(r.irqs) != 1 || r.irqs[0] < 16 || r.irqs[0] > 23) {
					t.Fatalf("%s: interrupt %v", n.name, r.irqs)
				}
			}
			if prt, ok := v["_PRT"].([]any); ok {
				for _, e := range prt {
					if g := e.([]any)[3].(uint64); g < 16 || g > 23 {
						t.Fatalf("_PRT GSI %d", g)
					}
				}
			}
		}
	})
}
