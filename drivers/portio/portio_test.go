package portio

import "testing"

func TestHas(t *testing.T) {
	var nilp *Ports
	if nilp.Has8() || nilp.Has16() || nilp.Has32() {
		t.Fatal("nil Ports reports primitives")
	}
	p := &Ports{In8: func(uint16) uint8 { return 0 }}
	if p.Has8() {
		t.Fatal("Has8 true with Out8 missing")
	}
	p.Out8 = func(uint16, uint8) {}
	p.In16 = func(uint16) uint16 { return 0 }
	p.Out16 = func(uint16, uint16) {}
	if !p.Has8() || !p.Has16() || p.Has32() {
		t.Fatalf("Has8/16/32 = %v %v %v, want true true false", p.Has8(), p.Has16(), p.Has32())
	}
	p.In32 = func(uint16) uint32 { return 0 }
	p.Out32 = func(uint16, uint32) {}
	if !p.Has32() {
		t.Fatal("Has32 false with both dword primitives")
	}
}
