package svm

import (
	"strings"
	"testing"

	"juice/vmm"
)

// Segment attributes in the VMCB format.
const (
	attrCode64 = 0xa9b // G, L, P, S, type 0xb (execute/read, accessed)
	attrCode32 = 0xc9b // G, D, P, S, type 0xb
	attrData32 = 0xc93 // G, D, P, S, type 3
	attrData64 = 0x093 //
	attrReal   = 0x093 // present read/write data, as real mode leaves it
	attrTSS64  = 0x08b // P, type 0xb (busy 64-bit TSS)
	attrLDT    = 0x082
)

func realMode() vmm.SRegs {
	seg := vmm.Segment{Attr: attrReal, Limit: 0xffff}
	cs := vmm.Segment{Selector: 0xf000, Base: 0xffff0000, Limit: 0xffff, Attr: 0x9b}
	return vmm.SRegs{CS: cs, DS: seg, ES: seg, FS: seg, GS: seg, SS: seg,
		TR: vmm.Segment{Attr: attrTSS64, Limit: 0xffff}, LDTR: vmm.Segment{Attr: attrLDT, Limit: 0xffff},
		GDTR: vmm.Table{Limit: 0xffff}, IDTR: vmm.Table{Limit: 0xffff}, CR0: 0x6000_0010}
}

func protected32() vmm.SRegs {
	d := vmm.Segment{Selector: 0x18, Attr: attrData32, Limit: 0xffffffff}
	return vmm.SRegs{CS: vmm.Segment{Selector: 0x10, Attr: attrCode32, Limit: 0xffffffff}, DS: d, ES: d, FS: d, GS: d, SS: d,
		TR: vmm.Segment{Attr: attrTSS64, Limit: 0x67}, LDTR: vmm.Segment{Attr: attrLDT},
		GDTR: vmm.Table{Base: 0x500, Limit: 0x27}, CR0: CR0PE | 0x10}
}

func long64() vmm.SRegs {
	s := protected32()
	s.CS = vmm.Segment{Selector: 0x08, Attr: attrCode64}
	s.CR0 = CR0PE | CR0PG | 0x10 | 1<<16 // PE, ET, WP, PG
	s.CR3 = 0x9000
	s.CR4 = CR4PAE
	s.EFER = EFERLME | EFERLMA
	return s
}

func TestCheckStateAccepts(t *testing.T) {
	pae := protected32()
	pae.CR0 |= CR0PG
	pae.CR4 = CR4PAE
	pae.CR3 = 0x1000
	pse := protected32()
	pse.CR0 |= CR0PG
	pse.CR4 = 1 << 4
	compat := long64()
	compat.CS.Attr = attrCode32
	lmeNoPG := protected32()
	lmeNoPG.EFER = EFERLME // about to enable paging: legal
	svme := long64()
	svme.EFER |= EFERSVME | EFERNXE | EFERSCE
	cd := realMode()
	cd.CR0 |= CR0CD | CR0NW
	for name, s := range map[string]vmm.SRegs{
		"real mode (reset)": realMode(), "protected 32-bit flat": protected32(), "32-bit PAE paging": pae,
		"32-bit PSE paging": pse, "long mode 64-bit": long64(), "long mode compatibility": compat,
		"LME before paging": lmeNoPG, "EFER with SVME, NXE, SCE": svme, "CD and NW": cd,
	} {
		if err := CheckState(&s); err != nil {
			t.Errorf("%s rejected: %v", name, err)
		}
	}
}

func TestCheckStateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*vmm.SRegs)
		want   string
	}{
		{"CR0 high bits", func(s *vmm.SRegs) { s.CR0 |= 1 << 32 }, "CR0 bits 63:32"},
		{"NW without CD", func(s *vmm.SRegs) { s.CR0 = s.CR0&^CR0CD | CR0NW }, "CR0.NW"},
		{"PG without PE", func(s *vmm.SRegs) { s.CR0 &^= CR0PE; s.EFER = 0; s.CR4 = 0 }, "CR0.PG is set while CR0.PE"},
		{"CR3 MBZ", func(s *vmm.SRegs) { s.CR3 |= 1 << 60 }, "CR3"},
		{"CR4 VMXE", func(s *vmm.SRegs) { s.CR4 |= 1 << 13 }, "CR4"},
		{"CR4 bit 19", func(s *vmm.SRegs) { s.CR4 |= 1 << 19 }, "CR4"},
		{"CR4 high", func(s *vmm.SRegs) { s.CR4 |= 1 << 40 }, "CR4"},
		{"EFER bit 9", func(s *vmm.SRegs) { s.EFER |= 1 << 9 }, "EFER has reserved"},
		{"EFER bit 1", func(s *vmm.SRegs) { s.EFER |= 1 << 1 }, "EFER has reserved"},
		{"EFER high", func(s *vmm.SRegs) { s.EFER |= 1 << 63 }, "EFER has reserved"},
		{"long mode without PAE", func(s *vmm.SRegs) { s.CR4 &^= CR4PAE }, "CR4.PAE"},
		{"CS.L and CS.D", func(s *vmm.SRegs) { s.CS.Attr |= vmm.SegDB }, "CS.L and CS.D"},
		{"LMA without LME", func(s *vmm.SRegs) { s.EFER = EFERLMA }, "EFER.LMA"},
		{"LME and PG without LMA", func(s *vmm.SRegs) { s.EFER = EFERLME }, "EFER.LMA"},
		{"LMA without paging", func(s *vmm.SRegs) { s.CR0 &^= CR0PG }, "EFER.LMA"},
	}
	for _, c := range cases {
		s := long64()
		c.mutate(&s)
		err := CheckState(&s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
	// LMA with PE clear (the state Bochs panics on).
	s := realMode()
	s.EFER = EFERLMA | EFERLME
	if CheckState(&s) == nil {
		t.Error("EFER.LMA in real mode accepted")
	}
}

func TestGuestCPL(t *testing.T) {
	ss3 := vmm.Segment{Attr: attrData32 | vmm.SegDPL3}
	ss0 := vmm.Segment{Attr: attrData32}
	for _, c := range []struct {
		cr0, rflags uint64
		ss          vmm.Segment
		want        uint8
	}{
		{0, 0, ss3, 0}, {CR0PE, 0, ss0, 0}, {CR0PE, 0, ss3, 3},
		{CR0PE, RFLAGSVM, ss0, 3}, {CR0PE, 0, vmm.Segment{Attr: 1 << 5}, 1},
	} {
		if got := guestCPL(c.cr0, c.rflags, c.ss); got != c.want {
			t.Errorf("guestCPL(%#x, %#x, %#x) = %d, want %d", c.cr0, c.rflags, c.ss.Attr, got, c.want)
		}
	}
}

func FuzzCheckState(f *testing.F) {
	s := long64()
	f.Add(s.CR0, s.CR3, s.CR4, s.EFER, s.CS.Attr)
	r := realMode()
	f.Add(r.CR0, r.CR3, r.CR4, r.EFER, r.CS.Attr)
	f.Fuzz(func(t *testing.T, cr0, cr3, cr4, efer uint64, csAttr uint16) {
		s := vmm.SRegs{CR0: cr0, CR3: cr3, CR4: cr4, EFER: efer}
		s.CS.Attr = csAttr
		err := CheckState(&s)
		long := efer&EFERLME != 0 && cr0&CR0PG != 0
		// Whatever it accepts satisfies the APM's checks.
		if err == nil {
			if cr0>>32 != 0 || cr0&CR0NW != 0 && cr0&CR0CD == 0 || cr3>>52 != 0 || cr4>>32 != 0 {
				t.Fatalf("accepted cr0 %#x cr3 %#x cr4 %#x", cr0, cr3, cr4)
			}
			if long && (cr4&CR4PAE == 0 || cr0&CR0PE == 0 || csAttr&vmm.SegL != 0 && csAttr&vmm.SegDB != 0) {
				t.Fatalf("accepted an illegal long-mode state")
			}
			if (efer&EFERLMA != 0) != long {
				t.Fatal("accepted an inconsistent LMA")
			}
		}
	})
}
