package vmm

// The guest CPUID policy. New builds one table per VM from the host's
// CPUID; the exit path only looks values up (allocation-free).
//
// Principle: a feature bit reaches the guest only if the host has it AND
// juice virtualizes it: either it needs nothing from juice (an instruction
// that executes natively on general-purpose or SSE registers, a paging
// feature the hardware handles under nested paging) or juice implements it
// (the MSRs of msr.go). Everything else is masked off, and leaves juice
// does not define read as zeros, as real CPUs do above their maximum leaf
// (AMD's behaviour; Intel repeats its highest basic leaf).
//
// Decisions, leaf by leaf (Intel SDM Vol. 2A "CPUID", AMD APM Vol. 3
// Appendix E):
//
//   - Vendor, family/model/stepping and the brand string are the host's:
//     guests pick vendor code paths (SYSCALL in compatibility mode, errata)
//     by them and must see the CPU they really run on.
//   - Nested virtualization is off: VMX (1.ECX[5]) and SVM
//     (8000_0001.ECX[2]) are hidden and leaf 8000_000A is out of range.
//   - MONITOR/MWAIT (1.ECX[3]) is hidden (leaf 5 reads zero): juice
//     intercepts HLT, not MWAIT.
//   - XSAVE, OSXSAVE, AVX, FMA, F16C, AVX2, AVX-512, PKU and every other
//     VEX/EVEX-state feature are hidden, and leaf 0xD reads zero, until the
//     backends switch XCR0 and XSAVE state: juice saves only the legacy
//     x87/SSE state (FXSAVE) across exits. Backends must intercept XSETBV.
//   - PCID (1.ECX[17]) and INVPCID (7.EBX[10]) are hidden for now. Under
//     nested paging PCID needs nothing from juice, but INVPCID needs the
//     VMX "enable INVPCID" control and neither backend has been tested
//     with CR4.PCIDE; revisit with the VT-x backend.
//   - The hypervisor bit (1.ECX[31]) is set; leaf 4000_0000 returns the
//     maximum hypervisor leaf 4000_0001 and the signature "juicejuiceHV"
//     (EBX "juic", ECX "ejui", EDX "ceHV"); leaf 4000_0001 EAX bit 0 says
//     juice's hypercalls (hypercall.go) are available.
//   - The local APIC (1.EDX[9]) is reported, at the fixed base FEE0_0000
//     (IA32_APIC_BASE reads that); x2APIC (1.ECX[21]) and TSC-deadline
//     (1.ECX[24]) are hidden until the APIC model exists, as is ARAT
//     (leaf 6 reads zero).
//   - Topology: the VM's vCPUs are the cores of one package, one thread
//     each; the APIC ID of vCPU n is n. 1.EBX[31:24] is the APIC ID,
//     1.EBX[23:16] the addressable IDs (next power of two), 1.EDX[28] HTT
//     when there is more than one vCPU; leaves 0xB and 0x1F report an SMT
//     level of 1 and a core level of all vCPUs, with EDX = APIC ID; leaf 4
//     EAX[31:26] and EAX[25:14], and AMD's 8000_0008.ECX, agree.
//   - Machine check (MCE, MCA), debug store, performance monitoring (PDCM,
//     leaf 0xA), thermal and power management (ACPI, TM, TM2, EST, leaf 6),
//     PSN, self-snoop, xTPR, DCA, SMX, SGX, Processor Trace, TSX (HLE,
//     RTM), MPX, RDT, TME, CET, WAITPKG, UMIP, LA57, RDPID and RDTSCP are
//     hidden: juice emulates none of their MSRs or instructions. RDTSCP and
//     RDPID are hidden because IA32_TSC_AUX is not switched; backends must
//     make them #UD.
//   - Speculation-control enumeration (IBRS/IBPB/STIBP/SSBD, ARCH_CAPABILITIES,
//     FLUSH_CMD, CORE_CAPABILITIES, AMD's 8000_0008.EBX) is hidden: the
//     MSRs are not passed through yet. MD_CLEAR and FSRM, which only
//     describe how native instructions behave, are passed.
//   - Passed as the host has them: SSE through SSE4.2, SSSE3, PCLMULQDQ,
//     AES-NI, SHA, CX8/CX16, MOVBE, POPCNT, LZCNT, BMI1/2, ADX, RDRAND,
//     RDSEED, ERMS, FSGSBASE, SMEP, SMAP, CLFLUSH, CLFLUSHOPT, CLWB,
//     SERIALIZE, NX, 1 GiB pages, LAHF in 64-bit mode, PREFETCHW, SSE4a,
//     misaligned SSE, SYSCALL, SYSENTER, PAT, MTRR, PGE, PSE, PSE-36, PAE,
//     VME, DE, TSC, MSR, CMOV, FXSR, MMX (and AMD's MMX extensions), long
//     mode, invariant TSC (8000_0007.EDX[8]).
//   - Leaves 2, 4 (with the topology fields above), 0x15 and 0x16 (TSC and
//     frequency information: the guest's TSC runs at the host's rate),
//     8000_0002-4 (brand) and 8000_0005/6 (caches) are the host's.
//   - Maximum leaves: basic max(0xB, min(host, 0x1F)) (leaf 0xB is always
//     synthesized; 0x1F when in range); extended min(host, 8000_0008).

// CPUIDFunc executes CPUID with EAX=leaf and ECX=subleaf.
type CPUIDFunc func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// CPUIDEntry is one guest CPUID result. Indexed entries match on Subleaf
// too; for the others ECX is ignored.
type CPUIDEntry struct {
	Leaf, Subleaf      uint32 // EAX and ECX on input
	Indexed            bool   // the leaf has subleaves (4, 7, 0xB, 0x1F)
	EAX, EBX, ECX, EDX uint32 // the result
}

// HypervisorSignature is what leaf 4000_0000 returns in EBX, ECX, EDX.
const HypervisorSignature = "juicejuiceHV"

// Hypervisor leaves.
const (
	CPUIDHypervisorBase     = 0x40000000
	CPUIDHypervisorFeatures = 0x40000001
	// CPUIDFeatureHypercalls is leaf 4000_0001 EAX bit 0: juice's
	// hypercalls are available.
	CPUIDFeatureHypercalls = 1 << 0
)

// Feature masks: the bits passed through from the host (see the table
// above). Bits outside a mask are always zero for the guest.
const (
	// Leaf 1 ECX: SSE3 0, PCLMULQDQ 1, SSSE3 9, CX16 13, SSE4.1 19,
	// SSE4.2 20, MOVBE 22, POPCNT 23, AES 25, RDRAND 30.
	leaf1ECXPass = 1<<0 | 1<<1 | 1<<9 | 1<<13 | 1<<19 | 1<<20 | 1<<22 | 1<<23 | 1<<25 | 1<<30
	// Leaf 1 ECX bit 31: running under a hypervisor.
	leaf1ECXHypervisor = 1 << 31
	// Leaf 1 EDX: FPU 0, VME 1, DE 2, PSE 3, TSC 4, MSR 5, PAE 6, CX8 8,
	// APIC 9, SEP 11, MTRR 12, PGE 13, CMOV 15, PAT 16, PSE-36 17,
	// CLFSH 19, MMX 23, FXSR 24, SSE 25, SSE2 26.
	leaf1EDXPass = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<8 | 1<<9 | 1<<11 | 1<<12 | 1<<13 |
		1<<15 | 1<<16 | 1<<17 | 1<<19 | 1<<23 | 1<<24 | 1<<25 | 1<<26
	leaf1EDXAPIC = 1 << 9
	leaf1EDXHTT  = 1 << 28
	// Leaf 7.0 EBX: FSGSBASE 0, BMI1 3, FDP_EXCPTN_ONLY 6, SMEP 7, BMI2 8,
	// ERMS 9, FCS/FDS deprecated 13, RDSEED 18, ADX 19, SMAP 20,
	// CLFLUSHOPT 23, CLWB 24, SHA 29.
	leaf7EBXPass = 1<<0 | 1<<3 | 1<<6 | 1<<7 | 1<<8 | 1<<9 | 1<<13 | 1<<18 | 1<<19 | 1<<20 | 1<<23 | 1<<24 | 1<<29
	// Leaf 7.0 ECX: nothing.
	leaf7ECXPass = 0
	// Leaf 7.0 EDX: FSRM 4, MD_CLEAR 10, SERIALIZE 14.
	leaf7EDXPass = 1<<4 | 1<<10 | 1<<14
	// Leaf 8000_0001 ECX: LAHF/SAHF 0, LZCNT 5, SSE4a 6, misaligned SSE 7,
	// PREFETCHW 8.
	leaf81ECXPass = 1<<0 | 1<<5 | 1<<6 | 1<<7 | 1<<8
	// Leaf 8000_0001 EDX: the leaf-1 duplicates AMD reports (FPU..APIC,
	// MTRR, PGE, CMOV, PAT, PSE-36, MMX, FXSR) plus SYSCALL 11, NX 20,
	// MMX extensions 22, 1 GiB pages 26, long mode 29.
	leaf81EDXPass = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<8 | 1<<9 | 1<<11 | 1<<12 | 1<<13 |
		1<<15 | 1<<16 | 1<<17 | 1<<20 | 1<<22 | 1<<23 | 1<<24 | 1<<26 | 1<<29
	leaf81EDXSYSCALL = 1 << 11
	leaf81EDXNX      = 1 << 20
	leaf81EDXLM      = 1 << 29
	// Leaf 8000_0007 EDX: invariant TSC 8.
	leaf87EDXPass = 1 << 8
)

// guest maximum leaves.
const (
	guestMaxBasicFloor = 0xb
	guestMaxBasicCap   = 0x1f
	guestMaxExtCap     = 0x80000008
	maxLeaf4Subleaves  = 8
	maxCPUIDEntries    = 64
)

// Vendor is the CPU vendor the guest sees (the host's).
type Vendor uint8

// Vendors.
const (
	VendorOther Vendor = iota
	VendorIntel
	VendorAMD
)

// CPUIDTable is a VM's guest CPUID: a fixed table built once from the
// host's CPUID, plus the per-vCPU fields (APIC IDs) filled in by Lookup.
type CPUIDTable struct {
	entries [maxCPUIDEntries]CPUIDEntry
	n       int
	vcpus   uint32
	maxStd  uint32
	maxExt  uint32
	vendor  Vendor
}

// NewCPUIDTable builds the guest CPUID table for a VM of vcpus vCPUs from
// the host's CPUID (see the policy above).
func NewCPUIDTable(host CPUIDFunc, vcpus int) *CPUIDTable {
	if vcpus < 1 {
		vcpus = 1
	}
	if vcpus > MaxVCPUs {
		vcpus = MaxVCPUs
	}
	t := &CPUIDTable{vcpus: uint32(vcpus)}
	hostMax, vb, vc, vd := host(0, 0)
	switch {
	case vb == 0x756e6547 && vd == 0x49656e69 && vc == 0x6c65746e: // "GenuineIntel"
		t.vendor = VendorIntel
	case vb == 0x68747541 && vd == 0x69746e65 && vc == 0x444d4163: // "AuthenticAMD"
		t.vendor = VendorAMD
	}
	q := func(leaf, sub uint32) (a, b, c, d uint32) {
		if leaf > hostMax {
			return 0, 0, 0, 0
		}
		return host(leaf, sub)
	}
	t.maxStd = min(max(hostMax, guestMaxBasicFloor), guestMaxBasicCap)
	pow := nextPow2(uint32(vcpus))
	coreBits := uint32(log2(pow))

	t.add(CPUIDEntry{Leaf: 0, EAX: t.maxStd, EBX: vb, ECX: vc, EDX: vd})

	a, b, c, d := q(1, 0)
	b = b&0xffff | min(pow, 255)<<16 // APIC ID (bits 31:24) filled per vCPU
	c = c&leaf1ECXPass | leaf1ECXHypervisor
	d &= leaf1EDXPass
	if vcpus > 1 {
		d |= leaf1EDXHTT
	}
	t.add(CPUIDEntry{Leaf: 1, EAX: a, EBX: b, ECX: c, EDX: d})

	a, b, c, d = q(2, 0)
	t.add(CPUIDEntry{Leaf: 2, EAX: a, EBX: b, ECX: c, EDX: d})

	for sub := uint32(0); sub < maxLeaf4Subleaves; sub++ {
		a, b, c, d = q(4, sub)
		if a&0x1f == 0 { // no more caches
			break
		}
		level := a >> 5 & 7
		share := uint32(0) // threads sharing this cache, minus one
		if level >= 3 {
			share = min(pow-1, 0xfff)
		}
		a = a&0x3fff | share<<14 | min(pow-1, 63)<<26
		t.add(CPUIDEntry{Leaf: 4, Subleaf: sub, Indexed: true, EAX: a, EBX: b, ECX: c, EDX: d})
	}

	_, b, c, d = q(7, 0)
	t.add(CPUIDEntry{Leaf: 7, Indexed: true, EBX: b & leaf7EBXPass, ECX: c & leaf7ECXPass, EDX: d & leaf7EDXPass})

	// Topology leaves 0xB and 0x1F: level 0 SMT (1 thread), level 1 core.
	topo := []uint32{0xb}
	if t.maxStd >= 0x1f {
		topo = append(topo, 0x1f)
	}
	for _, leaf := range topo {
		t.add(CPUIDEntry{Leaf: leaf, Subleaf: 0, Indexed: true, EAX: 0, EBX: 1, ECX: 1 << 8})
		t.add(CPUIDEntry{Leaf: leaf, Subleaf: 1, Indexed: true, EAX: coreBits, EBX: uint32(vcpus), ECX: 2<<8 | 1})
	}

	for _, leaf := range []uint32{0x15, 0x16} {
		if leaf <= t.maxStd {
			a, b, c, d = q(leaf, 0)
			t.add(CPUIDEntry{Leaf: leaf, EAX: a, EBX: b, ECX: c, EDX: d})
		}
	}

	t.add(CPUIDEntry{Leaf: CPUIDHypervisorBase, EAX: CPUIDHypervisorFeatures,
		EBX: le32(HypervisorSignature[0:4]), ECX: le32(HypervisorSignature[4:8]), EDX: le32(HypervisorSignature[8:12])})
	t.add(CPUIDEntry{Leaf: CPUIDHypervisorFeatures, EAX: CPUIDFeatureHypercalls})

	hostMaxExt, eb, ec, ed := host(0x80000000, 0)
	if hostMaxExt < 0x80000000 || hostMaxExt > 0x8000ffff {
		return t
	}
	t.maxExt = min(hostMaxExt, guestMaxExtCap)
	qx := func(leaf uint32) (a, b, c, d uint32) {
		if leaf > t.maxExt {
			return 0, 0, 0, 0
		}
		return host(leaf, 0)
	}
	t.add(CPUIDEntry{Leaf: 0x80000000, EAX: t.maxExt, EBX: eb, ECX: ec, EDX: ed})
	if t.maxExt >= 0x80000001 {
		a, b, c, d = qx(0x80000001)
		t.add(CPUIDEntry{Leaf: 0x80000001, EAX: a, EBX: b, ECX: c & leaf81ECXPass, EDX: d & leaf81EDXPass})
	}
	for leaf := uint32(0x80000002); leaf <= 0x80000006 && leaf <= t.maxExt; leaf++ {
		a, b, c, d = qx(leaf)
		t.add(CPUIDEntry{Leaf: leaf, EAX: a, EBX: b, ECX: c, EDX: d})
	}
	if t.maxExt >= 0x80000007 {
		_, _, _, d = qx(0x80000007)
		t.add(CPUIDEntry{Leaf: 0x80000007, EDX: d & leaf87EDXPass})
	}
	if t.maxExt >= 0x80000008 {
		a, _, _, _ = qx(0x80000008)
		c = 0
		if t.vendor == VendorAMD {
			c = uint32(vcpus-1) | coreBits<<12
		}
		t.add(CPUIDEntry{Leaf: 0x80000008, EAX: a & 0xffff, ECX: c})
	}
	return t
}

func (t *CPUIDTable) add(e CPUIDEntry) {
	if t.n < len(t.entries) {
		t.entries[t.n] = e
		t.n++
	}
}

// Vendor is the guest's (and host's) CPU vendor.
func (t *CPUIDTable) Vendor() Vendor { return t.vendor }

// Entries returns a copy of the table (without per-vCPU fields).
func (t *CPUIDTable) Entries() []CPUIDEntry {
	return append([]CPUIDEntry(nil), t.entries[:t.n]...)
}

// Has reports whether the guest sees feature bit (0-31) in register reg
// (0 EAX, 1 EBX, 2 ECX, 3 EDX) of leaf/subleaf.
func (t *CPUIDTable) Has(leaf, subleaf uint32, reg, bit uint8) bool {
	r := [4]uint32{}
	r[0], r[1], r[2], r[3] = t.Lookup(0, leaf, subleaf)
	return reg < 4 && bit < 32 && r[reg]&(1<<bit) != 0
}

// Lookup returns the guest CPUID result for leaf and subleaf on the vCPU
// whose APIC ID is apicID. Leaves the table does not define (above the
// maximum leaves or not in the table) read as zeros, except that the
// topology leaves report an invalid level with ECX[7:0] = subleaf and
// EDX = the APIC ID for subleaves past the core level. Allocation-free.
func (t *CPUIDTable) Lookup(apicID, leaf, subleaf uint32) (eax, ebx, ecx, edx uint32) {
	if leaf >= 0x80000000 && leaf > t.maxExt || leaf < CPUIDHypervisorBase && leaf > t.maxStd {
		return 0, 0, 0, 0
	}
	for i := 0; i < t.n; i++ {
		e := &t.entries[i]
		if e.Leaf != leaf || (e.Indexed && e.Subleaf != subleaf) {
			continue
		}
		eax, ebx, ecx, edx = e.EAX, e.EBX, e.ECX, e.EDX
		switch leaf {
		case 1:
			ebx = ebx&0x00ffffff | apicID<<24
		case 0xb, 0x1f:
			edx = apicID
		}
		return eax, ebx, ecx, edx
	}
	if leaf == 0xb || leaf == 0x1f && t.maxStd >= 0x1f {
		return 0, 0, subleaf & 0xff, apicID
	}
	return 0, 0, 0, 0
}

// nextPow2 returns the smallest power of two >= x (x >= 1).
func nextPow2(x uint32) uint32 {
	p := uint32(1)
	for p < x {
		p <<= 1
	}
	return p
}

// log2 returns floor(log2(x)) for x >= 1.
func log2(x uint32) int {
	n := 0
	for x > 1 {
		x >>= 1
		n++
	}
	return n
}

// le32 packs 4 bytes of s little-endian (as CPUID returns strings).
func le32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// KVM-compatible paravirtual leaves a VM with a platform gets (see
// EnablePlatform). Linux finds them by scanning 4000_0000-4000_FF00 in
// steps of 0x100 for the signature, so juice's own leaves stay at
// 4000_0000.
const (
	CPUIDKVMBase     = 0x40000100
	CPUIDKVMFeatures = 0x40000101
	// KVMSignature is what leaf CPUIDKVMBase returns in EBX, ECX, EDX.
	KVMSignature = "KVMKVMKVM\x00\x00\x00"

	// KVM feature bits (CPUIDKVMFeatures EAX) juice offers: the
	// kvmclock MSRs at 4B56_4D00/01, no need for port-0x80 I/O delays,
	// and a TSC that is stable across vCPUs.
	KVMFeatureNopIODelay        = 1 << 1
	KVMFeatureClocksource2      = 1 << 3
	KVMFeatureClocksourceStable = 1 << 24
	kvmFeatures                 = KVMFeatureNopIODelay | KVMFeatureClocksource2 | KVMFeatureClocksourceStable
	leaf1ECXX2APIC              = 1 << 21
	leaf1ECXTSCDeadline         = 1 << 24
)

// EnablePlatform extends the table for a VM with a chipset model (local
// APICs with x2APIC and the TSC-deadline timer, a paravirtual clock):
// 1.ECX gains x2APIC and TSC-deadline, and the KVM-compatible leaves
// 4000_0100 (signature "KVMKVMKVM") and 4000_0101 (features: kvmclock
// through the new MSRs, stable TSC, no I/O delay) appear, so that a stock
// Linux guest learns its TSC frequency from kvmclock instead of
// calibrating it against a timer. Call it before the VM starts.
func (t *CPUIDTable) EnablePlatform() {
	for i := 0; i < t.n; i++ {
		if e := &t.entries[i]; e.Leaf == 1 {
			e.ECX |= leaf1ECXX2APIC | leaf1ECXTSCDeadline
		}
	}
	t.add(CPUIDEntry{Leaf: CPUIDKVMBase, EAX: CPUIDKVMFeatures,
		EBX: le32(KVMSignature[0:4]), ECX: le32(KVMSignature[4:8]), EDX: le32(KVMSignature[8:12])})
	t.add(CPUIDEntry{Leaf: CPUIDKVMFeatures, EAX: kvmFeatures})
}
