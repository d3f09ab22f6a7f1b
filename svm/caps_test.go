package svm

import "testing"

// CPUID values are real dumps recorded in VirtualBox's CPU database
// (src/VBox/VMM/VMMR3/cpus/<CPU>.h, the 0x80000001 and 0x8000000a leaves,
// columns EAX EBX ECX EDX). VM_CR is 0 in those dumps' AMD_K8_VM_CR entries
// (SVM enabled by firmware).
const (
	// AMD Ryzen 7 1800X (Zen 1), AMD_Ryzen_7_1800X_Eight_Core.h.
	ryzenECX1 = 0x35c233ff
	ryzenEAXA = 0x00000001
	ryzenEBXA = 0x00008000 // 32768 ASIDs
	ryzenEDXA = 0x0001bcff // bits 0-7, 10-13, 15, 16

	// AMD Phenom II X6 1100T (family 10h), AMD_Phenom_II_X6_1100T.h.
	phenomECX1 = 0x000837ff
	phenomEAXA = 0x00000001
	phenomEBXA = 0x00000040 // 64 ASIDs
	phenomEDXA = 0x0000040f // NP, LbrVirt, SVML, NRIPS, PauseFilter

	// Intel Core i7-5600U: Fn8000_0001_ECX without SVM.
	intelECX1 = 0x00000121
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name               string
		ecx1, eax, ebx, ed uint32
		vmcr               uint64
		want               Caps
		str                string
	}{
		{"Ryzen 7 1800X", ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, 0, Caps{
			Present: true, NPT: true, LBRVirt: true, SVMLock: true, NRIPSave: true, TSCRate: true,
			VMCBClean: true, FlushByASID: true, DecodeAssists: true, PauseFilter: true, AVIC: true,
			VGIF: true, Revision: 1, NASID: 32768,
		}, "SVM: NPT, 32768 ASIDs, NRIP save, flush-by-ASID, decode assists, VMCB clean bits, TSC scaling, PAUSE filter, AVIC, vGIF, LBR virtualization"},
		{"Phenom II X6", phenomECX1, phenomEAXA, phenomEBXA, phenomEDXA, 0, Caps{
			Present: true, NPT: true, LBRVirt: true, SVMLock: true, NRIPSave: true, PauseFilter: true,
			Revision: 1, NASID: 64,
		}, "SVM: NPT, 64 ASIDs, NRIP save, PAUSE filter, LBR virtualization"},
		{"synthetic: the package example", 1 << 2, 1, 16, FeatureNP | FeatureNRIPS | FeatureFlushByAsid, 0, Caps{
			Present: true, NPT: true, NRIPSave: true, FlushByASID: true, Revision: 1, NASID: 16,
		}, "SVM: NPT, 16 ASIDs, NRIP save, flush-by-ASID"},
		{"synthetic: vNMI and no NPT", 1 << 2, 0x101, 8, FeatureVNMI, 0, Caps{
			Present: true, VNMI: true, Revision: 1, NASID: 8,
		}, "SVM: 8 ASIDs, vNMI"},
		{"disabled by firmware", ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, VMCRSVMDis | VMCRLock, func() Caps {
			c := Decode(ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, 0)
			c.DisabledByFirmware = true
			return c
		}(), "SVM: disabled by firmware"},
		{"other VM_CR bits do not disable", ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, VMCRLock | VMCRInterceptINIT | VMCRDisableDebugPort,
			Decode(ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, 0), "SVM: NPT, 32768 ASIDs, NRIP save, flush-by-ASID, decode assists, VMCB clean bits, TSC scaling, PAUSE filter, AVIC, vGIF, LBR virtualization"},
		{"absent (Intel)", intelECX1, 0xffffffff, 0xffffffff, 0xffffffff, VMCRSVMDis, Caps{}, "SVM: absent"},
	}
	for _, c := range cases {
		got := Decode(c.ecx1, c.eax, c.ebx, c.ed, c.vmcr)
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if s := got.String(); s != c.str {
			t.Errorf("%s: String %q\nwant %q", c.name, s, c.str)
		}
	}
}

func TestSupported(t *testing.T) {
	if !Supported(ryzenECX1) || Supported(intelECX1) || Supported(^uint32(1<<2)) {
		t.Fatal("Supported does not test Fn8000_0001_ECX bit 2")
	}
}

func TestAppendUint(t *testing.T) {
	for v, want := range map[uint32]string{0: "0", 7: "7", 10: "10", 32768: "32768", 4294967295: "4294967295"} {
		if got := string(appendUint(nil, v)); got != want {
			t.Errorf("appendUint(%d) = %q", v, got)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	var buf [200]byte
	if n := testing.AllocsPerRun(100, func() {
		c := Decode(ryzenECX1, ryzenEAXA, ryzenEBXA, ryzenEDXA, 0)
		_ = c.Append(buf[:0])
	}); n != 0 {
		t.Fatalf("Decode+Append allocate %v", n)
	}
}
