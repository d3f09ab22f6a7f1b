package main

// cpuid is the entry point of the cpuid guest (cpuid_386.s).
func cpuid()

// cpuidSignature is what leaf 0x40000000's signature (EBX, ECX, EDX)
// must start with: juice's vmm.HypervisorSignature (mkguest's tests keep
// the two equal).
var cpuidSignature = "juicejuiceHV"

// cpuidSig receives leaf 0x40000000's 12-byte signature.
var cpuidSig [12]byte

// Lines cpuid prints.
var (
	cpuidSigMsg     = "cpuid: signature ["
	cpuidMaxMsg     = "] max leaf "
	cpuidBadSig     = "cpuid: FAIL: signature does not start with \""
	cpuidQuote      = "\"\n"
	cpuidNoHV       = "cpuid: FAIL: leaf 1 ECX bit 31 (hypervisor) is clear\n"
	cpuidVMX        = "cpuid: FAIL: leaf 1 ECX bit 5 (VMX) is set\n"
	cpuidSVM        = "cpuid: FAIL: leaf 0x80000001 ECX bit 2 (SVM) is set\n"
	cpuidHypervisor = "cpuid: hypervisor bit set, no VMX, no SVM\n"
	cpuidOK         = "cpuid: ok\n"
)
