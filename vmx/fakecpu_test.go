package vmx

import (
	"testing"

	"juice/mm"
	"juice/vmm"
)

// A fake VT-x machine for the backend's tests: one or more logical CPUs,
// each with its own VMX operation and current VMCS; the test says which
// one the backend runs on (on, switchTo). VMCSs are arrays indexed by
// field encoding, kept per VMCS address; VMPTRLD, VMCLEAR, VMPTRST, the
// launch state and VMREAD/VMWRITE's checks behave as the SDM says, and a
// VMCS active on one CPU may be neither loaded nor cleared on another
// (the test fails). Every use of the current VMCS must happen with
// "interrupts off" (hw.irqOff). VMLAUNCH and VMRESUME record what the
// guest was handed and let the test write an exit. Nothing on the Run path
// allocates.

// fakeVMCSPage is one VMCS.
type fakeVMCSPage struct {
	pa       uint64
	vals     [0x8000]uint64
	written  [0x8000]bool
	launched bool
	active   int // the CPU it is active on (VMPTRLD), -1: clear
}

// fakeLP is one logical CPU's VMX state while the backend runs on
// another.
type fakeLP struct {
	vmxonPA uint64
	cur     *fakeVMCSPage
	irqOff  bool
}

// entry is what the fake saw at one VM entry.
type entry struct {
	launched               bool // VMRESUME (true) or VMLAUNCH
	vmcs                   uint64
	regs                   vmm.Regs
	rip, rsp, rflags, cr2  uint64
	intrInfo, errCode, len uint64
	intr                   uint64 // guest interruptibility state
}

// fakeCPU is the CPU.
type fakeCPU struct {
	t        testing.TB
	host     *vmm.Host
	revision uint32
	vmcss    map[uint64]*fakeVMCSPage
	// The state of the CPU the backend runs on (on); the others' are in
	// cpus.
	cur     *fakeVMCSPage
	vmxonPA uint64
	irqOff  bool
	on      int
	cpus    []fakeLP
	irqOffs int // irqOff calls

	// Counters and the last operands.
	ptrlds, clears, enters int
	lastClear              uint64
	lastClearOn            int // the CPU of the last VMCLEAR
	invepts, invvpids      int
	inveptOn, invvpidOn    [8]int    // INVEPTs and INVVPIDs per CPU
	lastINVEPT, lastINVVPI [3]uint64 // type, desc[0], desc[1]
	seen                   [64]entry // the last entries, ring
	// failWrite makes VMWRITE of this field fail when failing is set.
	failWrite Encoding
	failing   bool

	// exit writes the VM exit into the current VMCS (and may change regs
	// and *cr2); it returns the status of VMLAUNCH/VMRESUME.
	exit func(f *fakeCPU, regs *vmm.Regs, cr2 *uint64) Status
}

func newFakeCPU(t testing.TB, host *vmm.Host, revision uint32) *fakeCPU {
	return &fakeCPU{t: t, host: host, revision: revision, vmcss: map[uint64]*fakeVMCSPage{}, cpus: make([]fakeLP, 1)}
}

// setCPUs gives the machine n logical CPUs.
func (f *fakeCPU) setCPUs(n int) {
	for len(f.cpus) < n {
		f.cpus = append(f.cpus, fakeLP{})
	}
}

// cpu is the number of the CPU the backend runs on (Backend.CPU).
func (f *fakeCPU) cpu() int { return f.on }

// switchTo moves the backend's thread to CPU n (the kernel's scheduler
// would, between two of the backend's calls).
func (f *fakeCPU) switchTo(n int) {
	if n < 0 || n >= len(f.cpus) {
		f.t.Fatalf("no cpu %d", n)
	}
	if f.irqOff {
		f.t.Fatal("thread moved to another CPU with interrupts off")
	}
	f.cpus[f.on] = fakeLP{vmxonPA: f.vmxonPA, cur: f.cur}
	f.on = n
	f.vmxonPA, f.cur = f.cpus[n].vmxonPA, f.cpus[n].cur
}

// onCPU is Backend.OnCPU: f runs "on a thread bound to" CPU n.
func (f *fakeCPU) onCPU(n int, fn func()) error {
	saved := f.on
	f.switchTo(n)
	fn()
	f.switchTo(saved)
	return nil
}

// currentOn is the VMCS current on CPU n (0: none).
func (f *fakeCPU) currentOn(n int) uint64 {
	cur := f.cpus[n].cur
	if n == f.on {
		cur = f.cur
	}
	if cur == nil {
		return 0
	}
	return cur.pa
}

// needIRQOff fails the test when the current VMCS is used with
// interrupts on.
func (f *fakeCPU) needIRQOff(op string) {
	if !f.irqOff {
		f.t.Errorf("%s with interrupts on: another thread on the CPU could change the current VMCS", op)
	}
}

// install makes f the CPU the backend runs on until the test ends.
func (f *fakeCPU) install(t testing.TB) {
	saved := hw
	hw.vmxon = f.vmxon
	hw.vmclear = f.vmclear
	hw.vmptrld = f.vmptrld
	hw.vmptrst = f.vmptrst
	hw.irqOff = f.irqOffFn
	hw.irqRestore = f.irqRestoreFn
	hw.vmread = f.vmread
	hw.vmwrite = f.vmwrite
	hw.invept = f.invept
	hw.invvpid = f.invvpid
	hw.vmenter = f.vmenter
	t.Cleanup(func() { hw = saved })
}

func (f *fakeCPU) vmxon(pa uint64) Status {
	if f.vmxonPA != 0 {
		return FailInvalid
	}
	if r, _ := f.host.Mem.Load32(pa); r != f.revision || pa&0xfff != 0 || !f.host.Frames.IsAllocated(pa) {
		return FailInvalid
	}
	f.vmxonPA = pa
	return Succeeded
}

func (f *fakeCPU) vmclear(pa uint64) Status {
	if f.vmxonPA == 0 {
		f.t.Fatal("VMCLEAR outside VMX operation (#UD)")
	}
	f.clears++
	f.lastClear, f.lastClearOn = pa, f.on
	if pa&0xfff != 0 || pa == f.vmxonPA {
		return f.failValid(ErrVMCLEARInvalidAddr)
	}
	if v := f.vmcss[pa]; v != nil {
		if v.active >= 0 && v.active != f.on {
			f.t.Errorf("VMCLEAR on cpu %d of the VMCS at %#x, active on cpu %d", f.on, pa, v.active)
		}
		v.launched = false
		v.active = -1
	}
	if f.cur != nil && f.cur.pa == pa {
		f.cur = nil
	}
	return Succeeded
}

func (f *fakeCPU) vmptrld(pa uint64) Status {
	if f.vmxonPA == 0 {
		f.t.Fatal("VMPTRLD outside VMX operation (#UD)")
	}
	f.ptrlds++
	f.needIRQOff("VMPTRLD")
	if r, _ := f.host.Mem.Load32(pa); r != f.revision {
		return f.failValid(ErrVMPTRLDBadRevision)
	}
	v := f.vmcss[pa]
	if v == nil {
		v = &fakeVMCSPage{pa: pa, active: -1}
		f.vmcss[pa] = v
	}
	if v.active >= 0 && v.active != f.on {
		f.t.Errorf("VMPTRLD on cpu %d of the VMCS at %#x, active on cpu %d (not VMCLEARed there)", f.on, pa, v.active)
	}
	v.active = f.on
	f.cur = v
	return Succeeded
}

func (f *fakeCPU) vmptrst() (uint64, Status) {
	if f.vmxonPA == 0 {
		f.t.Fatal("VMPTRST outside VMX operation (#UD)")
	}
	if f.cur == nil {
		return noVMCS, Succeeded
	}
	return f.cur.pa, Succeeded
}

func (f *fakeCPU) irqOffFn() uint64 {
	f.irqOffs++
	was := f.irqOff
	f.irqOff = true
	if was {
		return 0
	}
	return flagIF
}

func (f *fakeCPU) irqRestoreFn(flags uint64) {
	if flags&flagIF != 0 {
		f.irqOff = false
	}
}

// failValid is VMfailValid with error e (VMfailInvalid without a VMCS).
func (f *fakeCPU) failValid(e InstructionError) Status {
	if f.cur == nil {
		return FailInvalid
	}
	f.cur.vals[VMInstructionError] = uint64(e)
	return FailValid
}

func (f *fakeCPU) vmread(enc uint64) (uint64, Status) {
	e := Encoding(enc)
	f.needIRQOff("VMREAD")
	if f.cur == nil {
		return 0, FailInvalid
	}
	if !e.Valid() || e.Name() == "" || enc >= 0x8000 {
		f.t.Errorf("VMREAD of unknown field %#x", enc)
		return 0, f.failValid(ErrUnsupportedComponent)
	}
	return f.cur.vals[enc], Succeeded
}

func (f *fakeCPU) vmwrite(enc, v uint64) Status {
	e := Encoding(enc)
	f.needIRQOff("VMWRITE")
	if f.cur == nil {
		return FailInvalid
	}
	switch {
	case !e.Valid() || e.Name() == "" || enc >= 0x8000:
		f.t.Errorf("VMWRITE of unknown field %#x", enc)
		return f.failValid(ErrUnsupportedComponent)
	case e.Type() == TypeReadOnly:
		f.t.Errorf("VMWRITE of read-only field %s", e.Name())
		return f.failValid(ErrVMWRITEReadOnly)
	case e.Width() == Width16 && v>>16 != 0, e.Width() == Width32 && v>>32 != 0:
		f.t.Errorf("VMWRITE of %#x to %v field %s", v, e.Width(), e.Name())
	case f.failing && e == f.failWrite:
		return f.failValid(ErrUnsupportedComponent)
	}
	f.cur.vals[enc] = v
	f.cur.written[enc] = true
	return Succeeded
}

func (f *fakeCPU) invept(typ uint64, desc *[2]uint64) Status {
	f.invepts++
	f.inveptOn[f.on%len(f.inveptOn)]++
	f.lastINVEPT = [3]uint64{typ, desc[0], desc[1]}
	return Succeeded
}

func (f *fakeCPU) invvpid(typ uint64, desc *[2]uint64) Status {
	f.invvpids++
	f.invvpidOn[f.on%len(f.invvpidOn)]++
	f.lastINVVPI = [3]uint64{typ, desc[0], desc[1]}
	return Succeeded
}

func (f *fakeCPU) vmenter(regs *vmm.Regs, launched bool, gfx, hfx *[512]byte, cr2 *uint64) Status {
	v := f.cur
	f.needIRQOff("VM entry")
	if v == nil {
		return FailInvalid
	}
	if gfx == nil || hfx == nil || gfx == hfx {
		f.t.Error("vmenter without two FX areas")
	}
	switch {
	case !launched && v.launched:
		return f.failValid(ErrVMLAUNCHNonClear)
	case launched && !v.launched:
		return f.failValid(ErrVMRESUMENonLaunched)
	}
	f.seen[f.enters%len(f.seen)] = entry{
		launched: launched, vmcs: v.pa, regs: *regs, cr2: *cr2,
		rip: v.vals[GuestRIP], rsp: v.vals[GuestRSP], rflags: v.vals[GuestRFLAGS],
		intrInfo: v.vals[EntryIntrInfo], errCode: v.vals[EntryExceptionError], len: v.vals[EntryInstrLen],
		intr: v.vals[GuestInterruptibility],
	}
	f.enters++
	for _, e := range [...]Encoding{ExitReason, ExitQualification, ExitInstrLen, ExitIntrInfo, ExitIntrErrorCode,
		IDTVectoringInfo, IDTVectoringError, GuestPhysicalAddr, GuestLinearAddr} {
		v.vals[e] = 0
	}
	st := Succeeded
	if f.exit != nil {
		st = f.exit(f, regs, cr2)
	}
	if st == Succeeded {
		if v.vals[ExitReason]&ReasonEntryFailure == 0 {
			v.launched = true
		}
		v.vals[EntryIntrInfo] &^= IntrValid
	}
	return st
}

// last is the most recent entry.
func (f *fakeCPU) last() *entry {
	if f.enters == 0 {
		f.t.Fatal("the guest never ran")
	}
	return &f.seen[(f.enters-1)%len(f.seen)]
}

// vmcs returns the fake VMCS at pa.
func (f *fakeCPU) vmcs(pa uint64) *fakeVMCSPage {
	v := f.vmcss[pa]
	if v == nil {
		f.t.Fatalf("no VMCS at %#x", pa)
	}
	return v
}

// exitWith returns an exit writer: basic reason, qualification, exit
// instruction length; RIP, RSP and RFLAGS stay.
func exitWith(reason uint32, qual uint64, ilen uint32) func(*fakeCPU, *vmm.Regs, *uint64) Status {
	return func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		v := f.cur
		v.vals[ExitReason] = uint64(reason)
		v.vals[ExitQualification] = qual
		v.vals[ExitInstrLen] = uint64(ilen)
		return Succeeded
	}
}

// bochsMSRs are the capability MSRs of testdata's bochs-skylake-x
// (IA32_FEATURE_CONTROL unlocked).
func bochsMSRs() MSRs {
	return MSRs{
		Basic: 0xd8100000000002, Pinbased: 0x7f00000016, Procbased: 0xfff9fffe0401e172,
		Exit: 0x7fffff00036dff, Entry: 0xffff000011ff, Misc: 0x1e0,
		Cr0Fixed0: 0x80000021, Cr0Fixed1: 0xffffffff, Cr4Fixed0: 0x2000, Cr4Fixed1: 0x7767ff,
		Procbased2: 0x2137fff00000000, EPTVPIDCap: 0xf0106334141,
		TruePinbased: 0x7f00000016, TrueProcbased: 0xfff9fffe04006172,
		TrueExit: 0x7fffff00036dfb, TrueEntry: 0xffff000011fb,
	}
}

// Host state the stubs report.
const (
	hostCR0     = 0x80000011 // PE, ET, PG: Enable adds NE
	hostCR3     = 0x10_0000
	hostCR4     = 0x20 | 0x200 | 0x400 // PAE, OSFXSR, OSXMMEXCPT
	hostGDT     = 0x12000
	hostIDT     = 0x13000
	hostTSSBase = 0xffff_8000_1234_5680
	hostFS      = 0x7000_1000
	hostGS      = 0x7000_2000
	hostEFER    = 0xd01
	hostPAT     = 0x0007_0406_0007_0406
	hostSTAR    = 8 << 32
	hostLSTAR   = 0x40_1234
	hostSFMASK  = 0x47700
)

// hostStubs is the host CPU's MSRs and control registers.
type hostStubs struct {
	msr      map[uint32]uint64
	cr0, cr4 uint64
	wrmsrs   int
}

// stubHost points b's hardware hooks at a fresh hostStubs.
func stubHost(b *Backend) *hostStubs {
	h := &hostStubs{
		msr: map[uint32]uint64{
			MSRFeatureControl: 0, MSREFER: hostEFER, MSRPAT: hostPAT, MSRFSBase: hostFS, MSRGSBase: hostGS,
			MSRSTAR: hostSTAR, MSRLSTAR: hostLSTAR, MSRCSTAR: 0, MSRSFMASK: hostSFMASK, MSRKernelGSBase: 0x5000,
		},
		cr0: hostCR0, cr4: hostCR4,
	}
	b.RDMSR = func(m uint32) uint64 {
		v, ok := h.msr[m]
		if !ok {
			panic("RDMSR of an MSR the stub does not have")
		}
		return v
	}
	b.WRMSR = func(m uint32, v uint64) { h.msr[m] = v; h.wrmsrs++ }
	b.ReadCR0 = func() uint64 { return h.cr0 }
	b.WriteCR0 = func(v uint64) { h.cr0 = v }
	b.ReadCR4 = func() uint64 { return h.cr4 }
	b.WriteCR4 = func(v uint64) { h.cr4 = v }
	b.ReadCR3 = func() uint64 { return hostCR3 }
	b.SGDT = func(p *[10]byte) { putTableReg(p, hostGDT, 0x2f) }
	b.SIDT = func(p *[10]byte) { putTableReg(p, hostIDT, 0xfff) }
	lo, hi := tssDescriptor(hostTSSBase, 0x67)
	b.ReadHost64 = func(a uint64) uint64 {
		switch a {
		case hostGDT + 0x18:
			return lo
		case hostGDT + 0x20:
			return hi
		}
		panic("ReadHost64 outside the TSS descriptor")
	}
	return h
}

func putTableReg(p *[10]byte, base uint64, limit uint16) {
	p[0], p[1] = byte(limit), byte(limit>>8)
	for i := 0; i < 8; i++ {
		p[2+i] = byte(base >> (8 * i))
	}
}

// tssDescriptor encodes an available 64-bit TSS descriptor (SDM Vol. 3A
// 8.2.3, Figure 8-4).
func tssDescriptor(base uint64, limit uint32) (lo, hi uint64) {
	lo = uint64(limit&0xffff) | (base&0xffff)<<16 | (base>>16&0xff)<<32 | 0x89<<40 |
		uint64(limit>>16&0xf)<<48 | (base>>24&0xff)<<56
	return lo, base >> 32
}

// env is a backend over simulated host memory with an enabled fake CPU,
// one VM and its vCPU.
type env struct {
	host *vmm.Host
	b    *Backend
	hs   *hostStubs
	f    *fakeCPU
	vm   *vmm.VM
	v    *vmm.VCPU
	c    *VCPU
	free uint64 // free frames before the VM was created
}

// newEnv builds an env whose vCPU starts in state s at RIP 0x1000.
func newEnv(t testing.TB, m MSRs, s vmm.SRegs) *env {
	t.Helper()
	e := newBackendEnv(t, m)
	e.vm, e.v, e.c = e.addVCPU(t, s)
	return e
}

// newBackendEnv builds an enabled backend without VMs.
func newBackendEnv(t testing.TB, m MSRs) *env {
	t.Helper()
	host := testHost(t, 64*mib)
	caps := Decode(CPUID1ECXVMX, &m)
	f := newFakeCPU(t, host, caps.VMCSRevision)
	f.install(t)
	b, err := NewWithMSRs(caps, &m, host)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{host: host, b: b, f: f, hs: stubHost(b)}
	if err := b.Enable(); err != nil {
		t.Fatal(err)
	}
	e.free = host.Frames.FreeCount()
	return e
}

// addVCPU creates a VM with 4 MiB of RAM and one vCPU in state s.
func (e *env) addVCPU(t testing.TB, s vmm.SRegs) (*vmm.VM, *vmm.VCPU, *VCPU) {
	t.Helper()
	ram, hpa, ok := e.host.AllocPages(4 * mib / mm.PageSize)
	if !ok {
		t.Fatal("no guest RAM")
	}
	vm := &vmm.VM{Name: "t", Mem: vmm.NewGuestMemory(ram, hpa), Host: e.host}
	v := &vmm.VCPU{VM: vm, SRegs: s, SRegsValid: true, SRegsDirty: true}
	v.Regs.RIP, v.Regs.RFLAGS = 0x1000, 2
	be, err := e.b.NewVCPU(vm, v)
	if err != nil {
		t.Fatal(err)
	}
	return vm, v, be.(*VCPU)
}

// field is the value of field enc in c's VMCS.
func (e *env) field(c *VCPU, enc Encoding) uint64 { return e.f.vmcs(c.VMCSAddr()).vals[enc] }

// setField sets field enc of c's VMCS as the CPU would.
func (e *env) setField(c *VCPU, enc Encoding, v uint64) { e.f.vmcs(c.VMCSAddr()).vals[enc] = v }
