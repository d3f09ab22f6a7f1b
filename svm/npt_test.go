package svm

import (
	"math/rand"
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
	t.Cleanup(func() { _ = ram[0] }) // keep the slice alive for the window
	return &vmm.Host{Mem: &mem, Frames: fr}
}

// walk translates gpa through nested tables at root the way the CPU does
// for a nested walk: four levels from bits 47:39, 38:30, 29:21, 20:12;
// every level must be present, writable and user (nested accesses are user
// accesses); PS at the PDPT or PD level ends the walk with a 1 GiB or 2 MiB
// page. Written from the APM, independently of mm.
func walk(t testing.TB, mem *phys.Mem, root, gpa uint64) (hpa, size uint64, ok bool) {
	t.Helper()
	table := root
	for level := 3; level >= 0; level-- {
		shift := 12 + 9*uint(level)
		idx := (gpa >> shift) & 0x1ff
		e, in := mem.Load64(table + idx*8)
		if !in {
			t.Fatalf("walk of %#x: table %#x outside host memory", gpa, table)
		}
		if e&1 == 0 {
			return 0, 0, false
		}
		if e&2 == 0 || e&4 == 0 {
			t.Fatalf("walk of %#x: level-%d entry %#x lacks W or U/S", gpa, level, e)
		}
		if e>>63 != 0 {
			t.Fatalf("walk of %#x: level-%d entry %#x is NX", gpa, level, e)
		}
		addr := e & 0x000f_ffff_ffff_f000
		if level == 0 || (level <= 2 && e&0x80 != 0) {
			if level == 3 {
				t.Fatalf("walk of %#x: PS in the PML4", gpa)
			}
			size = 1 << shift
			return addr&^(size-1) | gpa&(size-1), size, true
		}
		table = addr
	}
	return 0, 0, false
}

// fakeRAM is a guest RAM of size bytes at host-physical hpa. The NPT code
// never touches its host view, so even a large one costs only address
// space.
func fakeRAM(size uint64, hpa uint64) *vmm.GuestMemory {
	return vmm.NewGuestMemory(make([]byte, size), hpa)
}

func TestNPTMapsRAM(t *testing.T) {
	cases := []struct {
		name   string
		size   uint64
		hpa    uint64
		page1G bool
		// expected page size at some GPAs
		sizes map[uint64]uint64
	}{
		{"1G-aligned, 1 GiB pages", 1*gib + 6*mib + 12*kib, 4 * gib, true,
			map[uint64]uint64{0: gib, gib - 1: gib, gib: 2 * mib, gib + 4*mib: 2 * mib, gib + 6*mib: 4 * kib, gib + 6*mib + 8*kib: 4 * kib}},
		{"1G-aligned, 2 MiB pages only", 64*mib + 4*kib, 4 * gib, false,
			map[uint64]uint64{0: 2 * mib, 62 * mib: 2 * mib, 64 * mib: 4 * kib}},
		{"2M-aligned host address", 1*gib + 2*mib, 4*gib + 2*mib, true,
			map[uint64]uint64{0: 2 * mib, gib: 2 * mib}},
		{"4K-aligned host address", 8 * mib, 0x1234_5000, true,
			map[uint64]uint64{0: 4 * kib, 7*mib + 4*kib: 4 * kib}},
		{"size not page-aligned", 2*mib + 100, 4 * gib, false,
			map[uint64]uint64{0: 2 * mib}},
		{"small RAM", 12 * kib, 4 * gib, true, map[uint64]uint64{0: 4 * kib, 8 * kib: 4 * kib}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := testHost(t, 16*mib)
			free := host.Frames.FreeCount()
			mem := fakeRAM(c.size, c.hpa)
			n, err := NewNPT(host, mem, c.page1G)
			if err != nil {
				t.Fatal(err)
			}
			mapped := c.size &^ (4*kib - 1)
			if n.Mapped() != mapped {
				t.Fatalf("Mapped = %#x, want %#x", n.Mapped(), mapped)
			}
			// Every page, at its first and last byte and a random offset.
			rng := rand.New(rand.NewSource(int64(c.size)))
			for gpa := uint64(0); gpa < mapped; gpa += 4 * kib {
				for _, off := range []uint64{0, 4*kib - 1, uint64(rng.Intn(4 * kib))} {
					g := gpa + off
					hpa, _, ok := walk(t, host.Mem, n.Root(), g)
					if !ok || hpa != c.hpa+g {
						t.Fatalf("gpa %#x → %#x, %v; want %#x", g, hpa, ok, c.hpa+g)
					}
				}
			}
			for gpa, want := range c.sizes {
				if _, size, ok := walk(t, host.Mem, n.Root(), gpa); !ok || size != want {
					t.Errorf("gpa %#x: page size %#x (%v), want %#x", gpa, size, ok, want)
				}
				if hpa, size, ok := n.Lookup(gpa); !ok || size != want || hpa != c.hpa+gpa {
					t.Errorf("Lookup(%#x) = %#x, %#x, %v", gpa, hpa, size, ok)
				}
			}
			// Nothing outside RAM.
			for _, gpa := range []uint64{mapped, mapped + 1, mapped + 4*kib, c.size, mapped + 2*mib, mapped + gib,
				0xfec0_0000, 0xfee0_0000, 0xffff_fff0, 1 << 32, 1<<39 + 5, 1<<47 - 1, 1 << 47, 1<<52 - 1, ^uint64(0)} {
				if gpa < mapped {
					continue
				}
				if hpa, _, ok := walk(t, host.Mem, n.Root(), gpa&(1<<48-1)); ok && gpa&(1<<48-1) >= mapped {
					t.Errorf("gpa %#x outside RAM maps to %#x", gpa, hpa)
				}
			}
			n.Free()
			if got := host.Frames.FreeCount(); got != free {
				t.Errorf("Free leaked %d frames", int64(free)-int64(got))
			}
			n.Free() // idempotent
		})
	}
}

func TestNPTErrors(t *testing.T) {
	host := testHost(t, 4*mib)
	if _, err := NewNPT(host, fakeRAM(8*kib, 0x1000_0800), false); err == nil {
		t.Error("unaligned HPA accepted")
	}
	if _, err := NewNPT(nil, fakeRAM(8*kib, 0), false); err == nil {
		t.Error("nil host accepted")
	}
	if _, err := NewNPT(host, nil, false); err == nil {
		t.Error("nil memory accepted")
	}
	// Too little host memory for the tables of a large 4 KiB-mapped RAM.
	free := host.Frames.FreeCount()
	if _, err := NewNPT(host, fakeRAM(2*gib, 0x1000_1000), false); err == nil {
		t.Error("mapping 2 GiB in 4 KiB pages with 3 MiB of host frames succeeded")
	}
	if got := host.Frames.FreeCount(); got != free {
		t.Errorf("failed NewNPT leaked %d frames", int64(free)-int64(got))
	}
}
