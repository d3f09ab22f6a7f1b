package launch

import (
	"strings"
	"testing"
)

func TestParseVMBench(t *testing.T) {
	underJuice := []string{
		"juice: vm bench: starting (16 MiB, 1 vCPU)",
		"[bench] bench: hypervisor juice, mmio reads the scratch device's id at 0xd0000000",
		"[bench] bench: operations per kind: 2000",
		"[bench] bench: the mmio register reads 0x6a756963",
		"[bench] bench: cpuid 72845 ticks/op",
		"[other] bench: cpuid 1 ticks/op",
		"[bench] bench: pio 78804 ticks/op",
		"[bench] bench: mmio 73181 ticks/op",
		"[bench] bench: hypercall 53583 ticks/op",
		"[bench] bench: total 590762318 ticks",
		"juice: vm bench: exited with status 0",
	}
	b, err := ParseVMBench(underJuice, GuestLinePrefix("bench"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"cpuid": 72845, "pio": 78804, "mmio": 73181, "hypercall": 53583}
	if !b.Juice || b.TotalTicks != 590762318 || len(b.TicksPerOp) != len(want) {
		t.Errorf("got %+v", b)
	}
	for k, v := range want {
		if b.TicksPerOp[k] != v {
			t.Errorf("%s = %v, want %v", k, b.TicksPerOp[k], v)
		}
	}

	bare := []string{
		"SeaBIOS (version 1.16.2)",
		"Booting from ROM..bench: no juice, mmio reads the HPET's capabilities at 0xfed00000",
		"bench: cpuid 48 ticks/op",
		"bench: pio 184 ticks/op",
		"bench: mmio 391 ticks/op ",
		"bench: hypercall skipped (not under juice)",
		"bench: total 3055544 ticks",
	}
	b, err = ParseVMBench(bare, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Juice || b.TotalTicks != 3055544 || len(b.TicksPerOp) != 3 || b.TicksPerOp["mmio"] != 391 {
		t.Errorf("bare: got %+v", b)
	}

	bad := []struct {
		name   string
		texts  []string
		prefix string
		errHas string
	}{
		{"no hypercall under juice", without(underJuice, "hypercall"), "[bench] ", `"bench: hypercall N ticks/op"`},
		{"no total", without(bare, "total"), "", `"bench: total T ticks"`},
		{"no cpuid", without(bare, "cpuid"), "", `"bench: cpuid N ticks/op"`},
		{"another VM's lines", underJuice, "[web] ", "lacks"},
		{"a failed check", append(bare[:2:2], "bench: FAIL: unexpected mmio value"), "", "FAIL"},
		{"unknown kind", append(bare[:2:2], "bench: rdtsc 5 ticks/op"), "", "unknown kind"},
		{"huge number", append(bare[:2:2], "bench: total 1"+strings.Repeat("0", 400)+" ticks"), "", "bad total"},
		{"nothing", nil, "", "lacks"},
	}
	for _, c := range bad {
		if _, err := ParseVMBench(c.texts, c.prefix); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: err = %v, want one with %q", c.name, err, c.errHas)
		}
	}
}

// without returns texts minus the lines containing s.
func without(texts []string, s string) []string {
	var out []string
	for _, t := range texts {
		if !strings.Contains(t, s) {
			out = append(out, t)
		}
	}
	return out
}

func TestVMExits(t *testing.T) {
	texts := []string{
		"juice: vm web: 17 exits, 3 heap allocations by juice while it ran",
		"juice: vm bench: exited with status 0",
		"juice: vm bench: 8325 exits, 4 heap allocations by juice while it ran",
	}
	if n, ok := VMExits(texts, "bench"); !ok || n != 8325 {
		t.Errorf("bench: %d, %v", n, ok)
	}
	if n, ok := VMExits(texts, "web"); !ok || n != 17 {
		t.Errorf("web: %d, %v", n, ok)
	}
	if _, ok := VMExits(texts, "db"); ok {
		t.Error("found a line for a VM that has none")
	}
	if _, ok := VMExits([]string{"juice: vm x: 99999999999999999999999 exits, "}, "x"); ok {
		t.Error("accepted an exit count beyond 64 bits")
	}
}

func TestTSCMHz(t *testing.T) {
	texts := []string{"cpu: SVM: NPT", "cpu: TSC 2099.356 MHz (from ACPI PM timer), timer one-shot"}
	if v, ok := TSCMHz(texts); !ok || v != 2099.356 {
		t.Errorf("TSCMHz = %v, %v", v, ok)
	}
	for _, bad := range [][]string{nil, {"cpu: TSC 0 MHz"}, {"cpu: TSC unknown"}, {"x cpu: TSC 100 MHz"}} {
		if v, ok := TSCMHz(bad); ok {
			t.Errorf("TSCMHz(%q) = %v", bad, v)
		}
	}
}
