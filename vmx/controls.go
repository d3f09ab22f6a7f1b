package vmx

import (
	"errors"
	"math/bits"
	"strconv"
)

// More control bits than caps.go needs for the banner. Pin-based controls
// are in caps.go.

// Primary processor-based VM-execution controls (SDM Vol. 3C 25.6.2,
// Table 25-6), beyond those in caps.go.
const (
	ProcInterruptWindowExiting = 1 << 2
	ProcUseTSCOffsetting       = 1 << 3
	ProcINVLPGExiting          = 1 << 9
	ProcMWAITExiting           = 1 << 10
	ProcRDPMCExiting           = 1 << 11
	ProcRDTSCExiting           = 1 << 12
	ProcCR3LoadExiting         = 1 << 15
	ProcCR3StoreExiting        = 1 << 16
	ProcCR8LoadExiting         = 1 << 19
	ProcCR8StoreExiting        = 1 << 20
	ProcUseTPRShadow           = 1 << 21
	ProcNMIWindowExiting       = 1 << 22
	ProcMOVDRExiting           = 1 << 23
	ProcUnconditionalIOExiting = 1 << 24
	ProcMonitorTrapFlag        = 1 << 27
	ProcMONITORExiting         = 1 << 29
	ProcPAUSEExiting           = 1 << 30
)

// Secondary processor-based VM-execution controls (SDM Vol. 3C 25.6.2,
// Table 25-7), beyond those in caps.go.
const (
	Proc2DescriptorTableExiting = 1 << 2
	Proc2VirtualizeX2APIC       = 1 << 4
	Proc2WBINVDExiting          = 1 << 6
	Proc2APICRegisterVirt       = 1 << 8
	Proc2VirtualIntrDelivery    = 1 << 9
	Proc2PauseLoopExiting       = 1 << 10
	Proc2RDRANDExiting          = 1 << 11
	Proc2EnableVMFunctions      = 1 << 13
	Proc2VMCSShadowing          = 1 << 14
	Proc2RDSEEDExiting          = 1 << 16
	Proc2EnablePML              = 1 << 17
	Proc2EPTViolationVE         = 1 << 18
	Proc2TSCScaling             = 1 << 25
)

// VM-exit controls (SDM Vol. 3C 25.7.1, Table 25-13).
const (
	ExitCtlSaveDebugControls     = 1 << 2
	ExitCtlHostAddrSpaceSize     = 1 << 9 // the host runs in 64-bit mode after the exit
	ExitCtlLoadPerfGlobalCtrl    = 1 << 12
	ExitCtlAckInterruptOnExit    = 1 << 15
	ExitCtlSavePAT               = 1 << 18
	ExitCtlLoadPAT               = 1 << 19
	ExitCtlSaveEFER              = 1 << 20
	ExitCtlLoadEFER              = 1 << 21
	ExitCtlSavePreemptionTimer   = 1 << 22
	ExitCtlClearBNDCFGS          = 1 << 23
	ExitCtlActivateSecondaryExit = 1 << 31
)

// VM-entry controls (SDM Vol. 3C 25.8.1, Table 25-15).
const (
	EntryCtlLoadDebugControls     = 1 << 2
	EntryCtlIA32eModeGuest        = 1 << 9
	EntryCtlEntryToSMM            = 1 << 10
	EntryCtlDeactivateDualMonitor = 1 << 11
	EntryCtlLoadPerfGlobalCtrl    = 1 << 13
	EntryCtlLoadPAT               = 1 << 14
	EntryCtlLoadEFER              = 1 << 15
	EntryCtlLoadBNDCFGS           = 1 << 16
)

// Control names one of the five 32-bit control words.
type Control uint8

// The control words.
const (
	CtlPin   Control = iota // pin-based VM-execution controls
	CtlProc                 // primary processor-based VM-execution controls
	CtlProc2                // secondary processor-based VM-execution controls
	CtlExit                 // VM-exit controls
	CtlEntry                // VM-entry controls
	numControls
)

var controlNames = [numControls]string{
	"pin-based", "primary processor-based", "secondary processor-based", "VM-exit", "VM-entry",
}

// String names the control word, e.g. "secondary processor-based".
func (k Control) String() string {
	if k < numControls {
		return controlNames[k]
	}
	return "unknown"
}

// controlBitNames names each control bit (the SDM's names); "" for
// reserved bits.
var controlBitNames = [numControls][32]string{
	CtlPin: {
		0: "external-interrupt exiting", 3: "NMI exiting", 5: "virtual NMIs",
		6: "activate VMX-preemption timer", 7: "process posted interrupts",
	},
	CtlProc: {
		2: "interrupt-window exiting", 3: "use TSC offsetting", 7: "HLT exiting",
		9: "INVLPG exiting", 10: "MWAIT exiting", 11: "RDPMC exiting", 12: "RDTSC exiting",
		15: "CR3-load exiting", 16: "CR3-store exiting", 17: "activate tertiary controls",
		19: "CR8-load exiting", 20: "CR8-store exiting", 21: "use TPR shadow",
		22: "NMI-window exiting", 23: "MOV-DR exiting", 24: "unconditional I/O exiting",
		25: "use I/O bitmaps", 27: "monitor trap flag", 28: "use MSR bitmaps",
		29: "MONITOR exiting", 30: "PAUSE exiting", 31: "activate secondary controls",
	},
	CtlProc2: {
		0: "virtualize APIC accesses", 1: "EPT", 2: "descriptor-table exiting",
		3: "enable RDTSCP", 4: "virtualize x2APIC mode", 5: "enable VPID",
		6: "WBINVD exiting", 7: "unrestricted guest", 8: "APIC-register virtualization",
		9: "virtual-interrupt delivery", 10: "PAUSE-loop exiting", 11: "RDRAND exiting",
		12: "enable INVPCID", 13: "enable VM functions", 14: "VMCS shadowing",
		15: "enable ENCLS exiting", 16: "RDSEED exiting", 17: "enable PML",
		18: "EPT-violation #VE", 19: "conceal VMX from PT", 20: "enable XSAVES/XRSTORS",
		22: "mode-based execute control for EPT", 23: "sub-page write permissions for EPT",
		24: "Intel PT uses guest physical addresses", 25: "use TSC scaling",
		26: "enable user wait and pause", 28: "enable ENCLV exiting",
	},
	CtlExit: {
		2: "save debug controls", 9: "host address-space size",
		12: "load IA32_PERF_GLOBAL_CTRL", 15: "acknowledge interrupt on exit",
		18: "save IA32_PAT", 19: "load IA32_PAT", 20: "save IA32_EFER", 21: "load IA32_EFER",
		22: "save VMX-preemption timer value", 23: "clear IA32_BNDCFGS",
		24: "conceal VMX from PT", 25: "clear IA32_RTIT_CTL", 28: "load CET state",
		29: "load PKRS", 31: "activate secondary controls",
	},
	CtlEntry: {
		2: "load debug controls", 9: "IA-32e mode guest", 10: "entry to SMM",
		11: "deactivate dual-monitor treatment", 13: "load IA32_PERF_GLOBAL_CTRL",
		14: "load IA32_PAT", 15: "load IA32_EFER", 16: "load IA32_BNDCFGS",
		17: "conceal VMX from PT", 18: "load IA32_RTIT_CTL", 20: "load CET state",
		22: "load PKRS",
	},
}

// BitName names bit b of control word k, e.g. CtlProc2.BitName(1) ==
// "EPT"; reserved bits are "bit N".
func (k Control) BitName(b int) string {
	if k < numControls && b >= 0 && b < 32 && controlBitNames[k][b] != "" {
		return controlBitNames[k][b]
	}
	return "bit " + strconv.Itoa(b)
}

// describe is `"name" (<word> control bit N)` for an error message.
func (k Control) describe(b int) string {
	return strconv.Quote(k.BitName(b)) + " (" + k.String() + " control bit " + strconv.Itoa(b) + ")"
}

// adjust computes the control word k to program from the capability MSR
// capMSR (SDM Vol. 3D A.3-A.5: bits 31:0 are the allowed 0-settings, a
// set bit there must be 1; bits 63:32 the allowed 1-settings, a clear bit
// there must be 0): want | must, with the bits that must be 1 forced on
// and the bits that must be 0 forced off. A bit of must that the CPU
// cannot set is an error naming the control; so is an MSR that requires a
// bit it does not allow.
func (k Control) adjust(want, must uint32, capMSR uint64) (uint32, error) {
	allowed0, allowed1 := uint32(capMSR), uint32(capMSR>>32)
	if miss := must &^ allowed1; miss != 0 {
		return 0, errors.New("vmx: the CPU cannot enable " + k.describe(bits.TrailingZeros32(miss)))
	}
	if bad := allowed0 &^ allowed1; bad != 0 {
		return 0, errors.New("vmx: the capability MSR of the " + k.String() +
			" controls requires and forbids " + k.describe(bits.TrailingZeros32(bad)))
	}
	return (want | must | allowed0) & allowed1, nil
}

// forbid reports an error when the adjusted word got has a bit of never
// set (the CPU requires a control juice cannot work with).
func (k Control) forbid(got, never uint32) error {
	if bad := got & never; bad != 0 {
		return errors.New("vmx: the CPU cannot disable " + k.describe(bits.TrailingZeros32(bad)))
	}
	return nil
}

// toggle reports an error unless bit can be both set and cleared at run
// time (interrupt-window exiting, IA-32e mode guest).
func (k Control) toggle(bit uint32, capMSR uint64) error {
	allowed0, allowed1 := uint32(capMSR), uint32(capMSR>>32)
	switch {
	case bit&^allowed1 != 0:
		return errors.New("vmx: the CPU cannot enable " + k.describe(bits.TrailingZeros32(bit)))
	case bit&allowed0 != 0:
		return errors.New("vmx: the CPU cannot disable " + k.describe(bits.TrailingZeros32(bit)))
	}
	return nil
}

// capMSR returns the capability MSR that governs control word k: the
// IA32_VMX_TRUE_* MSR when IA32_VMX_BASIC bit 55 says they exist (they
// let default-1 controls such as CR3-load exiting be cleared), else the
// plain one. The secondary controls have a single MSR, which exists only
// when "activate secondary controls" may be 1; 0 (nothing allowed)
// otherwise.
func (m *MSRs) capMSR(k Control) uint64 {
	tc := m.Basic&BasicTrueControls != 0
	switch k {
	case CtlPin:
		if tc {
			return m.TruePinbased
		}
		return m.Pinbased
	case CtlProc:
		if tc {
			return m.TrueProcbased
		}
		return m.Procbased
	case CtlProc2:
		if allowed1(m.Procbased)&ProcActivateSecondary == 0 {
			return 0
		}
		return m.Procbased2
	case CtlExit:
		if tc {
			return m.TrueExit
		}
		return m.Exit
	case CtlEntry:
		if tc {
			return m.TrueEntry
		}
		return m.Entry
	}
	return 0
}

// Options are juice's choices among optional VMX features.
type Options struct {
	// PreemptionTimer activates the VMX-preemption timer when the CPU
	// has it (an exit after PreemptionTimerValue ticks; ExitExtIntr).
	PreemptionTimer bool
	// AckInterruptOnExit sets "acknowledge interrupt on exit": the CPU
	// acknowledges a host interrupt that ends the guest's run and reports
	// its vector in the exit interruption information (Exit.Vector of
	// ExitExtIntr), and the host must then dispatch the vector itself.
	// Off, the interrupt stays pending in the local APIC and is taken
	// through the IDT as soon as the host sets RFLAGS.IF after the exit,
	// the way svm's hosts take them after STGI; that is juice's default.
	AckInterruptOnExit bool
}

// Controls are the VMX controls juice programs into every VMCS, adjusted
// to the CPU, and the CR0/CR4 fixed bits it must respect.
type Controls struct {
	Pin, Proc, Proc2, Exit, Entry uint32

	// CR0Fixed0, CR0Fixed1, CR4Fixed0, CR4Fixed1 are the
	// IA32_VMX_CR{0,4}_FIXED{0,1} MSRs: a bit set in FIXED0 must be 1 in
	// the guest's (and the host's) CR, a bit clear in FIXED1 must be 0.
	CR0Fixed0, CR0Fixed1, CR4Fixed0, CR4Fixed1 uint64
}

// The controls juice needs (must), would like (want, used when the CPU
// allows), switches at run time (toggle: must be allowed both ways) and
// cannot work with (never).
//
// Pin-based: host interrupts and NMIs always exit (the host owns them);
// virtual NMIs when available, so NMI blocking is tracked per guest.
//
// Primary: HLT, MWAIT and MONITOR exit (CPUID hides MONITOR/MWAIT, and a
// native MWAIT would idle the host CPU); the I/O and MSR bitmaps decide
// every port and MSR (juice intercepts all); TSC offsetting gives the
// guest MSRState.TSCOffset; the TPR shadow makes a 64-bit guest's MOV
// CR8 use the virtual-APIC page instead of the host's real TPR (the role
// V_INTR_MASKING plays on AMD). Interrupt-window exiting is switched by
// RequestInterruptWindow. Under EPT the guest owns CR3, so CR3-load and
// CR3-store exiting must be clearable (every CPU with EPT has the TRUE
// MSRs that allow it); CR8, MOV-DR, INVLPG and RDTSC exiting and the
// monitor trap flag would give exits the backend does not handle.
//
// Secondary: EPT (required); unrestricted guest (real mode and paging-off
// protected mode, which is how every juice guest starts), VPID and
// PAUSE-loop exiting when available. Everything else stays off, notably
// "enable RDTSCP" and "enable INVPCID" (RDTSCP, RDPID and INVPCID then
// raise #UD, as juice's CPUID policy promises) and "enable XSAVES".
//
// VM-exit: a 64-bit host; IA32_PAT and IA32_EFER saved for the guest and
// loaded for the host; debug controls saved (default-1 on older CPUs).
// VM-entry: IA32_PAT and IA32_EFER loaded; debug controls loaded; "IA-32e
// mode guest" follows the guest's EFER.LMA (EntryFor); never SMM entry
// or dual-monitor deactivation.
const (
	pinMust  = PinExternalInterruptExiting | PinNMIExiting
	pinWant  = PinVirtualNMIs
	pinNever = PinPostedInterrupts

	procMust = ProcHLTExiting | ProcMWAITExiting | ProcMONITORExiting | ProcUseTSCOffsetting |
		ProcUseTPRShadow | ProcUseIOBitmaps | ProcUseMSRBitmaps | ProcActivateSecondary
	procToggle = ProcInterruptWindowExiting
	procNever  = ProcCR3LoadExiting | ProcCR3StoreExiting | ProcCR8LoadExiting | ProcCR8StoreExiting |
		ProcMOVDRExiting | ProcINVLPGExiting | ProcRDTSCExiting | ProcMonitorTrapFlag | ProcActivateTertiary |
		ProcInterruptWindowExiting | ProcNMIWindowExiting

	proc2Must  = Proc2EnableEPT
	proc2Want  = Proc2UnrestrictedGuest | Proc2EnableVPID | Proc2PauseLoopExiting
	proc2Never = ^uint32(proc2Must | proc2Want)

	exitMust  = ExitCtlHostAddrSpaceSize | ExitCtlSavePAT | ExitCtlLoadPAT | ExitCtlSaveEFER | ExitCtlLoadEFER
	exitWant  = ExitCtlSaveDebugControls
	exitNever = ExitCtlActivateSecondaryExit

	entryMust   = EntryCtlLoadPAT | EntryCtlLoadEFER
	entryWant   = EntryCtlLoadDebugControls
	entryToggle = EntryCtlIA32eModeGuest
	entryNever  = EntryCtlEntryToSMM | EntryCtlDeactivateDualMonitor | EntryCtlIA32eModeGuest
)

// ChooseControls computes juice's controls for a CPU whose capability
// MSRs are m (see the constants above for what juice asks for and why).
// It fails, naming the control and the feature, when the CPU cannot give
// juice what it needs: no secondary controls or no EPT, a control juice
// must set that the CPU cannot, or one juice must leave clear that the CPU
// forces on.
func ChooseControls(m *MSRs, opt Options) (Controls, error) {
	var c Controls
	if m == nil {
		return c, errors.New("vmx: no capability MSRs")
	}
	if allowed1(m.Procbased)&ProcActivateSecondary == 0 {
		return c, errors.New("vmx: the CPU cannot enable " + CtlProc2.describe(1) +
			": it has no secondary processor-based controls")
	}
	pinWant := uint32(pinWant)
	if opt.PreemptionTimer {
		pinWant |= PinPreemptionTimer
	}
	exitWant, exitNever := uint32(exitWant), uint32(exitNever)
	if opt.AckInterruptOnExit {
		exitWant |= ExitCtlAckInterruptOnExit
	} else {
		exitNever |= ExitCtlAckInterruptOnExit
	}
	words := [numControls]struct {
		dst                       *uint32
		want, must, toggle, never uint32
	}{
		CtlPin:   {&c.Pin, pinWant, pinMust, 0, pinNever},
		CtlProc:  {&c.Proc, 0, procMust, procToggle, procNever},
		CtlProc2: {&c.Proc2, proc2Want, proc2Must, 0, proc2Never},
		CtlExit:  {&c.Exit, exitWant, exitMust, 0, exitNever},
		CtlEntry: {&c.Entry, entryWant, entryMust, entryToggle, entryNever},
	}
	for k := Control(0); k < numControls; k++ {
		w := words[k]
		cm := m.capMSR(k)
		got, err := k.adjust(w.want, w.must, cm)
		if err != nil {
			return Controls{}, err
		}
		if w.toggle != 0 {
			if err := k.toggle(w.toggle, cm); err != nil {
				return Controls{}, err
			}
		}
		if err := k.forbid(got, w.never); err != nil {
			return Controls{}, err
		}
		*w.dst = got
	}
	c.CR0Fixed0, c.CR0Fixed1 = m.Cr0Fixed0, m.Cr0Fixed1
	c.CR4Fixed0, c.CR4Fixed1 = m.Cr4Fixed0, m.Cr4Fixed1
	return c, nil
}

// UnrestrictedGuest reports whether the guest may run in real mode and
// with paging off (the secondary control is set).
func (c *Controls) UnrestrictedGuest() bool { return c.Proc2&Proc2UnrestrictedGuest != 0 }

// VPID reports whether "enable VPID" is set.
func (c *Controls) VPID() bool { return c.Proc2&Proc2EnableVPID != 0 }

// VirtualNMIs reports whether "virtual NMIs" is set.
func (c *Controls) VirtualNMIs() bool { return c.Pin&PinVirtualNMIs != 0 }

// PreemptionTimer reports whether the VMX-preemption timer is active.
func (c *Controls) PreemptionTimer() bool { return c.Pin&PinPreemptionTimer != 0 }

// PauseLoopExiting reports whether PAUSE-loop exiting is set (PLEGap and
// PLEWindow must then be programmed).
func (c *Controls) PauseLoopExiting() bool { return c.Proc2&Proc2PauseLoopExiting != 0 }

// EFERLMA is IA32_EFER.LMA (bit 10): the guest is in IA-32e mode.
const EFERLMA = 1 << 10

// EntryFor is the VM-entry controls for a guest whose IA32_EFER is efer:
// Entry with "IA-32e mode guest" set exactly when EFER.LMA is (SDM
// 27.3.1.1 requires the two to agree when "load IA32_EFER" is set).
func (c *Controls) EntryFor(efer uint64) uint32 {
	if efer&EFERLMA != 0 {
		return c.Entry | EntryCtlIA32eModeGuest
	}
	return c.Entry &^ EntryCtlIA32eModeGuest
}

// CR0 bits that unrestricted guest exempts from IA32_VMX_CR0_FIXED0.
const (
	CR0PE = 1 << 0
	CR0NE = 1 << 5
	CR0NW = 1 << 29
	CR0CD = 1 << 30
	CR0PG = 1 << 31
)

// cr0Fixed0 is the effective CR0 FIXED0: without PE and PG under
// unrestricted guest (SDM Vol. 3D A.7).
func (c *Controls) cr0Fixed0() uint64 {
	f := c.CR0Fixed0
	if c.UnrestrictedGuest() {
		f &^= CR0PE | CR0PG
	}
	return f
}

// GuestCR0 is the value the VMCS's guest CR0 field must hold for a guest
// that believes its CR0 is cr0: the fixed-1 bits forced on, the fixed-0
// bits forced off. Under unrestricted guest PE and PG are the guest's own.
// (The CR0 read shadow gives the guest back its own value for the bits of
// CR0Mask.)
func (c *Controls) GuestCR0(cr0 uint64) uint64 { return (cr0 | c.cr0Fixed0()) & c.CR0Fixed1 }

// GuestCR4 is GuestCR4's counterpart for CR4 (VMXE, bit 13, is fixed 1).
func (c *Controls) GuestCR4(cr4 uint64) uint64 { return (cr4 | c.CR4Fixed0) & c.CR4Fixed1 }

// CR0Mask is the CR0 guest/host mask: the bits the hardware fixes (so the
// guest's view of them comes from the read shadow and a guest write that
// would change them exits). Under unrestricted guest that leaves PE and PG
// to the guest.
func (c *Controls) CR0Mask() uint64 { return c.cr0Fixed0() | ^c.CR0Fixed1 }

// CR4Mask is the CR4 guest/host mask: the fixed bits, VMXE among them.
func (c *Controls) CR4Mask() uint64 { return c.CR4Fixed0 | ^c.CR4Fixed1 }
