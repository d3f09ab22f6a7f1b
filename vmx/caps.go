// Package vmx holds juice's Intel VT-x (VMX) definitions. This file decodes
// the processor's VMX capabilities from CPUID and the VMX capability MSRs
// (Intel SDM Vol. 3D, Appendix A "VMX Capability Reporting Facility") for
// the boot banner and for choosing the VMX backend's features.
//
// Reading the hardware happens elsewhere (juice/cpu: CPUID, RDMSR); this
// code only decodes values, so it is pure and host-testable. Decode
// allocates nothing; String allocates its result.
package vmx

// VMX capability MSR indices (Intel SDM Vol. 4, "Model-Specific Registers";
// Vol. 3D Appendix A).
const (
	MSRFeatureControl    = 0x03a // IA32_FEATURE_CONTROL
	MSRBasic             = 0x480 // IA32_VMX_BASIC
	MSRPinbasedCtls      = 0x481 // IA32_VMX_PINBASED_CTLS
	MSRProcbasedCtls     = 0x482 // IA32_VMX_PROCBASED_CTLS
	MSRExitCtls          = 0x483 // IA32_VMX_EXIT_CTLS
	MSREntryCtls         = 0x484 // IA32_VMX_ENTRY_CTLS
	MSRMisc              = 0x485 // IA32_VMX_MISC
	MSRCr0Fixed0         = 0x486 // IA32_VMX_CR0_FIXED0
	MSRCr0Fixed1         = 0x487 // IA32_VMX_CR0_FIXED1
	MSRCr4Fixed0         = 0x488 // IA32_VMX_CR4_FIXED0
	MSRCr4Fixed1         = 0x489 // IA32_VMX_CR4_FIXED1
	MSRVMCSEnum          = 0x48a // IA32_VMX_VMCS_ENUM
	MSRProcbasedCtls2    = 0x48b // IA32_VMX_PROCBASED_CTLS2
	MSREPTVPIDCap        = 0x48c // IA32_VMX_EPT_VPID_CAP
	MSRTruePinbasedCtls  = 0x48d // IA32_VMX_TRUE_PINBASED_CTLS
	MSRTrueProcbasedCtls = 0x48e // IA32_VMX_TRUE_PROCBASED_CTLS
	MSRTrueExitCtls      = 0x48f // IA32_VMX_TRUE_EXIT_CTLS
	MSRTrueEntryCtls     = 0x490 // IA32_VMX_TRUE_ENTRY_CTLS
	MSRVMFunc            = 0x491 // IA32_VMX_VMFUNC
	MSRProcbasedCtls3    = 0x492 // IA32_VMX_PROCBASED_CTLS3
)

// CPUID1ECXVMX is CPUID.01H:ECX bit 5, "VMX".
const CPUID1ECXVMX = 1 << 5

// IA32_FEATURE_CONTROL bits (SDM Vol. 3C 24.7 "Enabling and Entering VMX
// Operation").
const (
	// FeatureControlLock: the MSR is locked until reset; once set, WRMSR to
	// it faults.
	FeatureControlLock = 1 << 0
	// FeatureControlVMXInSMX enables VMXON inside SMX operation.
	FeatureControlVMXInSMX = 1 << 1
	// FeatureControlVMXOutsideSMX enables VMXON outside SMX operation.
	FeatureControlVMXOutsideSMX = 1 << 2
)

// IA32_VMX_BASIC fields (SDM Vol. 3D A.1).
const (
	// BasicRevisionMask covers bits 30:0, the VMCS revision identifier.
	BasicRevisionMask = 0x7fffffff
	// BasicSizeShift and BasicSizeMask locate bits 44:32, the number of
	// bytes to allocate for the VMXON region and each VMCS.
	BasicSizeShift = 32
	BasicSizeMask  = 0x1fff
	// BasicTrueControls (bit 55): the IA32_VMX_TRUE_*_CTLS MSRs exist and
	// report which default-1 controls may be cleared.
	BasicTrueControls = 1 << 55
)

// Pin-based VM-execution controls (SDM Vol. 3C 25.6.1, Table 25-5).
const (
	PinExternalInterruptExiting = 1 << 0
	PinNMIExiting               = 1 << 3
	PinVirtualNMIs              = 1 << 5
	PinPreemptionTimer          = 1 << 6
	PinPostedInterrupts         = 1 << 7
)

// Primary processor-based VM-execution controls (SDM Vol. 3C 25.6.2,
// Table 25-6).
const (
	ProcHLTExiting        = 1 << 7
	ProcActivateTertiary  = 1 << 17
	ProcUseIOBitmaps      = 1 << 25
	ProcUseMSRBitmaps     = 1 << 28
	ProcActivateSecondary = 1 << 31
)

// Secondary processor-based VM-execution controls (SDM Vol. 3C 25.6.2,
// Table 25-7).
const (
	Proc2VirtualizeAPICAccesses = 1 << 0
	Proc2EnableEPT              = 1 << 1
	Proc2EnableRDTSCP           = 1 << 3
	Proc2EnableVPID             = 1 << 5
	Proc2UnrestrictedGuest      = 1 << 7
	Proc2EnableINVPCID          = 1 << 12
	Proc2EnableXSAVES           = 1 << 20
)

// IA32_VMX_EPT_VPID_CAP bits (SDM Vol. 3D A.10).
const (
	EPTCapExecuteOnly = 1 << 0
	EPTCapWalk4       = 1 << 6 // 4-level page walk
	EPTCapWalk5       = 1 << 7 // 5-level page walk
	EPTCapUC          = 1 << 8 // EPT paging structures may be uncacheable
	EPTCapWB          = 1 << 14
	EPTCap2M          = 1 << 16 // EPT PDE may map a 2-MByte page
	EPTCap1G          = 1 << 17 // EPT PDPTE may map a 1-GByte page
	EPTCapINVEPT      = 1 << 20
	EPTCapAccessDirty = 1 << 21
	EPTCapINVEPTCtx   = 1 << 25 // single-context INVEPT
	EPTCapINVEPTAll   = 1 << 26 // all-context INVEPT
	VPIDCapINVVPID    = 1 << 32
	VPIDCapINVVPIDAll = 1 << 42 // all-context INVVPID
)

// MSRs holds the raw values of the VMX capability MSRs, as read by RDMSR.
// An MSR that does not exist on the processor (its existence condition is
// in Appendix A) should be left 0; Decode ignores MSRs that cannot exist
// anyway (PROCBASED_CTLS2 without "activate secondary controls",
// EPT_VPID_CAP without EPT or VPID).
type MSRs struct {
	FeatureControl, Basic, Pinbased, Procbased, Exit, Entry, Misc,
	Cr0Fixed0, Cr0Fixed1, Cr4Fixed0, Cr4Fixed1, Procbased2, EPTVPIDCap,
	TruePinbased, TrueProcbased, TrueExit, TrueEntry uint64
}

// Caps are the VMX capabilities juice cares about.
type Caps struct {
	// Present: CPUID reports VMX. When false every other field is zero.
	Present bool
	// DisabledByFirmware: IA32_FEATURE_CONTROL is locked with VMX outside
	// SMX disabled, so VMXON will fault until the firmware setting changes.
	// (Unlocked, juice can enable and lock it itself.)
	DisabledByFirmware bool

	EPT               bool // secondary control "enable EPT" may be 1
	VPID              bool // secondary control "enable VPID" may be 1
	UnrestrictedGuest bool // secondary control "unrestricted guest" may be 1
	PreemptionTimer   bool // pin-based "activate VMX-preemption timer" may be 1

	// EPT details (all false without EPT).
	EPT4Level      bool // 4-level EPT walk
	EPTAccessDirty bool // accessed/dirty flags
	EPT2M          bool // 2-MByte EPT pages
	EPT1G          bool // 1-GByte EPT pages
	EPTWriteBack   bool // write-back EPT paging structures
	EPTUncacheable bool // uncacheable EPT paging structures
	INVEPT         bool // INVEPT instruction

	INVVPID bool // INVVPID instruction (false without VPID)

	// TrueControls: IA32_VMX_BASIC bit 55, the TRUE_*_CTLS MSRs exist.
	TrueControls bool

	// VMCSRevision goes in the first word of the VMXON region and of every
	// VMCS; VMCSSize is how many bytes each needs (at most 4096).
	VMCSRevision uint32
	VMCSSize     uint32
}

// Supported reports whether CPUID.01H:ECX (cpuid1ECX) advertises VMX.
func Supported(cpuid1ECX uint32) bool { return cpuid1ECX&CPUID1ECXVMX != 0 }

// allowed1 returns the allowed-1 settings of a VMX control capability MSR:
// its high 32 bits (SDM Vol. 3D A.3). A control may be set to 1 only if
// its bit is set here.
func allowed1(msr uint64) uint32 { return uint32(msr >> 32) }

// Decode derives Caps from CPUID.01H:ECX and the capability MSRs. A nil m
// is treated as all-zero MSRs.
func Decode(cpuid1ECX uint32, m *MSRs) Caps {
	var c Caps
	if !Supported(cpuid1ECX) {
		return c
	}
	c.Present = true
	if m == nil {
		return c
	}
	fc := m.FeatureControl
	c.DisabledByFirmware = fc&FeatureControlLock != 0 && fc&FeatureControlVMXOutsideSMX == 0

	c.VMCSRevision = uint32(m.Basic) & BasicRevisionMask
	c.VMCSSize = uint32(m.Basic>>BasicSizeShift) & BasicSizeMask
	c.TrueControls = m.Basic&BasicTrueControls != 0

	// The allowed-1 halves of the TRUE_* MSRs equal those of the plain
	// MSRs (only the allowed-0 halves differ), so the plain MSRs suffice.
	c.PreemptionTimer = allowed1(m.Pinbased)&PinPreemptionTimer != 0
	if allowed1(m.Procbased)&ProcActivateSecondary != 0 {
		sec := allowed1(m.Procbased2)
		c.EPT = sec&Proc2EnableEPT != 0
		c.VPID = sec&Proc2EnableVPID != 0
		c.UnrestrictedGuest = sec&Proc2UnrestrictedGuest != 0
	}
	ev := m.EPTVPIDCap
	if c.EPT {
		c.EPT4Level = ev&EPTCapWalk4 != 0
		c.EPTAccessDirty = ev&EPTCapAccessDirty != 0
		c.EPT2M = ev&EPTCap2M != 0
		c.EPT1G = ev&EPTCap1G != 0
		c.EPTWriteBack = ev&EPTCapWB != 0
		c.EPTUncacheable = ev&EPTCapUC != 0
		c.INVEPT = ev&EPTCapINVEPT != 0
	}
	if c.VPID {
		c.INVVPID = ev&VPIDCapINVVPID != 0
	}
	return c
}

// String summarises the capabilities for the boot banner, for example
// "VMX: EPT (2M, 1G, A/D), VPID, unrestricted guest, preemption timer",
// "VMX: absent" or "VMX: disabled by firmware".
func (c Caps) String() string {
	var buf [96]byte
	return string(c.Append(buf[:0]))
}

// Append appends String's text to b and returns the extended slice; it
// does not allocate when b has room.
func (c Caps) Append(b []byte) []byte {
	b = append(b, "VMX: "...)
	switch {
	case !c.Present:
		return append(b, "absent"...)
	case c.DisabledByFirmware:
		return append(b, "disabled by firmware"...)
	}
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ", "...)
		}
	}
	if c.EPT {
		b = append(b, "EPT"...)
		m := len(b)
		for _, f := range [...]struct {
			on   bool
			name string
		}{{c.EPT2M, "2M"}, {c.EPT1G, "1G"}, {c.EPTAccessDirty, "A/D"}} {
			if !f.on {
				continue
			}
			if len(b) == m {
				b = append(b, " ("...)
			} else {
				b = append(b, ", "...)
			}
			b = append(b, f.name...)
		}
		if len(b) > m {
			b = append(b, ')')
		}
	}
	if c.VPID {
		sep()
		b = append(b, "VPID"...)
	}
	if c.UnrestrictedGuest {
		sep()
		b = append(b, "unrestricted guest"...)
	}
	if c.PreemptionTimer {
		sep()
		b = append(b, "preemption timer"...)
	}
	if len(b) == n {
		b = append(b, "basic (no EPT, no VPID)"...)
	}
	return b
}

// ReadMSRs reads the VMX capability MSRs with rdmsr (cpu.RDMSR on the
// machine), touching only those that exist (SDM Vol. 3D Appendix A: a
// RDMSR of an absent MSR faults): the always-present ones, the CR0/CR4
// fixed-bit MSRs, the TRUE_* MSRs when IA32_VMX_BASIC bit 55 is set,
// PROCBASED_CTLS2 when "activate secondary controls" may be 1, and
// EPT_VPID_CAP when EPT or VPID may be enabled. Call it only when CPUID
// reports VMX (Supported); IA32_FEATURE_CONTROL is read too.
func ReadMSRs(rdmsr func(msr uint32) uint64) MSRs {
	var m MSRs
	m.FeatureControl = rdmsr(MSRFeatureControl)
	m.Basic = rdmsr(MSRBasic)
	m.Pinbased = rdmsr(MSRPinbasedCtls)
	m.Procbased = rdmsr(MSRProcbasedCtls)
	m.Exit = rdmsr(MSRExitCtls)
	m.Entry = rdmsr(MSREntryCtls)
	m.Misc = rdmsr(MSRMisc)
	m.Cr0Fixed0 = rdmsr(MSRCr0Fixed0)
	m.Cr0Fixed1 = rdmsr(MSRCr0Fixed1)
	m.Cr4Fixed0 = rdmsr(MSRCr4Fixed0)
	m.Cr4Fixed1 = rdmsr(MSRCr4Fixed1)
	if m.Basic&BasicTrueControls != 0 {
		m.TruePinbased = rdmsr(MSRTruePinbasedCtls)
		m.TrueProcbased = rdmsr(MSRTrueProcbasedCtls)
		m.TrueExit = rdmsr(MSRTrueExitCtls)
		m.TrueEntry = rdmsr(MSRTrueEntryCtls)
	}
	if allowed1(m.Procbased)&ProcActivateSecondary != 0 {
		m.Procbased2 = rdmsr(MSRProcbasedCtls2)
		if allowed1(m.Procbased2)&(Proc2EnableEPT|Proc2EnableVPID) != 0 {
			m.EPTVPIDCap = rdmsr(MSREPTVPIDCap)
		}
	}
	return m
}
