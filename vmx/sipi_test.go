package vmx

import (
	"testing"

	"juice/vmm"
)

// TestSIPIStateEnters: the real-mode state in which an application
// processor starts (an INIT, then a STARTUP IPI with vector VV: CS VV00,
// base VV000, IP 0) passes VM entry's guest-state checks under unrestricted
// guest, for every vector Linux may use.
func TestSIPIStateEnters(t *testing.T) {
	ug := testControls()
	for _, vec := range []uint8{0x01, 0x10, 0x9a, 0x9f, 0xff} {
		var v vmm.VCPU
		v.ResetToSIPI(vec)
		if v.SRegs.CS.Selector != uint16(vec)<<8 || v.SRegs.CS.Base != uint64(vec)<<12 || v.Regs.RIP != 0 {
			t.Fatalf("vector %#x: CS %+v IP %#x", vec, v.SRegs.CS, v.Regs.RIP)
		}
		if err := CheckGuestState(&v.SRegs, &GuestExtra{RIP: v.Regs.RIP, RFLAGS: v.Regs.RFLAGS, DR7: defaultDR7, PAT: DefaultPAT}, &ug); err != nil {
			t.Errorf("vector %#x: %v", vec, err)
		}
	}
}
