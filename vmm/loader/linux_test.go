package loader

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/vmm"
)

// bzOpts describes a synthetic bzImage; zero fields take Debian-6.1-like
// defaults from debianOpts.
type bzOpts struct {
	version     uint16
	setupSects  byte
	hdrJump     byte
	loadflags   byte
	xloadflags  uint16
	relocatable byte
	align       uint32
	pref        uint64
	initSize    uint32
	cmdlineSize uint32
	initrdMax   uint32
	pm          []byte // protected-mode part (padded to 16 bytes)
	trimBy      int    // drop this many bytes from the end of the file
}

// debianOpts mirrors the Debian 6.1 kernel's header (boot protocol 2.15)
// with a small protected-mode part and init_size.
func debianOpts() bzOpts {
	return bzOpts{
		version: 0x020f, setupSects: 39, hdrJump: 0x6a, loadflags: 0x01, xloadflags: 0x7f,
		relocatable: 1, align: 0x200000, pref: 0x1000000, initSize: 4 << 20,
		cmdlineSize: 2047, initrdMax: 0x7fffffff, pm: pattern(0x10000, 9),
	}
}

// buildBzImage writes a bzImage with the boot.rst setup-header layout.
func buildBzImage(o bzOpts) []byte {
	sects := int(o.setupSects)
	if sects == 0 {
		sects = 4
	}
	setup := make([]byte, (sects+1)*512)
	for i := range setup {
		setup[i] = byte(i * 13) // junk that must not leak into boot_params
	}
	pm := append([]byte(nil), o.pm...)
	for len(pm)%16 != 0 {
		pm = append(pm, 0)
	}
	setup[0x1f1] = o.setupSects
	le.PutUint32(setup[0x1f4:], uint32(len(pm)/16))
	setup[0x1fe], setup[0x1ff] = 0x55, 0xaa
	setup[0x200], setup[0x201] = 0xeb, o.hdrJump
	copy(setup[0x202:], "HdrS")
	le.PutUint16(setup[0x206:], o.version)
	setup[0x210] = 0
	setup[0x211] = o.loadflags
	le.PutUint32(setup[0x218:], 0)
	le.PutUint32(setup[0x21c:], 0)
	le.PutUint32(setup[0x228:], 0)
	le.PutUint32(setup[0x22c:], o.initrdMax)
	le.PutUint32(setup[0x230:], o.align)
	setup[0x234] = o.relocatable
	le.PutUint16(setup[0x236:], o.xloadflags)
	le.PutUint32(setup[0x238:], o.cmdlineSize)
	le.PutUint64(setup[0x250:], 0x1234) // setup_data: the loader must clear it
	le.PutUint64(setup[0x258:], o.pref)
	le.PutUint32(setup[0x260:], o.initSize)
	out := append(setup, pm...)
	return out[:len(out)-o.trimBy]
}

// walk translates va through the 4-level page tables at cr3 in ram, as the
// CPU does (4 KiB, 2 MiB and 1 GiB pages); ok is false on a not-present
// entry or a table outside RAM.
func walk(ram []byte, cr3, va uint64) (uint64, bool) {
	table := cr3 &^ 0xfff
	for level := 3; level >= 0; level-- {
		idx := (va >> (12 + 9*uint(level))) & 511
		at := table + 8*idx
		if at+8 > uint64(len(ram)) {
			return 0, false
		}
		e := le.Uint64(ram[at:])
		if e&1 == 0 {
			return 0, false
		}
		addr := e & 0x000ffffffffff000
		if level == 0 || (level <= 2 && e&(1<<7) != 0) {
			if level == 3 {
				return 0, false // PS in a PML4E is reserved
			}
			size := uint64(1) << (12 + 9*uint(level))
			return addr&^(size-1) | va&(size-1), true
		}
		table = addr
	}
	return 0, false
}

// desc is a decoded GDT descriptor.
type desc struct {
	base, limit    uint64
	typ            uint8
	s, p, l, db, g bool
}

func readDesc(ram []byte, at uint64) desc {
	d := le.Uint64(ram[at:])
	return desc{
		base:  (d>>16)&0xffffff | (d>>56)<<24,
		limit: d&0xffff | (d>>48&0xf)<<16,
		typ:   uint8(d >> 40 & 0xf),
		s:     d>>44&1 == 1, p: d>>47&1 == 1, l: d>>53&1 == 1, db: d>>54&1 == 1, g: d>>55&1 == 1,
	}
}

func TestLoadLinuxDebianLike(t *testing.T) {
	const ramSize = 64 << 20
	ram, mem, v := newGuest(ramSize)
	o := debianOpts()
	kernel := buildBzImage(o)
	initrd := pattern(3<<20+123, 5)
	cmd := "console=ttyS0 quiet"
	img, err := LoadLinux(mem, v, kernel, cmd, initrd)
	if err != nil {
		t.Fatal(err)
	}
	const kaddr = 0x1000000
	if img.Format != FormatLinux || img.Entry != kaddr+0x200 || img.BootInfo != LinuxZeroPage || img.KernelEnd != kaddr+4<<20 {
		t.Fatalf("image %+v", img)
	}
	// Kernel copied, rest of init_size zeroed.
	if !bytes.Equal(ram[kaddr:kaddr+len(o.pm)], o.pm) {
		t.Fatal("protected-mode kernel not at pref_address")
	}
	for i := kaddr + len(o.pm); i < kaddr+4<<20; i++ {
		if ram[i] != 0 {
			t.Fatalf("init_size region not zeroed at %#x", i)
		}
	}
	zp := ram[LinuxZeroPage : LinuxZeroPage+4096]
	// Setup header copied from 0x1f1 to 0x202+jump byte; nothing else.
	hdrEnd := 0x202 + int(o.hdrJump)
	for i := 0; i < 0x1f1; i++ {
		switch {
		case i >= 0xc0 && i < 0xcc, i == 0x1e8:
			continue // ext_ fields, e820_entries
		}
		if zp[i] != 0 {
			t.Fatalf("boot_params byte %#x = %#x, want 0", i, zp[i])
		}
	}
	for i := 0x1f1; i < hdrEnd; i++ {
		switch {
		case i == 0x210, i >= 0x218 && i < 0x220, i >= 0x228 && i < 0x22c, i >= 0x250 && i < 0x258:
			continue // fields the loader writes
		}
		if zp[i] != kernel[i] {
			t.Fatalf("setup header byte %#x = %#x, file has %#x", i, zp[i], kernel[i])
		}
	}
	for i := hdrEnd; i < 0x2d0; i++ {
		if zp[i] != 0 {
			t.Fatalf("boot_params byte %#x past the header = %#x, want 0", i, zp[i])
		}
	}
	if zp[0x210] != 0xff {
		t.Errorf("type_of_loader %#x", zp[0x210])
	}
	if p := le.Uint32(zp[0x228:]); p != LinuxCmdline || le.Uint32(zp[0xc8:]) != 0 || cstr(ram, uint64(p)) != cmd {
		t.Errorf("cmd_line_ptr %#x -> %q", p, cstr(ram, uint64(p)))
	}
	if le.Uint64(zp[0x250:]) != 0 {
		t.Error("setup_data not cleared")
	}
	ri, rs := uint64(le.Uint32(zp[0x218:]))|uint64(le.Uint32(zp[0xc0:]))<<32, uint64(le.Uint32(zp[0x21c:]))|uint64(le.Uint32(zp[0xc4:]))<<32
	if rs != uint64(len(initrd)) || ri%4096 != 0 || ri+rs > ramSize || ramSize-(ri+rs) >= 4096 {
		t.Fatalf("ramdisk %#x+%#x: want page-aligned, highest in %#x of RAM", ri, rs, ramSize)
	}
	if ri < img.KernelEnd {
		t.Fatalf("ramdisk %#x overlaps kernel up to %#x", ri, img.KernelEnd)
	}
	if !bytes.Equal(ram[ri:ri+rs], initrd) {
		t.Fatal("initrd contents")
	}
	// e820.
	want := E820(ramSize)
	if int(zp[0x1e8]) != len(want) {
		t.Fatalf("e820_entries %d", zp[0x1e8])
	}
	for i, w := range want {
		e := zp[0x2d0+20*i:]
		if got := (E820Entry{le.Uint64(e), le.Uint64(e[8:]), le.Uint32(e[16:])}); got != w {
			t.Errorf("e820[%d] = %+v, want %+v", i, got, w)
		}
	}

	// Entry state.
	s := v.SRegs
	if !v.SRegsValid || !v.SRegsDirty {
		t.Fatal("SRegs not valid/dirty")
	}
	if v.Regs.RIP != kaddr+0x200 || v.Regs.RSI != LinuxZeroPage || v.Regs.RFLAGS&(1<<9) != 0 || v.Regs.RFLAGS != 2 {
		t.Fatalf("regs %+v", v.Regs)
	}
	if s.CR0&1 == 0 || s.CR0&(1<<31) == 0 || s.CR4&(1<<5) == 0 || s.EFER&(1<<8) == 0 || s.EFER&(1<<10) == 0 {
		t.Fatalf("not in long mode: cr0 %#x cr4 %#x efer %#x", s.CR0, s.CR4, s.EFER)
	}
	if s.CS.Selector != 0x10 || s.CS.Attr&vmm.SegL == 0 || s.CS.Attr&vmm.SegDB != 0 || s.CS.Attr&0x8 == 0 {
		t.Fatalf("CS %+v", s.CS)
	}
	for _, sg := range []vmm.Segment{s.DS, s.ES, s.SS} {
		if sg.Selector != 0x18 || sg.Attr&0x8 != 0 || sg.Attr&0x2 == 0 || sg.Attr&vmm.SegP == 0 || sg.Base != 0 || sg.Limit != 0xffffffff {
			t.Fatalf("data segment %+v", sg)
		}
	}
	if s.TR.Attr&vmm.SegP == 0 || s.TR.Attr&0xf != 0xb {
		t.Fatalf("TR %+v", s.TR)
	}
	// GDT in RAM matches the hidden segment state.
	if s.GDTR.Base != LinuxGDT || s.GDTR.Limit < 0x1f {
		t.Fatalf("GDTR %+v", s.GDTR)
	}
	cs, ds := readDesc(ram, s.GDTR.Base+0x10), readDesc(ram, s.GDTR.Base+0x18)
	if cs != (desc{base: 0, limit: 0xfffff, typ: 0xb, s: true, p: true, l: true, g: true}) {
		t.Errorf("GDT[0x10] = %+v", cs)
	}
	if ds != (desc{base: 0, limit: 0xfffff, typ: 0x3, s: true, p: true, db: true, g: true}) {
		t.Errorf("GDT[0x18] = %+v", ds)
	}
	if tss := readDesc(ram, s.GDTR.Base+uint64(s.TR.Selector)); !tss.p || tss.s || tss.typ != 0xb || tss.limit != 0x67 {
		t.Errorf("TSS descriptor %+v", tss)
	}
	// Page tables: identity for all of [0, 4 GiB), in particular the
	// kernel's init_size region, boot_params and the command line.
	if s.CR3 < 0x1000 || s.CR3 >= LowMemEnd {
		t.Fatalf("CR3 %#x not in low RAM", s.CR3)
	}
	for _, va := range []uint64{0, LinuxZeroPage, LinuxCmdline + 5, kaddr, kaddr + 0x200, img.KernelEnd - 1, ri, ramSize - 1, 0xfee00000, 0xffffffff, 3<<30 + 12345} {
		if pa, ok := walk(ram, s.CR3, va); !ok || pa != va {
			t.Errorf("walk(%#x) = %#x, %v; want identity", va, pa, ok)
		}
	}
	for va := uint64(0); va < 1<<32; va += 2 << 20 {
		if pa, ok := walk(ram, s.CR3, va+0x1234); !ok || pa != va+0x1234 {
			t.Fatalf("walk(%#x) = %#x, %v", va+0x1234, pa, ok)
		}
	}
	if _, ok := walk(ram, s.CR3, 1<<32); ok {
		t.Error("4 GiB and above should not be mapped")
	}
	// Page tables, GDT, zero page and cmdline don't overlap each other.
	regions := [][2]uint64{{LinuxGDT, LinuxGDT + 0x30}, {LinuxZeroPage, LinuxZeroPage + 4096}, {s.CR3, s.CR3 + 6*4096}, {LinuxCmdline, LinuxCmdline + uint64(len(cmd)) + 1}}
	for i, a := range regions {
		for _, b := range regions[i+1:] {
			if a[0] < b[1] && b[0] < a[1] {
				t.Errorf("low regions %#x and %#x overlap", a, b)
			}
		}
	}
}

func TestLoadLinuxFallbackPlacement(t *testing.T) {
	// pref_address 64 MiB does not fit in 48 MiB: a relocatable kernel
	// goes to 16 MiB.
	_, mem, v := newGuest(48 << 20)
	o := debianOpts()
	o.pref = 64 << 20
	img, err := LoadLinux(mem, v, buildBzImage(o), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Entry != 16<<20+0x200 {
		t.Fatalf("entry %#x, want 16 MiB + 0x200", img.Entry)
	}
	// 12 MiB of RAM: 16 MiB does not fit either; 1 MiB aligned to 2 MiB.
	_, mem, v = newGuest(12 << 20)
	if img, err = LoadLinux(mem, v, buildBzImage(o), "", nil); err != nil || img.Entry != 2<<20+0x200 {
		t.Fatalf("img %+v err %v, want entry at 2 MiB + 0x200", img, err)
	}
	// Non-relocatable: only pref_address.
	o.relocatable = 0
	_, mem, v = newGuest(48 << 20)
	if _, err := LoadLinux(mem, v, buildBzImage(o), "", nil); err == nil || !strings.Contains(err.Error(), "kernel needs 4 MiB") {
		t.Fatalf("err %v", err)
	}
}

func TestLoadLinuxInitrdBelowKernel(t *testing.T) {
	// initrd_addr_max just past the kernel region end: the initrd cannot go
	// above the kernel and must go below it.
	_, mem, v := newGuest(64 << 20)
	o := debianOpts()
	o.initrdMax = 0x1000000 + 4<<20 + 0x1000 - 1
	ram := mem
	if _, err := LoadLinux(ram, v, buildBzImage(o), "", pattern(2<<20, 1)); err != nil {
		t.Fatal(err)
	}
	zp, _ := mem.Slice(LinuxZeroPage, 4096)
	ri := uint64(le.Uint32(zp[0x218:]))
	if ri != 0x1000000-2<<20 {
		t.Fatalf("ramdisk at %#x, want just below the kernel", ri)
	}
}

func TestLoadLinuxErrors(t *testing.T) {
	mod := func(f func(*bzOpts)) []byte {
		o := debianOpts()
		f(&o)
		return buildBzImage(o)
	}
	cases := []struct {
		name    string
		ram     int
		kernel  []byte
		cmdline string
		initrd  []byte
		want    string
	}{
		{"old protocol", 64 << 20, mod(func(o *bzOpts) { o.version = 0x020b }), "", nil, "boot protocol 2.11 is too old"},
		{"truncated", 64 << 20, mod(func(o *bzOpts) { o.trimBy = 100 }), "", nil, "truncated: setup says 86016 bytes (20480 setup + 65536 kernel), file has 85916"},
		{"setup only", 64 << 20, buildBzImage(debianOpts())[:20480], "", nil, "truncated: setup says"},
		{"tiny", 64 << 20, buildBzImage(debianOpts())[:0x210], "", nil, "truncated"},
		{"no 64-bit entry", 64 << 20, mod(func(o *bzOpts) { o.xloadflags = 0x7e }), "", nil, "XLF_KERNEL_64"},
		{"zImage", 64 << 20, mod(func(o *bzOpts) { o.loadflags = 0 }), "", nil, "LOADED_HIGH"},
		{"bad alignment", 64 << 20, mod(func(o *bzOpts) { o.align = 0x3000 }), "", nil, "kernel_alignment"},
		{"no init_size", 64 << 20, mod(func(o *bzOpts) { o.initSize = 0 }), "", nil, "init_size is 0"},
		{"bad header end", 64 << 20, mod(func(o *bzOpts) { o.hdrJump = 0x10 }), "", nil, "setup header end"},
		{"kernel too big", 64 << 20, mod(func(o *bzOpts) { o.initSize = 63 << 20 }), "", nil, "kernel needs 63 MiB (init_size)"},
		{"initrd too big", 64 << 20, buildBzImage(debianOpts()), "", make([]byte, 61<<20), "initrd of 61 MiB does not fit below 0x4000000 in 64 MiB of RAM"},
		{"initrd above max", 64 << 20, mod(func(o *bzOpts) { o.initrdMax = 0xfffff }), "", []byte{1}, "initrd of"},
		{"cmdline too long", 64 << 20, mod(func(o *bzOpts) { o.cmdlineSize = 4 }), "hello", nil, "at most 4 (cmdline_size)"},
		{"cmdline NUL", 64 << 20, buildBzImage(debianOpts()), "a\x00b", nil, "NUL"},
		{"tiny RAM", 512 << 10, buildBzImage(debianOpts()), "", nil, "KiB of RAM"},
		{"not bzImage", 64 << 20, []byte("MZ nothing here"), "", nil, "not a bzImage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ram, mem, v := newGuest(c.ram)
			before := sha256.Sum256(ram)
			_, err := LoadLinux(mem, v, c.kernel, c.cmdline, c.initrd)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if v.SRegsValid || v.Regs != (vmm.Regs{}) {
				t.Error("vCPU changed on error")
			}
			if sha256.Sum256(ram) != before {
				t.Error("guest RAM changed on error")
			}
		})
	}
	if _, err := LoadLinux(nil, &vmm.VCPU{}, nil, "", nil); err == nil {
		t.Error("nil memory accepted")
	}
}

func TestLoadDetectsBzImage(t *testing.T) {
	ram, mem, v := newGuest(64 << 20)
	img, err := Load(mem, v, buildBzImage(debianOpts()), "root=/dev/vda", []Module{{Data: []byte("abcde")}, {Data: []byte("xyz")}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != FormatLinux || v.Regs.RSI != LinuxZeroPage || v.SRegs.EFER&(1<<10) == 0 {
		t.Fatalf("img %+v regs %+v", img, v.Regs)
	}
	zp := ram[LinuxZeroPage:]
	ri, rs := le.Uint32(zp[0x218:]), le.Uint32(zp[0x21c:])
	if got := string(ram[ri : ri+rs]); got != "abcde\x00\x00\x00xyz" {
		t.Fatalf("joined initrd %q", got)
	}
	if cstr(ram, uint64(le.Uint32(zp[0x228:]))) != "root=/dev/vda" {
		t.Fatal("cmdline")
	}
}

// TestLoadLinuxHostKernel parses the host's real bzImage header when one
// is installed (skipped otherwise; the test never downloads anything).
// realKernels returns the bzImages of real kernels on this machine: the
// host's /boot/vmlinuz-* and the JeOS guest's (build/jeos, made by `juice
// jeos`, which `make test` runs first).
func realKernels() []string {
	files, _ := filepath.Glob("/boot/vmlinuz-*")
	if _, err := os.Stat("../../build/jeos/vmlinuz"); err == nil {
		files = append(files, "../../build/jeos/vmlinuz")
	}
	return files
}

// TestLoadLinuxRealKernels loads real bzImages: the header parses, the
// kernel loads with an initrd, a truncated copy and an initrd too big for
// the guest's RAM are refused with messages saying so.
func TestLoadLinuxRealKernels(t *testing.T) {
	files := realKernels()
	if len(files) == 0 {
		t.Skip("no real kernel here (/boot/vmlinuz-*, build/jeos/vmlinuz)")
	}
	for _, f := range files {
		k, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseLinuxHeader(k)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Logf("%s: protocol %#x init_size %s pref %#x align %#x", f, h.version, mibString(h.initSize), h.prefAddress, h.align)
		if h.version < 0x20c || h.align == 0 || h.initSize < uint64(len(k)) {
			t.Errorf("%s: implausible header %+v", f, h)
		}
		ramSize := int(h.prefAddress + h.initSize + 8<<20)
		ram, mem, v := newGuest(ramSize)
		img, err := LoadLinux(mem, v, k, "console=ttyS0", []byte("initrd"))
		if err != nil {
			t.Fatal(err)
		}
		if img.Entry != h.prefAddress+0x200 || string(ram[LinuxZeroPage+0x202:LinuxZeroPage+0x206]) != "HdrS" {
			t.Errorf("%s: entry %#x, boot_params header %q", f, img.Entry, ram[LinuxZeroPage+0x202:LinuxZeroPage+0x206])
		}
		_, mem, v = newGuest(ramSize)
		if _, err := LoadLinux(mem, v, k[:len(k)/2], "console=ttyS0", nil); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s cut in half: %v", f, err)
		}
		_, mem, v = newGuest(ramSize)
		if _, err := LoadLinux(mem, v, k, "", make([]byte, ramSize)); err == nil || !strings.Contains(err.Error(), "initrd") {
			t.Errorf("%s with an initrd as big as RAM: %v", f, err)
		}
	}
}

// TestLoadPVHRealVmlinux loads the JeOS guest's decompressed vmlinux by
// its PVH note, as juice boots it.
func TestLoadPVHRealVmlinux(t *testing.T) {
	k, err := os.ReadFile("../../build/jeos/vmlinux")
	if err != nil {
		t.Skip("no build/jeos/vmlinux (juice jeos makes it)")
	}
	ram, mem, v := newGuest(128 << 20)
	img, err := Load(mem, v, k, "console=ttyS0", []Module{{Data: []byte("initrd"), Cmdline: "initrd"}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != FormatPVH || img.Entry < 0x100000 || img.Entry >= img.KernelEnd || v.Regs.RIP != img.Entry || v.Regs.RBX != img.BootInfo {
		t.Fatalf("image %+v, RIP %#x RBX %#x", img, v.Regs.RIP, v.Regs.RBX)
	}
	if le.Uint32(ram[img.BootInfo:]) != pvhMagic {
		t.Error("no hvm_start_info at RBX")
	}
	// Too little RAM for the kernel: refused, not truncated.
	_, mem, v = newGuest(32 << 20)
	if _, err := Load(mem, v, k, "", nil); err == nil {
		t.Error("a 66 MB kernel loaded into 32 MiB of RAM")
	}
}

// FuzzLoadLinux feeds arbitrary images and initrds to LoadLinux: it must
// never panic, never write outside guest RAM, and a success must describe
// a consistent layout.
func FuzzLoadLinux(f *testing.F) {
	small := debianOpts()
	small.initSize = 1 << 20
	small.pm = pattern(0x800, 3)
	f.Add(buildBzImage(small), "console=ttyS0", []byte("initrd"))
	small.pref = 0
	small.setupSects = 0
	small.hdrJump = 0x62
	f.Add(buildBzImage(small), "", []byte{})
	small.relocatable = 0
	small.pref = 0x100000
	f.Add(buildBzImage(small), "x", pattern(5000, 1))
	f.Add(buildBzImage(small)[:0x300], "", []byte{})

	const ramSize = 24 << 20
	const guard = 4096
	buf := bytes.Repeat([]byte{0xa5}, ramSize+2*guard)
	f.Fuzz(func(t *testing.T, kernel []byte, cmdline string, initrd []byte) {
		ram := buf[guard : guard+ramSize : guard+ramSize]
		mem := vmm.NewGuestMemory(ram, 0)
		v := &vmm.VCPU{}
		img, err := LoadLinux(mem, v, kernel, cmdline, initrd)
		for i := range guard {
			if buf[i] != 0xa5 || buf[guard+ramSize+i] != 0xa5 {
				t.Fatalf("wrote outside guest RAM (guard byte %d)", i)
			}
		}
		if err != nil {
			return
		}
		zp := ram[LinuxZeroPage:]
		ri, rs := uint64(le.Uint32(zp[0x218:])), uint64(le.Uint32(zp[0x21c:]))
		kaddr := img.Entry - 0x200
		if img.KernelEnd > ramSize || kaddr < HighMemStart || v.Regs.RIP != img.Entry || !v.SRegsValid {
			t.Fatalf("bad image %+v", img)
		}
		if rs != uint64(len(initrd)) || (rs > 0 && (ri < HighMemStart || ri+rs > ramSize || (ri < img.KernelEnd && kaddr < ri+rs))) {
			t.Fatalf("ramdisk %#x+%#x vs kernel [%#x, %#x)", ri, rs, kaddr, img.KernelEnd)
		}
	})
}
