package bootinfo

import (
	"bytes"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"juice/mm/phys"
)

func parse(buf []byte, eax, ebx uint32) (*Info, Status) {
	m := phys.FromSlice(buf)
	info := new(Info)
	st := Parse(&m, eax, ebx, info)
	return info, st
}

func regions(info *Info) []Region { return append([]Region(nil), info.Mem[:info.NMem]...) }

// checkInfo asserts the invariants Parse promises whatever its input.
func checkInfo(t testing.TB, info *Info) {
	t.Helper()
	if info.NMem < 0 || info.NMem > MaxRegions {
		t.Fatalf("NMem = %d", info.NMem)
	}
	var prevEnd uint64
	for i := 0; i < info.NMem; i++ {
		r := info.Mem[i]
		if r.Length == 0 {
			t.Fatalf("region %d empty: %+v", i, r)
		}
		if r.Base < prevEnd {
			t.Fatalf("region %d %+v overlaps or is out of order (previous end %#x)", i, r, prevEnd)
		}
		if r.Length > MaxPhys || r.Base > MaxPhys-r.Length {
			t.Fatalf("region %d %+v reaches past 2^52", i, r)
		}
		if r.Type < RegionRAM || r.Type > RegionBad {
			t.Fatalf("region %d has invalid type %d", i, r.Type)
		}
		if r.Type == RegionRAM && (r.Base%PageSize != 0 || r.Length%PageSize != 0) {
			t.Fatalf("RAM region %d %+v not page aligned", i, r)
		}
		if i > 0 && info.Mem[i-1].Type == r.Type && info.Mem[i-1].End() == r.Base {
			t.Fatalf("regions %d and %d touch with the same type: not merged", i-1, i)
		}
		prevEnd = r.End()
	}
	for i := info.NMem; i < MaxRegions; i++ {
		if info.Mem[i] != (Region{}) {
			t.Fatalf("stale region %d beyond NMem: %+v", i, info.Mem[i])
		}
	}
	if info.NMod < 0 || info.NMod > MaxModules {
		t.Fatalf("NMod = %d", info.NMod)
	}
	for i := 0; i < info.NMod; i++ {
		if info.Mod[i].CmdlineLen > 128 {
			t.Fatalf("module %d CmdlineLen %d", i, info.Mod[i].CmdlineLen)
		}
	}
	if info.CmdlineLen < 0 || info.CmdlineLen > len(info.Cmdline) {
		t.Fatalf("CmdlineLen = %d", info.CmdlineLen)
	}
	if info.LoaderNameLen < 0 || info.LoaderNameLen > len(info.LoaderName) {
		t.Fatalf("LoaderNameLen = %d", info.LoaderNameLen)
	}
	if info.NReserved < 0 || info.NReserved > MaxReserved {
		t.Fatalf("NReserved = %d", info.NReserved)
	}
	for i := 0; i < info.NReserved; i++ {
		r := info.Reserved[i]
		if r.Base >= r.End || r.Base%PageSize != 0 || r.End%PageSize != 0 {
			t.Fatalf("reserved range %d %+v malformed", i, r)
		}
		if i > 0 && info.Reserved[i-1].End >= r.Base {
			t.Fatalf("reserved ranges %d and %d overlap or touch", i-1, i)
		}
	}
}

// covered reports whether [b, e) lies inside one reserved range.
func covered(info *Info, b, e int) bool {
	for i := 0; i < info.NReserved; i++ {
		r := info.Reserved[i]
		if r.Base <= uint64(b) && uint64(e) <= r.End {
			return true
		}
	}
	return false
}

// A QEMU-like e820 map (q35, -m 128M) with a hole and firmware ranges.
var qemuMap = []e820{
	{0, 0x9fc00, 1},
	{0x9fc00, 0x400, 2},
	{0xf0000, 0x10000, 2},
	{0x100000, 0x7ee0000, 1},
	{0xfeffc000, 0x4000, 2},
	{0xfffc0000, 0x40000, 2},
}

var qemuWant = []Region{
	{0, 0x9f000, RegionRAM}, // 0x9fc00 shrunk to a page boundary
	{0x9fc00, 0x400, RegionReserved},
	{0xf0000, 0x10000, RegionReserved},
	{0x100000, 0x7ee0000, RegionRAM},
	{0xfeffc000, 0x4000, RegionReserved},
	{0xfffc0000, 0x40000, RegionReserved},
}

func TestPVHQEMU(t *testing.T) {
	s := newPVH()
	s.cmdline = "console=ttyS0 juice.mode=selftest"
	s.mods = []pvhMod{{start: 0x200000, size: 0x1234, cmdline: "guest.img"}, {start: 0x300000, size: 0x10, noCmdline: true}}
	s.mem = qemuMap
	s.rsdp = 0xf5a30
	buf, ebx, lay := s.build()
	info, st := parse(buf, 0xdeadbeef, ebx) // EAX is undefined on PVH entry
	if st != StatusOK {
		t.Fatalf("status %v", st)
	}
	checkInfo(t, info)
	if info.Loader != LoaderPVH || info.Loader.String() != "pvh" {
		t.Fatalf("loader %v", info.Loader)
	}
	if got := string(info.CmdlineBytes()); got != s.cmdline || info.CmdlineTruncated {
		t.Fatalf("cmdline %q truncated=%v", got, info.CmdlineTruncated)
	}
	if info.RSDP != 0xf5a30 {
		t.Fatalf("RSDP %#x", info.RSDP)
	}
	if info.NMod != 2 || info.ModTruncated {
		t.Fatalf("NMod %d truncated %v", info.NMod, info.ModTruncated)
	}
	m0, m1 := info.Mod[0], info.Mod[1]
	if m0.Start != 0x200000 || m0.End != 0x201234 || string(m0.Cmdline[:m0.CmdlineLen]) != "guest.img" {
		t.Fatalf("module 0 %+v", m0)
	}
	if m1.Start != 0x300000 || m1.End != 0x300010 || m1.CmdlineLen != 0 {
		t.Fatalf("module 1 %+v", m1)
	}
	if info.MemSource != MemSourcePVH {
		t.Fatalf("MemSource %d", info.MemSource)
	}
	if got := regions(info); !reflect.DeepEqual(got, qemuWant) {
		t.Fatalf("map\n got %+v\nwant %+v", got, qemuWant)
	}
	if got, want := info.UsableRAM(), uint64(0x9f000+0x7ee0000); got != want {
		t.Fatalf("UsableRAM %#x want %#x", got, want)
	}
	for sec := 0; sec < numSecs; sec++ {
		if r := lay.sec[sec]; r[1] > r[0] && !covered(info, r[0], r[1]) {
			t.Errorf("section %d %v not reserved: %+v", sec, r, info.Reserved[:info.NReserved])
		}
	}
	if info.EFISystemTable != 0 || info.LoaderNameLen != 0 {
		t.Fatal("PVH info has multiboot2-only fields set")
	}
}

func TestPVHVersion0(t *testing.T) {
	s := newPVH()
	s.version = 0
	s.cmdline = "console=ttyS1"
	buf, ebx, lay := s.build()
	info, st := parse(buf, 0, ebx)
	if st != StatusNoMemoryMap || st.String() != "no memory map from the boot loader" {
		t.Fatalf("status %v", st)
	}
	checkInfo(t, info)
	if string(info.CmdlineBytes()) != "console=ttyS1" {
		t.Fatal("command line not parsed alongside the error")
	}
	if !covered(info, lay.sec[secStart][0], lay.sec[secStart][0]+pvhSizeV0) {
		t.Fatal("version-0 start_info not reserved")
	}
}

func TestPVHMemmapErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries int64
		noMap   bool
		want    Status
	}{
		{"zero entries", 0, false, StatusNoMemoryMap},
		{"no array", -1, true, StatusNoMemoryMap},
		{"too many", MaxRawEntries + 1, false, StatusTooManyRegions},
		{"past window", int64(len(qemuMap)) + 1, false, StatusTruncated},
	} {
		s := newPVH()
		s.mem = qemuMap
		if c.noMap {
			s.mem = nil
		}
		s.memEntries = c.entries
		s.order = []int{secStart, secCmdline, secModlist, secModCmdlines, secMemmap}
		buf, ebx, _ := s.build()
		info, st := parse(buf, 0, ebx)
		if st != c.want {
			t.Errorf("%s: status %v want %v", c.name, st, c.want)
		}
		checkInfo(t, info)
	}
}

func TestPVHModules(t *testing.T) {
	s := newPVH()
	s.mem = qemuMap
	long := strings.Repeat("m", 200)
	for i := 0; i < 20; i++ {
		cmd := string(rune('a' + i))
		if i == 3 {
			cmd = long
		}
		s.mods = append(s.mods, pvhMod{start: uint64(0x1000000 + i*0x10000), size: 0x800, cmdline: cmd})
	}
	buf, ebx, lay := s.build()
	info, st := parse(buf, 0, ebx)
	if st != StatusOK {
		t.Fatalf("status %v", st)
	}
	checkInfo(t, info)
	if info.NMod != MaxModules || !info.ModTruncated {
		t.Fatalf("NMod %d ModTruncated %v", info.NMod, info.ModTruncated)
	}
	for i := 0; i < MaxModules; i++ {
		m := info.Mod[i]
		want := string(rune('a' + i))
		if i == 3 {
			want = long[:128]
		}
		if got := string(m.Cmdline[:m.CmdlineLen]); got != want || m.Start != uint64(0x1000000+i*0x10000) || m.End != m.Start+0x800 {
			t.Fatalf("module %d: %#x-%#x %q", i, m.Start, m.End, got)
		}
		if !covered(info, lay.modCmd[i][0], lay.modCmd[i][1]) {
			t.Fatalf("module %d cmdline not reserved", i)
		}
	}

	s.mods = []pvhMod{{start: ^uint64(0) - 10, size: 100, cmdline: "x"}}
	buf, ebx, _ = s.build()
	if _, st := parse(buf, 0, ebx); st != StatusBadModule {
		t.Fatalf("wrapping module: status %v", st)
	}
}

func TestPVHCmdlineLimits(t *testing.T) {
	s := newPVH()
	s.mem = qemuMap
	s.cmdline = strings.Repeat("x", 2000)
	buf, ebx, lay := s.build()
	info, st := parse(buf, 0, ebx)
	if st != StatusOK || info.CmdlineLen != 1024 || !info.CmdlineTruncated {
		t.Fatalf("long cmdline: %v len %d truncated %v", st, info.CmdlineLen, info.CmdlineTruncated)
	}
	if !covered(info, lay.sec[secCmdline][0], lay.sec[secCmdline][1]) {
		t.Fatal("whole 2001-byte command line not reserved")
	}

	// No NUL within the scan limit: truncated, not an error.
	s.cmdline = strings.Repeat("y", CmdlineScanLimit+500)
	s.cmdlineNUL = true
	s.order = []int{secCmdline, secStart, secMemmap}
	buf, ebx, _ = s.build()
	info, st = parse(buf, 0, ebx)
	if st != StatusOK || info.CmdlineLen != 1024 || !info.CmdlineTruncated {
		t.Fatalf("unterminated cmdline: %v len %d truncated %v", st, info.CmdlineLen, info.CmdlineTruncated)
	}

	// Runs off the window before its NUL: an error.
	s.cmdline = "console=ttyS0"
	s.order = []int{secStart, secMemmap, secCmdline}
	buf, ebx, _ = s.build()
	info, st = parse(buf, 0, ebx)
	if st != StatusTruncated {
		t.Fatalf("cmdline past window: %v", st)
	}
	if string(info.CmdlineBytes()) != "console=ttyS0" {
		t.Fatalf("partial cmdline not kept: %q", info.CmdlineBytes())
	}
}

// TestPVHTruncation cuts the window at every byte of every structure,
// laying each structure out last in turn so only it is cut.
func TestPVHTruncation(t *testing.T) {
	for last := 0; last < numSecs; last++ {
		s := newPVH()
		s.cmdline = "console=ttyS0"
		s.mods = []pvhMod{{start: 0x400000, size: 0x1000, cmdline: "mod0"}, {start: 0x500000, size: 0x1000, cmdline: "mod1"}}
		s.mem = qemuMap
		s.order = nil
		for sec := 0; sec < numSecs; sec++ {
			if sec != last {
				s.order = append(s.order, sec)
			}
		}
		s.order = append(s.order, last)
		buf, ebx, lay := s.build()
		if _, st := parse(buf, 0, ebx); st != StatusOK {
			t.Fatalf("layout with section %d last: %v", last, st)
		}
		if lay.sec[last][1] != len(buf) {
			t.Fatalf("section %d not last", last)
		}
		for cut := lay.sec[last][0]; cut < len(buf); cut++ {
			info, st := parse(buf[:cut], 0, ebx)
			if st == StatusOK {
				t.Fatalf("section %d cut at %d of %d: status OK", last, cut, len(buf))
			}
			checkInfo(t, info)
		}
	}
}

func TestUnknownLoader(t *testing.T) {
	buf := make([]byte, 4096)
	for _, c := range []struct{ eax, ebx uint32 }{
		{0, 64},
		{0x2badb002, 64}, // multiboot1 magic: not supported
		{0, 1 << 30},     // EBX outside the window
		{0, 4094},        // magic would straddle the window's end
	} {
		info, st := parse(buf, c.eax, c.ebx)
		if st != StatusUnknownLoader || info.Loader != LoaderUnknown || info.Loader.String() != "unknown" {
			t.Errorf("eax %#x ebx %#x: %v %v", c.eax, c.ebx, st, info.Loader)
		}
	}
}

func fullMB2() mb2Spec {
	return mb2Spec{totalSize: -1, tags: []mb2Tag{
		tag(1, cstr("BOOT_IMAGE=/boot/juice.elf console=ttyS0,115200")),
		tag(2, cstr("GRUB 2.12")),
		tag(3, moduleBody(0x800000, 0x812345, "/boot/guest.img root=/dev/vda")),
		tag(3, moduleBody(0x900000, 0x900000, "")),
		tag(4, []byte{0x7f, 2, 0, 0, 0, 0xfc, 0x1f, 0}),     // basic meminfo: ignored
		tag(8, bytes.Repeat([]byte{0x55}, 13)),              // framebuffer: odd size, skipped
		tag(6, mmapBody(24, qemuMap)),                       // memory map
		tag(12, u64body(0x7fe8e018)),                        // EFI64 system table
		tag(14, rsdpBody(20, 1)),                            // ACPI 1.0 RSDP copy
		tag(15, rsdpBody(36, 2)),                            // ACPI 2.0 RSDP copy
		tag(17, efiMapBody(48, []efiDesc{{7, 0, 0x10000}})), // ignored: tag 6 wins
		tag(21, []byte{0, 0, 0x10, 0}),                      // load base address: ignored
	}}
}

func TestMB2Full(t *testing.T) {
	buf, ebx := fullMB2().build()
	info, st := parse(buf, Multiboot2Magic, ebx)
	if st != StatusOK {
		t.Fatalf("status %v", st)
	}
	checkInfo(t, info)
	if info.Loader != LoaderMultiboot2 || info.Loader.String() != "multiboot2" {
		t.Fatalf("loader %v", info.Loader)
	}
	if got := string(info.CmdlineBytes()); got != "BOOT_IMAGE=/boot/juice.elf console=ttyS0,115200" {
		t.Fatalf("cmdline %q", got)
	}
	if got := string(info.LoaderName[:info.LoaderNameLen]); got != "GRUB 2.12" {
		t.Fatalf("loader name %q", got)
	}
	if info.NMod != 2 {
		t.Fatalf("NMod %d", info.NMod)
	}
	if m := info.Mod[0]; m.Start != 0x800000 || m.End != 0x812345 || string(m.Cmdline[:m.CmdlineLen]) != "/boot/guest.img root=/dev/vda" {
		t.Fatalf("module 0 %#x-%#x %q", m.Start, m.End, m.Cmdline[:m.CmdlineLen])
	}
	if m := info.Mod[1]; m.Start != 0x900000 || m.End != 0x900000 || m.CmdlineLen != 0 {
		t.Fatalf("module 1 %+v", m)
	}
	if info.MemSource != MemSourceMB2 {
		t.Fatalf("MemSource %d", info.MemSource)
	}
	if got := regions(info); !reflect.DeepEqual(got, qemuWant) {
		t.Fatalf("map\n got %+v\nwant %+v", got, qemuWant)
	}
	if info.EFISystemTable != 0x7fe8e018 {
		t.Fatalf("EFI system table %#x", info.EFISystemTable)
	}
	newAt := bytes.Index(buf, rsdpBody(36, 2))
	if info.RSDP != uint64(newAt) {
		t.Fatalf("RSDP %#x, want the ACPI 2.0 copy at %#x", info.RSDP, newAt)
	}
	if info.NReserved != 1 || info.Reserved[0].Base > uint64(ebx) || info.Reserved[0].End < uint64(len(buf)) {
		t.Fatalf("MBI not reserved: %+v", info.Reserved[:info.NReserved])
	}

	// Without tag 15 the ACPI 1.0 copy is used.
	s := fullMB2()
	s.tags = append(s.tags[:9], s.tags[10:]...)
	buf, ebx = s.build()
	info, st = parse(buf, Multiboot2Magic, ebx)
	if oldAt := bytes.Index(buf, rsdpBody(20, 1)); st != StatusOK || info.RSDP != uint64(oldAt) {
		t.Fatalf("RSDP %#x want %#x (%v)", info.RSDP, oldAt, st)
	}
}

func TestMB2EntrySize(t *testing.T) {
	for _, es := range []uint32{24, 32, 40, 44} {
		buf, ebx := mb2Spec{totalSize: -1, tags: []mb2Tag{tag(6, mmapBody(es, qemuMap))}}.build()
		info, st := parse(buf, Multiboot2Magic, ebx)
		if st != StatusOK || !reflect.DeepEqual(regions(info), qemuWant) {
			t.Fatalf("entry_size %d: %v %+v", es, st, regions(info))
		}
	}
}

func TestMB2EFIMap(t *testing.T) {
	descs := []efiDesc{
		{3, 0, 1},              // boot services code
		{7, 0x1000, 0x9e},      // conventional
		{0, 0x9f000, 1},        // reserved
		{6, 0xe0000, 0x20},     // runtime services data
		{2, 0x100000, 0x100},   // loader data
		{4, 0x200000, 0x100},   // boot services data
		{1, 0x300000, 0x100},   // loader code
		{9, 0x400000, 0x10},    // ACPI reclaim
		{10, 0x410000, 0x10},   // ACPI NVS
		{8, 0x420000, 0x10},    // unusable
		{7, 0x430000, 0x3bd0},  // conventional
		{11, 0xfec00000, 1},    // MMIO
		{5, 0x7f000000, 0x10},  // runtime services code
		{14, 0x100000000, 0x1}, // persistent memory: reserved
		{7, 0x200000000, 0},    // zero pages: ignored
	}
	want := []Region{
		{0, 0x9f000, RegionRAM},
		{0x9f000, 0x1000, RegionReserved},
		{0xe0000, 0x20000, RegionReserved},
		{0x100000, 0x300000, RegionRAM},
		{0x400000, 0x10000, RegionACPIReclaim},
		{0x410000, 0x10000, RegionACPINVS},
		{0x420000, 0x10000, RegionBad},
		{0x430000, 0x3bd0000, RegionRAM},
		{0x7f000000, 0x10000, RegionReserved},
		{0xfec00000, 0x1000, RegionReserved},
		{0x100000000, 0x1000, RegionReserved},
	}
	for _, ds := range []uint32{40, 48} {
		buf, ebx := mb2Spec{totalSize: -1, tags: []mb2Tag{
			tag(6, mmapBody(24, nil)), // empty tag 6: fall back to tag 17
			tag(17, efiMapBody(ds, descs)),
		}}.build()
		info, st := parse(buf, Multiboot2Magic, ebx)
		if st != StatusOK || info.MemSource != MemSourceEFI {
			t.Fatalf("descriptor size %d: %v source %d", ds, st, info.MemSource)
		}
		checkInfo(t, info)
		if got := regions(info); !reflect.DeepEqual(got, want) {
			t.Fatalf("descriptor size %d:\n got %+v\nwant %+v", ds, got, want)
		}
	}

	// Page counts that overflow: RAM dropped, reserved clipped at 2^52.
	buf, ebx := mb2Spec{totalSize: -1, tags: []mb2Tag{tag(17, efiMapBody(40, []efiDesc{
		{7, 0x100000, 0x100},
		{7, 0x1000000, 1 << 60},
		{0, 0x2000000, ^uint64(0)},
	}))}}.build()
	info, st := parse(buf, Multiboot2Magic, ebx)
	want = []Region{{0x100000, 0x100000, RegionRAM}, {0x2000000, MaxPhys - 0x2000000, RegionReserved}}
	if st != StatusOK || !reflect.DeepEqual(regions(info), want) {
		t.Fatalf("overflowing EFI pages: %v %+v", st, regions(info))
	}
}

func TestMB2BootServicesActive(t *testing.T) {
	s := fullMB2()
	s.tags = append(s.tags, tag(18, nil))
	buf, ebx := s.build()
	info, st := parse(buf, Multiboot2Magic, ebx)
	if st != StatusBootServicesActive {
		t.Fatalf("status %v", st)
	}
	if info.NMem == 0 || info.CmdlineLen == 0 {
		t.Fatal("info not filled alongside the error")
	}
}

func TestMB2Limits(t *testing.T) {
	var tags []mb2Tag
	tags = append(tags, tag(1, cstr(strings.Repeat("c", 1500))), tag(1, cstr("second")))
	tags = append(tags, tag(2, []byte(strings.Repeat("n", 100)))) // no NUL: ends at the tag
	for i := 0; i < 18; i++ {
		tags = append(tags, tag(3, moduleBody(uint32(i)<<20, uint32(i)<<20+1, strings.Repeat("z", 130))))
	}
	tags = append(tags, tag(6, mmapBody(24, qemuMap)))
	buf, ebx := mb2Spec{totalSize: -1, tags: tags}.build()
	info, st := parse(buf, Multiboot2Magic, ebx)
	if st != StatusOK {
		t.Fatalf("status %v", st)
	}
	checkInfo(t, info)
	if info.CmdlineLen != 1024 || !info.CmdlineTruncated || info.Cmdline[0] != 'c' {
		t.Fatalf("cmdline len %d truncated %v", info.CmdlineLen, info.CmdlineTruncated)
	}
	if info.LoaderNameLen != 64 {
		t.Fatalf("loader name len %d", info.LoaderNameLen)
	}
	if info.NMod != MaxModules || !info.ModTruncated || info.Mod[15].Start != 15<<20 || info.Mod[15].CmdlineLen != 128 {
		t.Fatalf("modules: n %d truncated %v last %+v", info.NMod, info.ModTruncated, info.Mod[15].Start)
	}
}

func TestMB2Errors(t *testing.T) {
	good := []mb2Tag{tag(6, mmapBody(24, qemuMap))}
	with := func(extra ...mb2Tag) []mb2Tag { return append(append([]mb2Tag(nil), good...), extra...) }
	cases := []struct {
		name string
		spec mb2Spec
		ebx  int64 // >= 0 overrides EBX
		want Status
	}{
		{"misaligned MBI", mb2Spec{tags: good, totalSize: -1, lead: 60}, -1, StatusBadTag},
		{"EBX outside window", mb2Spec{tags: good, totalSize: -1}, 1 << 30, StatusTruncated},
		{"total_size below header+end", mb2Spec{tags: good, totalSize: 8}, -1, StatusTruncated},
		{"total_size huge", mb2Spec{tags: good, totalSize: 2 << 20}, -1, StatusOversized},
		{"total_size past window", mb2Spec{tags: good, totalSize: 4096}, -1, StatusTruncated},
		{"no end tag", mb2Spec{tags: good, totalSize: -1, noEnd: true}, -1, StatusTruncated},
		{"tag size below 8", mb2Spec{tags: with(mb2Tag{typ: 1, body: cstr("x"), size: 4}), totalSize: -1}, -1, StatusBadTag},
		{"tag size zero", mb2Spec{tags: with(mb2Tag{typ: 99, size: 0}), totalSize: -1}, -1, StatusBadTag},
		{"tag past total_size", mb2Spec{tags: with(mb2Tag{typ: 1, body: cstr("x"), size: 4000}), totalSize: -1}, -1, StatusTruncated},
		{"short module tag", mb2Spec{tags: with(tag(3, []byte{1, 2, 3, 4})), totalSize: -1}, -1, StatusBadTag},
		{"module end before start", mb2Spec{tags: with(tag(3, moduleBody(0x2000, 0x1000, ""))), totalSize: -1}, -1, StatusBadModule},
		{"mmap entry_size 16", mb2Spec{tags: []mb2Tag{tag(6, mmapBody(16, nil))}, totalSize: -1}, -1, StatusBadTag},
		{"mmap tag too short", mb2Spec{tags: []mb2Tag{tag(6, []byte{24, 0, 0, 0})}, totalSize: -1}, -1, StatusBadTag},
		{"EFI descriptor size 32", mb2Spec{tags: []mb2Tag{tag(17, efiMapBody(32, nil))}, totalSize: -1}, -1, StatusBadTag},
		{"short EFI64 tag", mb2Spec{tags: with(tag(12, []byte{1, 2, 3, 4})), totalSize: -1}, -1, StatusBadTag},
		{"short ACPI old", mb2Spec{tags: with(tag(14, rsdpBody(10, 0))), totalSize: -1}, -1, StatusBadTag},
		{"short ACPI new", mb2Spec{tags: with(tag(15, rsdpBody(20, 0))), totalSize: -1}, -1, StatusBadTag},
		{"no memory map", mb2Spec{tags: []mb2Tag{tag(1, cstr("x"))}, totalSize: -1}, -1, StatusNoMemoryMap},
		{"too many entries", mb2Spec{tags: []mb2Tag{tag(6, mmapBody(24, make([]e820, MaxRawEntries+1)))}, totalSize: -1}, -1, StatusTooManyRegions},
		{"no RAM", mb2Spec{tags: []mb2Tag{tag(6, mmapBody(24, []e820{{0, 0x100000, 2}, {0x100000, 0x800, 1}}))}, totalSize: -1}, -1, StatusNoRAM},
	}
	for _, c := range cases {
		buf, ebx := c.spec.build()
		if c.ebx >= 0 {
			ebx = uint32(c.ebx)
		}
		info, st := parse(buf, Multiboot2Magic, ebx)
		if st != c.want {
			t.Errorf("%s: status %v (%d) want %v", c.name, st, st, c.want)
		}
		checkInfo(t, info)
	}
}

func TestMB2Truncation(t *testing.T) {
	buf, ebx := fullMB2().build()
	for cut := 0; cut < len(buf); cut++ {
		info, st := parse(buf[:cut], Multiboot2Magic, ebx)
		if st == StatusOK {
			t.Fatalf("window cut at %d of %d: status OK", cut, len(buf))
		}
		checkInfo(t, info)
	}
	// Shrinking total_size below the real size must never pass either.
	for total := int64(0); total < int64(len(buf))-int64(ebx); total++ {
		s := fullMB2()
		s.totalSize = total
		b, e := s.build()
		info, st := parse(b, Multiboot2Magic, e)
		if st == StatusOK {
			t.Fatalf("total_size %d: status OK", total)
		}
		checkInfo(t, info)
	}
}

func pvhMap(t *testing.T, es []e820) (*Info, Status) {
	t.Helper()
	s := newPVH()
	s.mem = es
	buf, ebx, _ := s.build()
	info, st := parse(buf, 0, ebx)
	checkInfo(t, info)
	return info, st
}

func TestSanitize(t *testing.T) {
	const (
		ram  = 1
		res  = 2
		acpi = 3
		nvs  = 4
		bad  = 5
	)
	cases := []struct {
		name string
		in   []e820
		want []Region
	}{
		{"unsorted",
			[]e820{{0x200000, 0x100000, ram}, {0x100000, 0x1000, res}, {0, 0x80000, ram}},
			[]Region{{0, 0x80000, RegionRAM}, {0x100000, 0x1000, RegionReserved}, {0x200000, 0x100000, RegionRAM}}},
		{"reserved splits RAM",
			[]e820{{0x100000, 0x100000, ram}, {0x150000, 0x10000, res}},
			[]Region{{0x100000, 0x50000, RegionRAM}, {0x150000, 0x10000, RegionReserved}, {0x160000, 0xa0000, RegionRAM}}},
		{"unaligned hole shrinks RAM inward",
			[]e820{{0x100000, 0x100000, ram}, {0x150800, 0x100, res}},
			[]Region{{0x100000, 0x50000, RegionRAM}, {0x150800, 0x100, RegionReserved}, {0x151000, 0xaf000, RegionRAM}}},
		{"reserved beats RAM whatever the order",
			[]e820{{0x150000, 0x10000, res}, {0x100000, 0x100000, ram}},
			[]Region{{0x100000, 0x50000, RegionRAM}, {0x150000, 0x10000, RegionReserved}, {0x160000, 0xa0000, RegionRAM}}},
		{"zero length and duplicates",
			[]e820{{0x1000, 0, res}, {0, 0x10000, ram}, {0, 0x10000, ram}, {0x5000, 0, bad}},
			[]Region{{0, 0x10000, RegionRAM}}},
		{"adjacent RAM merges before shrinking",
			[]e820{{0x1800, 0x1800, ram}, {0x800, 0x1000, ram}},
			[]Region{{0x1000, 0x2000, RegionRAM}}},
		{"partial overlap of RAM entries",
			[]e820{{0, 0x6000, ram}, {0x4000, 0x6000, ram}},
			[]Region{{0, 0xa000, RegionRAM}}},
		{"wrapping RAM dropped, wrapping reserved clipped",
			[]e820{{0, 0x10000, ram}, {0x100000, ^uint64(0), ram}, {0xfee00000, ^uint64(0) - 5, res}},
			[]Region{{0, 0x10000, RegionRAM}, {0xfee00000, MaxPhys - 0xfee00000, RegionReserved}}},
		{"above 2^52 dropped, straddling clipped",
			[]e820{{0, 0x10000, ram}, {MaxPhys, 0x1000, ram}, {1 << 60, 1 << 20, res}, {MaxPhys - 0x2000, 0x10000, ram}},
			[]Region{{0, 0x10000, RegionRAM}, {MaxPhys - 0x2000, 0x2000, RegionRAM}}},
		{"precedence among non-RAM types",
			[]e820{{0, 0x10000, res}, {0x8000, 0x10000, acpi}, {0x14000, 0x8000, nvs}, {0x16000, 0x1000, bad}, {0x16800, 0x100, res}},
			[]Region{{0, 0x10000, RegionReserved}, {0x10000, 0x4000, RegionACPIReclaim}, {0x14000, 0x2000, RegionACPINVS}, {0x16000, 0x1000, RegionBad}, {0x17000, 0x5000, RegionACPINVS}}},
		{"unknown types are reserved",
			[]e820{{0, 0x10000, ram}, {0x10000, 0x1000, 0}, {0x11000, 0x1000, 7}, {0x12000, 0x1000, 0xf00}},
			[]Region{{0, 0x10000, RegionRAM}, {0x10000, 0x3000, RegionReserved}}},
		{"sub-page RAM vanishes",
			[]e820{{0, 0x10000, ram}, {0x20800, 0x900, ram}},
			[]Region{{0, 0x10000, RegionRAM}}},
		{"RAM nested in RAM",
			[]e820{{0x1000, 0x10000, ram}, {0x2000, 0x1000, ram}},
			[]Region{{0x1000, 0x10000, RegionRAM}}},
	}
	for _, c := range cases {
		info, st := pvhMap(t, c.in)
		wantSt := StatusNoRAM
		for _, w := range c.want {
			if w.Type == RegionRAM {
				wantSt = StatusOK
			}
		}
		if st != wantSt {
			t.Errorf("%s: status %v want %v", c.name, st, wantSt)
		}
		if got := regions(info); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if ref, _ := refMap(c.in); !reflect.DeepEqual(ref, c.want) {
			t.Errorf("%s: reference model disagrees with the table: %+v", c.name, ref)
		}
	}
}

func TestSanitizeTooManyRegions(t *testing.T) {
	var es []e820
	for i := 199; i >= 0; i-- { // reversed: sorting matters too
		typ := uint32(1)
		if i%2 == 1 {
			typ = 2
		}
		es = append(es, e820{uint64(i) * 0x10000, 0x10000, typ})
	}
	info, st := pvhMap(t, es)
	if st != StatusOK || info.NMem != MaxRegions || !info.MemTruncated {
		t.Fatalf("status %v NMem %d MemTruncated %v", st, info.NMem, info.MemTruncated)
	}
	for i := 0; i < MaxRegions; i++ {
		want := Region{uint64(i) * 0x10000, 0x10000, RegionRAM}
		if i%2 == 1 {
			want.Type = RegionReserved
		}
		if info.Mem[i] != want {
			t.Fatalf("region %d: %+v want %+v", i, info.Mem[i], want)
		}
	}
}

// TestSanitizeRandom compares the sweep against the reference model on
// random hostile maps.
func TestSanitizeRandom(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	pick := func() uint64 {
		switch r.Intn(10) {
		case 0:
			return ^uint64(0) - uint64(r.Intn(0x10000))
		case 1:
			return MaxPhys - uint64(r.Intn(0x4000))
		case 2:
			return 0
		default:
			return uint64(r.Intn(64)) * 0x800 // coarse grid: many overlaps
		}
	}
	for iter := 0; iter < 3000; iter++ {
		n := 1 + r.Intn(40)
		if iter%100 == 0 {
			n = 300 // more elementary intervals than MaxRegions
		}
		es := make([]e820, n)
		for i := range es {
			es[i] = e820{pick(), pick(), uint32(r.Intn(7))}
			if r.Intn(3) == 0 {
				es[i].typ = 1
			}
			if iter%100 == 0 {
				es[i] = e820{uint64(i) * 0x3000, 0x2000 + uint64(r.Intn(3))*0x800, uint32(1 + r.Intn(5))}
			}
		}
		want, trunc := refMap(es)
		info, st := pvhMap(t, es)
		got := regions(info)
		if len(want) == 0 {
			want = nil
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, want) || info.MemTruncated != trunc {
			t.Fatalf("iteration %d input %+v\n got %+v (truncated %v)\nwant %+v (truncated %v)", iter, es, got, info.MemTruncated, want, trunc)
		}
		hasRAM := false
		for _, g := range got {
			hasRAM = hasRAM || g.Type == RegionRAM
		}
		if (st == StatusNoRAM) == hasRAM || (st != StatusOK && st != StatusNoRAM) {
			t.Fatalf("iteration %d: status %v with RAM=%v", iter, st, hasRAM)
		}
	}
}

func TestReserve(t *testing.T) {
	info := new(Info)
	type r struct{ b, e uint64 }
	var added []r
	add := func(b, e uint64) {
		reserve(info, b, e)
		if b < e {
			added = append(added, r{b, e})
		}
		checkInfo(t, info)
		for _, a := range added {
			if !covered(info, int(a.b), int(a.e)) {
				t.Fatalf("after adding %#x-%#x, %#x-%#x is no longer covered: %+v", b, e, a.b, a.e, info.Reserved[:info.NReserved])
			}
		}
	}
	add(0x5000, 0x5001)
	if info.NReserved != 1 || info.Reserved[0] != (Range{0x5000, 0x6000}) {
		t.Fatalf("page rounding: %+v", info.Reserved[:info.NReserved])
	}
	add(0x6000, 0x6100) // touches: merges
	if info.NReserved != 1 || info.Reserved[0] != (Range{0x5000, 0x7000}) {
		t.Fatalf("touching ranges not merged: %+v", info.Reserved[:info.NReserved])
	}
	add(0x4fff, 0x5000) // touches from below
	if info.NReserved != 1 || info.Reserved[0] != (Range{0x4000, 0x7000}) {
		t.Fatalf("touching below not merged: %+v", info.Reserved[:info.NReserved])
	}
	add(7, 7) // empty: ignored
	if info.NReserved != 1 {
		t.Fatalf("empty range recorded: %+v", info.Reserved[:info.NReserved])
	}
	for i := uint64(1); i <= 12; i++ {
		add(i*0x100000+0x10, i*0x100000+0x20+i*0x1000)
	}
	if info.NReserved != MaxReserved {
		t.Fatalf("NReserved %d", info.NReserved)
	}
	add(0, 1<<40) // swallows everything
	if info.NReserved != 1 || info.Reserved[0] != (Range{0, 1 << 40}) {
		t.Fatalf("covering range: %+v", info.Reserved[:info.NReserved])
	}
	reserve(info, ^uint64(0)-5, ^uint64(0)) // above MaxPhys: not RAM, not recorded
	if info.NReserved != 1 {
		t.Fatalf("range above 2^52 recorded: %+v", info.Reserved[:info.NReserved])
	}
	checkInfo(t, info)
}

func TestReservedScatteredPVH(t *testing.T) {
	s := newPVH()
	s.cmdline = "quiet"
	s.mods = []pvhMod{{start: 0x400000, size: 0x1000, cmdline: "a"}}
	s.mem = qemuMap
	s.gap = 0x2000
	buf, ebx, lay := s.build()
	info, st := parse(buf, 0, ebx)
	if st != StatusOK || info.NReserved != numSecs {
		t.Fatalf("status %v NReserved %d: %+v", st, info.NReserved, info.Reserved[:info.NReserved])
	}
	for sec := 0; sec < numSecs; sec++ {
		if !covered(info, lay.sec[sec][0], lay.sec[sec][1]) {
			t.Fatalf("section %d not reserved", sec)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	s := newPVH()
	s.cmdline = "console=ttyS0"
	s.mods = []pvhMod{{start: 0x400000, size: 0x1000, cmdline: "a"}}
	s.mem = qemuMap
	pbuf, pebx, _ := s.build()
	mspec := fullMB2()
	mspec.tags = append(mspec.tags, tag(18, nil))
	mbuf, mebx := mspec.build()
	ebuf, eebx := mb2Spec{totalSize: -1, tags: []mb2Tag{tag(17, efiMapBody(48, []efiDesc{{7, 0, 0x100}, {0, 0x50000, 1}}))}}.build()
	pm, mm, em := phys.FromSlice(pbuf), phys.FromSlice(mbuf), phys.FromSlice(ebuf)
	info := new(Info)
	if n := testing.AllocsPerRun(50, func() {
		Parse(&pm, 0, pebx, info)
		Parse(&mm, Multiboot2Magic, mebx, info)
		Parse(&em, Multiboot2Magic, eebx, info)
		Parse(&pm, 0, 12345, info)
		_ = info.UsableRAM()
	}); n != 0 {
		t.Fatalf("Parse allocates: %v per run", n)
	}
}

func TestStrings(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusNoRAM; s++ {
		str := s.String()
		if str == "" || str == Status(200).String() || seen[str] {
			t.Errorf("status %d: %q", s, str)
		}
		seen[str] = true
	}
	for ty, want := range map[RegionType]string{RegionRAM: "RAM", RegionReserved: "reserved", RegionACPIReclaim: "ACPI reclaimable", RegionACPINVS: "ACPI NVS", RegionBad: "bad", 0: "invalid"} {
		if ty.String() != want {
			t.Errorf("RegionType %d: %q", ty, ty.String())
		}
	}
}

func TestMB2FirstTagWins(t *testing.T) {
	other := []e820{{0, 0x200000, 1}}
	buf, ebx := mb2Spec{totalSize: -1, tags: []mb2Tag{
		tag(2, cstr("first")),
		tag(6, mmapBody(24, qemuMap)),
		tag(12, u64body(0x1000)),
		tag(2, cstr("second")),
		tag(6, mmapBody(24, other)),
		tag(12, u64body(0x2000)),
		tag(15, rsdpBody(36, 7)),
		tag(15, rsdpBody(36, 8)),
	}}.build()
	info, st := parse(buf, Multiboot2Magic, ebx)
	if st != StatusOK || !reflect.DeepEqual(regions(info), qemuWant) {
		t.Fatalf("%v: a later memory-map tag replaced the first: %+v", st, regions(info))
	}
	if string(info.LoaderName[:info.LoaderNameLen]) != "first" || info.EFISystemTable != 0x1000 {
		t.Fatalf("later tags won: %q %#x", info.LoaderName[:info.LoaderNameLen], info.EFISystemTable)
	}
	if want := bytes.Index(buf, rsdpBody(36, 7)); info.RSDP != uint64(want) {
		t.Fatalf("RSDP %#x want first copy at %#x", info.RSDP, want)
	}
}
