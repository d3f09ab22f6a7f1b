package vmx

// VMCS field encodings (Intel SDM Vol. 3D, Appendix B "Field Encoding in
// VMCS"). VMREAD and VMWRITE name a field by a 32-bit encoding:
//
//	bit 0      access type: 0 = full, 1 = high (the upper 32 bits of a
//	           64-bit field, for 32-bit software)
//	bits 9:1   index
//	bits 11:10 type: 0 control, 1 VM-exit information (read-only),
//	           2 guest state, 3 host state
//	bit 12     reserved (0)
//	bits 14:13 width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural width
//	bits 31:15 reserved (0)

// Encoding is a VMCS field encoding, the operand of VMREAD and VMWRITE.
type Encoding uint32

// Width is the width of a VMCS field (encoding bits 14:13).
type Width uint8

// Field widths.
const (
	Width16      Width = 0 // 16-bit
	Width64      Width = 1 // 64-bit (full; or 32-bit with the high access type)
	Width32      Width = 2 // 32-bit
	WidthNatural Width = 3 // natural width: 64 bits on a 64-bit CPU
)

// String names a width.
func (w Width) String() string {
	switch w {
	case Width16:
		return "16-bit"
	case Width64:
		return "64-bit"
	case Width32:
		return "32-bit"
	}
	return "natural-width"
}

// FieldType is the kind of a VMCS field (encoding bits 11:10).
type FieldType uint8

// Field types.
const (
	TypeControl  FieldType = 0 // VM-execution, VM-exit and VM-entry controls
	TypeReadOnly FieldType = 1 // VM-exit information (read-only data)
	TypeGuest    FieldType = 2 // guest-state area
	TypeHost     FieldType = 3 // host-state area
)

// String names a field type.
func (t FieldType) String() string {
	switch t {
	case TypeControl:
		return "control"
	case TypeReadOnly:
		return "read-only data"
	case TypeGuest:
		return "guest-state"
	}
	return "host-state"
}

// Encoding layout.
const (
	encHigh       = 1 << 0
	encIndexShift = 1
	encIndexMask  = 0x1ff
	encTypeShift  = 10
	encWidthShift = 13
	encReserved   = 0xffff_8000 | 1<<12 // bits 31:15 and 12
)

// Width is the field's width (bits 14:13).
func (e Encoding) Width() Width { return Width(e>>encWidthShift) & 3 }

// Type is the field's type (bits 11:10).
func (e Encoding) Type() FieldType { return FieldType(e>>encTypeShift) & 3 }

// Index is the field's index within its width and type (bits 9:1).
func (e Encoding) Index() uint32 { return uint32(e>>encIndexShift) & encIndexMask }

// HighAccess reports whether e is the "high" access encoding (bit 0): the
// upper 32 bits of a 64-bit field.
func (e Encoding) HighAccess() bool { return e&encHigh != 0 }

// Valid reports whether e is well formed: reserved bits 31:15 and 12 clear,
// and the high access type only on a 64-bit field. (Whether the CPU
// implements the field is another matter: IA32_VMX_VMCS_ENUM reports the
// highest index.)
func (e Encoding) Valid() bool {
	if e&encReserved != 0 {
		return false
	}
	return !e.HighAccess() || e.Width() == Width64
}

// High returns the high access encoding of a 64-bit field (e with bit 0
// set); ok is false for fields of other widths.
func (e Encoding) High() (Encoding, bool) {
	if e.Width() != Width64 {
		return 0, false
	}
	return e | encHigh, true
}

// MakeEncoding builds the full-access encoding of the field with the given
// width, type and index (index is taken modulo 512).
func MakeEncoding(w Width, t FieldType, index uint32) Encoding {
	return Encoding(uint32(w&3)<<encWidthShift | uint32(t&3)<<encTypeShift | (index&encIndexMask)<<encIndexShift)
}

// 16-bit control fields.
const (
	VirtualProcessorID Encoding = 0x0000 // VPID
	PostedIntrVector   Encoding = 0x0002 // posted-interrupt notification vector
	EPTPIndex          Encoding = 0x0004 // EPTP index (#VE)
)

// 16-bit guest-state fields: the segment selectors.
const (
	GuestESSelector   Encoding = 0x0800
	GuestCSSelector   Encoding = 0x0802
	GuestSSSelector   Encoding = 0x0804
	GuestDSSelector   Encoding = 0x0806
	GuestFSSelector   Encoding = 0x0808
	GuestGSSelector   Encoding = 0x080a
	GuestLDTRSelector Encoding = 0x080c
	GuestTRSelector   Encoding = 0x080e
	GuestIntrStatus   Encoding = 0x0810 // guest interrupt status (virtual-interrupt delivery)
	GuestPMLIndex     Encoding = 0x0812
)

// 16-bit host-state fields: the host's selectors after a VM exit.
const (
	HostESSelector Encoding = 0x0c00
	HostCSSelector Encoding = 0x0c02
	HostSSSelector Encoding = 0x0c04
	HostDSSelector Encoding = 0x0c06
	HostFSSelector Encoding = 0x0c08
	HostGSSelector Encoding = 0x0c0a
	HostTRSelector Encoding = 0x0c0c
)

// 64-bit control fields (full access; High gives the upper half).
const (
	IOBitmapAAddr        Encoding = 0x2000 // address of I/O bitmap A (ports 0000-7FFF)
	IOBitmapBAddr        Encoding = 0x2002 // address of I/O bitmap B (ports 8000-FFFF)
	MSRBitmapAddr        Encoding = 0x2004 // address of the MSR bitmaps
	ExitMSRStoreAddr     Encoding = 0x2006 // VM-exit MSR-store area
	ExitMSRLoadAddr      Encoding = 0x2008 // VM-exit MSR-load area
	EntryMSRLoadAddr     Encoding = 0x200a // VM-entry MSR-load area
	ExecutiveVMCSPtr     Encoding = 0x200c
	PMLAddress           Encoding = 0x200e
	TSCOffset            Encoding = 0x2010
	VirtualAPICPageAddr  Encoding = 0x2012 // virtual-APIC page (TPR shadow)
	APICAccessAddr       Encoding = 0x2014
	PostedIntrDescAddr   Encoding = 0x2016
	VMFuncControls       Encoding = 0x2018
	EPTPointer           Encoding = 0x201a // EPTP
	EPTPListAddr         Encoding = 0x2024
	XSSExitBitmap        Encoding = 0x202c
	TSCMultiplier        Encoding = 0x2032
	TertiaryProcControls Encoding = 0x2034
)

// 64-bit read-only data fields.
const (
	GuestPhysicalAddr Encoding = 0x2400 // guest-physical address (EPT violations and misconfigurations)
)

// 64-bit guest-state fields.
const (
	VMCSLinkPointer        Encoding = 0x2800 // must be all ones without VMCS shadowing
	GuestIA32DebugCtl      Encoding = 0x2802
	GuestIA32PAT           Encoding = 0x2804
	GuestIA32EFER          Encoding = 0x2806
	GuestIA32PerfGlobalCtl Encoding = 0x2808
	GuestPDPTE0            Encoding = 0x280a
	GuestPDPTE1            Encoding = 0x280c
	GuestPDPTE2            Encoding = 0x280e
	GuestPDPTE3            Encoding = 0x2810
)

// 64-bit host-state fields.
const (
	HostIA32PAT           Encoding = 0x2c00
	HostIA32EFER          Encoding = 0x2c02
	HostIA32PerfGlobalCtl Encoding = 0x2c04
)

// 32-bit control fields.
const (
	PinControls         Encoding = 0x4000 // pin-based VM-execution controls
	ProcControls        Encoding = 0x4002 // primary processor-based VM-execution controls
	ExceptionBitmap     Encoding = 0x4004
	PFErrorCodeMask     Encoding = 0x4006
	PFErrorCodeMatch    Encoding = 0x4008
	CR3TargetCount      Encoding = 0x400a
	ExitControls        Encoding = 0x400c // VM-exit controls
	ExitMSRStoreCount   Encoding = 0x400e
	ExitMSRLoadCount    Encoding = 0x4010
	EntryControls       Encoding = 0x4012 // VM-entry controls
	EntryMSRLoadCount   Encoding = 0x4014
	EntryIntrInfo       Encoding = 0x4016 // VM-entry interruption-information field
	EntryExceptionError Encoding = 0x4018 // VM-entry exception error code
	EntryInstrLen       Encoding = 0x401a // VM-entry instruction length
	TPRThreshold        Encoding = 0x401c
	Proc2Controls       Encoding = 0x401e // secondary processor-based VM-execution controls
	PLEGap              Encoding = 0x4020
	PLEWindow           Encoding = 0x4022
)

// 32-bit read-only data fields.
const (
	VMInstructionError Encoding = 0x4400
	ExitReason         Encoding = 0x4402
	ExitIntrInfo       Encoding = 0x4404 // VM-exit interruption information
	ExitIntrErrorCode  Encoding = 0x4406
	IDTVectoringInfo   Encoding = 0x4408
	IDTVectoringError  Encoding = 0x440a
	ExitInstrLen       Encoding = 0x440c
	ExitInstrInfo      Encoding = 0x440e // VM-exit instruction information
)

// 32-bit guest-state fields.
const (
	GuestESLimit          Encoding = 0x4800
	GuestCSLimit          Encoding = 0x4802
	GuestSSLimit          Encoding = 0x4804
	GuestDSLimit          Encoding = 0x4806
	GuestFSLimit          Encoding = 0x4808
	GuestGSLimit          Encoding = 0x480a
	GuestLDTRLimit        Encoding = 0x480c
	GuestTRLimit          Encoding = 0x480e
	GuestGDTRLimit        Encoding = 0x4810
	GuestIDTRLimit        Encoding = 0x4812
	GuestESAccessRights   Encoding = 0x4814
	GuestCSAccessRights   Encoding = 0x4816
	GuestSSAccessRights   Encoding = 0x4818
	GuestDSAccessRights   Encoding = 0x481a
	GuestFSAccessRights   Encoding = 0x481c
	GuestGSAccessRights   Encoding = 0x481e
	GuestLDTRAccessRights Encoding = 0x4820
	GuestTRAccessRights   Encoding = 0x4822
	GuestInterruptibility Encoding = 0x4824
	GuestActivityState    Encoding = 0x4826
	GuestSMBASE           Encoding = 0x4828
	GuestIA32SysenterCS   Encoding = 0x482a
	PreemptionTimerValue  Encoding = 0x482e
)

// 32-bit host-state fields.
const (
	HostIA32SysenterCS Encoding = 0x4c00
)

// Natural-width control fields.
const (
	CR0GuestHostMask Encoding = 0x6000
	CR4GuestHostMask Encoding = 0x6002
	CR0ReadShadow    Encoding = 0x6004
	CR4ReadShadow    Encoding = 0x6006
	CR3Target0       Encoding = 0x6008
	CR3Target1       Encoding = 0x600a
	CR3Target2       Encoding = 0x600c
	CR3Target3       Encoding = 0x600e
)

// Natural-width read-only data fields.
const (
	ExitQualification Encoding = 0x6400
	IORCX             Encoding = 0x6402
	IORSI             Encoding = 0x6404
	IORDI             Encoding = 0x6406
	IORIP             Encoding = 0x6408
	GuestLinearAddr   Encoding = 0x640a
)

// Natural-width guest-state fields.
const (
	GuestCR0                Encoding = 0x6800
	GuestCR3                Encoding = 0x6802
	GuestCR4                Encoding = 0x6804
	GuestESBase             Encoding = 0x6806
	GuestCSBase             Encoding = 0x6808
	GuestSSBase             Encoding = 0x680a
	GuestDSBase             Encoding = 0x680c
	GuestFSBase             Encoding = 0x680e
	GuestGSBase             Encoding = 0x6810
	GuestLDTRBase           Encoding = 0x6812
	GuestTRBase             Encoding = 0x6814
	GuestGDTRBase           Encoding = 0x6816
	GuestIDTRBase           Encoding = 0x6818
	GuestDR7                Encoding = 0x681a
	GuestRSP                Encoding = 0x681c
	GuestRIP                Encoding = 0x681e
	GuestRFLAGS             Encoding = 0x6820
	GuestPendingDebugExcept Encoding = 0x6822
	GuestIA32SysenterESP    Encoding = 0x6824
	GuestIA32SysenterEIP    Encoding = 0x6826
)

// Natural-width host-state fields.
const (
	HostCR0             Encoding = 0x6c00
	HostCR3             Encoding = 0x6c02
	HostCR4             Encoding = 0x6c04
	HostFSBase          Encoding = 0x6c06
	HostGSBase          Encoding = 0x6c08
	HostTRBase          Encoding = 0x6c0a
	HostGDTRBase        Encoding = 0x6c0c
	HostIDTRBase        Encoding = 0x6c0e
	HostIA32SysenterESP Encoding = 0x6c10
	HostIA32SysenterEIP Encoding = 0x6c12
	HostRSP             Encoding = 0x6c14
	HostRIP             Encoding = 0x6c16
)

// fieldNames names the fields above, for messages ("GUEST_CS_AR_BYTES" is
// Linux's spelling; these follow the SDM's Appendix B wording).
var fieldNames = [...]struct {
	e    Encoding
	name string
}{
	{VirtualProcessorID, "virtual-processor identifier"},
	{PostedIntrVector, "posted-interrupt notification vector"},
	{EPTPIndex, "EPTP index"},
	{GuestESSelector, "guest ES selector"},
	{GuestCSSelector, "guest CS selector"},
	{GuestSSSelector, "guest SS selector"},
	{GuestDSSelector, "guest DS selector"},
	{GuestFSSelector, "guest FS selector"},
	{GuestGSSelector, "guest GS selector"},
	{GuestLDTRSelector, "guest LDTR selector"},
	{GuestTRSelector, "guest TR selector"},
	{GuestIntrStatus, "guest interrupt status"},
	{GuestPMLIndex, "PML index"},
	{HostESSelector, "host ES selector"},
	{HostCSSelector, "host CS selector"},
	{HostSSSelector, "host SS selector"},
	{HostDSSelector, "host DS selector"},
	{HostFSSelector, "host FS selector"},
	{HostGSSelector, "host GS selector"},
	{HostTRSelector, "host TR selector"},
	{IOBitmapAAddr, "address of I/O bitmap A"},
	{IOBitmapBAddr, "address of I/O bitmap B"},
	{MSRBitmapAddr, "address of MSR bitmaps"},
	{ExitMSRStoreAddr, "VM-exit MSR-store address"},
	{ExitMSRLoadAddr, "VM-exit MSR-load address"},
	{EntryMSRLoadAddr, "VM-entry MSR-load address"},
	{ExecutiveVMCSPtr, "executive-VMCS pointer"},
	{PMLAddress, "PML address"},
	{TSCOffset, "TSC offset"},
	{VirtualAPICPageAddr, "virtual-APIC address"},
	{APICAccessAddr, "APIC-access address"},
	{PostedIntrDescAddr, "posted-interrupt descriptor address"},
	{VMFuncControls, "VM-function controls"},
	{EPTPointer, "EPT pointer"},
	{EPTPListAddr, "EPTP-list address"},
	{XSSExitBitmap, "XSS-exiting bitmap"},
	{TSCMultiplier, "TSC multiplier"},
	{TertiaryProcControls, "tertiary processor-based VM-execution controls"},
	{GuestPhysicalAddr, "guest-physical address"},
	{VMCSLinkPointer, "VMCS link pointer"},
	{GuestIA32DebugCtl, "guest IA32_DEBUGCTL"},
	{GuestIA32PAT, "guest IA32_PAT"},
	{GuestIA32EFER, "guest IA32_EFER"},
	{GuestIA32PerfGlobalCtl, "guest IA32_PERF_GLOBAL_CTRL"},
	{GuestPDPTE0, "guest PDPTE0"},
	{GuestPDPTE1, "guest PDPTE1"},
	{GuestPDPTE2, "guest PDPTE2"},
	{GuestPDPTE3, "guest PDPTE3"},
	{HostIA32PAT, "host IA32_PAT"},
	{HostIA32EFER, "host IA32_EFER"},
	{HostIA32PerfGlobalCtl, "host IA32_PERF_GLOBAL_CTRL"},
	{PinControls, "pin-based VM-execution controls"},
	{ProcControls, "primary processor-based VM-execution controls"},
	{ExceptionBitmap, "exception bitmap"},
	{PFErrorCodeMask, "page-fault error-code mask"},
	{PFErrorCodeMatch, "page-fault error-code match"},
	{CR3TargetCount, "CR3-target count"},
	{ExitControls, "VM-exit controls"},
	{ExitMSRStoreCount, "VM-exit MSR-store count"},
	{ExitMSRLoadCount, "VM-exit MSR-load count"},
	{EntryControls, "VM-entry controls"},
	{EntryMSRLoadCount, "VM-entry MSR-load count"},
	{EntryIntrInfo, "VM-entry interruption-information field"},
	{EntryExceptionError, "VM-entry exception error code"},
	{EntryInstrLen, "VM-entry instruction length"},
	{TPRThreshold, "TPR threshold"},
	{Proc2Controls, "secondary processor-based VM-execution controls"},
	{PLEGap, "PLE_Gap"},
	{PLEWindow, "PLE_Window"},
	{VMInstructionError, "VM-instruction error"},
	{ExitReason, "exit reason"},
	{ExitIntrInfo, "VM-exit interruption information"},
	{ExitIntrErrorCode, "VM-exit interruption error code"},
	{IDTVectoringInfo, "IDT-vectoring information field"},
	{IDTVectoringError, "IDT-vectoring error code"},
	{ExitInstrLen, "VM-exit instruction length"},
	{ExitInstrInfo, "VM-exit instruction information"},
	{GuestESLimit, "guest ES limit"},
	{GuestCSLimit, "guest CS limit"},
	{GuestSSLimit, "guest SS limit"},
	{GuestDSLimit, "guest DS limit"},
	{GuestFSLimit, "guest FS limit"},
	{GuestGSLimit, "guest GS limit"},
	{GuestLDTRLimit, "guest LDTR limit"},
	{GuestTRLimit, "guest TR limit"},
	{GuestGDTRLimit, "guest GDTR limit"},
	{GuestIDTRLimit, "guest IDTR limit"},
	{GuestESAccessRights, "guest ES access rights"},
	{GuestCSAccessRights, "guest CS access rights"},
	{GuestSSAccessRights, "guest SS access rights"},
	{GuestDSAccessRights, "guest DS access rights"},
	{GuestFSAccessRights, "guest FS access rights"},
	{GuestGSAccessRights, "guest GS access rights"},
	{GuestLDTRAccessRights, "guest LDTR access rights"},
	{GuestTRAccessRights, "guest TR access rights"},
	{GuestInterruptibility, "guest interruptibility state"},
	{GuestActivityState, "guest activity state"},
	{GuestSMBASE, "guest SMBASE"},
	{GuestIA32SysenterCS, "guest IA32_SYSENTER_CS"},
	{PreemptionTimerValue, "VMX-preemption timer value"},
	{HostIA32SysenterCS, "host IA32_SYSENTER_CS"},
	{CR0GuestHostMask, "CR0 guest/host mask"},
	{CR4GuestHostMask, "CR4 guest/host mask"},
	{CR0ReadShadow, "CR0 read shadow"},
	{CR4ReadShadow, "CR4 read shadow"},
	{CR3Target0, "CR3-target value 0"},
	{CR3Target1, "CR3-target value 1"},
	{CR3Target2, "CR3-target value 2"},
	{CR3Target3, "CR3-target value 3"},
	{ExitQualification, "exit qualification"},
	{IORCX, "I/O RCX"},
	{IORSI, "I/O RSI"},
	{IORDI, "I/O RDI"},
	{IORIP, "I/O RIP"},
	{GuestLinearAddr, "guest-linear address"},
	{GuestCR0, "guest CR0"},
	{GuestCR3, "guest CR3"},
	{GuestCR4, "guest CR4"},
	{GuestESBase, "guest ES base"},
	{GuestCSBase, "guest CS base"},
	{GuestSSBase, "guest SS base"},
	{GuestDSBase, "guest DS base"},
	{GuestFSBase, "guest FS base"},
	{GuestGSBase, "guest GS base"},
	{GuestLDTRBase, "guest LDTR base"},
	{GuestTRBase, "guest TR base"},
	{GuestGDTRBase, "guest GDTR base"},
	{GuestIDTRBase, "guest IDTR base"},
	{GuestDR7, "guest DR7"},
	{GuestRSP, "guest RSP"},
	{GuestRIP, "guest RIP"},
	{GuestRFLAGS, "guest RFLAGS"},
	{GuestPendingDebugExcept, "guest pending debug exceptions"},
	{GuestIA32SysenterESP, "guest IA32_SYSENTER_ESP"},
	{GuestIA32SysenterEIP, "guest IA32_SYSENTER_EIP"},
	{HostCR0, "host CR0"},
	{HostCR3, "host CR3"},
	{HostCR4, "host CR4"},
	{HostFSBase, "host FS base"},
	{HostGSBase, "host GS base"},
	{HostTRBase, "host TR base"},
	{HostGDTRBase, "host GDTR base"},
	{HostIDTRBase, "host IDTR base"},
	{HostIA32SysenterESP, "host IA32_SYSENTER_ESP"},
	{HostIA32SysenterEIP, "host IA32_SYSENTER_EIP"},
	{HostRSP, "host RSP"},
	{HostRIP, "host RIP"},
}

// Name is the field's name (the SDM's wording, e.g. "guest CS access
// rights"), or "" for a field this package does not define. The high
// access encoding of a 64-bit field has the full field's name.
func (e Encoding) Name() string {
	if e.HighAccess() && e.Width() == Width64 {
		e &^= encHigh
	}
	for i := range fieldNames {
		if fieldNames[i].e == e {
			return fieldNames[i].name
		}
	}
	return ""
}
