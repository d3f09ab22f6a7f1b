package vmx

import "testing"

// MSR values below are real dumps recorded in VirtualBox's CPU database
// (src/VBox/VMM/VMMR3/cpus/<CPU>.h, "value=" of each IA32_VMX_* entry);
// the CPUID.01H:ECX values come from the same files. Where a file does not
// record IA32_FEATURE_CONTROL, 0x5 (locked, VMX outside SMX enabled: what
// firmware with VT-x switched on leaves) is assumed and said so.

// Intel Core i7-5600U (Broadwell), Intel_Core_i7_5600U.h.
var broadwell = MSRs{
	FeatureControl: 0x5,
	Basic:          0xda040000000012,
	Pinbased:       0x7f00000016,
	Procbased:      0xfff9fffe0401e172,
	Exit:           0x7fffff00036dff,
	Entry:          0xffff000011ff,
	Misc:           0x300481e5,
	Cr0Fixed0:      0x80000021,
	Cr0Fixed1:      0xffffffff,
	Cr4Fixed0:      0x2000,
	Cr4Fixed1:      0x3767ff,
	Procbased2:     0x57cff00000000,
	EPTVPIDCap:     0xf0106334141,
	TruePinbased:   0x7f00000016,
	TrueProcbased:  0xfff9fffe04006172,
	TrueExit:       0x7fffff00036dfb,
	TrueEntry:      0xffff000011fb,
}

const broadwellECX = 0x7ffafbff

// Intel Core i7-2635QM (Sandy Bridge), Intel_Core_i7_2635QM.h: EPT without
// 1G pages or accessed/dirty flags. FeatureControl assumed 0x5.
var sandyBridge = MSRs{
	FeatureControl: 0x5,
	Basic:          0xda040000000010,
	Pinbased:       0x7f00000016,
	Procbased:      0xfff9fffe0401e172,
	Exit:           0x7fffff00036dff,
	Entry:          0xffff000011ff,
	Misc:           0x100401e5,
	Procbased2:     0xff00000000,
	EPTVPIDCap:     0xf0106114141,
	TruePinbased:   0x7f00000016,
	TrueProcbased:  0xfff9fffe04006172,
}

const sandyBridgeECX = 0x1fbae3bf

// Intel Core 2 X6800 (Merom/Conroe), Intel_Core2_X6800_2_93GHz.h: VMX
// without secondary controls (PROCBASED_CTLS bit 63 clear) or true
// controls. FeatureControl assumed 0x5. Procbased2 and EPTVPIDCap do not
// exist on this CPU; garbage is planted to prove Decode ignores them.
var core2 = MSRs{
	FeatureControl: 0x5,
	Basic:          0x1a040000000007,
	Pinbased:       0x1f00000016,
	Procbased:      0x77b9fffe0401e172,
	Exit:           0x3efff00036dff,
	Entry:          0x1fff000011ff,
	Misc:           0x403c0,
	Procbased2:     0xffffffff00000000,
	EPTVPIDCap:     ^uint64(0),
}

const core2ECX = 0xe3bd

func TestDecode(t *testing.T) {
	locked := broadwell
	locked.FeatureControl = FeatureControlLock | FeatureControlVMXInSMX // SMX only
	unlocked := broadwell
	unlocked.FeatureControl = 0
	noEPT := broadwell
	noEPT.Procbased2 = 0x2000000000 // only VPID (bit 5) allowed
	cases := []struct {
		name string
		ecx  uint32
		m    *MSRs
		want Caps
		str  string
	}{
		{"Broadwell", broadwellECX, &broadwell, Caps{
			Present: true, EPT: true, VPID: true, UnrestrictedGuest: true, PreemptionTimer: true,
			EPT4Level: true, EPTAccessDirty: true, EPT2M: true, EPT1G: true, EPTWriteBack: true, EPTUncacheable: true,
			INVEPT: true, INVVPID: true, TrueControls: true, VMCSRevision: 0x12, VMCSSize: 1024,
		}, "VMX: EPT (2M, 1G, A/D), VPID, unrestricted guest, preemption timer"},
		{"Sandy Bridge", sandyBridgeECX, &sandyBridge, Caps{
			Present: true, EPT: true, VPID: true, UnrestrictedGuest: true, PreemptionTimer: true,
			EPT4Level: true, EPT2M: true, EPTWriteBack: true, EPTUncacheable: true,
			INVEPT: true, INVVPID: true, TrueControls: true, VMCSRevision: 0x10, VMCSSize: 1024,
		}, "VMX: EPT (2M), VPID, unrestricted guest, preemption timer"},
		{"Core 2", core2ECX, &core2, Caps{
			Present: true, VMCSRevision: 7, VMCSSize: 1024,
		}, "VMX: basic (no EPT, no VPID)"},
		{"VPID only", broadwellECX, &noEPT, Caps{
			Present: true, VPID: true, PreemptionTimer: true, INVVPID: true, TrueControls: true, VMCSRevision: 0x12, VMCSSize: 1024,
		}, "VMX: VPID, preemption timer"},
		{"locked off by firmware", broadwellECX, &locked, func() Caps {
			c := Decode(broadwellECX, &broadwell)
			c.DisabledByFirmware = true
			return c
		}(), "VMX: disabled by firmware"},
		{"unlocked: juice may enable it", broadwellECX, &unlocked, Decode(broadwellECX, &broadwell),
			"VMX: EPT (2M, 1G, A/D), VPID, unrestricted guest, preemption timer"},
		// AMD Ryzen 7 1800X CPUID.01H:ECX (AMD_Ryzen_7_1800X_Eight_Core.h):
		// no VMX, so the MSRs are meaningless.
		{"absent", 0x7ed8320b, &broadwell, Caps{}, "VMX: absent"},
		{"present, nil MSRs", broadwellECX, nil, Caps{Present: true}, "VMX: basic (no EPT, no VPID)"},
	}
	for _, c := range cases {
		got := Decode(c.ecx, c.m)
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if s := got.String(); s != c.str {
			t.Errorf("%s: String %q want %q", c.name, s, c.str)
		}
	}
}

func TestSupported(t *testing.T) {
	if !Supported(broadwellECX) || !Supported(1<<5) || Supported(^uint32(1<<5)) {
		t.Fatal("Supported does not test CPUID.01H:ECX bit 5")
	}
}

func TestNoAllocs(t *testing.T) {
	var buf [128]byte
	if n := testing.AllocsPerRun(100, func() {
		c := Decode(broadwellECX, &broadwell)
		_ = c.Append(buf[:0])
	}); n != 0 {
		t.Fatalf("Decode+Append allocate %v", n)
	}
}
