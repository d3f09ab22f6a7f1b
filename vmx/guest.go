package vmx

import "juice/vmm"

// Fields reads and writes fields of the current VMCS. On the machine it
// is VMREAD and VMWRITE; in tests a map. Implementations used on the exit
// path must not allocate.
type Fields interface {
	Read(e Encoding) uint64
	Write(e Encoding, v uint64)
}

// segOrder lists the eight segment registers' fields, in the order segs
// returns the registers.
var segOrder = [8]segField{fieldsES, fieldsCS, fieldsSS, fieldsDS, fieldsFS, fieldsGS, fieldsLDTR, fieldsTR}

// segs returns pointers to s's segment registers in segOrder's order.
func segs(s *vmm.SRegs) [8]*vmm.Segment {
	return [8]*vmm.Segment{&s.ES, &s.CS, &s.SS, &s.DS, &s.FS, &s.GS, &s.LDTR, &s.TR}
}

// WriteGuestSRegs writes s into the guest-state area of the current VMCS
// for controls c:
//
//   - each segment register's selector, base, limit and access rights
//     (AccessRights: not present = unusable); GDTR and IDTR;
//   - CR0 and CR4 as the hardware must hold them (c.GuestCR0, c.GuestCR4:
//     fixed bits such as CR0.NE and CR4.VMXE forced), with the guest's own
//     values in the read shadows and the guest/host masks (c.CR0Mask,
//     c.CR4Mask) so that the guest reads back what it wrote;
//   - CR3, and IA32_EFER in the guest IA32_EFER field;
//   - the VM-entry controls, with "IA-32e mode guest" following EFER.LMA
//     (c.EntryFor).
//
// CR2 and CR8 have no VMCS fields: the entry code switches CR2, and CR8 is
// the TPR in the virtual-APIC page (use TPR shadow). Check s with
// CheckGuestState first. Allocation-free.
func WriteGuestSRegs(f Fields, s *vmm.SRegs, c *Controls) {
	for i, sg := range segs(s) {
		fl := segOrder[i]
		f.Write(fl.sel, uint64(sg.Selector))
		f.Write(fl.base, sg.Base)
		f.Write(fl.limit, uint64(sg.Limit))
		f.Write(fl.ar, uint64(AccessRights(sg.Attr)))
	}
	f.Write(GuestGDTRBase, s.GDTR.Base)
	f.Write(GuestGDTRLimit, uint64(s.GDTR.Limit))
	f.Write(GuestIDTRBase, s.IDTR.Base)
	f.Write(GuestIDTRLimit, uint64(s.IDTR.Limit))
	f.Write(CR0GuestHostMask, c.CR0Mask())
	f.Write(CR4GuestHostMask, c.CR4Mask())
	f.Write(CR0ReadShadow, s.CR0)
	f.Write(CR4ReadShadow, s.CR4)
	f.Write(GuestCR0, c.GuestCR0(s.CR0))
	f.Write(GuestCR4, c.GuestCR4(s.CR4))
	f.Write(GuestCR3, s.CR3)
	f.Write(GuestIA32EFER, s.EFER)
	f.Write(EntryControls, uint64(c.EntryFor(s.EFER)))
}

// ReadGuestSRegs reads the guest's system state from the current VMCS into
// s, as the guest sees it: CR0 and CR4 take the bits of the guest/host
// masks from the read shadows and the others from the guest fields (the
// guest may have changed those without an exit). CR2 and CR8 are left as
// they are (the backend owns them). Allocation-free.
func ReadGuestSRegs(f Fields, s *vmm.SRegs) {
	for i, sg := range segs(s) {
		fl := segOrder[i]
		sg.Selector = uint16(f.Read(fl.sel))
		sg.Base = f.Read(fl.base)
		sg.Limit = uint32(f.Read(fl.limit))
		sg.Attr = SegmentAttr(uint32(f.Read(fl.ar)))
	}
	s.GDTR = vmm.Table{Base: f.Read(GuestGDTRBase), Limit: uint16(f.Read(GuestGDTRLimit))}
	s.IDTR = vmm.Table{Base: f.Read(GuestIDTRBase), Limit: uint16(f.Read(GuestIDTRLimit))}
	m0, m4 := f.Read(CR0GuestHostMask), f.Read(CR4GuestHostMask)
	s.CR0 = f.Read(GuestCR0)&^m0 | f.Read(CR0ReadShadow)&m0
	s.CR4 = f.Read(GuestCR4)&^m4 | f.Read(CR4ReadShadow)&m4
	s.CR3 = f.Read(GuestCR3)
	s.EFER = f.Read(GuestIA32EFER)
}
