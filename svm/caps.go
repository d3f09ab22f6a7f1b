// Package svm holds juice's AMD-V (SVM) definitions. This file decodes the
// processor's SVM capabilities from CPUID Fn8000_0001 and Fn8000_000A and
// the VM_CR MSR (AMD64 Architecture Programmer's Manual Vol. 2, chapter 15
// "Secure Virtual Machine", and Vol. 3, appendix E "CPUID") for the boot
// banner and for choosing the SVM backend's features.
//
// Reading the hardware happens elsewhere (juice/cpu: CPUID, RDMSR); this
// code only decodes values, so it is pure and host-testable. Decode
// allocates nothing; String allocates its result.
package svm

// CPUID functions and bits.
const (
	// CPUIDExtFeatures is Fn8000_0001; its ECX bit 2 is SVM.
	CPUIDExtFeatures = 0x80000001
	// CPUIDExtECXSVM is Fn8000_0001_ECX[SVM].
	CPUIDExtECXSVM = 1 << 2
	// CPUIDSVM is Fn8000_000A: EAX[7:0] SVM revision, EBX number of ASIDs,
	// EDX feature flags. It exists whenever SVM is reported.
	CPUIDSVM = 0x8000000a
	// CPUIDSVMRevisionMask covers Fn8000_000A_EAX[7:0].
	CPUIDSVMRevisionMask = 0xff
)

// Fn8000_000A_EDX feature bits (APM Vol. 3, E.4.9).
const (
	FeatureNP                   = 1 << 0  // nested paging
	FeatureLbrVirt              = 1 << 1  // LBR virtualization
	FeatureSVML                 = 1 << 2  // SVM lock
	FeatureNRIPS                = 1 << 3  // next RIP saved on #VMEXIT
	FeatureTscRateMsr           = 1 << 4  // TSC ratio MSR
	FeatureVmcbClean            = 1 << 5  // VMCB clean bits
	FeatureFlushByAsid          = 1 << 6  // TLB flush of one ASID
	FeatureDecodeAssists        = 1 << 7  // instruction decode assists
	FeaturePauseFilter          = 1 << 10 // PAUSE intercept filter
	FeaturePauseFilterThreshold = 1 << 12 // PAUSE filter cycle threshold
	FeatureAVIC                 = 1 << 13 // AMD virtual interrupt controller
	FeatureVMSAVEVirt           = 1 << 15 // virtualized VMSAVE/VMLOAD
	FeatureVGIF                 = 1 << 16 // virtualized global interrupt flag
	FeatureX2AVIC               = 1 << 18 // AVIC in x2APIC mode
	FeatureVNMI                 = 1 << 25 // virtual NMI
)

// MSRs and their bits.
const (
	// MSREFER is the extended feature enable register.
	MSREFER = 0xc0000080
	// EFERSVME enables SVM (VMRUN and friends) when set.
	EFERSVME = 1 << 12
	// MSRTSCRatio is TSC_RATIO (present with FeatureTscRateMsr).
	MSRTSCRatio = 0xc0000104
	// MSRVMCR is VM_CR, the SVM control register.
	MSRVMCR = 0xc0010114
	// MSRVMHsavePA is VM_HSAVE_PA, the host save area's physical address.
	MSRVMHsavePA = 0xc0010117
)

// VM_CR bits (APM Vol. 2, 15.30.1).
const (
	VMCRDisableDebugPort = 1 << 0 // DPD
	VMCRInterceptINIT    = 1 << 1 // R_INIT
	VMCRDisableA20M      = 1 << 2 // DIS_A20M
	VMCRLock             = 1 << 3 // LOCK: SVMDIS can no longer change
	VMCRSVMDis           = 1 << 4 // SVMDIS: EFER.SVME cannot be set
)

// Caps are the SVM capabilities juice cares about.
type Caps struct {
	// Present: CPUID Fn8000_0001_ECX reports SVM. When false every other
	// field is zero.
	Present bool
	// DisabledByFirmware: VM_CR.SVMDIS is set, so EFER.SVME cannot be
	// set. (APM 15.4: with SVMLock the firmware may unlock it with a key;
	// without it only a firmware setting can.)
	DisabledByFirmware bool

	NPT           bool // nested paging
	LBRVirt       bool // LBR virtualization
	SVMLock       bool // VM_CR lock with key
	NRIPSave      bool // next RIP save
	TSCRate       bool // TSC ratio MSR
	VMCBClean     bool // VMCB clean bits
	FlushByASID   bool // flush-by-ASID TLB control
	DecodeAssists bool // decode assists
	PauseFilter   bool // PAUSE filter
	AVIC          bool // AVIC
	VGIF          bool // virtual GIF
	VNMI          bool // virtual NMI

	// Revision is Fn8000_000A_EAX[7:0]; NASID the number of ASIDs
	// (Fn8000_000A_EBX).
	Revision, NASID uint32
}

// Supported reports whether CPUID Fn8000_0001_ECX advertises SVM.
func Supported(cpuid80000001ECX uint32) bool { return cpuid80000001ECX&CPUIDExtECXSVM != 0 }

// Decode derives Caps from CPUID Fn8000_0001_ECX, Fn8000_000A EAX/EBX/EDX
// and the VM_CR MSR. The Fn8000_000A values and vmcr are ignored when SVM
// is absent.
func Decode(ecx80000001, eax8000000A, ebx8000000A, edx8000000A uint32, vmcr uint64) Caps {
	var c Caps
	if !Supported(ecx80000001) {
		return c
	}
	d := edx8000000A
	c = Caps{
		Present:            true,
		DisabledByFirmware: vmcr&VMCRSVMDis != 0,
		NPT:                d&FeatureNP != 0,
		LBRVirt:            d&FeatureLbrVirt != 0,
		SVMLock:            d&FeatureSVML != 0,
		NRIPSave:           d&FeatureNRIPS != 0,
		TSCRate:            d&FeatureTscRateMsr != 0,
		VMCBClean:          d&FeatureVmcbClean != 0,
		FlushByASID:        d&FeatureFlushByAsid != 0,
		DecodeAssists:      d&FeatureDecodeAssists != 0,
		PauseFilter:        d&FeaturePauseFilter != 0,
		AVIC:               d&FeatureAVIC != 0,
		VGIF:               d&FeatureVGIF != 0,
		VNMI:               d&FeatureVNMI != 0,
		Revision:           eax8000000A & CPUIDSVMRevisionMask,
		NASID:              ebx8000000A,
	}
	return c
}

// String summarises the capabilities for the boot banner, for example
// "SVM: NPT, 16 ASIDs, NRIP save, flush-by-ASID", "SVM: absent" or
// "SVM: disabled by firmware".
func (c Caps) String() string {
	var buf [160]byte
	return string(c.Append(buf[:0]))
}

// Append appends String's text to b and returns the extended slice; it
// does not allocate when b has room.
func (c Caps) Append(b []byte) []byte {
	b = append(b, "SVM: "...)
	switch {
	case !c.Present:
		return append(b, "absent"...)
	case c.DisabledByFirmware:
		return append(b, "disabled by firmware"...)
	}
	if c.NPT {
		b = append(b, "NPT, "...)
	}
	b = appendUint(b, c.NASID)
	b = append(b, " ASIDs"...)
	for _, f := range [...]struct {
		on   bool
		name string
	}{
		{c.NRIPSave, "NRIP save"},
		{c.FlushByASID, "flush-by-ASID"},
		{c.DecodeAssists, "decode assists"},
		{c.VMCBClean, "VMCB clean bits"},
		{c.TSCRate, "TSC scaling"},
		{c.PauseFilter, "PAUSE filter"},
		{c.AVIC, "AVIC"},
		{c.VGIF, "vGIF"},
		{c.VNMI, "vNMI"},
		{c.LBRVirt, "LBR virtualization"},
	} {
		if f.on {
			b = append(b, ", "...)
			b = append(b, f.name...)
		}
	}
	return b
}

// appendUint appends v in decimal.
func appendUint(b []byte, v uint32) []byte {
	var d [10]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}
