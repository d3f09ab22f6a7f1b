package svm

import (
	"errors"

	"juice/vmm"
)

// Control-register and EFER bits used by the state checks.
const (
	CR0PE = 1 << 0
	CR0NW = 1 << 29
	CR0CD = 1 << 30
	CR0PG = 1 << 31

	CR4PAE = 1 << 5

	EFERSCE   = 1 << 0
	EFERLME   = 1 << 8
	EFERLMA   = 1 << 10
	EFERNXE   = 1 << 11
	EFERLMSLE = 1 << 13
	EFERFFXSR = 1 << 14
	EFERTCE   = 1 << 15

	RFLAGSIF = 1 << 9
	RFLAGSVM = 1 << 17
)

// cr4Defined are the CR4 bits AMD defines: VME..LA57 (0-12), FSGSBASE
// (16), PCIDE (17), OSXSAVE (18), SMEP (20), SMAP (21), PKE (22), CET (23).
// Bits 13 (Intel's VMXE), 14, 15, 19 and 24-63 are MBZ on AMD.
const cr4Defined = 0x1fff | 1<<16 | 1<<17 | 1<<18 | 1<<20 | 1<<21 | 1<<22 | 1<<23

// eferDefined are the EFER bits AMD defines: SCE, LME, LMA, NXE, SVME,
// LMSLE, FFXSR, TCE, MCOMMIT (17), INTWB (18), UAIE (20), AIBRSE (21).
const eferDefined = EFERSCE | EFERLME | EFERLMA | EFERNXE | EFERSVME | EFERLMSLE | EFERFFXSR | EFERTCE |
	1<<17 | 1<<18 | 1<<20 | 1<<21

// Reasons CheckState rejects a state (also used for ExitInvalid's Detail).
const (
	msgCR0High    = "CR0 bits 63:32 are not zero"
	msgCR0NW      = "CR0.NW is set while CR0.CD is clear"
	msgCR0PG      = "CR0.PG is set while CR0.PE is clear"
	msgCR3        = "CR3 has MBZ bits 63:52 set"
	msgCR4        = "CR4 has reserved (MBZ) bits set"
	msgEFER       = "EFER has reserved (MBZ) bits set"
	msgLongNoPAE  = "EFER.LME and CR0.PG are set while CR4.PAE is clear"
	msgLongCSLD   = "long mode with both CS.L and CS.D set"
	msgLMA        = "EFER.LMA differs from EFER.LME && CR0.PG"
	msgPrefixInvl = "invalid guest state: "
)

// CheckState checks s against the consistency checks VMRUN applies to the
// guest state (APM Vol. 2, 15.5.1 "Canonicalization and Consistency
// Checks") before juice hands it to the hardware: QEMU answers an illegal
// state with VMEXIT_INVALID, and Bochs panics on some. Rejected:
//
//   - CR0 bits 63:32 set; CR0.NW set with CR0.CD clear;
//   - CR3 bits 63:52 set (MBZ in every paging mode);
//   - CR4 bits AMD defines as MBZ (13 VMXE, 14, 15, 19, 24-63);
//   - EFER bits AMD defines as MBZ;
//   - EFER.LME and CR0.PG with CR4.PAE clear;
//   - EFER.LME, CR0.PG and CR4.PAE (long mode) with CS.L and CS.D both set;
//
// and, beyond the APM list, two states no real CPU can be in:
//
//   - CR0.PG without CR0.PE (MOV CR0 raises #GP; with EFER.LME the APM
//     check "LME and PG set, PE clear" is this one);
//   - EFER.LMA different from (EFER.LME && CR0.PG): the processor derives
//     LMA, VMRUN loads it as given, and Bochs panics on LMA without PE.
//
// Accepted states therefore include real mode (CR0.PE=0, paging off),
// 16/32-bit protected mode with or without paging (PSE or PAE), and long
// mode (EFER.LME|LMA, CR0.PE|PG, CR4.PAE) in 64-bit (CS.L=1, CS.D=0) or
// compatibility (CS.L=0) mode. EFER.SVME is ignored: the backend always
// sets it for the guest, as VMRUN requires. The checks on DR6/DR7 and on
// the VMCB's control fields (VMRUN intercept, ASID, permission-map
// addresses, event injection) are the backend's job, not the state's.
func CheckState(s *vmm.SRegs) error {
	if m := checkState(s); m != "" {
		return errors.New("svm: " + msgPrefixInvl + m)
	}
	return nil
}

// checkState returns why s is illegal, or "" (a constant: no allocation).
func checkState(s *vmm.SRegs) string {
	cr0, cr4, efer := s.CR0, s.CR4, s.EFER
	switch {
	case cr0>>32 != 0:
		return msgCR0High
	case cr0&CR0NW != 0 && cr0&CR0CD == 0:
		return msgCR0NW
	case cr0&CR0PG != 0 && cr0&CR0PE == 0:
		return msgCR0PG
	case s.CR3>>52 != 0:
		return msgCR3
	case cr4&^cr4Defined != 0:
		return msgCR4
	case efer&^eferDefined != 0:
		return msgEFER
	}
	long := efer&EFERLME != 0 && cr0&CR0PG != 0
	switch {
	case long && cr4&CR4PAE == 0:
		return msgLongNoPAE
	case long && s.CS.Attr&vmm.SegL != 0 && s.CS.Attr&vmm.SegDB != 0:
		return msgLongCSLD
	case (efer&EFERLMA != 0) != long:
		return msgLMA
	}
	return ""
}

// guestCPL is the CPL VMRUN must see for the state: 0 in real mode, 3 in
// virtual-8086 mode, else SS.DPL (APM 15.5.1: the VMCB's CPL field).
func guestCPL(cr0, rflags uint64, ss vmm.Segment) uint8 {
	switch {
	case cr0&CR0PE == 0:
		return 0
	case rflags&RFLAGSVM != 0:
		return 3
	}
	return uint8(ss.Attr>>5) & 3
}
