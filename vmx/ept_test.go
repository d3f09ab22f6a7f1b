package vmx

import (
	"math/rand"
	"strings"
	"sync"
	"testing"

	"juice/mm"
	"juice/mm/phys"
	"juice/vmm"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// testHost is simulated host RAM (host-physical address = offset) with a
// frame allocator over it; the first MiB is reserved.
func testHost(t testing.TB, size int) *vmm.Host {
	t.Helper()
	ram := make([]byte, size)
	mem := phys.FromSlice(ram)
	fr := new(mm.Frames)
	if st := fr.Init(&mem, []mm.Range{{Base: 0, End: uint64(size)}}, []mm.Range{{Base: 0, End: mib}}); st != mm.OK {
		t.Fatalf("Frames.Init: %v", st)
	}
	t.Cleanup(func() { _ = ram[0] })
	return &vmm.Host{Mem: &mem, Frames: fr}
}

// fakeRAM is guest RAM of size bytes (at most 4 GiB) at host-physical
// hpa. The EPT code never touches its host view, so every fake RAM shares
// one lazily allocated, never written 4 GiB slice: untouched, it costs
// address space only (a fresh make of gigabytes per case would have the
// runtime clear reused memory).
func fakeRAM(size, hpa uint64) *vmm.GuestMemory {
	bigRAMOnce.Do(func() { bigRAM = make([]byte, 4*gib) })
	return vmm.NewGuestMemory(bigRAM[:size:size], hpa)
}

var (
	bigRAMOnce sync.Once
	bigRAM     []byte
)

// eptWalk translates gpa through the EPT at root the way the CPU does
// (SDM 29.3.2), written from the SDM independently of ept.go: four levels
// indexed by GPA bits 47:39, 38:30, 29:21, 20:12; an entry is present when
// any of bits 2:0 is set; bit 7 in a PDPTE or PDE ends the walk with a
// 1 GiB or 2 MiB page. It checks every entry's format on the way: tables
// are RWX with bits 7:3 clear; leaves are RWX, write-back (bits 5:3 = 6),
// do not ignore PAT, have A (bit 8) and D (bit 9) exactly when ad, and
// their address is aligned to the page size with bits 63:52 clear.
func eptWalk(t testing.TB, mem *phys.Mem, root, gpa uint64, ad bool) (hpa, size uint64, ok bool) {
	t.Helper()
	table := root
	for level := 4; level >= 1; level-- {
		shift := 12 + 9*uint(level-1)
		e, in := mem.Load64(table + (gpa>>shift)&0x1ff*8)
		if !in {
			t.Fatalf("walk of %#x: table %#x outside host memory", gpa, table)
		}
		if e&7 == 0 {
			if e != 0 {
				t.Fatalf("walk of %#x: non-present level-%d entry %#x has bits set", gpa, level, e)
			}
			return 0, 0, false
		}
		if e&7 != 7 {
			t.Fatalf("walk of %#x: level-%d entry %#x is not RWX", gpa, level, e)
		}
		if e>>52 != 0 {
			t.Fatalf("walk of %#x: level-%d entry %#x has bits 63:52 set", gpa, level, e)
		}
		leaf := level == 1 || ((level == 2 || level == 3) && e&0x80 != 0)
		if !leaf {
			if e&0xf8 != 0 {
				t.Fatalf("walk of %#x: level-%d table entry %#x has bits 7:3 set", gpa, level, e)
			}
			if (e&0x100 != 0) != ad || e&0x200 != 0 {
				t.Fatalf("walk of %#x: level-%d table entry %#x: accessed/dirty wrong (A/D %v)", gpa, level, e, ad)
			}
			table = e & 0x000f_ffff_ffff_f000
			continue
		}
		if level == 4 {
			t.Fatalf("walk of %#x: large page in the PML4", gpa)
		}
		if (e>>3)&7 != 6 {
			t.Fatalf("walk of %#x: leaf %#x memory type %d, want WB", gpa, e, (e>>3)&7)
		}
		if e&0x40 != 0 {
			t.Fatalf("walk of %#x: leaf %#x ignores PAT", gpa, e)
		}
		if (e&0x100 != 0) != ad || (e&0x200 != 0) != ad {
			t.Fatalf("walk of %#x: leaf %#x accessed/dirty wrong (A/D %v)", gpa, e, ad)
		}
		if e&0xc00 != 0 {
			t.Fatalf("walk of %#x: leaf %#x has bits 11:10 set", gpa, e)
		}
		size = 1 << shift
		addr := e & 0x000f_ffff_ffff_f000
		if addr&(size-1) != 0 {
			t.Fatalf("walk of %#x: leaf %#x address not aligned to %#x", gpa, e, size)
		}
		return addr | gpa&(size-1), size, true
	}
	return 0, 0, false
}

func TestEPTMapsRAM(t *testing.T) {
	cases := []struct {
		name  string
		size  uint64
		hpa   uint64
		opt   EPTOptions
		sizes map[uint64]uint64 // expected page size at some GPAs
	}{
		{"1G-aligned, 1 GiB pages", 1*gib + 6*mib + 12*kib, 4 * gib, EPTOptions{Page2M: true, Page1G: true},
			map[uint64]uint64{0: gib, gib - 1: gib, gib: 2 * mib, gib + 4*mib: 2 * mib, gib + 6*mib: 4 * kib, gib + 6*mib + 8*kib: 4 * kib}},
		{"1 GiB pages with A/D", 2 * gib, 8 * gib, EPTOptions{Page2M: true, Page1G: true, AccessDirty: true},
			map[uint64]uint64{0: gib, gib: gib, 2*gib - 1: gib}},
		{"2 MiB pages only", 64*mib + 4*kib, 4 * gib, EPTOptions{Page2M: true},
			map[uint64]uint64{0: 2 * mib, 62 * mib: 2 * mib, 64 * mib: 4 * kib}},
		{"1G allowed, 2M not", gib + 2*mib, 4 * gib, EPTOptions{Page1G: true},
			map[uint64]uint64{0: gib, gib: 4 * kib, gib + 2*mib - 1: 4 * kib}},
		{"4 KiB pages only", 6 * mib, 4 * gib, EPTOptions{},
			map[uint64]uint64{0: 4 * kib, 2 * mib: 4 * kib}},
		{"2M-aligned host address", 1*gib + 2*mib, 4*gib + 2*mib, EPTOptions{Page2M: true, Page1G: true},
			map[uint64]uint64{0: 2 * mib, gib: 2 * mib}},
		{"4K-aligned host address", 8 * mib, 0x1234_5000, EPTOptions{Page2M: true, Page1G: true, AccessDirty: true},
			map[uint64]uint64{0: 4 * kib, 7*mib + 4*kib: 4 * kib}},
		{"size not page-aligned", 2*mib + 100, 4 * gib, EPTOptions{Page2M: true},
			map[uint64]uint64{0: 2 * mib}},
		{"small RAM", 12 * kib, 4 * gib, EPTOptions{Page2M: true, Page1G: true},
			map[uint64]uint64{0: 4 * kib, 8 * kib: 4 * kib}},
		{"RAM above 512 GiB", 3 * gib, 1<<39 + 4*gib, EPTOptions{Page2M: true, Page1G: true},
			map[uint64]uint64{0: gib, 2 * gib: gib}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := testHost(t, 16*mib)
			free := host.Frames.FreeCount()
			e, err := NewEPT(host, fakeRAM(c.size, c.hpa), c.opt)
			if err != nil {
				t.Fatal(err)
			}
			mapped := c.size &^ (4*kib - 1)
			if e.Mapped() != mapped {
				t.Fatalf("Mapped = %#x, want %#x", e.Mapped(), mapped)
			}
			if used := free - host.Frames.FreeCount(); used != e.TableFrames() || used == 0 {
				t.Errorf("TableFrames %d, frames used %d", e.TableFrames(), used)
			}
			// EPTP: WB (6), 4-level walk (3 in bits 5:3), A/D bit 6.
			wantP := e.Root() | 6 | 3<<3
			if c.opt.AccessDirty {
				wantP |= 1 << 6
			}
			if e.EPTP() != wantP || e.Root()&0xfff != 0 || e.Root() == 0 {
				t.Errorf("EPTP = %#x, want %#x", e.EPTP(), wantP)
			}
			// Every 4 KiB page, at its first and last byte and a random offset.
			rng := rand.New(rand.NewSource(int64(c.size)))
			for gpa := uint64(0); gpa < mapped; gpa += 4 * kib {
				for _, off := range []uint64{0, 4*kib - 1, uint64(rng.Intn(4 * kib))} {
					g := gpa + off
					hpa, size, ok := eptWalk(t, host.Mem, e.Root(), g, c.opt.AccessDirty)
					if !ok || hpa != c.hpa+g {
						t.Fatalf("gpa %#x → %#x, %v; want %#x", g, hpa, ok, c.hpa+g)
					}
					if (size == gib && !c.opt.Page1G) || (size == 2*mib && !c.opt.Page2M) {
						t.Fatalf("gpa %#x mapped with a %#x page the options forbid", g, size)
					}
					if lh, ls, lok := e.Lookup(g); !lok || lh != hpa || ls != size {
						t.Fatalf("Lookup(%#x) = %#x %#x %v, walk %#x %#x", g, lh, ls, lok, hpa, size)
					}
				}
			}
			for gpa, want := range c.sizes {
				if _, size, ok := eptWalk(t, host.Mem, e.Root(), gpa, c.opt.AccessDirty); !ok || size != want {
					t.Errorf("gpa %#x: page size %#x (%v), want %#x", gpa, size, ok, want)
				}
			}
			// Nothing outside RAM.
			for _, gpa := range []uint64{mapped, mapped + 1, mapped + 4*kib, c.size, mapped + 2*mib, mapped + gib,
				0xfec0_0000, 0xfee0_0000, 0xffff_fff0, 1 << 32, 1<<39 + 5, 1<<47 - 1, 1<<48 - 1} {
				if gpa < mapped {
					continue
				}
				if hpa, _, ok := eptWalk(t, host.Mem, e.Root(), gpa, c.opt.AccessDirty); ok {
					t.Errorf("gpa %#x outside RAM maps to %#x", gpa, hpa)
				}
				if _, _, ok := e.Lookup(gpa); ok {
					t.Errorf("Lookup(%#x) outside RAM succeeded", gpa)
				}
			}
			if _, _, ok := e.Lookup(1 << 48); ok {
				t.Error("Lookup beyond 48 bits succeeded")
			}
			e.Close()
			if got := host.Frames.FreeCount(); got != free {
				t.Errorf("Close leaked %d frames", int64(free)-int64(got))
			}
			if e.Root() != 0 || e.Mapped() != 0 || e.TableFrames() != 0 {
				t.Error("Close left state behind")
			}
			if _, _, ok := e.Lookup(0); ok {
				t.Error("Lookup after Close succeeded")
			}
			e.Close() // idempotent
			if got := host.Frames.FreeCount(); got != free {
				t.Error("second Close changed the free count")
			}
		})
	}
}

func TestEPTErrors(t *testing.T) {
	host := testHost(t, 4*mib)
	if _, err := NewEPT(host, fakeRAM(8*kib, 0x1000_0800), EPTOptions{}); err == nil {
		t.Error("unaligned HPA accepted")
	}
	if _, err := NewEPT(nil, fakeRAM(8*kib, 0), EPTOptions{}); err == nil {
		t.Error("nil host accepted")
	}
	if _, err := NewEPT(&vmm.Host{}, fakeRAM(8*kib, 0), EPTOptions{}); err == nil {
		t.Error("empty host accepted")
	}
	if _, err := NewEPT(host, nil, EPTOptions{}); err == nil {
		t.Error("nil memory accepted")
	}
	if _, err := NewEPT(host, fakeRAM(8*kib, 1<<52-4*kib), EPTOptions{}); err == nil {
		t.Error("RAM past 52-bit host addresses accepted")
	}
	// Too little host memory for the tables of a large 4 KiB-mapped RAM:
	// everything taken is given back.
	free := host.Frames.FreeCount()
	if _, err := NewEPT(host, fakeRAM(2*gib, 0x1000_1000), EPTOptions{Page2M: true, Page1G: true}); err == nil {
		t.Error("mapping 2 GiB in 4 KiB pages with 3 MiB of host frames succeeded")
	}
	if got := host.Frames.FreeCount(); got != free {
		t.Errorf("failed NewEPT leaked %d frames", int64(free)-int64(got))
	}
	// No frame at all for the PML4.
	for host.Frames.FreeCount() > 0 {
		if _, ok := host.Frames.Alloc(); !ok {
			break
		}
	}
	if _, err := NewEPT(host, fakeRAM(8*kib, 0), EPTOptions{}); err == nil {
		t.Error("NewEPT without frames succeeded")
	}
}

func TestEPTEmptyRAM(t *testing.T) {
	host := testHost(t, 2*mib)
	free := host.Frames.FreeCount()
	e, err := NewEPT(host, fakeRAM(100, 0x20_0000), EPTOptions{Page2M: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.Mapped() != 0 || e.TableFrames() != 1 {
		t.Errorf("Mapped %d, tables %d", e.Mapped(), e.TableFrames())
	}
	if _, _, ok := e.Lookup(0); ok {
		t.Error("a sub-page RAM is mapped")
	}
	e.Close()
	if host.Frames.FreeCount() != free {
		t.Error("leak")
	}
}

func TestEPTOptionsFor(t *testing.T) {
	cpus := map[string]MSRs{}
	for _, c := range loadCPUs(t) {
		cpus[c.name] = c.m
	}
	ecx := uint32(CPUID1ECXVMX)
	for _, c := range []struct {
		cpu  string
		want EPTOptions
		err  bool
	}{
		{"broadwell", EPTOptions{Page2M: true, Page1G: true}, false},
		{"sandybridge", EPTOptions{Page2M: true}, false},
		{"skylake", EPTOptions{Page2M: true, Page1G: true}, false},
		{"bochs-skylake-x", EPTOptions{Page2M: true, Page1G: true}, false},
		{"core2", EPTOptions{}, true},
		{"no-ept", EPTOptions{}, true},
	} {
		m := cpus[c.cpu]
		got, err := EPTOptionsFor(Decode(ecx, &m))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: %+v, %v", c.cpu, got, err)
		}
	}
	m := cpus["broadwell"]
	m.EPTVPIDCap &^= 1 << 6
	if _, err := EPTOptionsFor(Decode(ecx, &m)); err == nil || !strings.Contains(err.Error(), "4-level") {
		t.Errorf("no 4-level walk: %v", err)
	}
	m = cpus["broadwell"]
	m.EPTVPIDCap &^= 1 << 14
	if _, err := EPTOptionsFor(Decode(ecx, &m)); err == nil || !strings.Contains(err.Error(), "write-back") {
		t.Errorf("no WB: %v", err)
	}
}
