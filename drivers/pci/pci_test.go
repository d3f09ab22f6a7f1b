package pci

import (
	"fmt"
	"strings"
	"testing"

	"juice/drivers/portio"
	"juice/mm/phys"
)

// TestScanRecordedQ35 enumerates the configuration spaces recorded from
// QEMU's q35 machine and checks what Scan found against what QEMU's
// monitor reported (testdata/q35.txt).
func TestScanRecordedQ35(t *testing.T) {
	m := loadRecorded(t)
	before := map[Addr][64]uint32{}
	for a, f := range m.fns {
		before[a] = f.regs
	}
	fns := Scan(m, 0, 255)
	var got []string
	for i := range fns {
		got = append(got, fns[i].Describe(m))
	}
	want := []string{
		"00:00.0 8086:29c0 q35 host bridge",
		"00:01.0 1234:1111 bochs VGA BAR0 mem pref 0xfd000000+0x1000000 BAR2 mem 0xfea70000+0x1000",
		"00:02.0 1af4:1001 virtio-blk (transitional) BAR0 io 0xc000+0x80 BAR1 mem 0xfea71000+0x1000 BAR4 mem64 pref 0xfe200000+0x4000 msix 2",
		"00:03.0 8086:100e e1000 (82540EM) BAR0 mem 0xfea40000+0x20000 BAR1 io 0xc080+0x40",
		"00:04.0 1af4:1042 virtio-blk (modern) BAR1 mem 0xfea72000+0x1000 BAR4 mem64 pref 0xfe204000+0x4000 msix 2",
		"00:05.0 1b36:000c PCIe root port BAR0 mem 0xfea73000+0x1000 msix 1 buses 01-01",
		"00:1f.0 8086:2918 ICH9 LPC bridge",
		"00:1f.2 8086:2922 ICH9 AHCI BAR4 io 0xc100+0x20 BAR5 mem 0xfea74000+0x1000 msi 1",
		"00:1f.3 8086:2930 ICH9 SMBus BAR4 io 0x700+0x40",
		"01:00.0 1af4:1041 virtio-net (modern) BAR1 mem 0xfe840000+0x1000 BAR4 mem64 pref 0xfe000000+0x4000 msix 4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Scan found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Sizing put every register back.
	for a, f := range m.fns {
		if f.regs != before[a] {
			t.Errorf("%v: registers changed by Scan", a)
		}
	}
	// The virtio vendor capabilities are listed in order, after MSI-X.
	blk := find(t, fns, Addr{0, 2, 0})
	var ids []string
	for _, c := range blk.Caps {
		ids = append(ids, fmt.Sprintf("%#x@%#x", c.ID, c.Off))
	}
	if s := strings.Join(ids, " "); s != "0x11@0x98 0x9@0x84 0x9@0x70 0x9@0x60 0x9@0x50 0x9@0x40" {
		t.Errorf("virtio-blk capabilities %s", s)
	}
	if typ, modern, ok := VirtioType(blk); typ != 2 || modern || !ok {
		t.Errorf("VirtioType = %d %v %v", typ, modern, ok)
	}
	if blk.SubVendorID != 0x1af4 || blk.SubsystemID != 2 || blk.IntPin != 1 || blk.IntLine != 11 || blk.Class != 0x010000 {
		t.Errorf("virtio-blk header: %+v", blk)
	}
	mx, ok := FindMSIX(m, blk)
	if !ok || mx != (MSIX{Off: 0x98, TableSize: 2, TableBAR: 1, TableOffset: 0, PBABAR: 1, PBAOffset: 0x800}) {
		t.Errorf("FindMSIX = %+v, %v", mx, ok)
	}
	rp := find(t, fns, Addr{0, 5, 0})
	if rp.Header != HeaderBridge || rp.SecondaryBus != 1 || rp.SubordinateBus != 1 {
		t.Errorf("root port %+v", rp)
	}
	if lpc := find(t, fns, Addr{0, 0x1f, 0}); !lpc.Multi {
		t.Error("00:1f.0 not multi-function")
	}
}

func find(t *testing.T, fns []Function, a Addr) *Function {
	t.Helper()
	for i := range fns {
		if fns[i].Addr == a {
			return &fns[i]
		}
	}
	t.Fatalf("%v not found", a)
	return nil
}

// TestScanDecodeOffWhileSizing checks that a function's decoding is off
// while its BARs hold all ones, and back on afterwards, except on the
// host bridge.
func TestScanDecodeOffWhileSizing(t *testing.T) {
	m := loadRecorded(t)
	spy := &sizingSpy{model: m}
	Scan(spy, 0, 255)
	if spy.bad != "" {
		t.Fatal(spy.bad)
	}
	if spy.probed == 0 {
		t.Fatal("no BAR was sized")
	}
	for a, f := range m.fns {
		if f.regs[1]&0xFFFF != 0 && Command(m, a)&(CmdIO|CmdMemory) == 0 {
			t.Errorf("%v: decoding left off", a)
		}
	}
}

// sizingSpy fails when a BAR is written with all ones while its
// function still decodes.
type sizingSpy struct {
	*model
	probed int
	bad    string
}

func (s *sizingSpy) Write32(a Addr, off uint16, v uint32) {
	if off >= RegBAR0 && off < RegBAR0+24 && v == 0xFFFF_FFFF {
		s.probed++
		if Command(s.model, a)&(CmdIO|CmdMemory) != 0 && s.model.Read32(a, RegRevision)>>16 != 0x0600 {
			s.bad = fmt.Sprintf("%v: BAR at %#x probed with decoding on", a, off)
		}
	}
	s.model.Write32(a, off, v)
}

// TestBARSizing covers the BAR encodings one by one.
func TestBARSizing(t *testing.T) {
	cases := []struct {
		name  string
		bars  [6]uint32
		sizes [6]uint64
		want  string
	}{
		{"io 16-bit decoder", [6]uint32{0xc001}, [6]uint64{0x20}, "io 0xc000+0x20"},
		{"mem32", [6]uint32{0xfebf0000}, [6]uint64{0x10000}, "mem 0xfebf0000+0x10000"},
		{"mem32 prefetchable", [6]uint32{0xe0000008}, [6]uint64{0x10000000}, "mem pref 0xe0000000+0x10000000"},
		{"mem64 above 4G, 8 GiB", [6]uint32{0x0000000c, 0x00000080}, [6]uint64{8 << 30}, "mem64 pref 0x8000000000+0x200000000"},
		{"unassigned mem64", [6]uint32{0x4}, [6]uint64{0x4000}, "mem64 0x0+0x4000"},
		{"reserved type", [6]uint32{0x6}, [6]uint64{0x1000}, ""},
		{"unimplemented", [6]uint32{0}, [6]uint64{0}, ""},
		{"mem64 in the last slot", [6]uint32{5: 0x4}, [6]uint64{5: 0x1000}, ""},
	}
	for _, c := range cases {
		m := newModel()
		regs := make([]uint32, 64)
		regs[0] = 0x12345678
		copy(regs[4:10], c.bars[:])
		f := m.add(Addr{0, 1, 0}, regs)
		for i, s := range c.sizes {
			if s != 0 {
				f.setBAR(i, s)
				if c.name == "io 16-bit decoder" {
					f.wmask[4+i] &= 0xFFFF
				}
			}
		}
		fns := Scan(m, 0, 0)
		if len(fns) != 1 {
			t.Fatalf("%s: %d functions", c.name, len(fns))
		}
		var got []string
		for _, b := range fns[0].BARs {
			if b.Kind != BARUnused {
				got = append(got, b.String())
			}
		}
		if s := strings.Join(got, ", "); s != c.want {
			t.Errorf("%s: BARs %q, want %q", c.name, s, c.want)
		}
	}
}

// TestHostileConfigSpace checks that looping capability lists, bridges
// pointing backwards or at the same bus, and absent functions do not make
// Scan loop or fail.
func TestHostileConfigSpace(t *testing.T) {
	m := newModel()
	// A device whose capability list loops (0x40 -> 0x44 -> 0x40).
	regs := make([]uint32, 64)
	regs[0] = 0x00011234
	regs[1] = 0x0010 << 16 // status: capability list
	regs[RegCapPtr/4] = 0x40
	regs[0x40/4] = 0x4405 // MSI, next 0x44
	regs[0x44/4] = 0x4009 // vendor, next 0x40
	m.add(Addr{0, 0, 0}, regs)
	// Two bridges to bus 1, one to bus 0 (itself), one beyond last.
	bridge := func(dev, sec uint8) {
		r := make([]uint32, 64)
		r[0] = 0x000c1b36
		r[2] = 0x06040000
		r[3] = 1 << 16
		r[RegBusNumbers/4] = uint32(sec)<<8 | uint32(sec)<<16
		m.add(Addr{0, dev, 0}, r)
	}
	bridge(1, 1)
	bridge(2, 1)
	bridge(3, 0)
	bridge(4, 9)
	// Bus 1 holds a bridge back to bus 0 and a device.
	r := make([]uint32, 64)
	r[0] = 0x000c1b36
	r[2] = 0x06040000
	r[3] = 1 << 16
	r[RegBusNumbers/4] = 0x000001
	m.add(Addr{1, 0, 0}, r)
	m.add(Addr{1, 1, 0}, []uint32{0x10001af4})
	fns := Scan(m, 0, 8)
	var got []string
	for _, f := range fns {
		got = append(got, f.Addr.String())
	}
	if s := strings.Join(got, " "); s != "00:00.0 00:01.0 00:02.0 00:03.0 00:04.0 01:00.0 01:01.0" {
		t.Errorf("found %s", s)
	}
	if n := len(fns[0].Caps); n != MaxCaps {
		t.Errorf("looping capability list: %d entries, want the bound %d", n, MaxCaps)
	}
	// A capability pointer below 0x40 ends the list.
	regs[0x44/4] = 0x3009
	m.add(Addr{0, 0, 0}, regs)
	if fns := Scan(m, 0, 0); len(fns[0].Caps) != 2 {
		t.Errorf("caps %v", fns[0].Caps)
	}
}

// TestECAM checks ECAM addressing over a physical-memory window: bus,
// device, function and register land at Base + bus<<20 | dev<<15 |
// fn<<12 | reg, and accesses outside the bus range or the 4 KiB space
// read all ones and are dropped.
func TestECAM(t *testing.T) {
	const base = 0x100000
	ram := make([]byte, base+3<<20)
	mem := phys.FromSlice(ram)
	e := &ECAM{Mem: &mem, Base: base - 1<<20, StartBus: 1, EndBus: 3}
	a := Addr{2, 3, 4}
	pa := uint64(base-1<<20) + 2<<20 | 3<<15 | 4<<12 | 0x124
	mem.Store32(pa, 0xdeadbeef)
	if v := e.Read32(a, 0x124); v != 0xdeadbeef {
		t.Fatalf("Read32 = %#x", v)
	}
	if v := e.Read32(a, 0x126); v != 0xdeadbeef {
		t.Fatalf("low offset bits not ignored: %#x", v)
	}
	e.Write32(a, 0x10, 0x11223344)
	if v, _ := mem.Load32(pa - 0x124 + 0x10); v != 0x11223344 {
		t.Fatalf("Write32 landed elsewhere: %#x", v)
	}
	for _, bad := range []struct {
		a   Addr
		off uint16
	}{{Addr{0, 0, 0}, 0}, {Addr{4, 0, 0}, 0}, {Addr{2, 32, 0}, 0}, {Addr{2, 0, 8}, 0}, {a, 0x1000}} {
		if v := e.Read32(bad.a, bad.off); v != Absent {
			t.Errorf("Read32(%v, %#x) = %#x, want all ones", bad.a, bad.off, v)
		}
		e.Write32(bad.a, bad.off, 0)
	}
	// A window larger than the memory the kernel reaches reads all ones.
	e.EndBus = 200
	if v := e.Read32(Addr{100, 0, 0}, 0); v != Absent {
		t.Errorf("read beyond the memory window = %#x", v)
	}
}

// TestLegacy drives the model through configuration mechanism #1 and
// checks that it sees the same functions as directly.
func TestLegacy(t *testing.T) {
	m := loadRecorded(t)
	var addr uint32
	var outs []uint32
	ports := &portio.Ports{
		Out32: func(port uint16, v uint32) {
			switch port {
			case PortConfigAddress:
				addr = v
				outs = append(outs, v)
			case PortConfigData:
				if addr&configEnable != 0 {
					m.Write32(Addr{uint8(addr >> 16), uint8(addr>>11) & 31, uint8(addr>>8) & 7}, uint16(addr&0xFC), v)
				}
			}
		},
		In32: func(port uint16) uint32 {
			if port != PortConfigData || addr&configEnable == 0 {
				return Absent
			}
			return m.Read32(Addr{uint8(addr >> 16), uint8(addr>>11) & 31, uint8(addr>>8) & 7}, uint16(addr&0xFC))
		},
	}
	l := &Legacy{Ports: ports}
	if v := l.Read32(Addr{0, 2, 0}, 0x2e); v != 0x00021af4 {
		t.Fatalf("subsystem dword %#x", v)
	}
	if outs[0] != 0x8000102c {
		t.Fatalf("address register %#x, want 0x8000102c", outs[0])
	}
	if v := l.Read32(Addr{0, 2, 0}, 0x100); v != Absent {
		t.Errorf("offset 0x100 through the legacy ports read %#x", v)
	}
	direct := Scan(m, 0, 255)
	viaPorts := Scan(l, 0, 255)
	if fmt.Sprint(direct) != fmt.Sprint(viaPorts) {
		t.Errorf("legacy scan differs:\n%v\n%v", viaPorts, direct)
	}
	if (&Legacy{}).Read32(Addr{}, 0) != Absent {
		t.Error("Legacy without ports did not read all ones")
	}
}

// TestMSI programs a 64-bit MSI capability.
func TestMSI(t *testing.T) {
	m := newModel()
	regs := make([]uint32, 64)
	regs[0] = 0x10d38086
	regs[1] = 0x0010 << 16
	regs[RegCapPtr/4] = 0x50
	regs[0x50/4] = 0x0086<<16 | 0x0005 // 64-bit, MMC 8 vectors, last
	f := m.add(Addr{0, 3, 0}, regs)
	f.writable(0x50, 0x71<<16)
	f.writable(0x54, 0xFFFF_FFFC)
	f.writable(0x58, 0xFFFF_FFFF)
	f.writable(0x5C, 0xFFFF)
	fns := Scan(m, 0, 0)
	msi, ok := FindMSI(m, &fns[0])
	if !ok || msi != (MSI{Off: 0x50, Is64: true, Vectors: 8}) {
		t.Fatalf("FindMSI = %+v %v", msi, ok)
	}
	addr, data := MSIMessage(2, 0x41)
	if err := EnableMSI(m, fns[0].Addr, msi, addr, uint16(data)); err != nil {
		t.Fatal(err)
	}
	if f.regs[0x54/4] != 0xfee02000 || f.regs[0x58/4] != 0 || f.regs[0x5C/4] != 0x41 {
		t.Errorf("message %#x %#x %#x", f.regs[0x54/4], f.regs[0x58/4], f.regs[0x5C/4])
	}
	if f.regs[0x50/4]>>16&0x71 != 1 {
		t.Errorf("control %#x: want enabled with one vector", f.regs[0x50/4]>>16)
	}
	if Command(m, fns[0].Addr)&CmdINTxDisable == 0 {
		t.Error("INTx left enabled")
	}
	DisableMSI(m, fns[0].Addr, msi)
	if f.regs[0x50/4]>>16&1 != 0 {
		t.Error("MSI still enabled")
	}
	msi.Is64 = false
	if err := EnableMSI(m, fns[0].Addr, msi, 1<<32, 0); err != ErrMSIAddress {
		t.Errorf("64-bit address on a 32-bit capability: %v", err)
	}
}

// TestMSIX enables MSI-X on the recorded virtio-blk and programs a vector
// through MMIO registers.
func TestMSIX(t *testing.T) {
	m := loadRecorded(t)
	fns := Scan(m, 0, 255)
	blk := find(t, fns, Addr{0, 2, 0})
	mx, ok := FindMSIX(m, blk)
	if !ok {
		t.Fatal("no MSI-X")
	}
	SetMSIX(m, blk.Addr, mx, true, true)
	if c := Read16(m, blk.Addr, mx.Off+2); c&0xC000 != 0xC000 {
		t.Errorf("control %#x", c)
	}
	SetMSIX(m, blk.Addr, mx, true, false)
	if c := Read16(m, blk.Addr, mx.Off+2); c&0xC000 != 0x8000 {
		t.Errorf("control %#x", c)
	}
	ram := make([]byte, 0x2000)
	mem := phys.FromSlice(ram)
	table, err := NewMMIO(&mem, 0x1000, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	WriteMSIXEntry(table, 1, 0xfee01000, 0x33, false)
	if got := fmt.Sprintf("% x", ram[0x1010:0x1020]); got != "00 10 e0 fe 00 00 00 00 33 00 00 00 00 00 00 00" {
		t.Errorf("entry 1: %s", got)
	}
	// A table outside its BAR is refused.
	blk.BARs[1].Size = 0x800
	if _, ok := FindMSIX(m, blk); ok {
		t.Error("MSI-X pending-bit array beyond its BAR accepted")
	}
}

// TestMMIO checks widths, bounds and alignment of the MMIO accessors.
func TestMMIO(t *testing.T) {
	ram := make([]byte, 0x3000)
	mem := phys.FromSlice(ram)
	if _, err := NewMMIO(&mem, 0x2000, 0x2000); err != ErrNotMapped {
		t.Fatalf("block past the window: %v", err)
	}
	r, err := NewMMIO(&mem, 0x1000, 0x100)
	if err != nil {
		t.Fatal(err)
	}
	r.Write32(0x10, 0x11223344)
	r.Write16(0x16, 0xaabb)
	r.Write8(0x15, 0xcc)
	if got := fmt.Sprintf("% x", ram[0x1010:0x1018]); got != "44 33 22 11 00 cc bb aa" {
		t.Fatalf("stores landed as %s", got)
	}
	if r.Read32(0x10) != 0x11223344 || r.Read16(0x16) != 0xaabb || r.Read8(0x15) != 0xcc {
		t.Fatal("loads differ")
	}
	// Misaligned and out-of-range accesses read all ones and are dropped.
	r.Write32(0x12, 0)
	r.Write16(0xff, 0)
	r.Write32(0x100, 0)
	if r.Read32(0x12) != Absent || r.Read16(0x15) != 0xFFFF || r.Read8(0x100) != 0xFF {
		t.Error("bad access read something other than all ones")
	}
	if ram[0x1012] != 0x22 || ram[0x1100] != 0 {
		t.Error("a bad access wrote")
	}
	if n := testing.AllocsPerRun(100, func() { r.Write32(0, r.Read32(4)) }); n != 0 {
		t.Errorf("MMIO access allocates %v", n)
	}
}

// TestPortRegs checks the I/O BAR accessor's port arithmetic and bounds.
func TestPortRegs(t *testing.T) {
	var log []string
	ports := &portio.Ports{
		In8:   func(p uint16) uint8 { log = append(log, fmt.Sprintf("in8 %#x", p)); return 1 },
		Out16: func(p uint16, v uint16) { log = append(log, fmt.Sprintf("out16 %#x %#x", p, v)) },
		In16:  func(p uint16) uint16 { return 0 },
		Out8:  func(p uint16, v uint8) {},
	}
	r := &PortRegs{Ports: ports, Base: 0xc000, Size: 0x40}
	r.Read8(0x13)
	r.Write16(0x10, 0xabcd)
	r.Write16(0x40, 1)         // out of range
	if r.Read32(0) != Absent { // no 32-bit primitives
		t.Error("Read32 without In32")
	}
	if s := strings.Join(log, "; "); s != "in8 0xc013; out16 0xc010 0xabcd" {
		t.Errorf("port accesses: %s", s)
	}
}
