package loader

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"juice/vmm"
)

const testRAM = 2 << 20

var le = binary.LittleEndian

// newGuest returns guest RAM pre-filled with 0xcc (so that zeroing shows)
// and a vCPU.
func newGuest(size int) ([]byte, *vmm.GuestMemory, *vmm.VCPU) {
	ram := bytes.Repeat([]byte{0xcc}, size)
	return ram, vmm.NewGuestMemory(ram, 0), &vmm.VCPU{}
}

// mbInfo is the multiboot information as an independent reader sees it.
type mbInfo struct {
	flags, memLower, memUpper uint32
	cmdline, loader           string
	mods                      []mbMod
	mmap                      []E820Entry
}

type mbMod struct {
	start, end uint32
	cmdline    string
}

func readMBI(t *testing.T, ram []byte, at uint64) mbInfo {
	t.Helper()
	if at+116 > uint64(len(ram)) {
		t.Fatalf("MBI at %#x outside RAM", at)
	}
	b := ram[at:]
	var mi mbInfo
	mi.flags = le.Uint32(b[0:])
	mi.memLower, mi.memUpper = le.Uint32(b[4:]), le.Uint32(b[8:])
	mi.cmdline = cstr(ram, uint64(le.Uint32(b[16:])))
	mi.loader = cstr(ram, uint64(le.Uint32(b[64:])))
	n, modsAddr := le.Uint32(b[20:]), uint64(le.Uint32(b[24:]))
	for i := range uint64(n) {
		e := ram[modsAddr+16*i:]
		mi.mods = append(mi.mods, mbMod{le.Uint32(e[0:]), le.Uint32(e[4:]), cstr(ram, uint64(le.Uint32(e[8:])))})
	}
	mlen, maddr := uint64(le.Uint32(b[44:])), uint64(le.Uint32(b[48:]))
	for off := uint64(0); off < mlen; {
		e := ram[maddr+off:]
		size := uint64(le.Uint32(e[0:]))
		mi.mmap = append(mi.mmap, E820Entry{le.Uint64(e[4:]), le.Uint64(e[12:]), le.Uint32(e[20:])})
		off += size + 4
	}
	return mi
}

// startInfo is hvm_start_info as an independent reader sees it.
type startInfo struct {
	magic, version, nrMods uint32
	cmdline                string
	rsdp                   uint64
	mods                   []pvhMod
	memmap                 []E820Entry
}

type pvhMod struct {
	paddr, size uint64
	cmdline     string
}

func readStartInfo(t *testing.T, ram []byte, at uint64) startInfo {
	t.Helper()
	if at+56 > uint64(len(ram)) {
		t.Fatalf("start_info at %#x outside RAM", at)
	}
	b := ram[at:]
	si := startInfo{magic: le.Uint32(b[0:]), version: le.Uint32(b[4:]), nrMods: le.Uint32(b[12:])}
	modlist := le.Uint64(b[16:])
	si.cmdline = cstr(ram, le.Uint64(b[24:]))
	si.rsdp = le.Uint64(b[32:])
	mm, mmn := le.Uint64(b[40:]), uint64(le.Uint32(b[48:]))
	for i := range uint64(si.nrMods) {
		e := ram[modlist+32*i:]
		si.mods = append(si.mods, pvhMod{le.Uint64(e[0:]), le.Uint64(e[8:]), cstr(ram, le.Uint64(e[16:]))})
	}
	for i := range mmn {
		e := ram[mm+24*i:]
		si.memmap = append(si.memmap, E820Entry{le.Uint64(e[0:]), le.Uint64(e[8:]), le.Uint32(e[16:])})
	}
	return si
}

func wantE820(size uint64) []E820Entry {
	return []E820Entry{{0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {0x100000, size - 0x100000, 1}}
}

func checkFlat32(t *testing.T, v *vmm.VCPU) {
	t.Helper()
	if !v.SRegsValid || !v.SRegsDirty {
		t.Errorf("SRegsValid %v SRegsDirty %v, want both", v.SRegsValid, v.SRegsDirty)
	}
	s := v.SRegs
	if s.CS.Attr != 0xc9b || s.CS.Limit != 0xffffffff || s.CS.Base != 0 {
		t.Errorf("CS = %+v, want flat 32-bit code (attr 0xc9b)", s.CS)
	}
	for i, d := range []vmm.Segment{s.DS, s.ES, s.FS, s.GS, s.SS} {
		if d.Attr != 0xc93 || d.Limit != 0xffffffff || d.Base != 0 {
			t.Errorf("data segment %d = %+v, want flat 32-bit data (attr 0xc93)", i, d)
		}
	}
	if s.TR.Attr != 0x8b || s.TR.Limit != 0x67 {
		t.Errorf("TR = %+v, want busy 32-bit TSS", s.TR)
	}
	if s.LDTR.Attr != 0x82 {
		t.Errorf("LDTR = %+v, want LDT", s.LDTR)
	}
	if s.CR0 != 0x11 || s.CR4 != 0 || s.EFER != 0 || s.CR3 != 0 {
		t.Errorf("CR0 %#x CR3 %#x CR4 %#x EFER %#x, want 0x11/0/0/0", s.CR0, s.CR3, s.CR4, s.EFER)
	}
	if v.Regs.RFLAGS != 2 {
		t.Errorf("RFLAGS = %#x, want 2", v.Regs.RFLAGS)
	}
}

// overlapsAny reports whether [lo, hi) intersects any of the spans.
func overlapsAny(lo, hi uint64, spans ...[2]uint64) bool {
	for _, s := range spans {
		if lo < s[1] && s[0] < hi {
			return true
		}
	}
	return false
}

func TestMultibootELF(t *testing.T) {
	text := append(mbHeaderBytes(3), pattern(0x1f4, 1)...) // page-align + meminfo
	data := pattern(0x10, 9)
	kernel := buildELF(32, 0xc010000c, []tSeg{
		{typ: ptLoad, vaddr: 0xc0100000, paddr: 0x100000, data: text},
		{typ: ptLoad, vaddr: 0xc0101000, paddr: 0x101000, data: data, memsz: 0x1000},
	})
	ram, mem, v := newGuest(testRAM)
	mods := []Module{{Data: pattern(5000, 3), Cmdline: "initrd"}, {Data: pattern(10, 4), Cmdline: ""}}
	img, err := Load(mem, v, kernel, "console=ttyS0 quiet", mods)
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != FormatMultiboot || img.Entry != 0x10000c || img.KernelEnd != 0x102000 {
		t.Errorf("image = %+v, want multiboot entry 0x10000c (higher-half translated) end 0x102000", img)
	}
	if !bytes.Equal(ram[0x100000:0x100000+len(text)], text) || !bytes.Equal(ram[0x101000:0x101010], data) {
		t.Error("kernel segments not at their p_paddr")
	}
	if !bytes.Equal(ram[0x101010:0x102000], make([]byte, 0x1000-0x10)) {
		t.Error("bss not zeroed")
	}
	if v.Regs.RAX != 0x2BADB002 || v.Regs.RBX != img.BootInfo || v.Regs.RIP != img.Entry {
		t.Errorf("regs RAX %#x RBX %#x RIP %#x", v.Regs.RAX, v.Regs.RBX, v.Regs.RIP)
	}
	checkFlat32(t, v)

	mi := readMBI(t, ram, img.BootInfo)
	if mi.flags != 1|4|8|64|512 {
		t.Errorf("MBI flags = %#x", mi.flags)
	}
	if mi.memLower != 639 || mi.memUpper != 1024 {
		t.Errorf("mem_lower %d mem_upper %d, want 639 1024", mi.memLower, mi.memUpper)
	}
	if mi.cmdline != "console=ttyS0 quiet" || mi.loader != "juice" {
		t.Errorf("cmdline %q loader %q", mi.cmdline, mi.loader)
	}
	if len(mi.mods) != 2 {
		t.Fatalf("mods = %+v", mi.mods)
	}
	used := [][2]uint64{{0x100000, 0x102000}, {img.BootInfo, img.BootInfo + 116}}
	for i, m := range mi.mods {
		if m.start%4096 != 0 || m.start < 0x102000 || uint64(m.end-m.start) != uint64(len(mods[i].Data)) {
			t.Errorf("module %d at [%#x, %#x): want page-aligned above the kernel, %d bytes", i, m.start, m.end, len(mods[i].Data))
		}
		if !bytes.Equal(ram[m.start:m.end], mods[i].Data) || m.cmdline != mods[i].Cmdline {
			t.Errorf("module %d contents or cmdline %q wrong", i, m.cmdline)
		}
		if overlapsAny(uint64(m.start), uint64(m.end), used...) {
			t.Errorf("module %d overlaps the kernel, MBI or another module", i)
		}
		used = append(used, [2]uint64{uint64(m.start), uint64(m.end)})
	}
	if img.BootInfo < 0x1000 || img.BootInfo+116 > 0x9fc00 {
		t.Errorf("MBI at %#x, want low memory", img.BootInfo)
	}
	if len(mi.mmap) != 3 || mi.mmap[0] != wantE820(testRAM)[0] || mi.mmap[2] != wantE820(testRAM)[2] {
		t.Errorf("mmap = %+v", mi.mmap)
	}
}

func TestMultibootELF32Identity(t *testing.T) {
	// Identity-mapped kernel loaded in low memory: the MBI must go around it.
	text := append(mbHeaderBytes(0), pattern(0x100, 1)...)
	kernel := buildELF(32, 0x1000, []tSeg{{typ: ptLoad, vaddr: 0x1000, paddr: 0x1000, data: text, memsz: 0x3000}})
	ram, mem, v := newGuest(testRAM)
	img, err := Load(mem, v, kernel, "", []Module{{Data: []byte("m")}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Entry != 0x1000 || img.BootInfo < 0x4000 {
		t.Errorf("image %+v: entry 0x1000, MBI above the kernel end 0x4000 expected", img)
	}
	mi := readMBI(t, ram, img.BootInfo)
	if len(mi.mods) != 1 || mi.mods[0].start < 0x4000 || mi.mods[0].start%4096 != 0 {
		t.Errorf("mods = %+v", mi.mods)
	}
	if mi.cmdline != "" {
		t.Errorf("cmdline %q", mi.cmdline)
	}
}

// aoutImage returns a kernel whose multiboot header (a.out kludge) is at
// file offset 0x40, text starting at file offset 0 loaded at 0x200000.
func aoutImage(loadEnd, bssEnd uint32, size int) []byte {
	b := pattern(size, 0x40)
	h := mbHeaderBytes(1<<16|2, 0x200040, 0x200000, loadEnd, bssEnd, 0x200080)
	copy(b[0x40:], h)
	return b
}

func TestMultibootAout(t *testing.T) {
	kernel := aoutImage(0x200800, 0x203000, 0x1000)
	ram, mem, v := newGuest(testRAM + 0x300000)
	img, err := Load(mem, v, kernel, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != FormatMultibootAout || img.Entry != 0x200080 || img.KernelEnd != 0x203000 {
		t.Errorf("image = %+v", img)
	}
	if !bytes.Equal(ram[0x200000:0x200800], kernel[:0x800]) {
		t.Error("a.out text/data not at load_addr")
	}
	if !bytes.Equal(ram[0x200800:0x203000], make([]byte, 0x2800)) {
		t.Error("a.out bss not zeroed")
	}
	if ram[0x203000] != 0xcc {
		t.Error("wrote past bss_end_addr")
	}
	mi := readMBI(t, ram, img.BootInfo)
	if mi.memUpper != (testRAM+0x300000-0x100000)/1024 || len(mi.mods) != 0 || mi.cmdline != "x" {
		t.Errorf("MBI = %+v", mi)
	}

	// load_end_addr 0: the whole file; bss_end_addr 0: no bss.
	kernel = aoutImage(0, 0, 0x1000)
	ram, mem, v = newGuest(testRAM + 0x300000)
	img, err = Load(mem, v, kernel, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.KernelEnd != 0x201000 || !bytes.Equal(ram[0x200000:0x201000], kernel) || ram[0x201000] == 0 {
		t.Errorf("whole-file a.out load wrong: %+v", img)
	}

	// An ELF64 with the kludge loads as a.out.
	hdr := mbHeaderBytes(1<<16, 0x100000, 0x100000, 0, 0x101000, 0x100000)
	kernel = buildELF(64, 0, []tSeg{{typ: ptLoad, paddr: 0x100000, data: hdr}})
	copy(kernel[0x80:], hdr) // header in the first 8 KiB, before the segment data
	if _, err := Load(mem, v, kernel, "", nil); err == nil {
		// header_addr - load_addr = 0, offset 0x80: the file from 0x80 on
		// lands at 0x100000.
		if !bytes.Equal(ram[0x100000:0x100000+len(kernel)-0x80], kernel[0x80:]) {
			t.Error("ELF64 a.out kludge load wrong")
		}
	} else {
		t.Errorf("ELF64 with a.out kludge: %v", err)
	}
}

func TestPVH(t *testing.T) {
	for _, c := range []struct {
		class, size int
	}{{64, 4}, {32, 8}} {
		text := pattern(0x300, 2)
		kernel := buildELF(c.class, 0xffffffff81000000, []tSeg{
			{typ: ptNote, data: xenNoteBytes(0x100100, c.size), align: 4},
			{typ: ptLoad, vaddr: 0xffffffff81000000, paddr: 0x100000, data: text, memsz: 0x2000},
		})
		ram, mem, v := newGuest(testRAM)
		mods := []Module{{Data: pattern(0x1234, 5), Cmdline: "initrd"}}
		img, err := Load(mem, v, kernel, "console=ttyS0", mods)
		if err != nil {
			t.Fatalf("ELF%d: %v", c.class, err)
		}
		if img.Format != FormatPVH || img.Entry != 0x100100 || img.KernelEnd != 0x102000 {
			t.Errorf("ELF%d image = %+v", c.class, img)
		}
		if !bytes.Equal(ram[0x100000:0x100300], text) || !bytes.Equal(ram[0x100300:0x102000], make([]byte, 0x1d00)) {
			t.Errorf("ELF%d kernel bytes wrong", c.class)
		}
		if v.Regs.RBX != img.BootInfo || v.Regs.RIP != 0x100100 || v.Regs.RAX != 0 {
			t.Errorf("regs RAX %#x RBX %#x RIP %#x", v.Regs.RAX, v.Regs.RBX, v.Regs.RIP)
		}
		checkFlat32(t, v)
		si := readStartInfo(t, ram, img.BootInfo)
		if si.magic != 0x336ec578 || si.version != 1 || si.rsdp != 0 || si.cmdline != "console=ttyS0" {
			t.Errorf("start_info = %+v", si)
		}
		if len(si.mods) != 1 || si.mods[0].size != 0x1234 || si.mods[0].paddr%4096 != 0 ||
			si.mods[0].paddr < 0x102000 || si.mods[0].cmdline != "initrd" ||
			!bytes.Equal(ram[si.mods[0].paddr:si.mods[0].paddr+0x1234], mods[0].Data) {
			t.Errorf("modules = %+v", si.mods)
		}
		want := wantE820(testRAM)
		if len(si.memmap) != 3 || si.memmap[0] != want[0] || si.memmap[1] != want[1] || si.memmap[2] != want[2] {
			t.Errorf("memmap = %+v", si.memmap)
		}
	}
}

func TestMultibootBeforePVH(t *testing.T) {
	text := append(mbHeaderBytes(0), pattern(0x40, 1)...)
	kernel := buildELF(32, 0x100000, []tSeg{
		{typ: ptNote, data: xenNoteBytes(0x100010, 4)},
		{typ: ptLoad, vaddr: 0x100000, paddr: 0x100000, data: text},
	})
	_, mem, v := newGuest(testRAM)
	img, err := Load(mem, v, kernel, "", nil)
	if err != nil || img.Format != FormatMultiboot || img.Entry != 0x100000 {
		t.Errorf("got %+v, %v; want multiboot", img, err)
	}
}

func TestLoadErrors(t *testing.T) {
	mb := func(segs ...tSeg) []byte {
		segs[0].data = append(mbHeaderBytes(0), segs[0].data...)
		return buildELF(32, 0x100000, segs)
	}
	pvh := func(entry uint64, segs ...tSeg) []byte {
		return buildELF(64, 0, append([]tSeg{{typ: ptNote, data: xenNoteBytes(entry, 4)}}, segs...))
	}
	load := func(paddr uint64, n int) tSeg {
		return tSeg{typ: ptLoad, vaddr: paddr, paddr: paddr, data: pattern(n, 1)}
	}
	truncPh := mb(load(0x100000, 16))
	le.PutUint32(truncPh[28:], uint32(len(truncPh)-8)) // e_phoff near the end
	badOff := mb(load(0x100000, 16))
	le.PutUint32(badOff[52+4:], 0xfffffff0) // p_offset
	bigFile := mb(load(0x100000, 16))
	le.PutUint32(bigFile[52+16:], 0x100000) // p_filesz > file
	le.PutUint32(bigFile[52+20:], 0x100000)
	fileGtMem := mb(load(0x100000, 16))
	le.PutUint32(fileGtMem[52+20:], 4)
	badNote := pvh(0x100000, load(0x100000, 16))
	le.PutUint32(badNote[0x1000+4:], 0x7fffffff) // descsz of the first note
	unknownFlags := aoutImage(0, 0, 0x1000)
	copy(unknownFlags[0x40:], mbHeaderBytes(1<<16|1<<5, 0x200040, 0x200000, 0, 0, 0x200080))
	badChecksum := mb(load(0x100000, 16))
	badChecksum[0x1008]++

	cases := []struct {
		name   string
		kernel []byte
		cmd    string
		mods   []Module
		want   string
	}{
		{"empty", nil, "", nil, "unknown kernel format"},
		{"garbage", pattern(100, 0), "", nil, "unknown kernel format"},
		{"bad checksum, no PVH note", badChecksum, "", nil, "neither a multiboot header nor a PVH"},
		{"unknown required flag", unknownFlags, "", nil, "unsupported features"},
		{"mb non-ELF without kludge", append(mbHeaderBytes(0), 1, 2, 3), "", nil, "not ELF"},
		{"mb ELF64 without kludge", func() []byte {
			b := buildELF(64, 0x100000, []tSeg{load(0x100000, 64)})
			copy(b[0x1000:], mbHeaderBytes(0))
			return b
		}(), "", nil, "ELF64"},
		{"segment outside RAM", mb(load(testRAM-8, 16)), "", nil, "outside guest RAM"},
		{"segment wraps", mb(tSeg{typ: ptLoad, paddr: 0xfffffff0, data: pattern(16, 0), memsz: 0x20}), "", nil, "outside guest RAM"},
		{"segment in page 0", mb(load(0x800, 16)), "", nil, "page 0"},
		{"segment in legacy hole", mb(load(0xa0000, 16)), "", nil, "legacy hole"},
		{"overlapping segments", mb(load(0x100000, 0x100), load(0x100080, 0x100)), "", nil, "overlap"},
		{"phdrs past file", truncPh, "", nil, "program headers"},
		{"p_offset past file", badOff, "", nil, "past the"},
		{"p_filesz past file", bigFile, "", nil, "past the"},
		{"filesz > memsz", fileGtMem, "", nil, "p_filesz"},
		{"no PT_LOAD", pvh(0x100000), "", nil, "no PT_LOAD"},
		{"entry outside RAM", pvh(0x40000000, load(0x100000, 16)), "", nil, "entry point"},
		{"bad note", badNote, "", nil, "note runs past"},
		{"aout load_addr > header_addr", func() []byte {
			b := aoutImage(0, 0, 0x1000)
			copy(b[0x40:], mbHeaderBytes(1<<16, 0x200040, 0x200050, 0, 0, 0x200080))
			return b
		}(), "", nil, "load_addr"},
		{"aout header offset too small", func() []byte {
			b := aoutImage(0, 0, 0x1000)
			copy(b[0x40:], mbHeaderBytes(1<<16, 0x200040, 0x100000, 0, 0, 0x200080))
			return b
		}(), "", nil, "file offset"},
		{"aout load_end past file", aoutImage(0x210000, 0, 0x1000), "", nil, "past the"},
		{"aout bss below load end", aoutImage(0x200800, 0x200400, 0x1000), "", nil, "bss_end_addr"},
		{"aout load_end below load", aoutImage(0x100000, 0, 0x1000), "", nil, "load_end_addr"},
		{"aout header past 8K", func() []byte {
			b := make([]byte, 0x3000)
			copy(b[8192-12:], mbHeaderBytes(1<<16))
			return b
		}(), "", nil, "run past"},
		{"cmdline NUL", mb(load(0x100000, 16)), "a\x00b", nil, "NUL"},
		{"module cmdline NUL", mb(load(0x100000, 16)), "", []Module{{Cmdline: "\x00"}}, "NUL"},
		{"too many modules", mb(load(0x100000, 16)), "", make([]Module, MaxModules+1), "modules"},
		{"module too big", mb(load(0x100000, 16)), "", []Module{{Data: make([]byte, testRAM)}}, "module 0"},
		{"no room above kernel", mb(load(0x1ff000, 0x1000-12)), "", []Module{{Data: []byte{1}}}, "no free room"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, mem, v := newGuest(testRAM)
			_, err := Load(mem, v, c.kernel, c.cmd, c.mods)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if v.SRegsValid || v.Regs.RIP != 0 {
				t.Error("vCPU state changed on error")
			}
		})
	}
}

func TestE820(t *testing.T) {
	cases := []struct {
		size uint64
		want []E820Entry
	}{
		{0x80000, []E820Entry{{0, 0x80000, 1}, {0x9fc00, 0x60400, 2}}},
		{0x100000, []E820Entry{{0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}}},
		{64 << 20, wantE820(64 << 20)},
	}
	for _, c := range cases {
		got := E820(c.size)
		if len(got) != len(c.want) {
			t.Fatalf("E820(%#x) = %+v", c.size, got)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("E820(%#x)[%d] = %+v, want %+v", c.size, i, got[i], c.want[i])
			}
		}
	}
}
