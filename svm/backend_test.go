package svm

import (
	"strings"
	"testing"

	"juice/mm"
	"juice/vmm"
)

// fakeCPU stands in for vmrun: it finds the VMCB in simulated host memory
// by its physical address, records what the "hardware" was handed, and
// lets the test write an exit.
type fakeCPU struct {
	host  *vmm.Host
	calls int
	cpu   uint32 // the host CPU RDTSCP would report
	// Seen at entry.
	vmcbPA, hostSavePA uint64
	eventInj           uint64
	tlbCtl             uint8
	clean              uint32
	rip, rsp, rax      uint64
	rflags             uint64
	gfx, hfx           *[512]byte
	// exit writes the exit into the VMCB (and may change regs).
	exit func(m VMCB, regs *vmm.Regs)
}

var theFake *fakeCPU

func fakeVMRUN(vmcb, hostSave uint64, regs *vmm.Regs, gfx, hfx *[512]byte, mig *cpuCheck) {
	f := theFake
	b, ok := f.host.Mem.Bytes(vmcb, VMCBSize)
	if !ok {
		panic("fake VMRUN: VMCB outside host memory")
	}
	m, _ := NewVMCB(b)
	if mig != nil && mig.last != f.cpu {
		// What vmrun does after CLGI with RDTSCP's CPU number.
		mig.last = f.cpu
		*mig.tlbCtl = mig.flush
		mig.moved = 1
	}
	f.calls++
	f.vmcbPA, f.hostSavePA, f.gfx, f.hfx = vmcb, hostSave, gfx, hfx
	f.eventInj, f.tlbCtl, f.clean = m.EventInj(), m.TLBControl(), m.CleanBits()
	f.rip, f.rsp, f.rax, f.rflags = m.RIP(), m.RSP(), m.RAX(), m.RFLAGS()
	m.SetExitIntInfo(0)
	if f.exit != nil {
		f.exit(m, regs)
	}
}

// env is a backend over simulated host memory with one VM and vCPU.
type env struct {
	host *vmm.Host
	b    *Backend
	vm   *vmm.VM
	v    *vmm.VCPU
	c    *VCPU
	f    *fakeCPU
	free uint64 // free frames before the VM's RAM was allocated
}

// qemuCaps are the capabilities QEMU 7.2 TCG reports: NPT, no NRIP save,
// no flush-by-ASID.
var qemuCaps = Caps{Present: true, NPT: true, NASID: 16, Revision: 1}

func newEnv(t testing.TB, caps Caps, s vmm.SRegs) *env {
	t.Helper()
	host := testHost(t, 64*mib)
	e := &env{host: host, free: host.Frames.FreeCount()}
	ram, hpa, ok := host.AllocPages(4 * mib / mm.PageSize)
	if !ok {
		t.Fatal("no guest RAM")
	}
	b, err := New(caps, host)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	e.vm = &vmm.VM{Name: "t", Mem: vmm.NewGuestMemory(ram, hpa), Host: host}
	e.v = &vmm.VCPU{VM: e.vm, SRegs: s, SRegsValid: true, SRegsDirty: true}
	e.v.Regs.RIP, e.v.Regs.RFLAGS = 0xfff0, 2
	be, err := b.NewVCPU(e.vm, e.v)
	if err != nil {
		t.Fatal(err)
	}
	e.c = be.(*VCPU)
	e.f = &fakeCPU{host: host}
	theFake = e.f
	enterGuest = fakeVMRUN
	t.Cleanup(func() { enterGuest = vmrun; theFake = nil })
	return e
}

// exitWith returns an exit writer for code/info1/info2 that sets RIP to rip.
func exitWith(code, info1, info2 uint64) func(VMCB, *vmm.Regs) {
	return func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(code)
		m.SetExitInfo1(info1)
		m.SetExitInfo2(info2)
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	host := testHost(t, 4*mib)
	for _, c := range []struct {
		caps Caps
		want string
	}{
		{Caps{}, "no AMD-V"},
		{Caps{Present: true, DisabledByFirmware: true, NPT: true, NASID: 16}, "disabled by firmware"},
		{Caps{Present: true, NASID: 16}, "nested paging"},
		{Caps{Present: true, NPT: true, NASID: 1}, "ASIDs"},
	} {
		if _, err := New(c.caps, host); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", c.caps, err, c.want)
		}
	}
	if _, err := New(qemuCaps, nil); err == nil {
		t.Error("New without a host succeeded")
	}
	b, err := New(qemuCaps, host)
	if err != nil || b.Name() != "svm" {
		t.Fatalf("New: %v", err)
	}
}

func TestEnable(t *testing.T) {
	host := testHost(t, 4*mib)
	b, _ := New(qemuCaps, host)
	msrs := map[uint32]uint64{MSREFER: 0xd01} // SCE, LME, LMA, NXE
	b.RDMSR = func(m uint32) uint64 { return msrs[m] }
	b.WRMSR = func(m uint32, v uint64) { msrs[m] = v }
	free := host.Frames.FreeCount()
	if err := b.Enable(); err != nil {
		t.Fatal(err)
	}
	if msrs[MSREFER] != 0xd01|EFERSVME {
		t.Errorf("EFER = %#x", msrs[MSREFER])
	}
	hs := msrs[MSRVMHsavePA]
	if hs == 0 || hs&0xfff != 0 || !host.Frames.IsAllocated(hs) || host.Frames.FreeCount() != free-1 {
		t.Errorf("VM_HSAVE_PA = %#x is not a fresh host page", hs)
	}
	// A second CPU gets its own page.
	if err := b.Enable(); err != nil || msrs[MSRVMHsavePA] == hs {
		t.Errorf("second Enable: %v, same page %v", err, msrs[MSRVMHsavePA] == hs)
	}
	msrs[MSRVMCR] = VMCRSVMDis
	if err := b.Enable(); err == nil || !strings.Contains(err.Error(), "SVMDIS") {
		t.Errorf("Enable with SVMDIS: %v", err)
	}
}

func TestNewVCPUSetsUpTheVMCB(t *testing.T) {
	s := long64()
	s.CR8 = 5
	e := newEnv(t, Caps{Present: true, NPT: true, NASID: 16, PauseFilter: true, FlushByASID: true}, s)
	m := e.c.VMCB()
	misc1, misc2 := m.InterceptMisc1(), m.InterceptMisc2()
	for _, c := range []struct {
		name string
		on   bool
	}{
		{"INTR", misc1&InterceptINTR != 0}, {"NMI", misc1&InterceptNMI != 0}, {"SMI", misc1&InterceptSMI != 0},
		{"INIT", misc1&InterceptINIT != 0}, {"CPUID", misc1&InterceptCPUID != 0}, {"HLT", misc1&InterceptHLT != 0},
		{"INVD", misc1&InterceptINVD != 0}, {"INVLPGA", misc1&InterceptINVLPGA != 0}, {"IOIO_PROT", misc1&InterceptIOIOProt != 0},
		{"MSR_PROT", misc1&InterceptMSRProt != 0}, {"SHUTDOWN", misc1&InterceptShutdown != 0}, {"PAUSE (filter)", misc1&InterceptPAUSE != 0},
		{"no VINTR yet", misc1&InterceptVINTR == 0},
		{"VMRUN", misc2&Intercept2VMRUN != 0}, {"VMMCALL", misc2&Intercept2VMMCALL != 0}, {"VMLOAD", misc2&Intercept2VMLOAD != 0},
		{"VMSAVE", misc2&Intercept2VMSAVE != 0}, {"STGI", misc2&Intercept2STGI != 0}, {"CLGI", misc2&Intercept2CLGI != 0},
		{"SKINIT", misc2&Intercept2SKINIT != 0}, {"MONITOR", misc2&Intercept2MONITOR != 0}, {"MWAIT", misc2&Intercept2MWAIT != 0},
		{"XSETBV", misc2&Intercept2XSETBV != 0},
		{"#MC", m.InterceptExceptions()&(1<<18) != 0}, {"#DB", m.InterceptExceptions()&(1<<1) != 0}, {"#AC", m.InterceptExceptions()&(1<<17) != 0},
		{"no CR intercepts", m.InterceptCRRead() == 0 && m.InterceptCRWrite() == 0},
		{"pause filter count", m.PauseFilterCount() == 3000},
		{"ASID", m.ASID() != 0 && m.ASID() == e.c.ASID()},
		{"NP_ENABLE", m.NPControl() == 1},
		{"N_CR3", m.NCR3() == e.c.NPT().Root()},
		{"V_INTR_MASKING and V_TPR", m.VIntr() == VIntrMasking|5},
		{"G_PAT", m.GPAT() == 0x0007040600070406},
		{"DR6/DR7", m.DR6() == 0xffff0ff0 && m.DR7() == 0x400},
		{"EFER with SVME", m.EFER() == s.EFER|EFERSVME},
		{"CR0/CR3/CR4", m.CR0() == s.CR0 && m.CR3() == s.CR3 && m.CR4() == s.CR4},
		{"CS", m.Seg(SegCS) == s.CS}, {"SS", m.Seg(SegSS) == s.SS}, {"TR", m.Seg(SegTR) == s.TR},
		{"GDTR", m.Table(SegGDTR) == s.GDTR},
		{"CPL 0", m.CPL() == 0},
		{"RIP", m.RIP() == 0xfff0},
		{"SRegsDirty cleared", !e.v.SRegsDirty},
	} {
		if !c.on {
			t.Errorf("VMCB: %s wrong", c.name)
		}
	}
	// The permission maps intercept everything.
	for _, r := range []struct {
		pa, n uint64
	}{{m.IOPMBase(), IOPMSize}, {m.MSRPMBase(), MSRPMSize}} {
		if r.pa&0xfff != 0 {
			t.Errorf("map at %#x is not page-aligned", r.pa)
		}
		b, ok := e.host.Mem.Bytes(r.pa, r.n)
		if !ok {
			t.Fatalf("map at %#x outside host memory", r.pa)
		}
		for i, x := range b {
			if x != 0xff {
				t.Fatalf("map at %#x: byte %#x is %#x", r.pa, i, x)
			}
		}
	}
	if e.c.IOPM().p != nil && !e.c.IOPM().Intercepted(0x3f8, 1) {
		t.Error("IOPM accessor")
	}
	// The NPT maps the VM's RAM.
	for _, gpa := range []uint64{0, 0x1234, 4*mib - 1} {
		if hpa, _, ok := walk(t, e.host.Mem, m.NCR3(), gpa); !ok || hpa != e.vm.Mem.HPA()+gpa {
			t.Errorf("NPT: gpa %#x → %#x, %v", gpa, hpa, ok)
		}
	}
	if _, _, ok := walk(t, e.host.Mem, m.NCR3(), 4*mib); ok {
		t.Error("NPT maps past RAM")
	}
	// The guest's FX area holds the reset FCW and MXCSR; the areas are
	// distinct and 16-byte aligned in host-physical terms (page offsets 0
	// and 512 of the vCPU's third page).
	if e.c.guestFX[0] != 0x7f || e.c.guestFX[1] != 0x03 || e.c.guestFX[24] != 0x80 || e.c.guestFX[25] != 0x1f {
		t.Errorf("guest FX area: FCW %x MXCSR %x", e.c.guestFX[0:2], e.c.guestFX[24:28])
	}
	page, _ := e.host.Mem.Bytes(e.c.pages+2*mm.PageSize, mm.PageSize)
	if &e.c.guestFX[0] != &page[0] || &e.c.hostFX[0] != &page[512] {
		t.Error("FX areas are not at offsets 0 and 512 of the vCPU's FX page")
	}
}

func TestNewVCPURejectsIllegalState(t *testing.T) {
	host := testHost(t, 16*mib)
	b, _ := New(qemuCaps, host)
	ram, hpa, _ := host.AllocPages(16)
	vm := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa), Host: host}
	free := host.Frames.FreeCount()
	s := long64()
	s.CR4 = 0
	if _, err := b.NewVCPU(vm, &vmm.VCPU{SRegs: s}); err == nil || !strings.Contains(err.Error(), "CR4.PAE") {
		t.Errorf("NewVCPU accepted long mode without PAE: %v", err)
	}
	if host.Frames.FreeCount() != free {
		t.Error("a refused NewVCPU leaked frames")
	}
	if _, err := b.NewVCPU(nil, &vmm.VCPU{}); err == nil {
		t.Error("NewVCPU without a VM succeeded")
	}
}

func TestRealModeCPLAndProtectedCPL(t *testing.T) {
	e := newEnv(t, qemuCaps, realMode())
	if e.c.VMCB().CPL() != 0 || e.c.VMCB().Seg(SegCS).Base != 0xffff0000 {
		t.Error("real-mode state not loaded")
	}
	s := protected32()
	s.SS.Attr |= vmm.SegDPL3
	s.CS.Attr |= vmm.SegDPL3
	e.v.SRegs, e.v.SRegsDirty = s, true
	e.f.exit = exitWith(ExitHLT, 0, 0)
	e.c.Run(e.v)
	if e.c.VMCB().CPL() != 3 {
		t.Errorf("CPL = %d after loading a ring-3 state", e.c.VMCB().CPL())
	}
}

func TestRunIO(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	e.v.Regs = vmm.Regs{RAX: 0x41, RBX: 2, RSP: 0x8000, RIP: 0x10_0000, RFLAGS: 0x202}
	e.f.exit = func(m VMCB, regs *vmm.Regs) {
		m.SetExitCode(ExitIOIO)
		m.SetExitInfo1(0x3f8<<16 | IOIOSz8) // out dx, al
		m.SetExitInfo2(m.RIP() + 1)
		m.SetRAX(0x42) // the guest ran on
		m.SetRSP(0x7ff8)
		m.SetRFLAGS(0x246)
		regs.RBX = 7
	}
	if err := e.c.Run(e.v); err != nil {
		t.Fatal(err)
	}
	f := e.f
	if f.calls != 1 || f.vmcbPA != e.c.VMCBAddr() || f.hostSavePA != e.c.VMCBAddr()+mm.PageSize {
		t.Errorf("vmrun called %d times with VMCB %#x, host save %#x", f.calls, f.vmcbPA, f.hostSavePA)
	}
	if f.rip != 0x10_0000 || f.rsp != 0x8000 || f.rax != 0x41 || f.rflags != 0x202 {
		t.Errorf("VMCB at entry: RIP %#x RSP %#x RAX %#x RFLAGS %#x", f.rip, f.rsp, f.rax, f.rflags)
	}
	if f.clean != 0 || f.eventInj != 0 {
		t.Errorf("clean bits %#x, EVENTINJ %#x at entry", f.clean, f.eventInj)
	}
	if f.gfx != e.c.guestFX || f.hfx != e.c.hostFX || f.gfx == f.hfx {
		t.Error("FX areas not passed")
	}
	r := e.v.Regs
	if r.RAX != 0x42 || r.RSP != 0x7ff8 || r.RFLAGS != 0x246 || r.RBX != 7 || r.RIP != 0x10_0000 {
		t.Errorf("registers after the exit: %+v", r)
	}
	x := e.v.Exit
	if x.Reason != vmm.ExitIO || x.Port != 0x3f8 || x.Size != 1 || x.In || x.InstrLen != 1 {
		t.Errorf("exit %+v", x)
	}
	if e.v.SRegsValid {
		t.Error("SRegsValid still set after the guest ran")
	}
}

func TestRunTLBFlush(t *testing.T) {
	for _, c := range []struct {
		caps Caps
		want uint8
	}{{qemuCaps, TLBControlFlushAll}, {Caps{Present: true, NPT: true, NASID: 8, FlushByASID: true}, TLBControlFlushASID}} {
		e := newEnv(t, c.caps, long64())
		e.f.exit = exitWith(ExitHLT, 0, 0)
		e.c.Run(e.v)
		if e.f.tlbCtl != c.want {
			t.Errorf("first run: TLB_CONTROL %d, want %d", e.f.tlbCtl, c.want)
		}
		e.c.Run(e.v)
		if e.f.tlbCtl != 0 {
			t.Errorf("second run: TLB_CONTROL %d, want 0", e.f.tlbCtl)
		}
		e.c.FlushTLB()
		e.c.Run(e.v)
		if e.f.tlbCtl != c.want {
			t.Errorf("after FlushTLB: TLB_CONTROL %d, want %d", e.f.tlbCtl, c.want)
		}
		if e.c.VMCB().TLBControl() != 0 {
			t.Error("TLB_CONTROL left set after the run")
		}
	}
}

// With CPUMoves, an entry on another host CPU than the previous one
// flushes the vCPU's ASID and counts a move.
func TestRunCPUMoves(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	e.b.CPUMoves = true
	v := &vmm.VCPU{VM: e.vm, SRegs: long64(), SRegsValid: true, SRegsDirty: true}
	v.Regs.RIP, v.Regs.RFLAGS = 0x1000, 2
	be, err := e.b.NewVCPU(e.vm, v)
	if err != nil {
		t.Fatal(err)
	}
	c := be.(*VCPU)
	defer c.Close()
	e.f.exit = exitWith(ExitHLT, 0, 0)
	for i, step := range []struct {
		cpu   uint32
		flush bool
		moves uint64
	}{{0, true, 0}, {0, false, 0}, {1, true, 1}, {1, false, 1}, {0, true, 2}} {
		e.f.cpu = step.cpu
		if err := c.Run(v); err != nil {
			t.Fatal(err)
		}
		if got := e.f.tlbCtl != 0; got != step.flush {
			t.Errorf("entry %d on cpu %d: TLB_CONTROL %d, want a flush: %v", i, step.cpu, e.f.tlbCtl, step.flush)
		}
		if c.Moves != step.moves {
			t.Errorf("entry %d: %d moves, want %d", i, c.Moves, step.moves)
		}
		if c.VMCB().TLBControl() != 0 {
			t.Errorf("entry %d: TLB_CONTROL left set", i)
		}
	}
	// Without CPUMoves the CPU is not checked.
	e.f.cpu = 7
	e.c.Run(e.v)
	e.c.Run(e.v)
	if e.f.tlbCtl != 0 || e.c.Moves != 0 {
		t.Errorf("a vCPU without CPUMoves flushed (%d) or counted moves (%d)", e.f.tlbCtl, e.c.Moves)
	}
}

func TestRunInjects(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	e.f.exit = exitWith(ExitHLT, 0, 0)
	e.v.Pending = vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x10}
	e.v.HasPending = true
	e.v.Regs.RIP = 0x4000
	e.c.Run(e.v)
	if e.f.eventInj != 0x10_8000_0b0d {
		t.Errorf("EVENTINJ at entry %#x", e.f.eventInj)
	}
	if e.v.HasPending || e.c.VMCB().EventInj() != 0 {
		t.Error("event still pending after delivery")
	}
	if e.c.VMCB().NRIP() != 0x4000 {
		t.Error("nRIP not set to RIP for the injection")
	}
	// Real mode: no error code is pushed, so none is injected.
	e2 := newEnv(t, qemuCaps, realMode())
	e2.f.exit = exitWith(ExitHLT, 0, 0)
	e2.v.Pending = vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x10}
	e2.v.HasPending = true
	e2.c.Run(e2.v)
	if e2.f.eventInj != 0x8000_030d {
		t.Errorf("real mode EVENTINJ %#x", e2.f.eventInj)
	}
	// A bad event is refused without entering.
	calls := e.f.calls
	e.v.Pending = vmm.Event{Kind: vmm.EventException, Vector: 40}
	e.v.HasPending = true
	e.c.Run(e.v)
	if e.f.calls != calls || e.v.Exit.Reason != vmm.ExitInvalid || !e.v.HasPending {
		t.Errorf("bad event: calls %d→%d, exit %v, pending %v", calls, e.f.calls, e.v.Exit.Reason, e.v.HasPending)
	}
}

func TestRunRequeuesInterruptedEvent(t *testing.T) {
	cases := []struct {
		name    string
		intInfo uint64
		want    vmm.Event
		pending bool
	}{
		{"external interrupt", 0x8000_0030, vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30}, true},
		{"NMI", 0x8000_0202, vmm.Event{Kind: vmm.EventNMI, Vector: 2}, true},
		{"#PF with error code", 0x4_8000_0b0e, vmm.Event{Kind: vmm.EventException, Vector: 14, HasErr: true, ErrCode: 4}, true},
		{"INTn is re-executed", 0x8000_0480, vmm.Event{}, false},
		{"INT3 is re-executed", 0x8000_0303, vmm.Event{}, false},
		{"nothing", 0, vmm.Event{}, false},
	}
	for _, c := range cases {
		e := newEnv(t, qemuCaps, long64())
		e.f.exit = func(m VMCB, _ *vmm.Regs) {
			m.SetExitCode(ExitNPF)
			m.SetExitInfo1(1<<32 | 2)
			m.SetExitInfo2(0xfee00000)
			m.SetExitIntInfo(c.intInfo)
		}
		e.c.Run(e.v)
		if e.v.HasPending != c.pending || e.v.Pending != c.want {
			t.Errorf("%s: pending %v %+v", c.name, e.v.HasPending, e.v.Pending)
		}
	}
}

func TestRunLeavesExceptionsToTheCore(t *testing.T) {
	// #DB, #AC and #MC exits are reported; reflecting #DB and #AC is the
	// core's job (InjectException), so the backend queues nothing.
	for _, vec := range []uint64{1, 17, 18} {
		e := newEnv(t, qemuCaps, long64())
		e.f.exit = exitWith(ExitExcpBase+vec, 0, 0)
		e.c.Run(e.v)
		if e.v.Exit.Reason != vmm.ExitException || e.v.Exit.Vector != uint8(vec) || e.v.HasPending {
			t.Errorf("vector %d: %v vector %d pending %v", vec, e.v.Exit.Reason, e.v.Exit.Vector, e.v.HasPending)
		}
	}
}

func TestMSRState(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	m := e.c.VMCB()
	if m.GPAT() != DefaultGPAT {
		t.Errorf("G_PAT without MSR state: %#x", m.GPAT())
	}
	e.v.MSR = vmm.MSRState{STAR: 1, LSTAR: 2, CSTAR: 3, SFMASK: 4, KernelGSBase: 5,
		SysenterCS: 6, SysenterESP: 7, SysenterEIP: 8, PAT: 0x0606060606060606, TSCOffset: 0xffff_ffff_ffff_0000}
	e.v.MSRDirty = true
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitHLT)
		m.SetKernelGSBase(0xffff_8880_0000_0000) // the guest ran SWAPGS
	}
	e.c.Run(e.v)
	if m.STAR() != 1 || m.LSTAR() != 2 || m.CSTAR() != 3 || m.SFMASK() != 4 ||
		m.SysenterCS() != 6 || m.SysenterESP() != 7 || m.SysenterEIP() != 8 ||
		m.GPAT() != 0x0606060606060606 || m.TSCOffset() != 0xffff_ffff_ffff_0000 {
		t.Error("MSR state not loaded into the VMCB")
	}
	if e.v.MSRDirty {
		t.Error("MSRDirty not cleared")
	}
	if e.v.MSR.KernelGSBase != 0xffff_8880_0000_0000 {
		t.Errorf("KernelGSBase not refreshed after the exit: %#x", e.v.MSR.KernelGSBase)
	}
	// Not dirty: the VMCB keeps what the guest has.
	m.SetSTAR(99)
	e.c.Run(e.v)
	if m.STAR() != 99 {
		t.Error("clean MSR state reloaded")
	}
	// NewVCPU loads dirty MSR state.
	host := testHost(t, 16*mib)
	b, _ := New(qemuCaps, host)
	ram, hpa, _ := host.AllocPages(16)
	v := &vmm.VCPU{SRegs: long64(), MSR: vmm.MSRState{PAT: 0x0007040600070406, LSTAR: 0x1234}, MSRDirty: true}
	be, err := b.NewVCPU(&vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa)}, v)
	if err != nil {
		t.Fatal(err)
	}
	if be.(*VCPU).VMCB().LSTAR() != 0x1234 || v.MSRDirty {
		t.Error("NewVCPU did not load the MSR state")
	}
}

func TestRunInvalid(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	ev := vmm.Event{Kind: vmm.EventExtInt, Vector: 0x21}
	e.v.Pending, e.v.HasPending = ev, true
	e.f.exit = exitWith(0xffff_ffff, 0, 0) // QEMU's 32-bit VMEXIT_INVALID
	e.c.Run(e.v)
	d := string(e.v.Exit.Detail[:e.v.Exit.DetailLen])
	if e.v.Exit.Reason != vmm.ExitInvalid || !strings.Contains(d, "VMEXIT_INVALID") {
		t.Errorf("exit %v %q", e.v.Exit.Reason, d)
	}
	if !e.v.HasPending || e.v.Pending != ev {
		t.Error("the event VMRUN did not inject was lost")
	}
	// With the state broken behind the core's back, Detail says why.
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitInvalid)
		m.SetCR4(0)
	}
	e.c.Run(e.v)
	d = string(e.v.Exit.Detail[:e.v.Exit.DetailLen])
	if !strings.Contains(d, "CR4.PAE") || e.v.Exit.Raw != ExitInvalid {
		t.Errorf("detail %q does not name CR4.PAE, or Raw %#x lost", d, e.v.Exit.Raw)
	}
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitInvalid)
		m.SetInterceptMisc2(0)
	}
	e.c.Run(e.v)
	if d = string(e.v.Exit.Detail[:e.v.Exit.DetailLen]); !strings.Contains(d, "VMRUN intercept") {
		t.Errorf("detail %q", d)
	}
}

func TestRunDirtySRegs(t *testing.T) {
	e := newEnv(t, qemuCaps, realMode())
	e.f.exit = exitWith(ExitHLT, 0, 0)
	s := long64()
	s.FS.Base = 0x7000_0000
	e.v.SRegs, e.v.SRegsDirty = s, true
	e.c.Run(e.v)
	var got vmm.SRegs
	e.c.GetSRegs(&got)
	if got != s || e.v.SRegsDirty {
		t.Errorf("loaded state differs:\n got %+v\nwant %+v", got, s)
	}
	if e.c.VMCB().EFER()&EFERSVME == 0 {
		t.Error("guest EFER.SVME not forced")
	}
	// An illegal state is refused without entering the guest.
	calls := e.f.calls
	bad := long64()
	bad.CS.Attr |= vmm.SegDB
	e.v.SRegs, e.v.SRegsDirty = bad, true
	e.c.Run(e.v)
	d := string(e.v.Exit.Detail[:e.v.Exit.DetailLen])
	if e.f.calls != calls || e.v.Exit.Reason != vmm.ExitInvalid || !strings.Contains(d, "CS.L and CS.D") {
		t.Errorf("illegal state: calls %d→%d, %v %q", calls, e.f.calls, e.v.Exit.Reason, d)
	}
}

func TestGetSRegs(t *testing.T) {
	s := long64()
	s.CR2, s.CR8 = 0xdead_0000, 9
	s.IDTR = vmm.Table{Base: 0xffff_8000_0000_1000, Limit: 0xfff}
	e := newEnv(t, qemuCaps, s)
	var got vmm.SRegs
	e.c.GetSRegs(&got)
	if got != s {
		t.Errorf("GetSRegs:\n got %+v\nwant %+v", got, s)
	}
	// The guest changes its state; GetSRegs sees it.
	e.c.VMCB().SetCR3(0x5000)
	e.c.VMCB().SetVIntr(e.c.VMCB().VIntr()&^0xff | 0x3)
	e.c.GetSRegs(&got)
	if got.CR3 != 0x5000 || got.CR8 != 3 {
		t.Errorf("GetSRegs after guest changes: CR3 %#x CR8 %d", got.CR3, got.CR8)
	}
}

func TestInterruptWindow(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	m := e.c.VMCB()
	e.c.RequestInterruptWindow(true)
	if m.VIntr()&VIntrIRQ == 0 || m.VIntr()&VIntrIgnTPR == 0 || m.InterceptMisc1()&InterceptVINTR == 0 {
		t.Errorf("window request: V_INTR %#x misc1 %#x", m.VIntr(), m.InterceptMisc1())
	}
	if m.VIntr()&VIntrMasking == 0 {
		t.Error("window request cleared V_INTR_MASKING")
	}
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitVIntr)
		m.SetVIntr(m.VIntr() &^ VIntrIRQ) // whatever the CPU does with V_IRQ
	}
	e.c.Run(e.v)
	if e.v.Exit.Reason != vmm.ExitIntrWindow {
		t.Errorf("exit %v", e.v.Exit.Reason)
	}
	if m.VIntr()&VIntrIRQ == 0 || m.InterceptMisc1()&InterceptVINTR == 0 {
		t.Error("the window request did not stay armed after the window exit")
	}
	e.c.RequestInterruptWindow(false)
	if m.VIntr() != VIntrMasking || m.InterceptMisc1()&InterceptVINTR != 0 {
		t.Errorf("cancel: V_INTR %#x", m.VIntr())
	}
	// A VINTR exit after the cancel (a stale one) arms nothing.
	e.c.Run(e.v)
	if m.VIntr()&VIntrIRQ != 0 || m.InterceptMisc1()&InterceptVINTR != 0 {
		t.Error("a window exit re-armed a cancelled request")
	}
	if m.VIntr() != VIntrMasking || m.InterceptMisc1()&InterceptVINTR != 0 {
		t.Errorf("cancel: V_INTR %#x", m.VIntr())
	}
}

func TestCanInjectInterrupt(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	v, m := e.v, e.c.VMCB()
	v.Regs.RFLAGS = 0x202
	if !e.c.CanInjectInterrupt(v) {
		t.Error("IF=1, no shadow, nothing pending: cannot inject")
	}
	v.Regs.RFLAGS = 0x2
	if e.c.CanInjectInterrupt(v) {
		t.Error("IF=0: can inject")
	}
	v.Regs.RFLAGS = 0x202
	m.SetInterruptShadow(1)
	if e.c.CanInjectInterrupt(v) {
		t.Error("interrupt shadow: can inject")
	}
	m.SetInterruptShadow(2) // GUEST_INTERRUPT_MASK alone is not a shadow
	if !e.c.CanInjectInterrupt(v) {
		t.Error("bit 1 of the shadow word blocks injection")
	}
	v.HasPending = true
	if e.c.CanInjectInterrupt(v) {
		t.Error("event pending: can inject")
	}
}

func TestTwoVCPUsShareTheVMAndCloseFreesAll(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	v2 := &vmm.VCPU{ID: 1, VM: e.vm, SRegs: long64()}
	be2, err := e.b.NewVCPU(e.vm, v2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := be2.(*VCPU)
	m1, m2 := e.c.VMCB(), c2.VMCB()
	if m1.NCR3() != m2.NCR3() || m1.IOPMBase() != m2.IOPMBase() || m1.MSRPMBase() != m2.MSRPMBase() {
		t.Error("vCPUs of one VM do not share the NPT and maps")
	}
	if e.c.ASID() == c2.ASID() || e.c.VMCBAddr() == c2.VMCBAddr() {
		t.Error("vCPUs share an ASID or a VMCB")
	}
	// Another VM gets its own NPT.
	ram, hpa, _ := e.host.AllocPages(16)
	vm2 := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa)}
	be3, err := e.b.NewVCPU(vm2, &vmm.VCPU{SRegs: realMode()})
	if err != nil {
		t.Fatal(err)
	}
	if be3.(*VCPU).VMCB().NCR3() == m1.NCR3() {
		t.Error("two VMs share an NPT")
	}
	be3.Close()
	e.host.FreePages(hpa, 16)

	e.c.Close()
	e.f.exit = exitWith(ExitHLT, 0, 0)
	if err := c2.Run(v2); err != nil || v2.Exit.Reason != vmm.ExitHLT {
		t.Errorf("the second vCPU broke when the first closed: %v", err)
	}
	c2.Close()
	c2.Close()
	if err := c2.Run(v2); err != ErrClosed {
		t.Errorf("Run after Close: %v", err)
	}
	e.host.FreePages(e.vm.Mem.HPA(), e.vm.Mem.Size()/mm.PageSize)
	if got := e.host.Frames.FreeCount(); got != e.free {
		t.Errorf("leaked %d frames", int64(e.free)-int64(got))
	}
	if e.b.asids.InUse() != 0 || len(e.b.vms) != 0 {
		t.Error("ASIDs or VM state left behind")
	}
}

func TestRunAllocatesNothing(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitNPF)
		m.SetExitInfo1(1<<32 | 2)
		m.SetExitInfo2(0xfee00000)
		m.SetExitIntInfo(0x8000_0030)
	}
	s := long64()
	n := testing.AllocsPerRun(1000, func() {
		e.v.SRegs, e.v.SRegsDirty = s, true
		if err := e.c.Run(e.v); err != nil {
			t.Fatal(err)
		}
		e.c.RequestInterruptWindow(true)
		_ = e.c.CanInjectInterrupt(e.v)
		var sr vmm.SRegs
		e.c.GetSRegs(&sr)
	})
	if n != 0 {
		t.Errorf("Run allocates %v times per exit", n)
	}
	e.f.exit = exitWith(ExitInvalid, 0, 0)
	if n := testing.AllocsPerRun(100, func() { e.c.Run(e.v) }); n != 0 {
		t.Errorf("Run(VMEXIT_INVALID) allocates %v times", n)
	}
}

func BenchmarkRunStub(b *testing.B) {
	e := newEnv(b, qemuCaps, long64())
	e.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitIOIO)
		m.SetExitInfo1(0x3f8<<16 | IOIOSz8)
		m.SetExitInfo2(m.RIP() + 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.c.Run(e.v)
		e.v.Regs.RIP += uint64(e.v.Exit.InstrLen)
	}
}

// TestSharedASIDWhenOutOfASIDs: once the dedicated ASIDs are all in use
// (NASID 4: ASIDs 1 and 2; 3 is the shared one), further vCPUs share the
// last ASID and flush it on every entry, while a vCPU with a dedicated
// ASID flushes only on its first; closing a sharer frees nothing that a
// dedicated vCPU could then be given.
func TestSharedASIDWhenOutOfASIDs(t *testing.T) {
	caps := Caps{Present: true, NPT: true, NASID: 4, FlushByASID: true}
	e := newEnv(t, caps, long64())
	var cs []*VCPU
	for i := 0; i < 3; i++ {
		be, err := e.b.NewVCPU(e.vm, &vmm.VCPU{ID: i + 1, VM: e.vm, SRegs: long64()})
		if err != nil {
			t.Fatalf("vCPU %d: %v", i+1, err)
		}
		cs = append(cs, be.(*VCPU))
	}
	if e.c.ASID() == cs[0].ASID() || e.c.ASID() == 3 || cs[0].ASID() == 3 {
		t.Errorf("dedicated ASIDs %d, %d", e.c.ASID(), cs[0].ASID())
	}
	if cs[1].ASID() != 3 || cs[2].ASID() != 3 {
		t.Errorf("sharers' ASIDs %d, %d, want 3", cs[1].ASID(), cs[2].ASID())
	}
	e.f.exit = exitWith(ExitHLT, 0, 0)
	for run := 0; run < 3; run++ {
		v := &vmm.VCPU{VM: e.vm, SRegs: long64(), SRegsValid: true}
		cs[1].Run(v)
		if e.f.tlbCtl != TLBControlFlushASID {
			t.Errorf("sharer's run %d: TLB_CONTROL %d, want a flush of its ASID", run, e.f.tlbCtl)
		}
		e.c.Run(e.v)
		if want := uint8(TLBControlNone); run > 0 && e.f.tlbCtl != want {
			t.Errorf("dedicated vCPU's run %d: TLB_CONTROL %d, want none", run, e.f.tlbCtl)
		}
	}
	cs[2].Close()
	if _, err := e.b.NewVCPU(e.vm, &vmm.VCPU{ID: 9, VM: e.vm, SRegs: long64()}); err != nil {
		t.Errorf("a sharer after another closed: %v", err)
	}
	if e.b.asids.InUse() != 2 {
		t.Errorf("%d dedicated ASIDs in use, want 2", e.b.asids.InUse())
	}
}
