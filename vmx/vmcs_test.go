package vmx

import "testing"

// sdmFields lists every field this package defines as (width, type,
// index), written from the SDM's Appendix B tables (B-1..B-14: each table
// is one width and type, and lists the fields in index order).
var sdmFields = []struct {
	e     Encoding
	w     Width
	t     FieldType
	index uint32
}{
	// B.1.1 16-bit control fields.
	{VirtualProcessorID, Width16, TypeControl, 0},
	{PostedIntrVector, Width16, TypeControl, 1},
	{EPTPIndex, Width16, TypeControl, 2},
	// B.1.2 16-bit guest-state fields.
	{GuestESSelector, Width16, TypeGuest, 0},
	{GuestCSSelector, Width16, TypeGuest, 1},
	{GuestSSSelector, Width16, TypeGuest, 2},
	{GuestDSSelector, Width16, TypeGuest, 3},
	{GuestFSSelector, Width16, TypeGuest, 4},
	{GuestGSSelector, Width16, TypeGuest, 5},
	{GuestLDTRSelector, Width16, TypeGuest, 6},
	{GuestTRSelector, Width16, TypeGuest, 7},
	{GuestIntrStatus, Width16, TypeGuest, 8},
	{GuestPMLIndex, Width16, TypeGuest, 9},
	// B.1.3 16-bit host-state fields.
	{HostESSelector, Width16, TypeHost, 0},
	{HostCSSelector, Width16, TypeHost, 1},
	{HostSSSelector, Width16, TypeHost, 2},
	{HostDSSelector, Width16, TypeHost, 3},
	{HostFSSelector, Width16, TypeHost, 4},
	{HostGSSelector, Width16, TypeHost, 5},
	{HostTRSelector, Width16, TypeHost, 6},
	// B.2.1 64-bit control fields.
	{IOBitmapAAddr, Width64, TypeControl, 0},
	{IOBitmapBAddr, Width64, TypeControl, 1},
	{MSRBitmapAddr, Width64, TypeControl, 2},
	{ExitMSRStoreAddr, Width64, TypeControl, 3},
	{ExitMSRLoadAddr, Width64, TypeControl, 4},
	{EntryMSRLoadAddr, Width64, TypeControl, 5},
	{ExecutiveVMCSPtr, Width64, TypeControl, 6},
	{PMLAddress, Width64, TypeControl, 7},
	{TSCOffset, Width64, TypeControl, 8},
	{VirtualAPICPageAddr, Width64, TypeControl, 9},
	{APICAccessAddr, Width64, TypeControl, 10},
	{PostedIntrDescAddr, Width64, TypeControl, 11},
	{VMFuncControls, Width64, TypeControl, 12},
	{EPTPointer, Width64, TypeControl, 13},
	{EPTPListAddr, Width64, TypeControl, 18},
	{XSSExitBitmap, Width64, TypeControl, 22},
	{TSCMultiplier, Width64, TypeControl, 25},
	{TertiaryProcControls, Width64, TypeControl, 26},
	// B.2.2 64-bit read-only data field.
	{GuestPhysicalAddr, Width64, TypeReadOnly, 0},
	// B.2.3 64-bit guest-state fields.
	{VMCSLinkPointer, Width64, TypeGuest, 0},
	{GuestIA32DebugCtl, Width64, TypeGuest, 1},
	{GuestIA32PAT, Width64, TypeGuest, 2},
	{GuestIA32EFER, Width64, TypeGuest, 3},
	{GuestIA32PerfGlobalCtl, Width64, TypeGuest, 4},
	{GuestPDPTE0, Width64, TypeGuest, 5},
	{GuestPDPTE1, Width64, TypeGuest, 6},
	{GuestPDPTE2, Width64, TypeGuest, 7},
	{GuestPDPTE3, Width64, TypeGuest, 8},
	// B.2.4 64-bit host-state fields.
	{HostIA32PAT, Width64, TypeHost, 0},
	{HostIA32EFER, Width64, TypeHost, 1},
	{HostIA32PerfGlobalCtl, Width64, TypeHost, 2},
	// B.3.1 32-bit control fields.
	{PinControls, Width32, TypeControl, 0},
	{ProcControls, Width32, TypeControl, 1},
	{ExceptionBitmap, Width32, TypeControl, 2},
	{PFErrorCodeMask, Width32, TypeControl, 3},
	{PFErrorCodeMatch, Width32, TypeControl, 4},
	{CR3TargetCount, Width32, TypeControl, 5},
	{ExitControls, Width32, TypeControl, 6},
	{ExitMSRStoreCount, Width32, TypeControl, 7},
	{ExitMSRLoadCount, Width32, TypeControl, 8},
	{EntryControls, Width32, TypeControl, 9},
	{EntryMSRLoadCount, Width32, TypeControl, 10},
	{EntryIntrInfo, Width32, TypeControl, 11},
	{EntryExceptionError, Width32, TypeControl, 12},
	{EntryInstrLen, Width32, TypeControl, 13},
	{TPRThreshold, Width32, TypeControl, 14},
	{Proc2Controls, Width32, TypeControl, 15},
	{PLEGap, Width32, TypeControl, 16},
	{PLEWindow, Width32, TypeControl, 17},
	// B.3.2 32-bit read-only data fields.
	{VMInstructionError, Width32, TypeReadOnly, 0},
	{ExitReason, Width32, TypeReadOnly, 1},
	{ExitIntrInfo, Width32, TypeReadOnly, 2},
	{ExitIntrErrorCode, Width32, TypeReadOnly, 3},
	{IDTVectoringInfo, Width32, TypeReadOnly, 4},
	{IDTVectoringError, Width32, TypeReadOnly, 5},
	{ExitInstrLen, Width32, TypeReadOnly, 6},
	{ExitInstrInfo, Width32, TypeReadOnly, 7},
	// B.3.3 32-bit guest-state fields.
	{GuestESLimit, Width32, TypeGuest, 0},
	{GuestCSLimit, Width32, TypeGuest, 1},
	{GuestSSLimit, Width32, TypeGuest, 2},
	{GuestDSLimit, Width32, TypeGuest, 3},
	{GuestFSLimit, Width32, TypeGuest, 4},
	{GuestGSLimit, Width32, TypeGuest, 5},
	{GuestLDTRLimit, Width32, TypeGuest, 6},
	{GuestTRLimit, Width32, TypeGuest, 7},
	{GuestGDTRLimit, Width32, TypeGuest, 8},
	{GuestIDTRLimit, Width32, TypeGuest, 9},
	{GuestESAccessRights, Width32, TypeGuest, 10},
	{GuestCSAccessRights, Width32, TypeGuest, 11},
	{GuestSSAccessRights, Width32, TypeGuest, 12},
	{GuestDSAccessRights, Width32, TypeGuest, 13},
	{GuestFSAccessRights, Width32, TypeGuest, 14},
	{GuestGSAccessRights, Width32, TypeGuest, 15},
	{GuestLDTRAccessRights, Width32, TypeGuest, 16},
	{GuestTRAccessRights, Width32, TypeGuest, 17},
	{GuestInterruptibility, Width32, TypeGuest, 18},
	{GuestActivityState, Width32, TypeGuest, 19},
	{GuestSMBASE, Width32, TypeGuest, 20},
	{GuestIA32SysenterCS, Width32, TypeGuest, 21},
	{PreemptionTimerValue, Width32, TypeGuest, 23},
	// B.3.4 32-bit host-state field.
	{HostIA32SysenterCS, Width32, TypeHost, 0},
	// B.4.1 natural-width control fields.
	{CR0GuestHostMask, WidthNatural, TypeControl, 0},
	{CR4GuestHostMask, WidthNatural, TypeControl, 1},
	{CR0ReadShadow, WidthNatural, TypeControl, 2},
	{CR4ReadShadow, WidthNatural, TypeControl, 3},
	{CR3Target0, WidthNatural, TypeControl, 4},
	{CR3Target1, WidthNatural, TypeControl, 5},
	{CR3Target2, WidthNatural, TypeControl, 6},
	{CR3Target3, WidthNatural, TypeControl, 7},
	// B.4.2 natural-width read-only data fields.
	{ExitQualification, WidthNatural, TypeReadOnly, 0},
	{IORCX, WidthNatural, TypeReadOnly, 1},
	{IORSI, WidthNatural, TypeReadOnly, 2},
	{IORDI, WidthNatural, TypeReadOnly, 3},
	{IORIP, WidthNatural, TypeReadOnly, 4},
	{GuestLinearAddr, WidthNatural, TypeReadOnly, 5},
	// B.4.3 natural-width guest-state fields.
	{GuestCR0, WidthNatural, TypeGuest, 0},
	{GuestCR3, WidthNatural, TypeGuest, 1},
	{GuestCR4, WidthNatural, TypeGuest, 2},
	{GuestESBase, WidthNatural, TypeGuest, 3},
	{GuestCSBase, WidthNatural, TypeGuest, 4},
	{GuestSSBase, WidthNatural, TypeGuest, 5},
	{GuestDSBase, WidthNatural, TypeGuest, 6},
	{GuestFSBase, WidthNatural, TypeGuest, 7},
	{GuestGSBase, WidthNatural, TypeGuest, 8},
	{GuestLDTRBase, WidthNatural, TypeGuest, 9},
	{GuestTRBase, WidthNatural, TypeGuest, 10},
	{GuestGDTRBase, WidthNatural, TypeGuest, 11},
	{GuestIDTRBase, WidthNatural, TypeGuest, 12},
	{GuestDR7, WidthNatural, TypeGuest, 13},
	{GuestRSP, WidthNatural, TypeGuest, 14},
	{GuestRIP, WidthNatural, TypeGuest, 15},
	{GuestRFLAGS, WidthNatural, TypeGuest, 16},
	{GuestPendingDebugExcept, WidthNatural, TypeGuest, 17},
	{GuestIA32SysenterESP, WidthNatural, TypeGuest, 18},
	{GuestIA32SysenterEIP, WidthNatural, TypeGuest, 19},
	// B.4.4 natural-width host-state fields.
	{HostCR0, WidthNatural, TypeHost, 0},
	{HostCR3, WidthNatural, TypeHost, 1},
	{HostCR4, WidthNatural, TypeHost, 2},
	{HostFSBase, WidthNatural, TypeHost, 3},
	{HostGSBase, WidthNatural, TypeHost, 4},
	{HostTRBase, WidthNatural, TypeHost, 5},
	{HostGDTRBase, WidthNatural, TypeHost, 6},
	{HostIDTRBase, WidthNatural, TypeHost, 7},
	{HostIA32SysenterESP, WidthNatural, TypeHost, 8},
	{HostIA32SysenterEIP, WidthNatural, TypeHost, 9},
	{HostRSP, WidthNatural, TypeHost, 10},
	{HostRIP, WidthNatural, TypeHost, 11},
}

func TestEncodingDecode(t *testing.T) {
	seen := map[Encoding]bool{}
	for _, f := range sdmFields {
		// Appendix B's layout: width in bits 14:13, type in 11:10, index
		// in 9:1, access type in bit 0.
		want := Encoding(uint32(f.w)<<13 | uint32(f.t)<<10 | f.index<<1)
		if f.e != want {
			t.Errorf("%s: encoding %#x, want %#x (width %v, type %v, index %d)", f.e.Name(), uint32(f.e), uint32(want), f.w, f.t, f.index)
		}
		if f.e.Width() != f.w || f.e.Type() != f.t || f.e.Index() != f.index || f.e.HighAccess() {
			t.Errorf("%#x decodes as %v %v %d high=%v", uint32(f.e), f.e.Width(), f.e.Type(), f.e.Index(), f.e.HighAccess())
		}
		if !f.e.Valid() {
			t.Errorf("%#x not valid", uint32(f.e))
		}
		if MakeEncoding(f.w, f.t, f.index) != f.e {
			t.Errorf("MakeEncoding(%v, %v, %d) = %#x", f.w, f.t, f.index, uint32(MakeEncoding(f.w, f.t, f.index)))
		}
		if f.e.Name() == "" {
			t.Errorf("%#x has no name", uint32(f.e))
		}
		if seen[f.e] {
			t.Errorf("%#x twice", uint32(f.e))
		}
		seen[f.e] = true
		hi, ok := f.e.High()
		if ok != (f.w == Width64) {
			t.Errorf("%#x: High ok=%v", uint32(f.e), ok)
		}
		if ok {
			if hi != f.e+1 || !hi.HighAccess() || !hi.Valid() || hi.Index() != f.index || hi.Name() != f.e.Name() {
				t.Errorf("%#x: high access %#x wrong", uint32(f.e), uint32(hi))
			}
		} else if (f.e + 1).Valid() {
			t.Errorf("%#x+1: high access of a %v field is valid", uint32(f.e), f.w)
		}
	}
	// Every named field is in the SDM table above.
	for _, n := range fieldNames {
		if !seen[n.e] {
			t.Errorf("field %#x (%s) not in the test table", uint32(n.e), n.name)
		}
	}
	if len(fieldNames) != len(sdmFields) {
		t.Errorf("%d names, %d table rows", len(fieldNames), len(sdmFields))
	}
}

func TestEncodingSpotChecks(t *testing.T) {
	// A few encodings as the SDM prints them, whole.
	for e, want := range map[Encoding]uint32{
		GuestRIP: 0x681e, EPTPointer: 0x201a, ExitReason: 0x4402, ExitQualification: 0x6400,
		GuestPhysicalAddr: 0x2400, GuestCSAccessRights: 0x4816, HostRIP: 0x6c16, VMCSLinkPointer: 0x2800,
		Proc2Controls: 0x401e, PreemptionTimerValue: 0x482e, HostIA32SysenterCS: 0x4c00,
	} {
		if uint32(e) != want {
			t.Errorf("%s = %#x, want %#x", e.Name(), uint32(e), want)
		}
	}
	for _, e := range []Encoding{0x1000, 0x8000, 0x1_0000, 0x4001, 0x6801, 0x0801} {
		if e.Valid() {
			t.Errorf("%#x valid", uint32(e))
		}
	}
	if Encoding(0x7fff).Name() != "" {
		t.Error("unknown field named")
	}
	for _, w := range []Width{Width16, Width64, Width32, WidthNatural} {
		if w.String() == "" {
			t.Error("empty width name")
		}
	}
	if Width64.String() != "64-bit" || TypeGuest.String() != "guest-state" || TypeReadOnly.String() != "read-only data" ||
		TypeControl.String() != "control" || TypeHost.String() != "host-state" || WidthNatural.String() != "natural-width" {
		t.Error("String")
	}
}
