package bootinfo

import (
	"reflect"
	"testing"

	"juice/mm/phys"
)

// fuzzParse runs Parse on a window made of data and checks the invariants
// and determinism.
func fuzzParse(t *testing.T, data []byte, eax, ebx uint32) {
	m := phys.FromSlice(data)
	a, b := new(Info), new(Info)
	st := Parse(&m, eax, ebx, a)
	checkInfo(t, a)
	if st2 := Parse(&m, eax, ebx, b); st2 != st || !reflect.DeepEqual(a, b) {
		t.Fatalf("Parse is not deterministic: %v vs %v", st, st2)
	}
	if st == StatusOK && a.MemSource == MemSourceNone {
		t.Fatal("StatusOK without a memory map")
	}
	if st == StatusOK && a.UsableRAM() == 0 {
		t.Fatal("StatusOK without RAM")
	}
}

func FuzzMultiboot2(f *testing.F) {
	add := func(s mb2Spec) {
		buf, ebx := s.build()
		f.Add(buf, ebx)
	}
	add(fullMB2())
	add(mb2Spec{totalSize: -1, tags: []mb2Tag{tag(17, efiMapBody(48, []efiDesc{{7, 0, 0x100}, {0, 0x50000, 1}, {3, 0x4000, 0x10}}))}})
	add(mb2Spec{totalSize: -1, tags: []mb2Tag{tag(6, mmapBody(32, qemuMap)), tag(18, nil)}})
	add(mb2Spec{totalSize: -1, tags: []mb2Tag{tag(6, mmapBody(24, []e820{{0, ^uint64(0), 1}, {0x1000, 0x1000, 2}, {1 << 53, 5, 1}}))}})
	add(mb2Spec{totalSize: -1, noEnd: true, tags: []mb2Tag{tag(1, cstr("x"))}})
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, ebx uint32) {
		fuzzParse(t, data, Multiboot2Magic, ebx)
	})
}

func FuzzPVH(f *testing.F) {
	add := func(s pvhSpec) {
		buf, ebx, _ := s.build()
		f.Add(buf, ebx)
	}
	s := newPVH()
	s.cmdline = "console=ttyS0"
	s.mods = []pvhMod{{start: 0x400000, size: 0x1000, cmdline: "mod"}}
	s.mem = qemuMap
	s.rsdp = 0xf5a30
	add(s)
	s.version = 0
	add(s)
	s = newPVH()
	s.mem = []e820{{0x100000, ^uint64(0), 1}, {0, 0x10000, 1}, {0x8000, 0x10, 5}}
	s.noCmdline = true
	add(s)
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, ebx uint32) {
		// Plant the magic so the fuzzer spends its time past detection.
		if uint64(ebx)+4 <= uint64(len(data)) {
			le.PutUint32(data[ebx:], PVHMagic)
		}
		fuzzParse(t, data, 0, ebx)
	})
}
