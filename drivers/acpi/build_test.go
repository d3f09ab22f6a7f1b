package acpi

import (
	"encoding/binary"
	"os"
	"testing"

	"juice/mm/phys"
)

// This file holds a test-only builder of ACPI table images in a byte
// slice that stands in for physical memory.

// Standard layout of the synthetic platform.
const (
	winSize = 0x200000
	rsdpAt  = 0xE0010
	rsdtAt  = 0x100000
	xsdtAt  = 0x100100
	fadtAt  = 0x101000
	dsdtAt  = 0x102000
	madtAt  = 0x103000
	hpetAt  = 0x104000
	mcfgAt  = 0x105000
)

type image struct {
	t   testing.TB
	buf []byte
}

func (im *image) mem() *phys.Mem {
	m := phys.FromSlice(im.buf)
	return &m
}

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// putGAS writes a Generic Address Structure at off.
func putGAS(b []byte, off int, space, width uint8, addr uint64) {
	b[off], b[off+1], b[off+2], b[off+3] = space, width, 0, 1
	put64(b, off+4, addr)
}

// fixsum sets b[at] so that b sums to zero.
func fixsum(b []byte, at int) {
	b[at] = 0
	b[at] = -sum(b)
}

// sdt returns a table with a header for sig around body, checksummed.
func sdt(sig string, rev uint8, body []byte) []byte {
	t := make([]byte, headerLen+len(body))
	copy(t, sig)
	put32(t, 4, uint32(len(t)))
	t[8] = rev
	copy(t[10:], "JUICE ")
	copy(t[16:], "TESTTBL ")
	put32(t, 24, 1)
	copy(t[28:], "JTST")
	put32(t, 32, 1)
	copy(t[headerLen:], body)
	fixsum(t, 9)
	return t
}

// rsdpBytes builds an RSDP; rev < 2 gives the 20-byte ACPI 1.0 form.
func rsdpBytes(rev uint8, rsdt uint32, xsdt uint64) []byte {
	n := 20
	if rev >= 2 {
		n = 36
	}
	r := make([]byte, n)
	copy(r, "RSD PTR ")
	copy(r[9:], "JUICE ")
	r[15] = rev
	put32(r, 16, rsdt)
	fixsum(r[:20], 8)
	if rev >= 2 {
		put32(r, 20, 36)
		put64(r, 24, xsdt)
		fixsum(r, 32)
	}
	return r
}

func rootBody(entry8 bool, addrs ...uint64) []byte {
	var b []byte
	for _, a := range addrs {
		if entry8 {
			b = binary.LittleEndian.AppendUint64(b, a)
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(a))
		}
	}
	return b
}

// fadtBytes builds a full-length (276-byte) revision-6 FADT describing a
// PC: PM1a at 0x400, PM timer at 0x408, reset through port 0xCF9.
func fadtBytes(length int) []byte {
	f := sdt("FACP", 6, make([]byte, 276-headerLen))
	put32(f, fadtDSDT, dsdtAt)
	put16(f, fadtSCIInt, 9)
	put32(f, fadtSMICmd, 0xB2)
	f[fadtACPIEnable] = 0xA0
	put32(f, fadtPM1aEvt, 0x400)
	put32(f, fadtPM1aCnt, 0x404)
	put32(f, fadtPMTmr, 0x408)
	f[88], f[89] = 4, 2 // PM1_EVT_LEN, PM1_CNT_LEN
	f[fadtPMTmrLen] = 4
	f[fadtCentury] = 0x32
	put16(f, fadtBootArch, BootLegacyDevices|Boot8042)
	put32(f, fadtFlags, FlagTmrValExt|FlagResetRegSup)
	putGAS(f, fadtResetReg, SpaceIO, 8, 0xCF9)
	f[fadtResetValue] = 0x06
	put64(f, fadtXDSDT, dsdtAt)
	putGAS(f, fadtXPM1aEvt, SpaceIO, 32, 0x400)
	putGAS(f, fadtXPM1aCnt, SpaceIO, 16, 0x404)
	putGAS(f, fadtXPMTmr, SpaceIO, 32, 0x408)
	f = f[:length]
	put32(f, 4, uint32(length))
	fixsum(f, 9)
	return f
}

// s5AML is a DSDT body defining Name(_S5_, Package(4){5, 5, 0, 0}) among
// other objects.
func s5AML() []byte {
	return []byte{
		0x10, 0x0D, '\\', '_', 'S', 'B', '_', 0x08, 'X', 'X', 'X', 'X', 0x0A, 0x07, // Scope(\_SB_){Name(XXXX, 7)}
		0x08, '_', 'S', '4', '_', 0x12, 0x08, 0x04, 0x0A, 0x04, 0x0A, 0x04, 0x00, 0x00, // _S4_
		0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00, // _S5_
		0x14, 0x09, '_', 'P', 'T', 'S', 0x01, 0xA3, 0xA3, 0xA3, // Method(_PTS){Noop...}
	}
}

// madt entry builders.
func eLAPIC(uid, id uint8, flags uint32) []byte {
	e := []byte{0, 8, uid, id, 0, 0, 0, 0}
	put32(e, 4, flags)
	return e
}

func eX2APIC(id, flags, uid uint32) []byte {
	e := make([]byte, 16)
	e[0], e[1] = 9, 16
	put32(e, 4, id)
	put32(e, 8, flags)
	put32(e, 12, uid)
	return e
}

func eIOAPIC(id uint8, addr, gsi uint32) []byte {
	e := make([]byte, 12)
	e[0], e[1], e[2] = 1, 12, id
	put32(e, 4, addr)
	put32(e, 8, gsi)
	return e
}

func eOverride(src uint8, gsi uint32, flags uint16) []byte {
	e := make([]byte, 10)
	e[0], e[1], e[3] = 2, 10, src
	put32(e, 4, gsi)
	put16(e, 8, flags)
	return e
}

func madtBytes(entries ...[]byte) []byte {
	body := make([]byte, 8)
	put32(body, 0, 0xFEE00000)
	put32(body, 4, 1) // PCAT_COMPAT
	for _, e := range entries {
		body = append(body, e...)
	}
	return sdt("APIC", 5, body)
}

func stdMADT() []byte {
	return madtBytes(
		eLAPIC(0, 0, 1),
		eLAPIC(1, 2, 1),
		eLAPIC(2, 4, 0),             // disabled
		eLAPIC(3, 6, 2),             // online capable, not enabled
		eLAPIC(4, 0xFF, 1),          // invalid ID
		eX2APIC(0x100, 1, 5),        // x2APIC-only ID
		eX2APIC(2, 1, 1),            // duplicate of a type-0 entry
		eX2APIC(0x200, 0, 6),        // disabled
		[]byte{0x7F, 6, 1, 2, 3, 4}, // unknown type: skipped
		eIOAPIC(8, 0xFEC00000, 0),
		eOverride(0, 2, 0),
		eOverride(9, 9, 0xD),
		[]byte{4, 6, 0xFF, 5, 0, 1}, // Local APIC NMI: all CPUs, LINT1
	)
}

func hpetBytes() []byte {
	body := make([]byte, 20)
	put32(body, 0, 0x8086A201)
	putGAS(body, 4, SpaceMemory, 64, 0xFED00000)
	return sdt("HPET", 1, body)
}

func mcfgBytes() []byte {
	body := make([]byte, 8+16)
	put64(body, 8, 0xE0000000)
	put16(body, 16, 0)
	body[18], body[19] = 0, 0x3F
	return sdt("MCFG", 1, body)
}

// stdImage builds the standard synthetic platform: a revision-2 RSDP at
// rsdpAt, RSDT and XSDT listing FADT, MADT, HPET and MCFG, and a DSDT with
// \_S5_ = {5, 5}.
func stdImage(t testing.TB) *image {
	im := &image{t: t, buf: make([]byte, winSize)}
	entries := []uint64{fadtAt, madtAt, hpetAt, mcfgAt}
	im.place(rsdpAt, rsdpBytes(2, rsdtAt, xsdtAt))
	im.place(rsdtAt, sdt("RSDT", 1, rootBody(false, entries...)))
	im.place(xsdtAt, sdt("XSDT", 1, rootBody(true, entries...)))
	im.place(fadtAt, fadtBytes(276))
	im.place(dsdtAt, sdt("DSDT", 2, s5AML()))
	im.place(madtAt, stdMADT())
	im.place(hpetAt, hpetBytes())
	im.place(mcfgAt, mcfgBytes())
	return im
}

func (im *image) place(pa uint64, b []byte) { copy(im.buf[pa:], b) }

// tbl returns the table at pa, aliasing the image.
func (im *image) tbl(pa uint64) []byte {
	n := binary.LittleEndian.Uint32(im.buf[pa+4:])
	return im.buf[pa : pa+uint64(n)]
}

// refix recomputes the checksum of the table at pa after an edit.
func (im *image) refix(pa uint64) { fixsum(im.tbl(pa), 9) }

// loadDump builds a window from a testdata file of records
// (u64 address, u32 length, bytes) captured from a real machine.
func loadDump(t testing.TB, name string) *image {
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var end uint64
	for r := raw; len(r) >= 12; {
		pa, n := binary.LittleEndian.Uint64(r), binary.LittleEndian.Uint32(r[8:])
		if pa+uint64(n) > end {
			end = pa + uint64(n)
		}
		r = r[12+n:]
	}
	im := &image{t: t, buf: make([]byte, end+0x1000)}
	for len(raw) >= 12 {
		pa, n := binary.LittleEndian.Uint64(raw), binary.LittleEndian.Uint32(raw[8:])
		copy(im.buf[pa:], raw[12:12+n])
		raw = raw[12+n:]
	}
	return im
}
