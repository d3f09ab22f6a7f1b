package mkguest

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"juice/vmm"
	"juice/vmm/devices"
)

// guest.h's scratch-device constants are juice's (vmm/devices).
func TestScratchConstants(t *testing.T) {
	src, err := os.ReadFile("../guest.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"SCRATCH_BASE":  devices.ScratchBase,
		"SCRATCH_SIZE":  devices.ScratchSize,
		"SCRATCH_ID":    devices.ScratchID,
		"SCRATCH_ADD":   devices.ScratchRegAdd,
		"SCRATCH_DATA":  devices.ScratchRegData,
		"SCRATCH_SUM":   devices.ScratchRegSum,
		"SCRATCH_COUNT": devices.ScratchRegCount,
	}
	for name, v := range want {
		m := regexp.MustCompile(`(?m)^#define ` + name + ` (0x[0-9a-fA-F]+|[0-9]+)$`).FindSubmatch(src)
		if m == nil {
			t.Errorf("guest.h does not define %s", name)
			continue
		}
		got, err := strconv.ParseUint(string(m[1]), 0, 64)
		if err != nil || got != v {
			t.Errorf("guest.h: %s is %s, juice's is %#x", name, m[1], v)
		}
	}
}

// The bench guest recognises juice by the signature juice's core returns.
func TestBenchSignature(t *testing.T) {
	src, err := os.ReadFile("../bench_386.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^var benchSignature = "([^"]*)"$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no benchSignature in bench_386.go")
	}
	if string(m[1]) != vmm.HypervisorSignature {
		t.Errorf("bench guest looks for %q, juice returns %q", m[1], vmm.HypervisorSignature)
	}
	if len(m[1]) != 12 {
		t.Errorf("bench guest compares 12 bytes with a %d-byte signature", len(m[1]))
	}
}
