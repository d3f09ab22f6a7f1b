package svm

import "testing"

func TestASIDs(t *testing.T) {
	a := NewASIDs(8) // ASIDs 1..7
	seen := map[uint32]bool{}
	for i := 0; i < 7; i++ {
		id, reused, ok := a.Alloc()
		if !ok || id == 0 || id >= 8 || seen[id] || reused {
			t.Fatalf("Alloc %d = %d, %v, %v", i, id, reused, ok)
		}
		seen[id] = true
	}
	if _, _, ok := a.Alloc(); ok {
		t.Fatal("allocated past NASID-1")
	}
	if a.InUse() != 7 {
		t.Errorf("InUse = %d", a.InUse())
	}
	if !a.Free(5) || a.Free(5) || a.Free(0) || a.Free(8) || a.Free(1000) {
		t.Error("Free accepted a bad or double free, or refused a good one")
	}
	id, reused, ok := a.Alloc()
	if !ok || id != 5 || !reused {
		t.Errorf("re-Alloc = %d, %v, %v; want 5, reused", id, reused, ok)
	}
}

func TestASIDsLarge(t *testing.T) {
	a := NewASIDs(1 << 20) // capped at 65536
	n := 0
	for {
		id, _, ok := a.Alloc()
		if !ok {
			break
		}
		if id != uint32(n+1) {
			t.Fatalf("Alloc %d = %d", n, id)
		}
		n++
	}
	if n != maxASIDs-1 {
		t.Errorf("allocated %d ASIDs, want %d", n, maxASIDs-1)
	}
	// Freeing a low one makes it the next one again (hint moves down).
	a.Free(70)
	a.Free(3)
	if id, reused, _ := a.Alloc(); id != 3 || !reused {
		t.Errorf("Alloc after Free(3) = %d, %v", id, reused)
	}
	if id, _, _ := a.Alloc(); id != 70 {
		t.Errorf("Alloc after Free(70) = %d", id)
	}
}

func TestASIDsTooFew(t *testing.T) {
	for _, n := range []uint32{0, 1} {
		if _, _, ok := NewASIDs(n).Alloc(); ok {
			t.Errorf("NASID %d: allocated an ASID", n)
		}
	}
	if id, _, ok := NewASIDs(2).Alloc(); !ok || id != 1 {
		t.Error("NASID 2: no ASID 1")
	}
}

func TestFlushControl(t *testing.T) {
	if FlushControl(Caps{FlushByASID: true}) != 3 || FlushControl(Caps{}) != 1 {
		t.Error("wrong TLB_CONTROL values (APM: 3 flush this ASID, 1 flush all)")
	}
}
