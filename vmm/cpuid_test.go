package vmm

import (
	"encoding/binary"
	"testing"
)

func TestCPUIDPolicyIntel(t *testing.T) {
	tab := NewCPUIDTable(fakeCPUID(intelVendor), 4)
	if tab.Vendor() != VendorIntel {
		t.Fatalf("vendor %v", tab.Vendor())
	}
	type want struct {
		leaf, sub, apic    uint32
		eax, ebx, ecx, edx uint32
	}
	for _, w := range []want{
		// Leaf 0: max basic leaf capped at 0x1F, the host's vendor.
		{leaf: 0, eax: 0x1f, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69},
		// Leaf 1: the host reports everything; the guest gets the pass
		// list, the hypervisor bit, HTT (4 vCPUs), 4 logical IDs and its
		// APIC ID.
		{leaf: 1, apic: 3, eax: 0x000906ea, ebx: 0x03040000 | 0xff11,
			ecx: leaf1ECXPass | leaf1ECXHypervisor, edx: leaf1EDXPass | leaf1EDXHTT},
		// Leaf 4: cores per package and cache sharing follow the VM.
		{leaf: 4, sub: 0, eax: 1 | 1<<5 | 3<<26, ebx: 0x01c0003f, ecx: 0x3f},
		{leaf: 4, sub: 3, eax: 3 | 3<<5 | 3<<14 | 3<<26, ebx: 0x01c0003f, ecx: 0x3f},
		{leaf: 4, sub: 4},
		// Leaf 5, 6, 0xA, 0xD: hidden.
		{leaf: 5}, {leaf: 6}, {leaf: 0xa}, {leaf: 0xd}, {leaf: 0xd, sub: 1},
		// Leaf 7: max subleaf 0, masked features.
		{leaf: 7, ebx: leaf7EBXPass, ecx: leaf7ECXPass, edx: leaf7EDXPass},
		{leaf: 7, sub: 1},
		// Topology.
		{leaf: 0xb, sub: 0, apic: 2, eax: 0, ebx: 1, ecx: 0x100, edx: 2},
		{leaf: 0xb, sub: 1, apic: 2, eax: 2, ebx: 4, ecx: 0x201, edx: 2},
		{leaf: 0xb, sub: 2, apic: 2, ecx: 2, edx: 2},
		{leaf: 0x1f, sub: 1, apic: 1, eax: 2, ebx: 4, ecx: 0x201, edx: 1},
		{leaf: 0x1f, sub: 7, apic: 1, ecx: 7, edx: 1},
		// TSC information passes.
		{leaf: 0x15, eax: 2, ebx: 176, ecx: 24000000},
		{leaf: 0x16, eax: 2100, ebx: 4000, ecx: 100},
		// Leaves juice does not define read zero, also below the max.
		{leaf: 0x12}, {leaf: 0x14}, {leaf: 0x20}, {leaf: 0x3fffffff},
		// Hypervisor leaves.
		{leaf: 0x40000000, eax: 0x40000001, ebx: 0x6369756a, ecx: 0x69756a65, edx: 0x56486563},
		{leaf: 0x40000001, eax: 1},
		{leaf: 0x40000002}, {leaf: 0x40000100},
		// Extended leaves.
		{leaf: 0x80000000, eax: 0x80000008, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69},
		{leaf: 0x80000001, eax: 0x00a00f11, ebx: 0x20000000, ecx: leaf81ECXPass, edx: leaf81EDXPass},
		{leaf: 0x80000005, eax: 0x11223344, ebx: 0x55667788, ecx: 0x99aabbcc, edx: 0xddeeff00},
		{leaf: 0x80000007, edx: 1 << 8},
		{leaf: 0x80000008, eax: 0x3030}, // Intel: ECX reserved
		{leaf: 0x8000000a}, {leaf: 0x8000001f}, {leaf: 0x80000021}, {leaf: 0xffffffff},
	} {
		a, b, c, d := tab.Lookup(w.apic, w.leaf, w.sub)
		if a != w.eax || b != w.ebx || c != w.ecx || d != w.edx {
			t.Errorf("leaf %#x.%d (APIC %d) = %#x %#x %#x %#x, want %#x %#x %#x %#x",
				w.leaf, w.sub, w.apic, a, b, c, d, w.eax, w.ebx, w.ecx, w.edx)
		}
	}
	// The signature spells juicejuiceHV.
	var sig [12]byte
	_, b, c, d := tab.Lookup(0, CPUIDHypervisorBase, 0)
	binary.LittleEndian.PutUint32(sig[0:], b)
	binary.LittleEndian.PutUint32(sig[4:], c)
	binary.LittleEndian.PutUint32(sig[8:], d)
	if string(sig[:]) != HypervisorSignature || HypervisorSignature != "juicejuiceHV" {
		t.Fatalf("signature %q", sig)
	}
	// The brand string passes.
	var brand [48]byte
	for i := uint32(0); i < 3; i++ {
		a, b, c, d := tab.Lookup(0, 0x80000002+i, 0)
		for j, r := range []uint32{a, b, c, d} {
			binary.LittleEndian.PutUint32(brand[i*16+uint32(j)*4:], r)
		}
	}
	if string(brand[:18]) != "Fake CPU @ 1.00GHz" {
		t.Fatalf("brand %q", brand)
	}
}

// TestCPUIDHiddenFeatures names the features the policy must never pass.
func TestCPUIDHiddenFeatures(t *testing.T) {
	tab := NewCPUIDTable(fakeCPUID(amdVendor), 1)
	for _, f := range []struct {
		name       string
		leaf       uint32
		reg, bit   uint8
		wantSet    bool
		subleafArg uint32
	}{
		{"VMX", 1, 2, 5, false, 0},
		{"MONITOR", 1, 2, 3, false, 0},
		{"PCID", 1, 2, 17, false, 0},
		{"x2APIC", 1, 2, 21, false, 0},
		{"TSC-deadline", 1, 2, 24, false, 0},
		{"XSAVE", 1, 2, 26, false, 0},
		{"OSXSAVE", 1, 2, 27, false, 0},
		{"AVX", 1, 2, 28, false, 0},
		{"hypervisor", 1, 2, 31, true, 0},
		{"SSE4.2", 1, 2, 20, true, 0},
		{"MCE", 1, 3, 7, false, 0},
		{"APIC", 1, 3, 9, true, 0},
		{"HTT with 1 vCPU", 1, 3, 28, false, 0},
		{"AVX2", 7, 1, 5, false, 0},
		{"INVPCID", 7, 1, 10, false, 0},
		{"RTM", 7, 1, 11, false, 0},
		{"AVX-512F", 7, 1, 16, false, 0},
		{"SMEP", 7, 1, 7, true, 0},
		{"TSC_ADJUST", 7, 1, 1, false, 0},
		{"PKU", 7, 2, 3, false, 0},
		{"LA57", 7, 2, 16, false, 0},
		{"RDPID", 7, 2, 22, false, 0},
		{"IBRS/IBPB", 7, 3, 26, false, 0},
		{"ARCH_CAPABILITIES", 7, 3, 29, false, 0},
		{"SVM", 0x80000001, 2, 2, false, 0},
		{"OSVW", 0x80000001, 2, 9, false, 0},
		{"TOPOEXT", 0x80000001, 2, 22, false, 0},
		{"RDTSCP", 0x80000001, 3, 27, false, 0},
		{"FFXSR", 0x80000001, 3, 25, false, 0},
		{"NX", 0x80000001, 3, 20, true, 0},
		{"LM", 0x80000001, 3, 29, true, 0},
	} {
		if got := tab.Has(f.leaf, f.subleafArg, f.reg, f.bit); got != f.wantSet {
			t.Errorf("%s: present %v, want %v", f.name, got, f.wantSet)
		}
	}
	// AMD reports its core count in 8000_0008.ECX.
	if _, _, c, _ := tab.Lookup(0, 0x80000008, 0); c != 0 {
		t.Errorf("1 vCPU: 8000_0008.ECX %#x", c)
	}
	tab = NewCPUIDTable(fakeCPUID(amdVendor), 6)
	if _, _, c, _ := tab.Lookup(0, 0x80000008, 0); c != 5|3<<12 {
		t.Errorf("6 vCPUs: 8000_0008.ECX %#x, want 5 | 3<<12", c)
	}
	if _, b, _, _ := tab.Lookup(5, 1, 0); b>>16 != 0x0508 {
		t.Errorf("leaf 1 EBX %#x: want APIC ID 5, 8 addressable IDs", b)
	}
}

// TestCPUIDOldHost: a host with few leaves still gets leaf 0xB, no 0x1F,
// and no host values past the host's maximum (Intel CPUs would repeat
// their highest leaf there).
func TestCPUIDOldHost(t *testing.T) {
	host := func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
		switch leaf {
		case 0:
			return 5, 0x756e6547, 0x6c65746e, 0x49656e69
		case 0x80000000:
			return 0x80000004, 0, 0, 0
		}
		return 0x11111111, 0x22222222, 0x33333333, 0x44444444 // the "highest leaf" data
	}
	tab := NewCPUIDTable(host, 2)
	if a, _, _, _ := tab.Lookup(0, 0, 0); a != 0xb {
		t.Fatalf("max basic %#x, want 0xb", a)
	}
	for _, leaf := range []uint32{6, 7, 0xa, 0x15, 0x1f, 0x80000005, 0x80000008} {
		a, b, c, d := tab.Lookup(0, leaf, 0)
		if a|b|c|d != 0 {
			t.Errorf("leaf %#x = %#x %#x %#x %#x, want zeros", leaf, a, b, c, d)
		}
	}
	if _, b, _, _ := tab.Lookup(1, 0xb, 1); b != 2 {
		t.Errorf("0xB core level: %d logical processors", b)
	}
	if a, _, _, _ := tab.Lookup(0, 0x80000000, 0); a != 0x80000004 {
		t.Errorf("max extended %#x", a)
	}
	// No extended leaves at all.
	tab = NewCPUIDTable(func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
		if leaf == 0 {
			return 1, 0, 0, 0
		}
		return 0, 0, 0, 0
	}, 1)
	if a, _, _, _ := tab.Lookup(0, 0x80000000, 0); a != 0 || tab.Vendor() != VendorOther {
		t.Errorf("extended leaves on a host without them: %#x", a)
	}
}

func TestCPUIDLookupAllocationFree(t *testing.T) {
	tab := NewCPUIDTable(fakeCPUID(intelVendor), 8)
	if n := testing.AllocsPerRun(100, func() {
		for leaf := uint32(0); leaf < 0x22; leaf++ {
			tab.Lookup(3, leaf, 1)
			tab.Lookup(3, 0x80000000+leaf, 0)
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	if len(tab.Entries()) < 20 {
		t.Fatalf("%d entries", len(tab.Entries()))
	}
}
