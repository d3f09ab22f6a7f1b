package vmx

import "testing"

// TestReadMSRs reads each test CPU's MSRs through a fake RDMSR that fails
// the test on an MSR the CPU does not have, and checks what comes back.
func TestReadMSRs(t *testing.T) {
	for _, cpu := range loadCPUs(t) {
		m := cpu.m
		present := map[uint32]uint64{
			MSRFeatureControl: 5, MSRBasic: m.Basic, MSRPinbasedCtls: m.Pinbased, MSRProcbasedCtls: m.Procbased,
			MSRExitCtls: m.Exit, MSREntryCtls: m.Entry, MSRMisc: m.Misc,
			MSRCr0Fixed0: m.Cr0Fixed0, MSRCr0Fixed1: m.Cr0Fixed1, MSRCr4Fixed0: m.Cr4Fixed0, MSRCr4Fixed1: m.Cr4Fixed1,
		}
		if m.Basic&(1<<55) != 0 {
			present[MSRTruePinbasedCtls] = m.TruePinbased
			present[MSRTrueProcbasedCtls] = m.TrueProcbased
			present[MSRTrueExitCtls] = m.TrueExit
			present[MSRTrueEntryCtls] = m.TrueEntry
		}
		if m.Procbased>>63 != 0 {
			present[MSRProcbasedCtls2] = m.Procbased2
			if m.Procbased2>>32&(1<<1|1<<5) != 0 {
				present[MSREPTVPIDCap] = m.EPTVPIDCap
			}
		}
		read := map[uint32]bool{}
		got := ReadMSRs(func(msr uint32) uint64 {
			v, ok := present[msr]
			if !ok {
				t.Errorf("%s: RDMSR %#x, which the CPU does not have", cpu.name, msr)
			}
			read[msr] = true
			return v
		})
		for msr := range present {
			if !read[msr] {
				t.Errorf("%s: MSR %#x not read", cpu.name, msr)
			}
		}
		want := m
		want.FeatureControl = 5
		if m.Basic&(1<<55) == 0 {
			want.TruePinbased, want.TrueProcbased, want.TrueExit, want.TrueEntry = 0, 0, 0, 0
		}
		if m.Procbased>>63 == 0 {
			want.Procbased2, want.EPTVPIDCap = 0, 0
		} else if m.Procbased2>>32&(1<<1|1<<5) == 0 {
			want.EPTVPIDCap = 0
		}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", cpu.name, got, want)
		}
		// What ReadMSRs returns is what ChooseControls works from.
		c1, err1 := ChooseControls(&got, Options{})
		c2, err2 := ChooseControls(&m, Options{})
		if c1 != c2 || (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: ChooseControls differs on read MSRs", cpu.name)
		}
	}
}
