package cpu

import "testing"

// The unprivileged instructions run in a normal process: check that the
// wrappers pass arguments and results the right way round.
func TestCPUIDVendor(t *testing.T) {
	a, b, c, d := CPUID(0, 0)
	if a == 0 {
		t.Fatalf("CPUID(0).EAX = 0, want the highest basic leaf")
	}
	v := string([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24),
		byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24),
		byte(c), byte(c >> 8), byte(c >> 16), byte(c >> 24)})
	for _, r := range v {
		if r < 0x20 || r > 0x7e {
			t.Fatalf("vendor %q is not printable: arguments or results swapped", v)
		}
	}
}

func TestRDTSCMonotonic(t *testing.T) {
	a := RDTSC()
	b := RDTSC()
	if b < a {
		t.Fatalf("TSC went back: %d then %d", a, b)
	}
}

func TestRDRAND(t *testing.T) {
	_, _, c, _ := CPUID(1, 0)
	if c&(1<<30) == 0 {
		t.Skip("no RDRAND on this host")
	}
	seen := map[uint64]bool{}
	for i := 0; i < 16; i++ {
		v, ok := RDRAND64()
		if ok {
			seen[v] = true
		}
	}
	if len(seen) < 8 {
		t.Fatalf("RDRAND gave %d distinct values in 16 tries", len(seen))
	}
}
