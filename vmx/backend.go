package vmx

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"juice/cpu"
	"juice/mm"
	"juice/vmm"
)

// Compile-time checks that the backend implements the core's interfaces.
var (
	_ vmm.Backend     = (*Backend)(nil)
	_ vmm.VCPUBackend = (*VCPU)(nil)
)

// hw is the VMX instructions the backend executes: on the machine each
// field is the instruction itself (instr_amd64.s), called directly through
// the variable; tests replace them with a fake CPU that keeps VMCSs in
// maps. Nothing else in the backend touches VMX state.
//
// irqOff and irqRestore bracket every use of the current VMCS (see
// irqOff); the fake CPU checks that they do.
var hw = struct {
	vmxon      func(pa uint64) Status
	vmclear    func(pa uint64) Status
	vmptrld    func(pa uint64) Status
	vmptrst    func() (uint64, Status)
	vmread     func(enc uint64) (uint64, Status)
	vmwrite    func(enc, v uint64) Status
	invept     func(typ uint64, desc *[2]uint64) Status
	invvpid    func(typ uint64, desc *[2]uint64) Status
	vmenter    func(regs *vmm.Regs, launched bool, guestFX, hostFX *[512]byte, cr2 *uint64) Status
	irqOff     func() uint64
	irqRestore func(flags uint64)
}{vmxon, vmclear, vmptrld, vmptrst, vmread, vmwrite, invept, invvpid, vmenter, irqOff, irqRestore}

// MaxCPUs bounds the host CPU numbers the backend keeps state for (VMX
// operation, the current VMCS).
const MaxCPUs = 64

// noVMCS is what VMPTRST stores when the CPU has no current VMCS.
const noVMCS = ^uint64(0)

// ErrClosed is Run's error on a closed vCPU.
var ErrClosed = errors.New("vmx: vCPU is closed")

// More capability bits (SDM Vol. 3D A.6, A.10).
const (
	// MiscZeroLenInjection (IA32_VMX_MISC bit 30): VM entry may inject a
	// software interrupt or exception with instruction length 0.
	MiscZeroLenInjection = 1 << 30
	// VPIDCapINVVPIDSingle: single-context INVVPID (type 1).
	VPIDCapINVVPIDSingle = 1 << 41
)

// INVEPT and INVVPID types (SDM Vol. 3C 31.3).
const (
	inveptSingle   = 1
	inveptAll      = 2
	invvpidSingle  = 1
	invvpidAll     = 2
	vmcsRevisionOK = 0x7fffffff
)

// Values every VMCS starts with.
const (
	// defaultExceptions: #DB (1) and #AC (17) against the endless
	// benign-exception loops (CVE-2015-8104, CVE-2015-5307), #MC (18)
	// because machine checks are the host's.
	defaultExceptions = 1<<1 | 1<<6 | 1<<17 | 1<<18 // #DB, #UD (the other vendor's hypercall instruction), #AC, #MC
	// DefaultPAT is IA32_PAT at power-on (WB, WT, UC-, UC, repeated).
	DefaultPAT = 0x0007_0406_0007_0406
	// defaultDR7 is DR7 at reset.
	defaultDR7 = 0x400
	// PAUSE-loop exiting: a spin loop is PAUSEs less than pleGap TSC
	// ticks apart; it exits after pleWindow ticks (KVM's defaults).
	pleGap    = 128
	pleWindow = 4096
)

// Backend is juice's Intel VT-x backend: a vmm.Backend for CPUs with VMX,
// EPT and the TPR shadow. Build it with New, set CPU (and OnCPU) on a
// machine with several CPUs, call Enable once on every CPU that will run
// guests, then create vCPUs with NewVCPU.
//
// The life of a VMCS (SDM Vol. 3C 25.1 and 25.11.1): NewVCPU fills it on
// whichever CPU builds the VM (that CPU must be in VMX operation) and
// VMCLEARs it there before returning, so that it is active nowhere. The
// vCPU's first Run (or GetSRegs, RequestInterruptWindow) binds it to the
// host CPU it runs on: there the VMCS is made current, the host-state
// fields are rewritten from that CPU (each CPU has its own GDT, TSS, IDT
// and GS base), the EPT's and the VPID's cached translations are flushed,
// and the first entry is a VMLAUNCH. From then on the vCPU runs on that
// CPU only: a Run anywhere else fails with a *WrongCPUError and touches
// nothing. Close VMCLEARs the VMCS on its CPU (through OnCPU).
//
// The VMCS current on each CPU is tracked in the Backend, one entry per
// CPU. Every VMREAD, VMWRITE and guest entry runs with interrupts off
// (irqOff) in one nosplit function that first VMPTRLDs the vCPU's VMCS
// when another one is current there, so vCPU threads that share a CPU
// (and a builder thread between them) interleave safely.
type Backend struct {
	// Caps are the CPU's VMX capabilities (from Decode); MSRs the raw
	// capability MSRs they came from.
	Caps Caps
	MSRs MSRs
	// Controls are the controls every VMCS gets (ChooseControls; "enable
	// VPID" is dropped when the CPU has no usable INVVPID).
	Controls Controls
	// EPT are the options of every VM's extended page tables.
	EPT EPTOptions

	// Hardware access for Enable and NewVCPU: juice/cpu's functions and
	// this package's SGDT, SIDT and memory read from New; tests replace
	// them. ReadHost64 reads the host's GDT at a linear address.
	RDMSR              func(msr uint32) uint64
	WRMSR              func(msr uint32, v uint64)
	ReadCR0, ReadCR3   func() uint64
	ReadCR4            func() uint64
	WriteCR0, WriteCR4 func(v uint64)
	SGDT, SIDT         func(p *[10]byte)
	ReadHost64         func(addr uint64) uint64

	// CPU returns the number (0 to MaxCPUs-1) of the host CPU the caller
	// runs on: juice's kernel.CPU. Nil: there is one CPU, number 0.
	CPU func() int
	// OnCPU runs f on a thread bound to host CPU n and returns when f
	// has returned; Close uses it to VMCLEAR a VMCS on the CPU where it
	// is active. Nil: Close runs f itself when it runs on n (one CPU).
	OnCPU func(n int, f func()) error

	host *vmm.Host

	inveptSingle, inveptAll   bool
	invvpidSingle, invvpidAll bool
	zeroLenInjection          bool

	mu    sync.Mutex // guards the fields below
	vpids vpidAllocator
	vms   map[*vmm.VM]*vmState
	vmxon [MaxCPUs]uint64 // VMXON regions, one per CPU in VMX operation

	// enabled has bit n set once Enable succeeded on CPU n.
	enabled atomic.Uint64

	// current[n] is the host-physical address of the VMCS current on CPU
	// n (0: none, or not known). Read and written without mu, with
	// interrupts off, on CPU n only.
	current [MaxCPUs]uint64
}

// cpuNow is the number of the CPU the caller runs on (0 without b.CPU).
func (b *Backend) cpuNow() int {
	if b.CPU == nil {
		return 0
	}
	return b.CPU()
}

// EnabledOn reports whether Enable succeeded on CPU n.
func (b *Backend) EnabledOn(n int) bool {
	return n >= 0 && n < MaxCPUs && b.enabled.Load()&(1<<uint(n)) != 0
}

// WrongCPUError is Run's error for a vCPU entered on a host CPU other than
// the one its VMCS is bound to (a VMCS may only move after a VMCLEAR on
// its CPU, which juice does not do for a running vCPU). Run touches
// nothing when it returns it.
type WrongCPUError struct {
	Bound, On int
}

func (e *WrongCPUError) Error() string {
	return fmt.Sprintf("vmx: vCPU bound to host cpu %d entered on cpu %d (a VMCS cannot move between CPUs while it is active)", e.Bound, e.On)
}

// New returns a VT-x backend for a CPU with capabilities caps whose
// hardware structures come from host, reading the capability MSRs with
// cpu.RDMSR (ReadMSRs). It fails, naming what is missing, when the CPU
// has no VMX, firmware disabled it, there is no EPT (or no 4-level walk,
// write-back tables or INVEPT), or a control juice needs cannot be set
// (ChooseControls).
func New(caps Caps, host *vmm.Host) (*Backend, error) {
	if err := checkCaps(caps, host); err != nil {
		return nil, err
	}
	m := ReadMSRs(cpu.RDMSR)
	return NewWithMSRs(caps, &m, host)
}

// checkCaps refuses what can be refused before touching any MSR.
func checkCaps(caps Caps, host *vmm.Host) error {
	switch {
	case !caps.Present:
		return errors.New("vmx: the CPU has no VT-x (CPUID.01H:ECX[VMX] is clear)")
	case caps.DisabledByFirmware:
		return errors.New("vmx: VMX disabled by firmware (IA32_FEATURE_CONTROL is locked with VMX outside SMX off); enable VT-x in the firmware setup")
	case host == nil || host.Mem == nil || host.Frames == nil:
		return errors.New("vmx: no host memory for VMCSs and extended page tables")
	}
	return nil
}

// NewWithMSRs is New with the capability MSRs already read (m, from
// ReadMSRs): for tests and for a kernel that read them once.
func NewWithMSRs(caps Caps, m *MSRs, host *vmm.Host) (*Backend, error) {
	if err := checkCaps(caps, host); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("vmx: no capability MSRs")
	}
	if caps.VMCSSize > mm.PageSize {
		return nil, fmt.Errorf("vmx: the CPU wants %d-byte VMCSs, more than a page", caps.VMCSSize)
	}
	opt, err := EPTOptionsFor(caps)
	if err != nil {
		return nil, err
	}
	ev := m.EPTVPIDCap
	b := &Backend{
		Caps: caps, MSRs: *m, EPT: opt,
		RDMSR: cpu.RDMSR, WRMSR: cpu.WRMSR,
		ReadCR0: cpu.ReadCR0, ReadCR3: cpu.ReadCR3, ReadCR4: cpu.ReadCR4,
		WriteCR0: cpu.WriteCR0, WriteCR4: cpu.WriteCR4,
		SGDT: sgdt, SIDT: sidt, ReadHost64: load64,
		host:             host,
		inveptSingle:     caps.INVEPT && ev&EPTCapINVEPTCtx != 0,
		inveptAll:        caps.INVEPT && ev&EPTCapINVEPTAll != 0,
		invvpidSingle:    caps.INVVPID && ev&VPIDCapINVVPIDSingle != 0,
		invvpidAll:       caps.INVVPID && ev&VPIDCapINVVPIDAll != 0,
		zeroLenInjection: m.Misc&MiscZeroLenInjection != 0,
		vms:              make(map[*vmm.VM]*vmState),
	}
	if !b.inveptSingle && !b.inveptAll {
		// Without it a VM's EPT frames, freed and reused, could keep
		// stale translations into memory the VM no longer owns.
		return nil, errors.New("vmx: the CPU has no single-context or all-context INVEPT (IA32_VMX_EPT_VPID_CAP bits 20, 25, 26)")
	}
	b.Controls, err = ChooseControls(m, Options{})
	if err != nil {
		return nil, err
	}
	if !b.invvpidSingle && !b.invvpidAll {
		// VPIDs that cannot be flushed cannot be reused safely: run with
		// VPID 0, whose translations every entry and exit flushes.
		b.Controls.Proc2 &^= Proc2EnableVPID
	}
	return b, nil
}

// Name returns "vmx".
func (b *Backend) Name() string { return "vmx" }

// Enable puts the calling CPU into VMX root operation: it sets the lock
// and "VMX outside SMX" bits of IA32_FEATURE_CONTROL when firmware left
// the MSR unlocked (and fails when firmware locked it with VMX off), sets
// the CR0 bits VMX requires that are safe to set (NE), sets CR4.VMXE,
// checks both against the IA32_VMX_CR{0,4}_FIXED MSRs, and executes
// VMXON on a fresh VMXON region (a host page, kept for the CPU's
// lifetime). The kernel calls it once on every CPU that will run guests
// (on a thread bound there: b.CPU names the CPU), before that CPU's first
// NewVCPU. When VMXON fails, CR4.VMXE is put back, so that CR4.VMXE says
// whether a CPU is in VMX operation.
func (b *Backend) Enable() error {
	if b.RDMSR == nil || b.WRMSR == nil || b.ReadCR0 == nil || b.WriteCR0 == nil || b.ReadCR4 == nil || b.WriteCR4 == nil {
		return errors.New("vmx: Enable needs the MSR and control-register hooks")
	}
	n := b.cpuNow()
	switch {
	case n < 0 || n >= MaxCPUs:
		return fmt.Errorf("vmx: cpu %d is beyond the %d CPUs the backend keeps state for", n, MaxCPUs)
	case b.EnabledOn(n):
		return fmt.Errorf("vmx: VMX is already on on cpu %d", n)
	}
	fc := b.RDMSR(MSRFeatureControl)
	switch {
	case fc&FeatureControlLock == 0:
		b.WRMSR(MSRFeatureControl, fc|FeatureControlLock|FeatureControlVMXOutsideSMX)
	case fc&FeatureControlVMXOutsideSMX == 0:
		return errors.New("vmx: VMX disabled by firmware (IA32_FEATURE_CONTROL is locked with VMX outside SMX off); enable VT-x in the firmware setup")
	}
	c := &b.Controls
	cr0 := b.ReadCR0()
	if bad := cr0 &^ c.CR0Fixed1; bad != 0 {
		return fmt.Errorf("vmx: CR0 %#x has bits %#x set that VMX operation requires clear", cr0, bad)
	}
	if miss := c.CR0Fixed0 &^ cr0; miss != 0 {
		if miss&^CR0NE != 0 {
			return fmt.Errorf("vmx: CR0 %#x lacks bits %#x that VMX operation requires", cr0, miss)
		}
		b.WriteCR0(cr0 | miss) // NE: native x87 error reporting, which juice uses anyway
	}
	cr4 := b.ReadCR4()
	want := cr4 | CR4VMXE
	if bad := want &^ c.CR4Fixed1; bad != 0 {
		return fmt.Errorf("vmx: CR4 %#x has bits %#x set that VMX operation requires clear", cr4, bad)
	}
	if miss := c.CR4Fixed0 &^ want; miss != 0 {
		return fmt.Errorf("vmx: CR4 %#x lacks bits %#x that VMX operation requires", cr4, miss)
	}
	if want != cr4 {
		b.WriteCR4(want)
	}
	_, pa, ok := b.host.AllocPages(1)
	if !ok {
		if want != cr4 {
			b.WriteCR4(cr4)
		}
		return errors.New("vmx: no memory for the VMXON region")
	}
	b.host.Mem.Store32(pa, b.Caps.VMCSRevision&vmcsRevisionOK)
	if st := hw.vmxon(pa); st != Succeeded {
		b.host.FreePages(pa, 1)
		if want != cr4 {
			b.WriteCR4(cr4)
		}
		if st == FailValid {
			return errors.New("vmx: VMXON failed: the CPU is already in VMX operation")
		}
		return errors.New("vmx: VMXON failed (VMfailInvalid: a bad VMXON region, or the CPU is already in VMX operation)")
	}
	b.mu.Lock()
	b.vmxon[n] = pa
	b.enabled.Or(1 << uint(n))
	b.mu.Unlock()
	return nil
}

// vpidAllocator hands out VPIDs 1..65535 (VPID 0 is the host's).
type vpidAllocator struct {
	used [1024]uint64 // bit set: in use; bit 0 (VPID 0) is never handed out
	hint uint32       // no free VPID below this word
}

// alloc returns a free VPID; ok is false when all are in use.
func (a *vpidAllocator) alloc() (uint16, bool) {
	a.used[0] |= 1
	for w := a.hint; w < uint32(len(a.used)); w++ {
		if f := ^a.used[w]; f != 0 {
			bit := uint32(0)
			for f&1 == 0 {
				f >>= 1
				bit++
			}
			a.used[w] |= 1 << bit
			a.hint = w
			return uint16(w*64 + bit), true
		}
	}
	return 0, false
}

// free returns id to the allocator.
func (a *vpidAllocator) free(id uint16) {
	if id == 0 {
		return
	}
	w := uint32(id) / 64
	a.used[w] &^= 1 << (id % 64)
	if w < a.hint {
		a.hint = w
	}
}

// vmState is what a VM's vCPUs share: the EPT and the I/O and MSR bitmaps.
type vmState struct {
	host    *vmm.Host
	ept     *EPT
	bitmaps uint64 // host-physical address of I/O bitmap A, B and the MSR bitmap (3 pages)
	io      IOBitmaps
	msr     MSRBitmap
	refs    int
}

// bitmapPages is the number of pages at vmState.bitmaps.
const bitmapPages = (IOBitmapsSize + MSRBitmapSize) / mm.PageSize

// vmStateFor returns vm's shared state, creating it on the VM's first
// vCPU. b.mu is held.
func (b *Backend) vmStateFor(vm *vmm.VM) (*vmState, error) {
	if st := b.vms[vm]; st != nil {
		st.refs++
		return st, nil
	}
	host := vm.HostOr(b.host)
	ept, err := NewEPT(host, vm.Mem, b.EPT)
	if err != nil {
		return nil, err
	}
	mem, pa, ok := host.AllocPages(bitmapPages)
	if !ok {
		ept.Close()
		return nil, errors.New("vmx: no memory for the I/O and MSR bitmaps")
	}
	io, _ := NewIOBitmaps(mem[:IOBitmapsSize])
	msr, _ := NewMSRBitmap(mem[IOBitmapsSize:])
	io.InterceptAll()
	msr.InterceptAll()
	st := &vmState{host: host, ept: ept, bitmaps: pa, io: io, msr: msr, refs: 1}
	b.vms[vm] = st
	return st, nil
}

// releaseVM drops one reference to vm's state and frees it with the last.
// b.mu is held.
func (b *Backend) releaseVM(vm *vmm.VM, st *vmState) {
	st.refs--
	if st.refs > 0 {
		return
	}
	delete(b.vms, vm)
	st.ept.Close()
	st.host.FreePages(st.bitmaps, bitmapPages)
}

// The pages a vCPU owns, and the layout of the last one.
const (
	vcpuPages  = 3
	pageVMCS   = 0 // the VMCS
	pageVAPIC  = 1 // the virtual-APIC page (TPR shadow)
	pageMisc   = 2 // MSR lists and x87/SSE areas:
	guestMSRs  = 0 // VM-entry MSR-load list; its entry 0 is the VM-exit MSR-store list
	hostMSRs   = 128
	guestFXOff = 1024
	hostFXOff  = 1536
	fxAreaSize = 512
	msrEntry   = 16 // an MSR-list entry: index (32 bits), reserved (32), value (64)
	vapicTPR   = 0x80
	fxFCW      = 0  // offset of FCW in an FXSAVE area
	fxMXCSR    = 24 // offset of MXCSR
	initFCW    = 0x037f
	initMXCSR  = 0x1f80
)

// listMSRs are the MSRs VM entries load from the guest's list and VM exits
// restore from the host's, in list order: the SYSCALL MSRs and
// KERNEL_GS_BASE, which the VMCS has no fields for. Entry 0 is stored back
// at every exit (SWAPGS changes it without an exit); the others change
// only through intercepted WRMSRs.
var listMSRs = [...]uint32{MSRKernelGSBase, MSRSTAR, MSRLSTAR, MSRCSTAR, MSRSFMASK}

// VCPU is the backend state of one vCPU: its VMCS, virtual-APIC page, MSR
// lists, x87/SSE areas and VPID. It implements vmm.VCPUBackend; Run,
// GetSRegs, CanInjectInterrupt and RequestInterruptWindow allocate
// nothing.
type VCPU struct {
	b    *Backend
	vm   *vmm.VM
	st   *vmState
	host *vmm.Host

	pages   uint64 // host-physical address of the vcpuPages pages
	vmcsPA  uint64
	vapic   []byte // the virtual-APIC page
	misc    []byte // MSR lists and FX areas
	guestFX *[fxAreaSize]byte
	hostFX  *[fxAreaSize]byte

	vpid     uint16
	proc     uint32 // primary processor-based controls as written
	cr0Mask  uint64
	cr4Mask  uint64
	cr2      uint64 // the guest's CR2 (vmenter switches it)
	intr     uint32 // guest interruptibility state at the last exit (or as written since)
	exitRIP  uint64 // guest RIP at the last exit
	desc     [2]uint64
	launched bool
	closed   bool

	// cpu is the host CPU the VMCS is bound to (active there), -1 until
	// the vCPU's first Run (bind).
	cpu   int
	wrong WrongCPUError // Run's error on another CPU (no allocation)
	// staged holds NewVCPU's VMWRITEs until commit writes them all at
	// once (nil afterwards).
	staged []stagedWrite

	// The first failed VMX instruction since the last report (Run
	// reports it as ExitInvalid).
	bad struct {
		set  bool
		op   uint8 // badRead, badWrite, badLoad
		enc  Encoding
		stat Status
	}
}

// Failed VMX operations.
const (
	badRead = iota
	badWrite
	badLoad
	badClear
)

// stagedWrite is one VMWRITE NewVCPU stages for commit.
type stagedWrite struct {
	enc Encoding
	v   uint64
}

// maxStaged is room for every field setup writes.
const maxStaged = 160

// NewVCPU creates vCPU v of vm: a VMCS (filled, then VMCLEARed, so that
// it is active on no CPU until the vCPU's first Run binds it) with EPT
// over vm.Mem and the I/O and MSR bitmaps (both shared by the VM's
// vCPUs, intercepting every port and MSR), its own VPID when the CPU has
// VPIDs, a virtual-APIC page for the TPR shadow, the host state of the
// calling CPU (rewritten from the vCPU's own CPU at its first Run) and
// the guest state of v.SRegs, v.Regs and (when v.MSRDirty) v.MSR, which
// must pass CheckGuestState. Enable must have run on this CPU; the CPU's
// current VMCS is the same afterwards as before.
//
// Exits, and why: host interrupts and NMIs (the host's); HLT, MWAIT,
// MONITOR, CPUID, VMCALL, every port and MSR, XSETBV, INVD, GETSEC and
// the VMX instructions (emulated by the core, or refused); #DB and #AC
// (the CVE-2015-8104 and CVE-2015-5307 delivery loops) and #MC (the
// host's); CR0 and CR4 writes that touch a bit VMX fixes (emulated here);
// PAUSE loops when the CPU has PAUSE-loop exiting. Not intercepted: CR3
// (EPT), CR8 (the TPR shadow), DR accesses, RDTSC (TSC offsetting),
// INVLPG, descriptor-table instructions.
func (b *Backend) NewVCPU(vm *vmm.VM, v *vmm.VCPU) (vmm.VCPUBackend, error) {
	if vm == nil || v == nil || vm.Mem == nil {
		return nil, errors.New("vmx: NewVCPU needs a VM with memory and a vCPU")
	}
	pat := uint64(DefaultPAT)
	if v.MSRDirty {
		pat = v.MSR.PAT
	}
	x := GuestExtra{RIP: v.Regs.RIP, RFLAGS: v.Regs.RFLAGS | rflagsFixed1, DR7: defaultDR7, PAT: pat}
	if err := CheckGuestState(&v.SRegs, &x, &b.Controls); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.enabled.Load() == 0 {
		return nil, errors.New("vmx: NewVCPU before Enable")
	}
	hs, err := b.readHostState()
	if err != nil {
		return nil, err
	}
	st, err := b.vmStateFor(vm)
	if err != nil {
		return nil, err
	}
	var vpid uint16
	if b.Controls.VPID() {
		var ok bool
		if vpid, ok = b.vpids.alloc(); !ok {
			b.releaseVM(vm, st)
			return nil, errors.New("vmx: out of VPIDs")
		}
	}
	mem, pa, ok := st.host.AllocPages(vcpuPages)
	if !ok {
		b.vpids.free(vpid)
		b.releaseVM(vm, st)
		return nil, errors.New("vmx: no memory for the VMCS")
	}
	const page = mm.PageSize
	misc := mem[pageMisc*page : (pageMisc+1)*page]
	c := &VCPU{
		b: b, vm: vm, st: st, host: st.host,
		pages: pa, vmcsPA: pa + pageVMCS*page,
		vapic:   mem[pageVAPIC*page : (pageVAPIC+1)*page],
		misc:    misc,
		guestFX: (*[fxAreaSize]byte)(misc[guestFXOff : guestFXOff+fxAreaSize]),
		hostFX:  (*[fxAreaSize]byte)(misc[hostFXOff : hostFXOff+fxAreaSize]),
		vpid:    vpid,
		proc:    b.Controls.Proc,
		cr0Mask: b.Controls.CR0Mask(),
		cr4Mask: b.Controls.CR4Mask(),
		cpu:     -1,
		staged:  make([]stagedWrite, 0, maxStaged),
	}
	err = c.setup(v, &hs)
	if err == nil {
		err = c.commit()
	}
	c.staged = nil
	if err != nil {
		b.vpids.free(vpid)
		st.host.FreePages(pa, vcpuPages)
		b.releaseVM(vm, st)
		return nil, err
	}
	return c, nil
}

// setup stages every field of the new VMCS (c.staged: commit writes
// them) and fills the MSR lists and x87/SSE areas.
func (c *VCPU) setup(v *vmm.VCPU, hs *hostState) error {
	b, ctl := c.b, &c.b.Controls
	c.host.Mem.Store32(c.vmcsPA, b.Caps.VMCSRevision&vmcsRevisionOK)

	// x87/SSE reset state and the MSR lists.
	binaryPut16(c.guestFX[fxFCW:], initFCW)
	binaryPut32(c.guestFX[fxMXCSR:], initMXCSR)
	for i, msr := range listMSRs {
		putMSREntry(c.misc[guestMSRs+i*msrEntry:], msr, 0)
		putMSREntry(c.misc[hostMSRs+i*msrEntry:], msr, 0)
	}
	miscPA := c.pages + pageMisc*mm.PageSize

	// Execution, exit and entry controls.
	c.write(PinControls, uint64(ctl.Pin))
	c.write(ProcControls, uint64(c.proc))
	c.write(Proc2Controls, uint64(ctl.Proc2))
	c.write(ExitControls, uint64(ctl.Exit))
	c.write(ExceptionBitmap, defaultExceptions)
	c.write(PFErrorCodeMask, 0)
	c.write(PFErrorCodeMatch, 0)
	c.write(CR3TargetCount, 0)
	c.write(VMCSLinkPointer, ^uint64(0))
	c.write(EPTPointer, c.st.ept.EPTP())
	if ctl.VPID() {
		c.write(VirtualProcessorID, uint64(c.vpid))
	}
	c.write(IOBitmapAAddr, c.st.bitmaps)
	c.write(IOBitmapBAddr, c.st.bitmaps+IOBitmapSize)
	c.write(MSRBitmapAddr, c.st.bitmaps+IOBitmapsSize)
	c.write(VirtualAPICPageAddr, c.pages+pageVAPIC*mm.PageSize)
	c.write(TPRThreshold, 0)
	if ctl.PauseLoopExiting() {
		c.write(PLEGap, pleGap)
		c.write(PLEWindow, pleWindow)
	}
	c.write(TSCOffset, 0)
	c.write(EntryMSRLoadAddr, miscPA+guestMSRs)
	c.write(EntryMSRLoadCount, uint64(len(listMSRs)))
	c.write(ExitMSRStoreAddr, miscPA+guestMSRs)
	c.write(ExitMSRStoreCount, 1)
	c.write(ExitMSRLoadAddr, miscPA+hostMSRs)
	c.write(ExitMSRLoadCount, uint64(len(listMSRs)))
	c.write(EntryIntrInfo, 0)
	c.write(EntryExceptionError, 0)
	c.write(EntryInstrLen, 0)

	c.writeHostState(hs)

	// Guest state.
	c.write(GuestActivityState, ActivityActive)
	c.write(GuestInterruptibility, 0)
	c.write(GuestPendingDebugExcept, 0)
	c.write(GuestDR7, defaultDR7)
	c.write(GuestIA32DebugCtl, 0)
	c.write(GuestIA32PAT, DefaultPAT)
	c.write(GuestIA32SysenterCS, 0)
	c.write(GuestIA32SysenterESP, 0)
	c.write(GuestIA32SysenterEIP, 0)
	c.loadSRegs(v)
	v.SRegsDirty = false
	if v.MSRDirty { // else the reset values above stand
		c.loadMSRs(&v.MSR)
		v.MSRDirty = false
	}
	c.write(GuestRIP, v.Regs.RIP)
	c.write(GuestRSP, v.Regs.RSP)
	c.write(GuestRFLAGS, v.Regs.RFLAGS|rflagsFixed1)
	c.exitRIP = v.Regs.RIP
	if len(c.staged) > maxStaged {
		return fmt.Errorf("vmx: setup staged %d VMCS fields, more than the %d planned", len(c.staged), maxStaged)
	}
	return nil
}

// writeHostState writes the host-state area (and the host's MSR-load
// list) from hs: what a VM exit loads into the CPU. GS base, TR base,
// GDTR, IDTR (and, for all juice knows, the control registers and MSRs)
// are the CPU's own, so bind rewrites them on the vCPU's CPU. HOST_RSP,
// HOST_RIP and HOST_FS_BASE are rewritten by vmenter at every entry.
func (c *VCPU) writeHostState(hs *hostState) {
	ctl := &c.b.Controls
	host := [len(listMSRs)]uint64{hs.kernelGSBase, hs.star, hs.lstar, hs.cstar, hs.sfmask}
	for i, msr := range listMSRs {
		putMSREntry(c.misc[hostMSRs+i*msrEntry:], msr, host[i])
	}
	c.write(HostCR0, hs.cr0)
	c.write(HostCR3, hs.cr3)
	c.write(HostCR4, hs.cr4)
	c.write(HostCSSelector, HostCodeSelector)
	c.write(HostSSSelector, HostDataSelector)
	c.write(HostDSSelector, HostDataSelector)
	c.write(HostESSelector, HostDataSelector)
	c.write(HostFSSelector, 0)
	c.write(HostGSSelector, 0)
	c.write(HostTRSelector, HostTSSSelector)
	c.write(HostFSBase, hs.fsBase)
	c.write(HostGSBase, hs.gsBase)
	c.write(HostTRBase, hs.trBase)
	c.write(HostGDTRBase, hs.gdtr.Base)
	c.write(HostIDTRBase, hs.idtr.Base)
	if ctl.Exit&ExitCtlLoadPAT != 0 {
		c.write(HostIA32PAT, hs.pat)
	}
	if ctl.Exit&ExitCtlLoadEFER != 0 {
		c.write(HostIA32EFER, hs.efer)
	}
	c.write(HostIA32SysenterCS, 0)
	c.write(HostIA32SysenterESP, 0)
	c.write(HostIA32SysenterEIP, 0)
}

// commit writes the staged fields into the new VMCS on the calling CPU,
// all with interrupts off: VMCLEAR (launch state clear, the revision in
// place), VMPTRLD, the VMWRITEs, VMCLEAR again (so that the VMCS is
// active nowhere and any CPU may VMPTRLD it), then the VMCS that was
// current on this CPU before is made current again, so that the Backend's
// record of it stays true without knowing which CPU this is.
func (c *VCPU) commit() error {
	if !c.commitStaged() {
		if c.bad.op == badLoad {
			err := fmt.Errorf("vmx: VMPTRLD of a new VMCS failed (status %d; VMCS revision %#x)", c.bad.stat, c.b.Caps.VMCSRevision)
			c.bad.set = false
			return err
		}
		err := c.badError()
		c.bad.set = false
		return err
	}
	return nil
}

// commitStaged is commit's part with interrupts off; false when the CPU
// is not in VMX operation or an instruction failed (c.bad says which).
//
//go:nosplit
func (c *VCPU) commitStaged() bool {
	f := hw.irqOff()
	if c.b.ReadCR4()&CR4VMXE == 0 {
		hw.irqRestore(f)
		c.failed(badClear, 0, FailInvalid)
		c.bad.enc = notInVMX
		return false
	}
	prev, pst := hw.vmptrst()
	ok := true
	if st := hw.vmclear(c.vmcsPA); st != Succeeded {
		c.failed(badClear, 0, st)
		ok = false
	} else if st := hw.vmptrld(c.vmcsPA); st != Succeeded {
		c.failed(badLoad, 0, st)
		ok = false
	} else {
		for i := range c.staged {
			w := &c.staged[i]
			if st := hw.vmwrite(uint64(w.enc), w.v); st != Succeeded {
				c.failed(badWrite, w.enc, st)
				ok = false
				break
			}
		}
	}
	hw.vmclear(c.vmcsPA)
	if pst == Succeeded && prev != noVMCS && prev != c.vmcsPA {
		hw.vmptrld(prev)
	}
	hw.irqRestore(f)
	return ok
}

// notInVMX marks a commit refused on a CPU outside VMX operation (in
// c.bad.enc with badClear).
const notInVMX Encoding = 1

// bind runs before the vCPU's first use of its VMCS on the CPU it runs
// on (its thread is bound there: vmm.Config.VCPUThread): it makes that
// the VMCS's CPU, rewrites the host state from it and flushes the EPT's
// and the VPID's cached translations there, which may be an earlier
// owner's (the EPT never changes after NewVCPU, so one flush per CPU
// that runs the VM's vCPUs covers it). Later calls check that the vCPU is
// still on its CPU. It allocates only when it fails on the first call.
func (c *VCPU) bind() error {
	n := c.b.cpuNow()
	if c.cpu >= 0 {
		if n != c.cpu {
			c.wrong = WrongCPUError{Bound: c.cpu, On: n}
			return &c.wrong
		}
		return nil
	}
	if !c.b.EnabledOn(n) {
		return fmt.Errorf("vmx: vCPU first entered on cpu %d, which is not in VMX operation", n)
	}
	c.cpu = n
	hs, err := c.b.readHostState()
	if err != nil {
		return err
	}
	c.writeHostState(&hs)
	c.desc = [2]uint64{c.st.ept.EPTP(), 0}
	typ := uint64(inveptAll)
	if c.b.inveptSingle {
		typ = inveptSingle
	}
	if st := hw.invept(typ, &c.desc); st != Succeeded {
		return fmt.Errorf("vmx: INVEPT type %d failed (status %d)", typ, st)
	}
	c.flushVPID()
	if c.bad.set {
		err := c.badError()
		c.bad.set = false
		return err
	}
	return nil
}

// badError describes the failed VMX instruction c.bad records.
func (c *VCPU) badError() error {
	op := "VMREAD"
	switch c.bad.op {
	case badWrite:
		op = "VMWRITE"
	case badLoad:
		return fmt.Errorf("vmx: VMPTRLD of the VMCS at %#x failed (status %d)", c.vmcsPA, c.bad.stat)
	case badClear:
		if c.bad.enc == notInVMX {
			return errors.New("vmx: the CPU building the vCPU is not in VMX operation (Enable did not run there)")
		}
		return fmt.Errorf("vmx: VMCLEAR of the VMCS at %#x failed (status %d)", c.vmcsPA, c.bad.stat)
	}
	return fmt.Errorf("vmx: %s of %s (%#x) failed (status %d)", op, c.bad.enc.Name(), uint32(c.bad.enc), c.bad.stat)
}

// putMSREntry writes an MSR-list entry (SDM Vol. 3C 25.7.2): index in
// bits 31:0, bits 63:32 reserved (0), the value in bits 127:64.
func putMSREntry(b []byte, msr uint32, v uint64) {
	if len(b) < msrEntry {
		return
	}
	binaryPut32(b[0:], msr)
	binaryPut32(b[4:], 0)
	binaryPut64(b[8:], v)
}

// binaryPut16, binaryPut32 and binaryPut64 store little-endian words;
// binaryGet64 loads one.
func binaryPut16(b []byte, v uint16) {
	if len(b) >= 2 {
		b[0], b[1] = byte(v), byte(v>>8)
	}
}

func binaryPut32(b []byte, v uint32) {
	if len(b) >= 4 {
		b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
}

func binaryPut64(b []byte, v uint64) {
	if len(b) >= 8 {
		binaryPut32(b, uint32(v))
		binaryPut32(b[4:], uint32(v>>32))
	}
}

func binaryGet64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// Close clears the VMCS on the CPU where it is active (VMCLEAR there,
// through b.OnCPU: the CPU writes it back and forgets it; a VMCS that
// never ran is active nowhere), frees its pages and VPID, and the VM's EPT
// and bitmaps with its last vCPU. A VMCS that cannot be cleared where it
// is active (no OnCPU, or OnCPU failed) keeps its pages for good: its CPU
// may still write it back. Further calls do nothing; Run then returns
// ErrClosed. The vCPU must not be running.
func (c *VCPU) Close() {
	if c.closed {
		return
	}
	c.closed = true
	b := c.b
	cleared := c.cpu < 0
	if !cleared {
		switch {
		case b.OnCPU != nil:
			cleared = b.OnCPU(c.cpu, c.clearHere) == nil
		case b.cpuNow() == c.cpu:
			c.clearHere()
			cleared = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.vpids.free(c.vpid)
	if cleared {
		c.host.FreePages(c.pages, vcpuPages)
	}
	b.releaseVM(c.vm, c.st)
	c.vapic, c.misc, c.guestFX, c.hostFX = nil, nil, nil, nil
}

// clearHere VMCLEARs the VMCS on the calling CPU, which must be c.cpu,
// and forgets it as that CPU's current one.
//
//go:nosplit
func (c *VCPU) clearHere() {
	f := hw.irqOff()
	hw.vmclear(c.vmcsPA)
	if n := c.cpu; n >= 0 && n < MaxCPUs && c.b.current[n] == c.vmcsPA {
		c.b.current[n] = 0
	}
	hw.irqRestore(f)
}

// CPU returns the host CPU the vCPU is bound to (-1 before its first
// Run).
func (c *VCPU) CPU() int { return c.cpu }

// VMCSAddr returns the VMCS's host-physical address.
func (c *VCPU) VMCSAddr() uint64 { return c.vmcsPA }

// VPID returns the vCPU's VPID (0 when the CPU has none).
func (c *VCPU) VPID() uint16 { return c.vpid }

// EPT returns the VM's extended page tables.
func (c *VCPU) EPT() *EPT { return c.st.ept }

// IOBitmaps returns the VM's I/O bitmaps, shared by its vCPUs, for policy
// changes (AllowPort passes a port to the real hardware).
func (c *VCPU) IOBitmaps() IOBitmaps { return c.st.io }

// MSRBitmap returns the VM's MSR bitmap, shared by its vCPUs.
func (c *VCPU) MSRBitmap() MSRBitmap { return c.st.msr }
