package vmx

import (
	"testing"

	"juice/vmm"
)

// fakeVMCS is a VMCS as a map. Writes are checked the way VMWRITE checks
// them: the field must be well formed, named, writable (not read-only
// data), and the value must fit the field's width.
type fakeVMCS struct {
	t *testing.T
	m map[Encoding]uint64
}

func newFakeVMCS(t *testing.T) *fakeVMCS { return &fakeVMCS{t: t, m: map[Encoding]uint64{}} }

func (f *fakeVMCS) Read(e Encoding) uint64 {
	if !e.Valid() || e.Name() == "" {
		f.t.Errorf("VMREAD of unknown field %#x", uint32(e))
	}
	return f.m[e]
}

func (f *fakeVMCS) Write(e Encoding, v uint64) {
	switch {
	case !e.Valid() || e.Name() == "":
		f.t.Errorf("VMWRITE of unknown field %#x", uint32(e))
	case e.Type() == TypeReadOnly:
		f.t.Errorf("VMWRITE of read-only field %s", e.Name())
	case e.Width() == Width16 && v>>16 != 0, e.Width() == Width32 && v>>32 != 0:
		f.t.Errorf("VMWRITE of %#x to %v field %s", v, e.Width(), e.Name())
	}
	f.m[e] = v
}

func TestGuestSRegsRoundTrip(t *testing.T) {
	c := testControls()
	for _, tc := range []struct {
		name string
		s    vmm.SRegs
	}{{"real", goodReal()}, {"protected", goodProt()}, {"long", goodLong()}, {"v86", goodV86()}} {
		f := newFakeVMCS(t)
		s := tc.s
		s.CR2, s.CR8 = 0x1234, 5 // not VMCS fields: must survive untouched
		WriteGuestSRegs(f, &s, &c)
		// The hardware values.
		if got := f.m[GuestCR0]; got != c.GuestCR0(s.CR0) || got&CR0NE == 0 {
			t.Errorf("%s: guest CR0 field %#x", tc.name, got)
		}
		if got := f.m[GuestCR4]; got&CR4VMXE == 0 || got != c.GuestCR4(s.CR4) {
			t.Errorf("%s: guest CR4 field %#x", tc.name, got)
		}
		if f.m[CR0ReadShadow] != s.CR0 || f.m[CR4ReadShadow] != s.CR4 {
			t.Errorf("%s: read shadows %#x %#x", tc.name, f.m[CR0ReadShadow], f.m[CR4ReadShadow])
		}
		if f.m[GuestCSAccessRights] != uint64(AccessRights(s.CS.Attr)) || f.m[GuestTRBase] != s.TR.Base ||
			f.m[GuestSSSelector] != uint64(s.SS.Selector) || f.m[GuestGDTRLimit] != uint64(s.GDTR.Limit) {
			t.Errorf("%s: segment fields wrong", tc.name)
		}
		wantEntry := uint64(c.Entry)
		if s.EFER&EFERLMA != 0 {
			wantEntry |= EntryCtlIA32eModeGuest
		}
		if f.m[EntryControls] != wantEntry || f.m[GuestIA32EFER] != s.EFER || f.m[GuestCR3] != s.CR3 {
			t.Errorf("%s: entry controls %#x, EFER %#x", tc.name, f.m[EntryControls], f.m[GuestIA32EFER])
		}
		var got vmm.SRegs
		got.CR2, got.CR8 = s.CR2, s.CR8
		ReadGuestSRegs(f, &got)
		if got != s {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", tc.name, got, s)
		}
	}
}

func TestReadGuestSRegsSeesGuestChanges(t *testing.T) {
	c := testControls()
	f := newFakeVMCS(t)
	s := goodProt()
	WriteGuestSRegs(f, &s, &c)
	// The guest turns paging on (PG is not masked under unrestricted
	// guest: the CPU changes the guest CR0 field, not the shadow) and the
	// CPU sets an unusable DS after a null-selector load.
	f.m[GuestCR0] |= CR0PG
	f.m[GuestDSAccessRights] = ARUnusable | 0x93
	f.m[GuestDSSelector] = 0
	var got vmm.SRegs
	ReadGuestSRegs(f, &got)
	if got.CR0 != s.CR0|CR0PG {
		t.Errorf("CR0 %#x, want %#x", got.CR0, s.CR0|CR0PG)
	}
	if got.CR0&CR0NE != 0 {
		t.Error("forced NE leaked into the guest's view")
	}
	if got.CR4&CR4VMXE != 0 {
		t.Error("forced VMXE leaked into the guest's view")
	}
	if got.DS.Attr&vmm.SegP != 0 || got.DS.Selector != 0 {
		t.Errorf("DS %+v", got.DS)
	}
}

func TestGuestSRegsAllocs(t *testing.T) {
	c := testControls()
	f := newFakeVMCS(t)
	s := goodLong()
	WriteGuestSRegs(f, &s, &c)
	var got vmm.SRegs
	var fi Fields = f
	if n := testing.AllocsPerRun(100, func() {
		WriteGuestSRegs(fi, &s, &c)
		ReadGuestSRegs(fi, &got)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
