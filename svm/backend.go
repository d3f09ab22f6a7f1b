package svm

import (
	"errors"
	"sync"

	"juice/cpu"
	"juice/mm"
	"juice/vmm"
)

// Compile-time checks that the backend implements the core's interfaces.
var (
	_ vmm.Backend     = (*Backend)(nil)
	_ vmm.VCPUBackend = (*VCPU)(nil)
)

// enterGuest runs the guest until its next #VMEXIT. It is vmrun on the
// machine; tests replace it with a fake that writes an exit into the VMCB.
var enterGuest = vmrun

// ErrClosed is Run's error on a closed vCPU.
var ErrClosed = errors.New("svm: vCPU is closed")

// Intercepts every vCPU gets (see NewVCPU's documentation for the reasons).
const (
	defaultMisc1 = InterceptINTR | InterceptNMI | InterceptSMI | InterceptINIT |
		InterceptCPUID | InterceptHLT | InterceptINVD | InterceptINVLPGA |
		InterceptIOIOProt | InterceptMSRProt | InterceptShutdown
	defaultMisc2 = Intercept2VMRUN | Intercept2VMMCALL | Intercept2VMLOAD | Intercept2VMSAVE |
		Intercept2STGI | Intercept2CLGI | Intercept2SKINIT |
		Intercept2MONITOR | Intercept2MWAIT | Intercept2XSETBV
	// defaultExceptions: #DB (1) and #AC (17) against the endless
	// benign-exception loops (CVE-2015-8104, CVE-2015-5307), #MC (18)
	// because machine checks are juice's.
	defaultExceptions = 1<<1 | 1<<6 | 1<<17 | 1<<18 // #DB, #UD (the other vendor's hypercall instruction), #AC, #MC
	// pauseFilterCount is the number of PAUSEs before a PAUSE exit when
	// the CPU has the PAUSE filter.
	pauseFilterCount = 3000
)

// Initial x87/SSE state of a guest (FXSAVE layout): FCW after FINIT and
// MXCSR at reset, every exception masked.
const (
	fxFCW      = 0  // offset of FCW in an FXSAVE area
	fxMXCSR    = 24 // offset of MXCSR
	initFCW    = 0x037f
	initMXCSR  = 0x1f80
	fxAreaSize = 512
)

// Messages for ExitInvalid that the backend produces itself.
const (
	detailBadEvent  = "pending event cannot be injected (bad kind, or exception vector 2 or above 31)"
	detailVMEXIT    = "VMEXIT_INVALID: "
	msgASIDZero     = "guest ASID is 0"
	msgNoVMRUN      = "VMRUN intercept is clear"
	msgNoSVME       = "guest EFER.SVME is clear"
	msgBadInjection = "EVENTINJ holds an illegal event"
)

// Backend is juice's AMD-V backend: a vmm.Backend for CPUs with SVM and
// nested paging. Build it with New, call Enable once on every CPU that
// will run guests, then create vCPUs with NewVCPU.
type Backend struct {
	// Caps are the CPU's SVM capabilities (from Decode).
	Caps Caps
	// Page1G lets the nested page tables use 1 GiB pages; set it from
	// CPUID Fn8000_0001_EDX[26] (Page1GB) before NewVCPU.
	Page1G bool
	// RDMSR and WRMSR access MSRs for Enable: cpu.RDMSR and cpu.WRMSR
	// from New; tests replace them.
	RDMSR func(msr uint32) uint64
	WRMSR func(msr uint32, v uint64)
	// CPUMoves, set before NewVCPU, lets vCPUs run on any host CPU where
	// Enable ran: each entry checks with RDTSCP which CPU it is on and
	// flushes the vCPU's ASID when that changed. The kernel must keep
	// each CPU's number in IA32_TSC_AUX. Without it a vCPU must stay on
	// one CPU (the ASID's first-run flush covers only that one).
	CPUMoves bool

	host *vmm.Host

	mu    sync.Mutex // guards asids and vms
	asids *ASIDs
	vms   map[*vmm.VM]*vmState
	// shared is the ASID that vCPUs share once asids has none left (0:
	// none: the CPU has fewer than three). Every vCPU that uses it
	// flushes it on each VMRUN, so no guest sees another's
	// translations; QEMU's AMD-V offers only 16 ASIDs.
	shared uint32
}

// vmState is what a VM's vCPUs share: the nested page tables and the
// permission maps.
type vmState struct {
	host    *vmm.Host
	npt     *NPT
	maps    uint64 // host-physical address of the IOPM (3 pages) + MSRPM (2 pages)
	iopm    IOPM
	msrpm   MSRPM
	refs    int
	mapsLen uint64 // pages at maps
}

// New returns an AMD-V backend for a CPU with capabilities caps whose
// hardware structures come from host. It fails, naming what is missing,
// when the CPU has no SVM, when firmware disabled it (VM_CR.SVMDIS), when
// there is no nested paging, or when the CPU has fewer than two ASIDs.
func New(caps Caps, host *vmm.Host) (*Backend, error) {
	switch {
	case !caps.Present:
		return nil, errors.New("svm: the CPU has no AMD-V (CPUID Fn8000_0001_ECX[SVM] is clear)")
	case caps.DisabledByFirmware:
		return nil, errors.New("svm: AMD-V is disabled by firmware (VM_CR.SVMDIS is set); enable SVM in the firmware setup")
	case !caps.NPT:
		return nil, errors.New("svm: the CPU has no nested paging (CPUID Fn8000_000A_EDX[NP] is clear)")
	case caps.NASID < 2:
		return nil, errors.New("svm: the CPU reports fewer than two ASIDs")
	case host == nil || host.Mem == nil || host.Frames == nil:
		return nil, errors.New("svm: no host memory for VMCBs and nested page tables")
	}
	b := &Backend{
		Caps:  caps,
		RDMSR: cpu.RDMSR,
		WRMSR: cpu.WRMSR,
		host:  host,
		asids: NewASIDs(caps.NASID),
		vms:   make(map[*vmm.VM]*vmState),
	}
	if n := min(caps.NASID, maxASIDs); n >= 3 {
		// The last ASID is the shared one; the others are dedicated.
		b.asids, b.shared = NewASIDs(n-1), n-1
	}
	return b, nil
}

// Name returns "svm".
func (b *Backend) Name() string { return "svm" }

// Enable turns SVM on for the calling CPU: it gives the CPU a host save
// area (VM_HSAVE_PA, one host page, kept for the CPU's lifetime) and sets
// EFER.SVME. The kernel calls it once on every CPU that will run guests,
// before that CPU's first Run, with interrupts in any state.
func (b *Backend) Enable() error {
	if b.RDMSR == nil || b.WRMSR == nil {
		return errors.New("svm: Enable needs RDMSR and WRMSR")
	}
	if b.RDMSR(MSRVMCR)&VMCRSVMDis != 0 {
		return errors.New("svm: AMD-V is disabled by firmware on this CPU (VM_CR.SVMDIS)")
	}
	_, pa, ok := b.host.AllocPages(1)
	if !ok {
		return errors.New("svm: no memory for the host save area")
	}
	b.WRMSR(MSREFER, b.RDMSR(MSREFER)|EFERSVME)
	b.WRMSR(MSRVMHsavePA, pa)
	return nil
}

// vmStateFor returns vm's shared state, creating it on the VM's first
// vCPU. b.mu is held.
func (b *Backend) vmStateFor(vm *vmm.VM) (*vmState, error) {
	if st := b.vms[vm]; st != nil {
		st.refs++
		return st, nil
	}
	host := vm.HostOr(b.host)
	npt, err := NewNPT(host, vm.Mem, b.Page1G)
	if err != nil {
		return nil, err
	}
	const pages = (IOPMSize + MSRPMSize) / mm.PageSize
	mem, pa, ok := host.AllocPages(pages)
	if !ok {
		npt.Free()
		return nil, errors.New("svm: no memory for the I/O and MSR permission maps")
	}
	iopm, _ := NewIOPM(mem[:IOPMSize])
	msrpm, _ := NewMSRPM(mem[IOPMSize:])
	iopm.InterceptAll()
	msrpm.InterceptAll()
	st := &vmState{host: host, npt: npt, maps: pa, mapsLen: pages, iopm: iopm, msrpm: msrpm, refs: 1}
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
	st.npt.Free()
	st.host.FreePages(st.maps, st.mapsLen)
}

// VCPU is the backend state of one vCPU: its VMCB, the host state vmrun
// saves around the guest, the x87/SSE areas and its ASID. It implements
// vmm.VCPUBackend. Run, GetSRegs, CanInjectInterrupt and
// RequestInterruptWindow allocate nothing.
type VCPU struct {
	b    *Backend
	vm   *vmm.VM
	st   *vmState
	host *vmm.Host

	vmcb       VMCB
	pages      uint64 // host-physical address of the three pages below
	vmcbPA     uint64 // page 0: the VMCB
	hostSavePA uint64 // page 1: the host's VMSAVE area
	guestFX    *[fxAreaSize]byte
	hostFX     *[fxAreaSize]byte // page 2: guest FX at 0, host FX at 512

	asid     uint32
	shared   bool  // asid is the Backend's shared ASID: flush it on every entry
	flushCtl uint8 // TLB_CONTROL value that flushes this ASID
	tlbCtl   uint8 // TLB_CONTROL for the next run
	nripSave bool
	window   bool // an interrupt window is requested
	closed   bool

	mig *cpuCheck // nil unless Backend.CPUMoves
	// Moves counts the entries on another host CPU than the previous
	// entry's (with Backend.CPUMoves).
	Moves uint64
}

// vcpuPages is the number of host pages a VCPU owns.
const vcpuPages = 3

// NewVCPU creates vCPU v of vm: a zeroed VMCB with nested paging over
// vm.Mem (the NPT and permission maps are shared by the VM's vCPUs), its
// own ASID, and the guest state of v.SRegs and v.Regs, which must pass
// CheckState (real mode, protected mode and long mode all do).
//
// Intercepts, and why:
//   - INTR, NMI, SMI, INIT: host events always leave the guest (the host
//     takes them after STGI); V_INTR_MASKING=1 keeps the guest's IF from
//     masking them.
//   - CPUID, HLT, IOIO (every port), MSR (every MSR), VMMCALL, SHUTDOWN:
//     emulated by the core.
//   - VMRUN (required by VMRUN), VMLOAD, VMSAVE, STGI, CLGI, SKINIT,
//     INVLPGA: the guest's EFER.SVME must be 1, so without intercepts it
//     could run SVM instructions on the host's behalf.
//   - XSETBV: XCR0 is not switched by VMRUN; a guest write would change
//     the host's. INVD: it would drop the host's dirty cache lines.
//   - MONITOR, MWAIT: the core does not offer them (they exit as
//     ExitUnhandled).
//   - #MC: machine checks are the host's (they exit as ExitException
//     vector 18, which must not be reflected into the guest). #DB and #AC:
//     a guest can make their delivery loop forever without an exit
//     (CVE-2015-8104, CVE-2015-5307); intercepting them keeps the host in
//     control, and the core reflects them (ExitException).
//   - PAUSE, only with the PAUSE filter (after 3000 PAUSEs).
//
// Not intercepted: CR and DR accesses (nested paging makes them the
// guest's own; DR0-3 are not switched and keep the last guest's values,
// which juice itself never uses), RDTSC/RDTSCP (TSC offset 0), RDPMC
// (juice programs no counters), WBINVD (harmless but slow), ICEBP (its #DB
// is intercepted anyway), INVLPG, INVPCID, task switches.
//
// The VMCB clean bits are always written 0, so VMRUN reloads every field:
// correct on all CPUs, at a small cost per entry.
func (b *Backend) NewVCPU(vm *vmm.VM, v *vmm.VCPU) (vmm.VCPUBackend, error) {
	if vm == nil || v == nil || vm.Mem == nil {
		return nil, errors.New("svm: NewVCPU needs a VM with memory and a vCPU")
	}
	if err := CheckState(&v.SRegs); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := b.vmStateFor(vm)
	if err != nil {
		return nil, err
	}
	asid, _, ok := b.asids.Alloc()
	shared := false
	if !ok {
		if b.shared == 0 {
			b.releaseVM(vm, st)
			return nil, errors.New("svm: out of ASIDs")
		}
		asid, shared = b.shared, true
	}
	mem, pa, ok := st.host.AllocPages(vcpuPages)
	if !ok {
		if !shared {
			b.asids.Free(asid)
		}
		b.releaseVM(vm, st)
		return nil, errors.New("svm: no memory for the VMCB")
	}
	c := &VCPU{
		b: b, vm: vm, st: st, host: st.host,
		pages: pa, vmcbPA: pa, hostSavePA: pa + mm.PageSize,
		guestFX:  (*[fxAreaSize]byte)(mem[2*mm.PageSize : 2*mm.PageSize+fxAreaSize]),
		hostFX:   (*[fxAreaSize]byte)(mem[2*mm.PageSize+fxAreaSize : 2*mm.PageSize+2*fxAreaSize]),
		asid:     asid,
		shared:   shared,
		flushCtl: FlushControl(b.Caps),
		nripSave: b.Caps.NRIPSave,
	}
	c.vmcb, _ = NewVMCB(mem[:VMCBSize])
	if b.CPUMoves {
		c.mig = &cpuCheck{last: ^uint32(0), flush: c.flushCtl, tlbCtl: &c.vmcb.p[OffTLBControl]}
	}
	c.setup(v)
	return c, nil
}

// setup writes the VMCB's controls and v's initial state.
func (c *VCPU) setup(v *vmm.VCPU) {
	m := c.vmcb
	m.Clear()
	misc1 := uint32(defaultMisc1)
	switch {
	case c.b.Caps.PauseFilter:
		misc1 |= InterceptPAUSE
		m.SetPauseFilterCount(pauseFilterCount)
	case len(c.vm.VCPUs()) > 1:
		// Without the filter every PAUSE exits; a guest with several
		// vCPUs spins with PAUSE while it waits for another vCPU (a
		// lock, a function-call IPI), and the exit lets that one run.
		misc1 |= InterceptPAUSE
	}
	m.SetInterceptMisc1(misc1)
	m.SetInterceptMisc2(defaultMisc2)
	m.SetInterceptExceptions(defaultExceptions)
	m.SetIOPMBase(c.st.maps)
	m.SetMSRPMBase(c.st.maps + IOPMSize)
	m.SetASID(c.asid)
	m.SetVIntr(VIntrMasking)
	m.SetNPControl(npEnable)
	m.SetNCR3(c.st.npt.Root())
	m.SetGPAT(DefaultGPAT)
	m.SetDR6(DefaultDR6)
	m.SetDR7(DefaultDR7)
	// The ASID may carry an earlier owner's translations, on this CPU or
	// another: flush it on the first run.
	c.tlbCtl = c.flushCtl

	binaryPut16(c.guestFX[fxFCW:], initFCW)
	binaryPut32(c.guestFX[fxMXCSR:], initMXCSR)

	c.loadSRegs(&v.SRegs, v.Regs.RFLAGS)
	v.SRegsDirty = false
	if v.MSRDirty { // else the reset values above stand
		c.loadMSRs(&v.MSR)
		v.MSRDirty = false
	}
	m.SetRAX(v.Regs.RAX)
	m.SetRSP(v.Regs.RSP)
	m.SetRIP(v.Regs.RIP)
	m.SetRFLAGS(v.Regs.RFLAGS | 2)
}

// binaryPut16 and binaryPut32 store little-endian words.
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

// loadSRegs copies s into the VMCB: segments, descriptor tables, control
// registers, EFER (with SVME forced on), CR8 as V_TPR, and the CPL.
func (c *VCPU) loadSRegs(s *vmm.SRegs, rflags uint64) {
	m := c.vmcb
	m.SetSeg(SegES, s.ES)
	m.SetSeg(SegCS, s.CS)
	m.SetSeg(SegSS, s.SS)
	m.SetSeg(SegDS, s.DS)
	m.SetSeg(SegFS, s.FS)
	m.SetSeg(SegGS, s.GS)
	m.SetSeg(SegLDTR, s.LDTR)
	m.SetSeg(SegTR, s.TR)
	m.SetTable(SegGDTR, s.GDTR)
	m.SetTable(SegIDTR, s.IDTR)
	m.SetCR0(s.CR0)
	m.SetCR2(s.CR2)
	m.SetCR3(s.CR3)
	m.SetCR4(s.CR4)
	m.SetEFER(s.EFER | EFERSVME)
	m.SetVIntr(m.VIntr()&^VIntrTPRMask | s.CR8&0xf)
	m.SetCPL(guestCPL(s.CR0, rflags, s.SS))
}

// loadMSRs copies the core's MSR state into the VMCB: the SYSCALL and
// SYSENTER MSRs and KernelGSBase (which VMLOAD puts in the CPU), the
// guest PAT (G_PAT, used with nested paging) and the TSC offset.
func (c *VCPU) loadMSRs(s *vmm.MSRState) {
	m := c.vmcb
	m.SetSTAR(s.STAR)
	m.SetLSTAR(s.LSTAR)
	m.SetCSTAR(s.CSTAR)
	m.SetSFMASK(s.SFMASK)
	m.SetKernelGSBase(s.KernelGSBase)
	m.SetSysenterCS(s.SysenterCS)
	m.SetSysenterESP(s.SysenterESP)
	m.SetSysenterEIP(s.SysenterEIP)
	m.SetGPAT(s.PAT)
	m.SetTSCOffset(s.TSCOffset)
}

// Run enters the guest and returns at its next exit, with v.Regs and
// v.Exit filled. v.SRegs is loaded first when v.SRegsDirty (after
// CheckState: an illegal state gives ExitInvalid without entering), v.MSR
// when v.MSRDirty, and v.Pending is injected when v.HasPending (an
// exception's error code is dropped in real mode, where none is pushed;
// an external interrupt the guest can take now is posted through V_IRQ
// rather than EVENTINJ: see postVIRQ).
// After the exit:
//
//   - v.SRegsValid is cleared (the guest may have changed its state; call
//     GetSRegs);
//   - v.MSR.KernelGSBase is refreshed from the VMCB: SWAPGS changes it
//     without an MSR exit (the other MSRState fields change only through
//     intercepted WRMSRs);
//   - an event whose delivery the exit interrupted (EXITINTINFO) is put
//     back into v.Pending, so it is not lost; INTn and the INT3/INTO
//     exceptions are not, since the guest's RIP still points at the
//     instruction and re-executing it delivers them again;
//   - when VMRUN itself failed, the event it was to inject stays pending;
//   - after an ExitIntrWindow the window request stays armed until
//     RequestInterruptWindow(false), as the core expects.
//
// Run returns an error only for a closed vCPU.
func (c *VCPU) Run(v *vmm.VCPU) error {
	if c.closed {
		return ErrClosed
	}
	m := c.vmcb
	if v.SRegsDirty {
		if msg := checkState(&v.SRegs); msg != "" {
			v.Exit = vmm.Exit{}
			setDetail2(&v.Exit, msgPrefixInvl, msg)
			return nil
		}
		c.loadSRegs(&v.SRegs, v.Regs.RFLAGS)
		v.SRegsDirty = false
	}
	if v.MSRDirty {
		c.loadMSRs(&v.MSR)
		v.MSRDirty = false
	}
	m.SetRAX(v.Regs.RAX)
	m.SetRSP(v.Regs.RSP)
	m.SetRIP(v.Regs.RIP)
	m.SetRFLAGS(v.Regs.RFLAGS | 2)

	var inj uint64
	var virq vmm.Event // an external interrupt posted through V_IRQ (Vector valid when virqOn)
	virqOn := false
	if v.HasPending {
		e := v.Pending
		if m.CR0()&CR0PE == 0 {
			e.HasErr = false
		}
		if e.Kind == vmm.EventExtInt && v.Regs.RFLAGS&RFLAGSIF != 0 && m.InterruptShadow()&interruptShadow == 0 {
			c.postVIRQ(e.Vector)
			virq, virqOn = e, true
		} else {
			code, ok := EncodeEvent(e)
			if !ok {
				v.Exit = vmm.Exit{}
				setDetail2(&v.Exit, detailBadEvent, "")
				return nil
			}
			inj = code
			// With NRIP save, an injected INTn or INT3/INTO pushes nRIP as
			// the return address: the core has already moved RIP past it.
			m.SetNRIP(v.Regs.RIP)
		}
		v.HasPending = false
	}
	m.SetEventInj(inj)
	if c.shared {
		c.tlbCtl = c.flushCtl
	}
	m.SetTLBControl(c.tlbCtl)
	m.SetCleanBits(0)

	first := c.mig != nil && c.mig.last == ^uint32(0)
	enterGuest(c.vmcbPA, c.hostSavePA, &v.Regs, c.guestFX, c.hostFX, c.mig)

	if c.mig != nil && c.mig.moved != 0 {
		c.mig.moved = 0
		if !first {
			c.Moves++
		}
	}
	c.tlbCtl = TLBControlNone
	m.SetTLBControl(TLBControlNone)
	m.SetEventInj(0)
	virqLeft := false // the interrupt posted through V_IRQ was not taken
	if virqOn {
		virqLeft = m.VIntr()&VIntrIRQ != 0
		m.SetVIntr(m.VIntr() &^ VIntrVectorMask)
		c.RequestInterruptWindow(c.window) // back to the core's window request
	}
	v.Regs.RAX = m.RAX()
	v.Regs.RSP = m.RSP()
	v.Regs.RIP = m.RIP()
	v.Regs.RFLAGS = m.RFLAGS()
	v.SRegsValid = false
	v.MSR.KernelGSBase = m.KernelGSBase()

	raw := RawExit{
		Code: m.ExitCode(), Info1: m.ExitInfo1(), Info2: m.ExitInfo2(),
		IntInfo: m.ExitIntInfo(), NRIP: m.NRIP(), RIP: v.Regs.RIP, NRIPSave: c.nripSave,
	}
	TranslateExit(&raw, &v.Exit)

	switch v.Exit.Reason {
	case vmm.ExitInvalid:
		if inj != 0 {
			v.Pending, _ = DecodeEvent(inj)
			v.HasPending = true
		}
		if virqLeft {
			v.Pending, v.HasPending = virq, true
		}
		if msg := c.diagnoseInvalid(inj); msg != "" {
			setDetail2(&v.Exit, detailVMEXIT, msg)
		}
		return nil
	case vmm.ExitIntrWindow:
		if c.window { // re-arm, whatever the CPU did with V_IRQ
			c.RequestInterruptWindow(true)
		}
	}
	if e, ok := DecodeEvent(raw.IntInfo); ok && requeue(e) {
		v.Pending, v.HasPending = e, true
	}
	if virqLeft {
		// The exit came before the guest took it (a host interrupt
		// first): inject it at the next entry. If another event's
		// delivery was interrupted, that one goes first and the
		// interrupt waits in the core's pending set (it is in service
		// in the local APIC already, so it must not be lost).
		if !v.HasPending {
			v.Pending, v.HasPending = virq, true
		} else if v.VM != nil {
			v.VM.Interrupt(v.ID, virq.Vector)
		}
	}
	return nil
}

// postVIRQ posts external interrupt vector as a virtual interrupt (V_IRQ
// with V_INTR_VECTOR, ignoring V_TPR, at the highest priority) without
// the VINTR intercept, so that the guest takes it at its first
// instruction boundary; Run calls it instead of injecting through
// EVENTINJ when the guest can take an interrupt now (RFLAGS.IF set, no
// interrupt shadow), which is what the core asks for. The effect is
// that of an injected interrupt. The reason is QEMU's TCG (7.2 and
// later): its VMRUN delivers an EVENTINJ interrupt at once but leaves
// the vector behind as the CPU's pending exception number, and the next
// exit request to the TCG loop (its round-robin kick, which juice on
// several CPUs gets every 100 ms) delivers that vector a second time,
// as if it were an exception, whatever the guest's RFLAGS.IF. A Linux
// guest interrupted in user mode then takes the second one at the first
// instruction of its entry code, still on the entry stack with the user's
// GS base, and double-faults on a page-fault loop ("ENTRY_TRAMPOLINE
// stack guard page was hit"). A virtual interrupt is delivered by QEMU's
// interrupt path, which leaves no such trace. After the exit Run
// restores the window request the core made (RequestInterruptWindow) and
// re-queues the interrupt if V_IRQ is still set (not taken).
func (c *VCPU) postVIRQ(vector uint8) {
	m := c.vmcb
	const bits = VIntrIRQ | VIntrIgnTPR | VIntrPrioMask | VIntrVectorMask
	m.SetVIntr(m.VIntr()&^bits | VIntrIRQ | VIntrIgnTPR | VIntrPrioMask | uint64(vector)<<VIntrVectorShift)
	m.SetInterceptMisc1(m.InterceptMisc1() &^ InterceptVINTR)
}

// requeue reports whether an interrupted event must be injected again:
// interrupts, NMIs and exceptions, but not INTn (type 4) or INT3/INTO
// (exceptions 3 and 4), which the guest re-executes.
func requeue(e vmm.Event) bool {
	switch e.Kind {
	case vmm.EventExtInt, vmm.EventNMI:
		return true
	case vmm.EventException:
		return e.Vector != 3 && e.Vector != 4
	}
	return false
}

// diagnoseInvalid names what VMRUN most likely refused, or "".
func (c *VCPU) diagnoseInvalid(inj uint64) string {
	m := c.vmcb
	switch {
	case m.ASID() == 0:
		return msgASIDZero
	case m.InterceptMisc2()&Intercept2VMRUN == 0:
		return msgNoVMRUN
	case m.EFER()&EFERSVME == 0:
		return msgNoSVME
	}
	var s vmm.SRegs
	c.GetSRegs(&s)
	s.EFER = m.EFER()
	if msg := checkState(&s); msg != "" {
		return msg
	}
	if inj != 0 {
		if _, ok := DecodeEvent(inj); !ok {
			return msgBadInjection
		}
	}
	return ""
}

// setDetail2 makes out an ExitInvalid whose Detail is a then b (cut to
// fit), keeping Raw, Info1 and Info2.
func setDetail2(out *vmm.Exit, a, b string) {
	*out = vmm.Exit{Reason: vmm.ExitInvalid, Raw: out.Raw, Info1: out.Info1, Info2: out.Info2}
	n := copy(out.Detail[:], a)
	n += copy(out.Detail[n:], b)
	out.DetailLen = uint8(n)
}

// GetSRegs copies the guest's system state from the VMCB into s. EFER is
// the guest's view (without the SVME bit juice sets); CR8 comes from V_TPR.
func (c *VCPU) GetSRegs(s *vmm.SRegs) {
	m := c.vmcb
	s.ES = m.Seg(SegES)
	s.CS = m.Seg(SegCS)
	s.SS = m.Seg(SegSS)
	s.DS = m.Seg(SegDS)
	s.FS = m.Seg(SegFS)
	s.GS = m.Seg(SegGS)
	s.LDTR = m.Seg(SegLDTR)
	s.TR = m.Seg(SegTR)
	s.GDTR = m.Table(SegGDTR)
	s.IDTR = m.Table(SegIDTR)
	s.CR0 = m.CR0()
	s.CR2 = m.CR2()
	s.CR3 = m.CR3()
	s.CR4 = m.CR4()
	s.CR8 = m.VIntr() & 0xf
	s.EFER = m.EFER() &^ EFERSVME
}

// CanInjectInterrupt reports whether the guest would take an external
// interrupt now: RFLAGS.IF set, no interrupt shadow (after STI or MOV SS),
// and no event already pending.
func (c *VCPU) CanInjectInterrupt(v *vmm.VCPU) bool {
	return v.Regs.RFLAGS&RFLAGSIF != 0 && c.vmcb.InterruptShadow()&interruptShadow == 0 && !v.HasPending
}

// RequestInterruptWindow asks for an ExitIntrWindow as soon as the guest
// can take an interrupt (on), or cancels the request (off). It posts a
// virtual interrupt (V_IRQ, ignoring V_TPR) with the VINTR intercept set:
// the CPU exits instead of delivering it once the guest's IF is set and no
// shadow is active. The request stays armed across window exits (every
// later window gives another exit) until it is cancelled.
func (c *VCPU) RequestInterruptWindow(on bool) {
	m := c.vmcb
	const bits = VIntrIRQ | VIntrIgnTPR | VIntrPrioMask
	if on {
		m.SetVIntr(m.VIntr() | bits)
		m.SetInterceptMisc1(m.InterceptMisc1() | InterceptVINTR)
	} else {
		m.SetVIntr(m.VIntr() &^ bits)
		m.SetInterceptMisc1(m.InterceptMisc1() &^ InterceptVINTR)
	}
	c.window = on
}

// Close frees the VMCB and the vCPU's other pages and its ASID, and the
// VM's nested page tables and permission maps with its last vCPU. Further
// calls do nothing; Run then returns ErrClosed.
func (c *VCPU) Close() {
	if c.closed {
		return
	}
	c.closed = true
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if !c.shared {
		b.asids.Free(c.asid)
	}
	c.host.FreePages(c.pages, vcpuPages)
	b.releaseVM(c.vm, c.st)
	c.vmcb = VMCB{}
	c.guestFX, c.hostFX = nil, nil
}

// VMCB returns the vCPU's VMCB (for diagnostics and tests).
func (c *VCPU) VMCB() VMCB { return c.vmcb }

// VMCBAddr returns the VMCB's host-physical address.
func (c *VCPU) VMCBAddr() uint64 { return c.vmcbPA }

// ASID returns the vCPU's ASID.
func (c *VCPU) ASID() uint32 { return c.asid }

// IOPM returns the VM's I/O permission map, shared by its vCPUs, for
// policy changes (AllowPort passes a port to the real hardware).
func (c *VCPU) IOPM() IOPM { return c.st.iopm }

// MSRPM returns the VM's MSR permission map, shared by its vCPUs.
func (c *VCPU) MSRPM() MSRPM { return c.st.msrpm }

// NPT returns the VM's nested page tables.
func (c *VCPU) NPT() *NPT { return c.st.npt }

// FlushTLB makes the next Run flush the vCPU's ASID from the TLB. Call it
// when the vCPU moves to another physical CPU (whose TLB may hold an
// earlier owner's entries for this ASID) or after changing the NPT.
func (c *VCPU) FlushTLB() { c.tlbCtl = c.flushCtl }

// InstrBytes returns the guest instruction bytes the CPU fetched at the
// last exit (decode assists: NPF and some intercepts), aliasing the VMCB;
// empty without decode assists.
func (c *VCPU) InstrBytes() []byte {
	if !c.b.Caps.DecodeAssists {
		return nil
	}
	return c.vmcb.InsnBytes()
}
