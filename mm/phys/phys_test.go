package phys

import "testing"

func TestWindow(t *testing.T) {
	buf := make([]byte, 4096)
	m := FromSlice(buf)
	if !m.Store64(8, 0x1122334455667788) {
		t.Fatal("store inside window refused")
	}
	if buf[8] != 0x88 || buf[15] != 0x11 {
		t.Fatalf("store did not land little-endian at pa 8: % x", buf[8:16])
	}
	if v, ok := m.Load32(12); !ok || v != 0x11223344 {
		t.Fatalf("Load32(12) = %#x, %v", v, ok)
	}
	for _, pa := range []uint64{4089, 4096, 1 << 63, ^uint64(0)} {
		if _, ok := m.Load64(pa); ok {
			t.Errorf("Load64(%#x) accepted outside a 4096-byte window", pa)
		}
	}
	if _, ok := m.Bytes(4000, 97); ok {
		t.Error("Bytes past the end accepted")
	}
	if _, ok := m.Bytes(^uint64(0)-1, 4); ok {
		t.Error("Bytes with wrapping range accepted")
	}
	b, ok := m.Bytes(4000, 96)
	if !ok || len(b) != 96 {
		t.Fatal("Bytes at the end refused")
	}
	b[0] = 7
	if buf[4000] != 7 {
		t.Fatal("Bytes does not alias the window")
	}
	m.Zero(0, 4096)
	if buf[8] != 0 || buf[4000] != 0 {
		t.Fatal("Zero left bytes behind")
	}
	if n := testing.AllocsPerRun(100, func() { m.Load64(16); m.Bytes(0, 10); m.Zero(0, 64) }); n != 0 {
		t.Fatalf("window accessors allocate: %v", n)
	}
}
