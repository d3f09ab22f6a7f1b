package vmm

// The guest MSR policy. Backends intercept every RDMSR and WRMSR (no MSR
// is passed through), and the core emulates an allow-list; any other MSR
// raises #GP(0) in the guest, as on a CPU without it. A guest never sees
// a host MSR value.
//
// The allow-list (index, what a read returns, what a write does; a
// rejected write raises #GP(0)):
//
//	IA32_TSC              0x10        HostTSC()+MSR.TSCOffset; a write sets the offset (guest TSC := value)
//	IA32_PLATFORM_ID      0x17        Intel only: 0 (the microcode loader reads it); read-only
//	IA32_APIC_BASE        0x1B        FEE0_0000 | enabled (bit 11) | BSP (bit 8, vCPU 0); only a write of that value is accepted
//	IA32_FEATURE_CONTROL  0x3A        Intel only: 1 (locked, VMX off: Linux reads it); read-only
//	IA32_BIOS_SIGN_ID     0x8B        1<<32 (microcode revision 1 in EDX, as KVM reports); writes ignored (the
//	                                  documented way to read it is to write 0 first). AMD's PATCH_LEVEL is the same index.
//	IA32_MTRRCAP          0xFE        0x400: WC supported, no fixed-range and no variable-range MTRRs; read-only
//	IA32_SYSENTER_CS/ESP/EIP 0x174-6  stored in MSR, loaded into the hardware; ESP and EIP must be canonical
//	IA32_MISC_ENABLE      0x1A0       Intel only: fast strings (bit 0, writable), BTS and PEBS unavailable (bits 11,
//	                                  12); a write may change only bit 0
//	IA32_DEBUGCTL         0x1D9       0; only 0 may be written (no LBR or BTF)
//	IA32_PAT              0x277       stored in MSR (power-on 0007040600070406), loaded into the hardware (g_PAT /
//	                                  the VMCS guest PAT); every byte must be a valid type (0, 1, 4, 5, 6, 7)
//	IA32_MTRR_DEF_TYPE    0x2FF       stored; starts enabled and write-back (what firmware leaves, as juice
//	                                  boots kernels directly); type must be valid (0, 1, 4, 5, 6), FE must stay 0
//	                                  (no fixed ranges), other bits reserved. Under nested paging guest MTRRs
//	                                  do not affect the hardware: the value only tells the guest OS.
//	EFER                  0xC000_0080 the guest's EFER (SRegs.EFER) with SVME hidden; a write may set SCE, LME,
//	                                  NXE (if CPUID reports SYSCALL, long mode, NX); LMA is read-only; changing
//	                                  LME while paging is on, and any other bit, raises #GP
//	STAR                  0xC000_0081 stored in MSR, loaded into the hardware
//	LSTAR, CSTAR          0xC000_0082/3 stored, must be canonical
//	SFMASK                0xC000_0084 stored; bits 63:32 are reserved
//	FS_BASE, GS_BASE      0xC000_0100/1 the guest's SRegs.FS.Base / GS.Base (must be canonical)
//	KERNEL_GS_BASE        0xC000_0102 stored, must be canonical
//	HWCR                  0xC001_0015 AMD only: TscFreqSel (bit 24: the TSC counts at P0 frequency; Linux warns
//	                                  without it); a write must leave the value unchanged
//	INT_PENDING_MSG       0xC001_0055 AMD only: 0 (C1E not in use; Linux reads it on family 0Fh/10h); read-only
//	DE_CFG                0xC001_1029 AMD only: LFENCE serializing (bit 1); a write must leave the value unchanged
//
// Deliberately absent (#GP): x2APIC (0x800-0x8FF), TSC_DEADLINE,
// TSC_ADJUST, TSC_AUX, SPEC_CTRL, PRED_CMD, ARCH_CAPABILITIES, FLUSH_CMD,
// machine-check banks, performance counters, thermal and power MSRs, XSS,
// VMX capability MSRs, VM_CR, VM_HSAVE_PA, SYSCFG, OSVW, MPERF/APERF: the
// CPUID policy hides every feature that would make a guest use them, and
// Linux reads the rest with the exception-safe accessors.

// MSR indices.
const (
	MSRTSC             = 0x10
	MSRPlatformID      = 0x17
	MSRAPICBase        = 0x1b
	MSRFeatureControl  = 0x3a
	MSRBIOSSignID      = 0x8b
	MSRMTRRCap         = 0xfe
	MSRSysenterCS      = 0x174
	MSRSysenterESP     = 0x175
	MSRSysenterEIP     = 0x176
	MSRMiscEnable      = 0x1a0
	MSRDebugCtl        = 0x1d9
	MSRPAT             = 0x277
	MSRMTRRDefType     = 0x2ff
	MSREFER            = 0xc0000080
	MSRSTAR            = 0xc0000081
	MSRLSTAR           = 0xc0000082
	MSRCSTAR           = 0xc0000083
	MSRSFMASK          = 0xc0000084
	MSRFSBase          = 0xc0000100
	MSRGSBase          = 0xc0000101
	MSRKernelGSBase    = 0xc0000102
	MSRHWCR            = 0xc0010015
	MSRDECfg           = 0xc0011029
	MSRIntPendingMsg   = 0xc0010055
	msrAPICBaseDefault = 0xfee00000
)

// Fixed and initial MSR values.
const (
	apicBaseEnable        = 1 << 11
	apicBaseBSP           = 1 << 8
	patPowerOn            = 0x0007040600070406
	mtrrCapValue          = 1 << 10 // WC; VCNT 0; no FIX
	mtrrDefTypeBoot       = 1<<11 | 6
	mtrrDefTypeE          = 1 << 11
	mtrrDefTypeFE         = 1 << 10
	miscEnableFastStrings = 1 << 0
	miscEnableFixed       = 1<<11 | 1<<12 // BTS unavailable, PEBS unavailable
	biosSignID            = 1 << 32
	hwcrValue             = 1 << 24
	deCfgValue            = 1 << 1
	featureControlLocked  = 1
)

// MSRState is the guest MSR state that lives in the hardware's guest-state
// area. The core owns it: every guest RDMSR and WRMSR is intercepted and
// emulated from these values. The backend loads all of it at the next
// entry when VCPU.MSRDirty is set (and clears the flag): on SVM STAR,
// LSTAR, CSTAR, SFMASK, KernelGSBase, SYSENTER_* and g_PAT live in the
// VMCB and TSCOffset is the VMCB's TSC_OFFSET; on VMX SYSENTER_*, PAT and
// the TSC offset are VMCS fields and the SYSCALL MSRs go in the MSR-load
// lists. KernelGSBase also changes without an exit (SWAPGS exchanges it
// with GS.Base): the backend refreshes it from the hardware after every
// exit.
type MSRState struct {
	// The SYSCALL MSRs and KERNEL_GS_BASE (SWAPGS).
	STAR, LSTAR, CSTAR, SFMASK, KernelGSBase uint64
	// The SYSENTER MSRs.
	SysenterCS, SysenterESP, SysenterEIP uint64
	// PAT is IA32_PAT, the guest's page attribute table.
	PAT uint64
	// TSCOffset is added (mod 2^64) to the host TSC to give the guest's.
	TSCOffset uint64
}

// rdmsr emulates RDMSR of idx; ok is false for a #GP.
func (vm *VM) rdmsr(v *VCPU, idx uint32) (val uint64, ok bool) {
	if vm.plat != nil {
		if val, handled, ok := vm.plat.ReadMSR(v, idx); handled {
			return val, ok
		}
	}
	intel, amd := vm.cpuid.vendor == VendorIntel, vm.cpuid.vendor == VendorAMD
	switch idx {
	case MSRTSC:
		return vm.hostTSC() + v.MSR.TSCOffset, true
	case MSRPlatformID:
		return 0, intel
	case MSRAPICBase:
		return apicBase(v), true
	case MSRFeatureControl:
		return featureControlLocked, intel
	case MSRBIOSSignID:
		return biosSignID, true
	case MSRMTRRCap:
		return mtrrCapValue, true
	case MSRSysenterCS:
		return v.MSR.SysenterCS, true
	case MSRSysenterESP:
		return v.MSR.SysenterESP, true
	case MSRSysenterEIP:
		return v.MSR.SysenterEIP, true
	case MSRMiscEnable:
		return v.c.miscEnable, intel
	case MSRDebugCtl:
		return 0, true
	case MSRPAT:
		return v.MSR.PAT, true
	case MSRMTRRDefType:
		return v.c.mtrrDefType, true
	case MSREFER:
		v.syncSRegs()
		return v.SRegs.EFER &^ eferSVME, true
	case MSRSTAR:
		return v.MSR.STAR, true
	case MSRLSTAR:
		return v.MSR.LSTAR, true
	case MSRCSTAR:
		return v.MSR.CSTAR, true
	case MSRSFMASK:
		return v.MSR.SFMASK, true
	case MSRFSBase:
		v.syncSRegs()
		return v.SRegs.FS.Base, true
	case MSRGSBase:
		v.syncSRegs()
		return v.SRegs.GS.Base, true
	case MSRKernelGSBase:
		return v.MSR.KernelGSBase, true
	case MSRHWCR:
		return hwcrValue, amd
	case MSRDECfg:
		return deCfgValue, amd
	case MSRIntPendingMsg:
		return 0, amd // no C1E: Linux's AMD erratum-400 idle check reads it
	}
	return 0, false
}

// wrmsr emulates WRMSR of val to idx; ok is false for a #GP.
func (vm *VM) wrmsr(v *VCPU, idx uint32, val uint64) bool {
	if vm.plat != nil {
		if handled, ok := vm.plat.WriteMSR(v, idx, val); handled {
			return ok
		}
	}
	intel, amd := vm.cpuid.vendor == VendorIntel, vm.cpuid.vendor == VendorAMD
	switch idx {
	case MSRTSC:
		v.MSR.TSCOffset = val - vm.hostTSC()
	case MSRAPICBase:
		return val == apicBase(v)
	case MSRBIOSSignID:
		// Ignored: writing 0 then executing CPUID is how the revision is read.
	case MSRSysenterCS:
		v.MSR.SysenterCS = val & 0xffffffff
	case MSRSysenterESP:
		if !canonical(val, 4) {
			return false
		}
		v.MSR.SysenterESP = val
	case MSRSysenterEIP:
		if !canonical(val, 4) {
			return false
		}
		v.MSR.SysenterEIP = val
	case MSRMiscEnable:
		if !intel || (val^v.c.miscEnable)&^miscEnableFastStrings != 0 {
			return false
		}
		v.c.miscEnable = val
		return true
	case MSRDebugCtl:
		return val == 0
	case MSRPAT:
		if !validPAT(val) {
			return false
		}
		v.MSR.PAT = val
	case MSRMTRRDefType:
		t := val & 0xff
		if val&^(0xff|mtrrDefTypeE|mtrrDefTypeFE) != 0 || val&mtrrDefTypeFE != 0 || !(t <= 1 || t >= 4 && t <= 6) {
			return false
		}
		v.c.mtrrDefType = val
		return true
	case MSREFER:
		return vm.writeEFER(v, val)
	case MSRSTAR:
		v.MSR.STAR = val
	case MSRLSTAR:
		if !canonical(val, 4) {
			return false
		}
		v.MSR.LSTAR = val
	case MSRCSTAR:
		if !canonical(val, 4) {
			return false
		}
		v.MSR.CSTAR = val
	case MSRSFMASK:
		if val>>32 != 0 {
			return false
		}
		v.MSR.SFMASK = val
	case MSRFSBase, MSRGSBase:
		if !canonical(val, 4) {
			return false
		}
		v.syncSRegs()
		if idx == MSRFSBase {
			v.SRegs.FS.Base = val
		} else {
			v.SRegs.GS.Base = val
		}
		v.SRegsDirty = true
		return true
	case MSRKernelGSBase:
		if !canonical(val, 4) {
			return false
		}
		v.MSR.KernelGSBase = val
	case MSRHWCR:
		return amd && val == hwcrValue
	case MSRDECfg:
		return amd && val == deCfgValue
	default:
		return false
	}
	v.MSRDirty = true
	return true
}

// writeEFER validates and applies a guest write to EFER.
func (vm *VM) writeEFER(v *VCPU, val uint64) bool {
	allowed := uint64(eferLMA)
	t := vm.cpuid
	if t.Has(0x80000001, 0, 3, 11) {
		allowed |= eferSCE
	}
	if t.Has(0x80000001, 0, 3, 29) {
		allowed |= eferLME
	}
	if t.Has(0x80000001, 0, 3, 20) {
		allowed |= eferNXE
	}
	if val&^allowed != 0 {
		return false
	}
	v.syncSRegs()
	cur := v.SRegs.EFER
	if v.SRegs.CR0&cr0PG != 0 && (val^cur)&eferLME != 0 {
		return false
	}
	v.SRegs.EFER = val&^eferLMA | cur&eferLMA
	v.SRegsDirty = true
	return true
}

// apicBase is IA32_APIC_BASE for v: the fixed base, enabled, BSP on vCPU 0.
func apicBase(v *VCPU) uint64 {
	b := uint64(msrAPICBaseDefault | apicBaseEnable)
	if v.ID == 0 {
		b |= apicBaseBSP
	}
	return b
}

// validPAT reports whether every PAT entry is a defined memory type (UC 0,
// WC 1, WT 4, WP 5, WB 6, UC- 7) with its reserved bits clear.
func validPAT(v uint64) bool {
	for i := 0; i < 8; i++ {
		switch v >> (8 * i) & 0xff {
		case 0, 1, 4, 5, 6, 7:
		default:
			return false
		}
	}
	return true
}
