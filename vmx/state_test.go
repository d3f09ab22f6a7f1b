package vmx

import (
	"errors"
	"strings"
	"testing"

	"juice/vmm"
)

// testControls are Broadwell's controls (testdata: broadwell) with
// unrestricted guest.
func testControls() Controls {
	return Controls{Pin: 0x3f, Proc: 0xb62065fa, Proc2: 0x4a2, Exit: 0x3f6fff, Entry: 0xd1ff,
		CR0Fixed0: 0x80000021, CR0Fixed1: 0xffffffff, CR4Fixed0: 0x2000, CR4Fixed1: 0x3767ff}
}

// goodReal is juice's own reset state (vmm.VCPU.Reset): real mode at
// F000:FFF0.
func goodReal() vmm.SRegs {
	var v vmm.VCPU
	v.Reset()
	return v.SRegs
}

// goodProt is the multiboot/PVH entry state juice's loader builds: flat
// 32-bit protected mode, paging off, a busy 32-bit TSS, an LDT.
func goodProt() vmm.SRegs {
	code := vmm.Segment{Selector: 8, Attr: vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0xb, Limit: 0xffffffff}
	data := vmm.Segment{Selector: 0x10, Attr: vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0x3, Limit: 0xffffffff}
	return vmm.SRegs{
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   vmm.Segment{Selector: 0x18, Attr: vmm.SegP | 0xb, Limit: 0x67},
		LDTR: vmm.Segment{Attr: vmm.SegP | 0x2, Limit: 0xffff},
		CR0:  0x11,
	}
}

// goodLong is a 64-bit kernel's state: long mode, paging, a 64-bit CS,
// null data segments (unusable) but for SS, a 64-bit TSS, no LDT.
func goodLong() vmm.SRegs {
	return vmm.SRegs{
		CS:   vmm.Segment{Selector: 0x10, Attr: vmm.SegP | vmm.SegS | vmm.SegL | vmm.SegG | 0xb, Limit: 0xffffffff},
		SS:   vmm.Segment{Selector: 0x18, Attr: vmm.SegP | vmm.SegS | vmm.SegDB | vmm.SegG | 0x3, Limit: 0xffffffff},
		GS:   vmm.Segment{Base: 0xffff_8880_0000_0000},
		TR:   vmm.Segment{Selector: 0x40, Attr: vmm.SegP | 0xb, Limit: 0x206f, Base: 0xffff_fe00_0000_3000},
		GDTR: vmm.Table{Base: 0xffff_fe00_0000_1000, Limit: 0x7f},
		IDTR: vmm.Table{Base: 0xffff_fe00_0000_0000, Limit: 0xfff},
		CR0:  0x8005_0033, CR3: 0x1234_5000, CR4: 0x20 | 0x80 | 0x200 | 0x400, EFER: EFERSCE | EFERLME | EFERLMA | EFERNXE,
	}
}

var longExtra = GuestExtra{RIP: 0xffff_ffff_8100_0000, RFLAGS: 0x246, DR7: 0x400, PAT: 0x0007_0406_0007_0406}

// goodV86 is virtual-8086 mode under a 32-bit protected-mode kernel.
func goodV86() vmm.SRegs {
	s := goodProt()
	for i, sg := range []*vmm.Segment{&s.CS, &s.SS, &s.DS, &s.ES, &s.FS, &s.GS} {
		sel := uint16(0x1000 + 0x100*i)
		*sg = vmm.Segment{Selector: sel, Base: uint64(sel) << 4, Limit: 0xffff, Attr: 0xf3}
	}
	return s
}

var v86Extra = GuestExtra{RIP: 0x100, RFLAGS: 0x2 | 1<<17 | 1<<9}

func TestCheckGuestStateGood(t *testing.T) {
	ug := testControls()
	noUG := ug
	noUG.Proc2 &^= Proc2UnrestrictedGuest
	paged := goodProt()
	paged.CR0 |= CR0PG
	for _, c := range []struct {
		name string
		s    vmm.SRegs
		x    *GuestExtra
		c    *Controls
	}{
		{"reset (real mode)", goodReal(), &GuestExtra{RIP: 0xfff0, RFLAGS: 2}, &ug},
		{"reset, nil extra", goodReal(), nil, &ug},
		{"32-bit protected, paging off", goodProt(), &GuestExtra{RIP: 0x100000, RFLAGS: 2}, &ug},
		{"32-bit protected, paging on, no unrestricted guest", paged, nil, &noUG},
		{"long mode", goodLong(), &longExtra, &ug},
		{"long mode without unrestricted guest", goodLong(), &longExtra, &noUG},
		{"virtual-8086", goodV86(), &v86Extra, &ug},
		{"HLT with STI blocking off", goodProt(), &GuestExtra{RFLAGS: 2, Activity: ActivityHLT}, &ug},
		{"STI blocking with IF", goodProt(), &GuestExtra{RFLAGS: 0x202, Interruptibility: InterruptibilitySTI}, &ug},
	} {
		if err := CheckGuestState(&c.s, c.x, c.c); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestCheckGuestStateBad(t *testing.T) {
	ug := testControls()
	noUG := ug
	noUG.Proc2 &^= Proc2UnrestrictedGuest
	type mod func(s *vmm.SRegs, x *GuestExtra)
	cases := []struct {
		name  string
		base  func() vmm.SRegs
		extra GuestExtra
		c     *Controls
		mod   mod
		field Encoding
		msg   string // a substring of the reason
	}{
		// Control registers and MSRs.
		{"real mode without unrestricted guest", goodReal, GuestExtra{RFLAGS: 2}, &noUG, nil, GuestCR0, "PE must be 1"},
		{"paging off without unrestricted guest", goodProt, GuestExtra{RFLAGS: 2}, &noUG, nil, GuestCR0, "PG must be 1"},
		{"PG without PE", goodReal, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR0 |= CR0PG }, GuestCR0, "PG is set while PE"},
		{"CR0 bit 32", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR0 |= 1 << 32 }, GuestCR0, "CR0_FIXED1"},
		{"CR4 feature the CPU lacks (PKE)", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR4 |= 1 << 22 }, GuestCR4, "CR4_FIXED1"},
		{"CR3 high bits", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR3 |= 1 << 60 }, GuestCR3, "63:52"},
		{"PCIDE outside long mode", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR4 |= CR4PCIDE }, GuestCR4, "PCIDE"},
		{"DR7 high bits", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { x.DR7 |= 1 << 40 }, GuestDR7, "63:32"},
		{"bad PAT type 2", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { x.PAT = 0x0007_0406_0007_0402 }, GuestIA32PAT, "memory type"},
		{"bad PAT type 8 in the top byte", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { x.PAT = 0x0807_0406_0007_0406 }, GuestIA32PAT, "memory type"},
		{"EFER reserved bit (SVME)", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.EFER |= 1 << 12 }, GuestIA32EFER, "reserved"},
		{"LMA without LME, paging on", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.EFER &^= EFERLME }, GuestIA32EFER, "LME differs"},
		{"LME without LMA, paging on", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.CR0 |= CR0PG
			s.CR4 |= CR4PAE
			s.EFER = EFERLME
		}, GuestIA32EFER, "LME differs"},
		{"LMA without paging", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR0 &^= CR0PG }, GuestIA32EFER, "CR0.PG is clear"},
		{"LMA without PAE", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR4 &^= CR4PAE }, GuestIA32EFER, "CR4.PAE"},

		// Selectors.
		{"TR selector TI", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Selector |= 4 }, GuestTRSelector, "TI"},
		{"LDTR selector TI", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.LDTR.Selector = 0x2c }, GuestLDTRSelector, "TI"},
		{"SS.RPL differs from CS.RPL", goodLong, longExtra, &noUG, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Selector |= 3 }, GuestSSSelector, "RPL"},

		// Bases.
		{"TR base not canonical", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Base = 1 << 47 }, GuestTRBase, "canonical"},
		{"FS base not canonical", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.FS.Base = 0x8000_0000_0000_0000 }, GuestFSBase, "canonical"},
		{"GS base not canonical", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.GS.Base = 0x0000_8000_0000_0000 }, GuestGSBase, "canonical"},
		{"LDTR base not canonical", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.LDTR.Base = 1 << 50 }, GuestLDTRBase, "canonical"},
		{"CS base above 4 GiB", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Base = 1 << 32 }, GuestCSBase, "63:32"},
		{"SS base above 4 GiB", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Base = 1 << 32 }, GuestSSBase, "63:32"},
		{"DS base above 4 GiB", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.DS.Base = 1 << 33 }, GuestDSBase, "63:32"},
		{"GDTR base not canonical", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.GDTR.Base = 1 << 47 }, GuestGDTRBase, "canonical"},
		{"IDTR base not canonical", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.IDTR.Base = 1 << 48 }, GuestIDTRBase, "canonical"},

		// Virtual-8086 mode.
		{"v86 base", goodV86, v86Extra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.DS.Base += 16 }, GuestDSBase, "selector << 4"},
		{"v86 limit", goodV86, v86Extra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Limit = 0xfffff }, GuestSSLimit, "FFFF"},
		{"v86 access rights", goodV86, v86Extra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.GS.Attr = 0x93 }, GuestGSAccessRights, "F3"},
		{"v86 in real mode", goodV86, v86Extra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CR0 &^= CR0PE }, GuestRFLAGS, "VM is set"},

		// CS.
		{"CS not present", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Attr &^= vmm.SegP }, GuestCSAccessRights, "unusable"},
		{"CS data type 3 without unrestricted guest", goodLong, longExtra, &noUG, func(s *vmm.SRegs, x *GuestExtra) {
			s.CS.Attr = s.CS.Attr&^0xf | 3
		}, GuestCSAccessRights, "CS type"},
		{"CS not accessed", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Attr &^= 1 }, GuestCSAccessRights, "CS type"},
		{"CS system segment", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Attr &^= vmm.SegS }, GuestCSAccessRights, "S (code/data)"},
		{"CS type 3 at DPL 3", goodReal, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.CS.Attr = s.CS.Attr&^0xf | 3 | vmm.SegDPL3
		}, GuestCSAccessRights, "DPL 0"},
		{"non-conforming CS DPL differs from SS", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.CS.Attr |= vmm.SegDPL3
		}, GuestCSAccessRights, "non-conforming"},
		{"conforming CS DPL above SS", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.CS.Attr = s.CS.Attr&^0xf | 0xf | 2<<5
		}, GuestCSAccessRights, "conforming"},
		{"CS.L and CS.D", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Attr |= vmm.SegDB }, GuestCSAccessRights, "CS.L and CS.D"},
		{"CS limit with G clear", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Attr &^= vmm.SegG }, GuestCSAccessRights, "above 1 MiB"},
		{"CS limit 0xfff00000 with G set", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.CS.Limit = 0xfff00000 }, GuestCSAccessRights, "11:0"},

		// SS.
		{"SS.DPL differs from SS.RPL", goodProt, GuestExtra{RFLAGS: 2}, &noUG, func(s *vmm.SRegs, x *GuestExtra) {
			s.CR0 |= CR0PG
			s.SS.Attr |= vmm.SegDPL3
			s.CS.Attr |= vmm.SegDPL3
		}, GuestSSAccessRights, "SS.RPL"},
		{"SS.DPL in real mode", goodReal, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.SS.Attr |= vmm.SegDPL3
			s.CS.Attr = s.CS.Attr&^0xf | 0xf // conforming, so CS is not what fails
		}, GuestSSAccessRights, "SS.DPL must be 0"},
		{"SS code", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Attr = s.SS.Attr&^0xf | 0xb }, GuestSSAccessRights, "SS type"},
		{"SS read-only", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Attr = s.SS.Attr&^0xf | 1 }, GuestSSAccessRights, "SS type"},
		{"SS system", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Attr &^= vmm.SegS }, GuestSSAccessRights, "S (code/data)"},
		{"SS granularity", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.SS.Limit = 0xffffe }, GuestSSAccessRights, "11:0"},

		// DS, ES, FS, GS.
		{"DS not accessed", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.DS.Attr &^= 1 }, GuestDSAccessRights, "accessed"},
		{"ES execute-only code", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.ES.Attr = s.ES.Attr&^0xf | 9 }, GuestESAccessRights, "readable"},
		{"FS system", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.FS.Attr &^= vmm.SegS }, GuestFSAccessRights, "S (code/data)"},
		{"GS DPL below RPL", goodProt, GuestExtra{RFLAGS: 2}, &noUG, func(s *vmm.SRegs, x *GuestExtra) {
			s.CR0 |= CR0PG
			s.GS.Selector |= 3
		}, GuestGSAccessRights, "RPL"},
		{"DS granularity", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.DS.Attr &^= vmm.SegG }, GuestDSAccessRights, "above 1 MiB"},

		// TR and LDTR.
		{"TR unusable", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Attr = 0 }, GuestTRAccessRights, "unusable"},
		{"TR available (not busy) TSS", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Attr = vmm.SegP | 9 }, GuestTRAccessRights, "busy TSS"},
		{"TR 16-bit TSS in long mode", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Attr = vmm.SegP | 3 }, GuestTRAccessRights, "64-bit TSS"},
		{"TR with S set", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Attr |= vmm.SegS }, GuestTRAccessRights, "S must be 0"},
		{"TR granularity", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.TR.Attr |= vmm.SegG }, GuestTRAccessRights, "11:0"},
		{"LDTR not an LDT", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.LDTR.Attr = vmm.SegP | 0xb }, GuestLDTRAccessRights, "LDT"},
		{"LDTR with S set", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.LDTR.Attr |= vmm.SegS }, GuestLDTRAccessRights, "S must be 0"},
		{"LDTR granularity", goodProt, GuestExtra{RFLAGS: 2}, &ug, func(s *vmm.SRegs, x *GuestExtra) { s.LDTR.Limit = 0x100000 }, GuestLDTRAccessRights, "above 1 MiB"},

		// RIP, RFLAGS.
		{"RIP above 4 GiB outside 64-bit mode", goodProt, GuestExtra{RFLAGS: 2, RIP: 1 << 32}, &ug, nil, GuestRIP, "63:32"},
		{"RIP above 4 GiB in compatibility mode", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			s.CS.Attr = s.CS.Attr&^vmm.SegL | vmm.SegDB
		}, GuestRIP, "63:32"},
		{"RIP not canonical in 64-bit mode", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) { x.RIP = 0x0000_8000_0000_0000 }, GuestRIP, "canonical"},
		{"RFLAGS bit 1 clear", goodProt, GuestExtra{}, &ug, nil, GuestRFLAGS, "bit 1"},
		{"RFLAGS bit 3", goodProt, GuestExtra{RFLAGS: 2 | 8}, &ug, nil, GuestRFLAGS, "reserved"},
		{"RFLAGS bit 22", goodProt, GuestExtra{RFLAGS: 2 | 1<<22}, &ug, nil, GuestRFLAGS, "reserved"},
		{"RFLAGS.VM in long mode", goodLong, longExtra, &ug, func(s *vmm.SRegs, x *GuestExtra) {
			x.RFLAGS |= 1 << 17
			x.RIP = 0x100
			for _, sg := range []*vmm.Segment{&s.CS, &s.SS, &s.DS, &s.ES, &s.FS, &s.GS} {
				*sg = vmm.Segment{Limit: 0xffff, Attr: 0xf3}
			}
		}, GuestRFLAGS, "VM is set"},

		// Activity and interruptibility.
		{"activity 4", goodProt, GuestExtra{RFLAGS: 2, Activity: 4}, &ug, nil, GuestActivityState, "0-3"},
		{"HLT at SS.DPL 3", goodV86, v86Extra, &ug, func(s *vmm.SRegs, x *GuestExtra) { x.Activity = ActivityHLT }, GuestActivityState, "SS.DPL"},
		{"interruptibility bit 5", goodProt, GuestExtra{RFLAGS: 2, Interruptibility: 1 << 5}, &ug, nil, GuestInterruptibility, "31:5"},
		{"STI and MOV SS", goodProt, GuestExtra{RFLAGS: 0x202, Interruptibility: 3}, &ug, nil, GuestInterruptibility, "both"},
		{"STI without IF", goodProt, GuestExtra{RFLAGS: 2, Interruptibility: InterruptibilitySTI}, &ug, nil, GuestInterruptibility, "IF"},
		{"MOV SS while halted", goodProt, GuestExtra{RFLAGS: 2, Activity: ActivityHLT, Interruptibility: InterruptibilityMOVSS}, &ug, nil, GuestInterruptibility, "not active"},
	}
	for _, c := range cases {
		s := c.base()
		x := c.extra
		if c.mod != nil {
			c.mod(&s, &x)
		}
		err := CheckGuestState(&s, &x, c.c)
		var ge *GuestStateError
		if !errors.As(err, &ge) {
			t.Errorf("%s: error %v, want one for %s", c.name, err, c.field.Name())
			continue
		}
		if ge.Field != c.field || !strings.Contains(ge.Reason, c.msg) {
			t.Errorf("%s: %v; want field %q, reason containing %q", c.name, err, c.field.Name(), c.msg)
		}
		if !strings.HasPrefix(err.Error(), "vmx: invalid guest state: "+c.field.Name()+": ") {
			t.Errorf("%s: message %q", c.name, err)
		}
	}
}

func TestSetGuestStateDetail(t *testing.T) {
	c := testControls()
	s := goodLong()
	s.TR.Attr = vmm.SegP | 3
	var e vmm.Exit
	TranslateExit(&RawExit{Reason: 1<<31 | 33}, &e)
	if !SetGuestStateDetail(&e, &s, &longExtra, &c) {
		t.Fatal("no field found")
	}
	want := "VM entry failed: invalid guest state: guest TR access rights: TR must be a busy 64-bit TSS (type 11) in IA-32e mode"
	if got := detail(&e); got != want[:min(len(want), len(e.Detail))] {
		t.Errorf("Detail %q", got)
	}
	var e2 vmm.Exit
	good := goodLong()
	if SetGuestStateDetail(&e2, &good, &longExtra, &c) || e2.DetailLen != 0 {
		t.Error("a good state produced a detail")
	}
}
