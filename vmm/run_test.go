package vmm

import (
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// Guest layout of the long-mode test environment.
const (
	envPT      = 0x10000    // page tables
	envCodeVA  = 0x400000   // code (3 pages) ...
	envCodePA  = 0x20000    // ... at this RAM
	envDataVA  = 0x600000   // data buffer (4 pages) ...
	envDataPA  = 0x30000    // ... at this RAM
	envData1PA = 0x48000    // except its second page
	envUserVA  = 0x700000   // a user page (U/S=1) ...
	envUserPA  = 0x40000    // ... at this RAM
	envDevGPA  = 0xd0000000 // recDevice: two pages, identity-mapped
	envDev2GPA = 0xd0002000 // a second device page, mapped read-only at envDev2GPA
	// envDevNearVA maps envDevGPA too, within RIP-relative reach of the code.
	envDevNearVA = 0x500000
)

// longEnv is a test VM in 64-bit mode with page tables and a device.
type longEnv struct {
	*testVM
	v   *VCPU
	pt  *pageTables
	dev *recDevice
}

func newLongEnv(tb testing.TB) *longEnv {
	tb.Helper()
	tv := newTestVM(tb, Config{})
	e := &longEnv{testVM: tv, v: tv.VCPU(0), dev: &recDevice{}}
	e.pt = newPageTables(tv.Mem, envPT)
	for i := uint64(0); i < 3; i++ {
		e.pt.map4K(envCodeVA+i*0x1000, envCodePA+i*0x1000, fP|fRW)
	}
	for i := uint64(0); i < 4; i++ {
		e.pt.map4K(envDataVA+i*0x1000, envDataPA+i*0x1000, fP|fRW)
	}
	// The second data page is elsewhere in RAM, so that accesses that
	// straddle its start must be split.
	e.pt.map4K(envDataVA+0x1000, envData1PA, fP|fRW)
	e.pt.map4K(envUserVA, envUserPA, fP|fRW|fUS)
	e.pt.map4K(envDevGPA, envDevGPA, fP|fRW)
	e.pt.map4K(envDevGPA+0x1000, envDevGPA+0x1000, fP|fRW)
	e.pt.map4K(envDev2GPA, envDev2GPA, fP) // read-only
	e.pt.map4K(envDevNearVA, envDevGPA, fP|fRW)
	if err := tv.MMIO().Register(envDevGPA, 0x3000, e.dev); err != nil {
		tb.Fatal(err)
	}
	setLong64(e.v, e.pt)
	return e
}

// code writes instruction bytes at envCodeVA.
func (e *longEnv) code(tb testing.TB, b ...byte) {
	tb.Helper()
	writeRAM(tb, e.Mem, envCodePA, b)
}

func TestCPUIDExit(t *testing.T) {
	tv := newTestVM(t, Config{VCPUs: 2})
	v := tv.VCPU(1)
	tv.script(1, fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: 0x1000, setRIP: true,
		pre: func(v *VCPU) { v.Regs.RAX = 0xffffffff_00000001; v.Regs.RCX = 0 }})
	tv.step(v)
	a, b, c, d := tv.CPUID().Lookup(1, 1, 0)
	if v.Regs.RAX != uint64(a) || v.Regs.RBX != uint64(b) || v.Regs.RCX != uint64(c) || v.Regs.RDX != uint64(d) {
		t.Fatalf("regs %+v, want %#x %#x %#x %#x", v.Regs, a, b, c, d)
	}
	if v.Regs.RBX>>24 != 1 {
		t.Fatalf("APIC ID in EBX %#x, want 1", v.Regs.RBX)
	}
	if v.Regs.RIP != 0x1002 || v.Exits[ExitCPUID] != 1 {
		t.Fatalf("RIP %#x exits %d", v.Regs.RIP, v.Exits[ExitCPUID])
	}
}

// TestInstrLenFallback: without the backend's InstrLen the core decodes
// the instruction at RIP; if it is not the one that exited, nothing is
// emulated.
func TestInstrLenFallback(t *testing.T) {
	e := newLongEnv(t)
	cases := []struct {
		name   string
		code   []byte
		exit   Exit
		wantLn uint64 // 0: not emulated
	}{
		{"cpuid", []byte{0x0f, 0xa2}, Exit{Reason: ExitCPUID}, 2},
		{"cpuid prefixed", []byte{0x66, 0x48, 0x0f, 0xa2}, Exit{Reason: ExitCPUID}, 4},
		{"cpuid rewritten", []byte{0x90, 0x90}, Exit{Reason: ExitCPUID}, 0},
		{"rdmsr", []byte{0x0f, 0x32}, Exit{Reason: ExitRDMSR}, 2},
		{"wrmsr", []byte{0x0f, 0x30}, Exit{Reason: ExitWRMSR}, 2},
		{"vmmcall", []byte{0x0f, 0x01, 0xd9}, Exit{Reason: ExitHypercall}, 3},
		{"vmcall", []byte{0x0f, 0x01, 0xc1}, Exit{Reason: ExitHypercall}, 3},
		{"pause", []byte{0xf3, 0x90}, Exit{Reason: ExitPause}, 2},
		{"nop is not pause", []byte{0x90}, Exit{Reason: ExitPause}, 0},
		{"out dx,al", []byte{0xee}, Exit{Reason: ExitIO, Port: 0x80, Size: 1}, 1},
		{"out dx,al other port", []byte{0xee}, Exit{Reason: ExitIO, Port: 0x81, Size: 1}, 0},
		{"out imm8,eax", []byte{0xe7, 0x80}, Exit{Reason: ExitIO, Port: 0x80, Size: 4}, 2},
		{"out imm8 wrong port", []byte{0xe7, 0x81}, Exit{Reason: ExitIO, Port: 0x80, Size: 4}, 0},
		{"in ax,dx", []byte{0x66, 0xed}, Exit{Reason: ExitIO, Port: 0x80, Size: 2, In: true}, 2},
		{"in wrong size", []byte{0xed}, Exit{Reason: ExitIO, Port: 0x80, Size: 2, In: true}, 0},
		{"in is not out", []byte{0xec}, Exit{Reason: ExitIO, Port: 0x80, Size: 1}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.code(t, append(tc.code, 0xcc, 0xcc, 0xcc, 0xcc)...)
			e.script(0, fakeStep{exit: tc.exit, rip: envCodeVA, setRIP: true,
				pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RCX, v.Regs.RDX = 0, MSRSTAR, 0x80 }})
			e.fake(0).pos = 0
			e.step(e.v)
			e.wantRunning(t)
			if got := e.v.Regs.RIP - envCodeVA; got != tc.wantLn {
				t.Fatalf("RIP advanced by %d, want %d", got, tc.wantLn)
			}
			if tc.wantLn == 0 && e.v.HasPending {
				t.Fatalf("event queued: %+v", e.v.Pending)
			}
		})
	}
}

// TestInstrLenFetchFault: the instruction runs off a mapped page onto an
// unmapped one: #PF for the second page, with CR2.
func TestInstrLenFetchFault(t *testing.T) {
	e := newLongEnv(t)
	rip := uint64(envCodeVA + 3*0x1000 - 1) // last byte of the mapped code
	writeRAM(t, e.Mem, envCodePA+3*0x1000-1, []byte{0x0f})
	e.script(0, fakeStep{exit: Exit{Reason: ExitCPUID}, rip: rip, setRIP: true})
	e.step(e.v)
	if !e.v.HasPending || e.v.Pending.Vector != VectorPF || e.v.SRegs.CR2 != rip+1 || e.v.Regs.RIP != rip {
		t.Fatalf("pending %+v CR2 %#x RIP %#x", e.v.Pending, e.v.SRegs.CR2, e.v.Regs.RIP)
	}
	if e.v.Pending.ErrCode != pfID { // not present, fetch, supervisor
		t.Fatalf("error code %#x", e.v.Pending.ErrCode)
	}
	e.step(e.v) // the fake "hardware" gets CR2 and the #PF
	if e.fake(0).sregs.CR2 != rip+1 {
		t.Fatal("CR2 not loaded by the backend")
	}
}

func TestRIPWrapsOutsideLongMode(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	// Real mode after Reset: IP wraps at 64 KiB.
	tv.script(0, fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: 0xffff, setRIP: true})
	tv.step(v)
	if v.Regs.RIP != 1 {
		t.Fatalf("real mode RIP %#x, want 1", v.Regs.RIP)
	}
	setFlat32(v)
	tv.script(0, fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: 0xffff, setRIP: true},
		fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: 0xffffffff, setRIP: true})
	tv.step(v)
	if v.Regs.RIP != 0x10001 {
		t.Fatalf("32-bit RIP %#x", v.Regs.RIP)
	}
	tv.step(v)
	if v.Regs.RIP != 1 {
		t.Fatalf("32-bit RIP %#x, want 1", v.Regs.RIP)
	}
}

func TestMSRExits(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitWRMSR, InstrLen: 2}, rip: 0x100, setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX, v.Regs.RDX, v.Regs.RAX = MSRLSTAR, 0xffffffff, 0xffff_ffff_8000_0000 }},
		fakeStep{exit: Exit{Reason: ExitRDMSR, InstrLen: 2}, rip: 0x100, setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX, v.Regs.RAX, v.Regs.RDX = MSRLSTAR, 0xdead_0000_0000, 0xbeef_0000_0000 }},
		fakeStep{exit: Exit{Reason: ExitRDMSR, InstrLen: 2}, rip: 0x100, setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX = 0xc0010114 }}, // VM_CR: #GP
		fakeStep{exit: Exit{Reason: ExitWRMSR, InstrLen: 2}, rip: 0x100, setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX, v.Regs.RDX, v.Regs.RAX = MSRLSTAR, 0x00008000, 0 }}, // non-canonical
	)
	tv.step(v)
	if v.MSR.LSTAR != 0xffffffff_80000000 || !v.MSRDirty || v.Regs.RIP != 0x102 {
		t.Fatalf("LSTAR %#x dirty %v RIP %#x", v.MSR.LSTAR, v.MSRDirty, v.Regs.RIP)
	}
	tv.step(v)
	if v.Regs.RAX != 0x80000000 || v.Regs.RDX != 0xffffffff || tv.fake(0).msr.LSTAR != 0xffffffff_80000000 {
		t.Fatalf("RDMSR EDX:EAX %#x:%#x, hardware LSTAR %#x", v.Regs.RDX, v.Regs.RAX, tv.fake(0).msr.LSTAR)
	}
	for i := 0; i < 2; i++ {
		tv.step(v)
		if !v.HasPending || v.Pending != (Event{Kind: EventException, Vector: VectorGP, HasErr: true}) || v.Regs.RIP != 0x100 {
			t.Fatalf("step %d: pending %v %+v RIP %#x, want #GP(0) and RIP unchanged", i, v.HasPending, v.Pending, v.Regs.RIP)
		}
	}
	if v.MSR.LSTAR != 0xffffffff_80000000 {
		t.Fatal("rejected write changed LSTAR")
	}
}

func TestPortIOExits(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	dev := &recDevice{readVal: 0x11223344}
	if err := tv.IO().Register(0x60, 8, dev); err != nil {
		t.Fatal(err)
	}
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitIO, Port: 0x62, Size: 2, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = 0xaaaa_bbbb_cccc_dddd }},
		fakeStep{exit: Exit{Reason: ExitIO, Port: 0x64, Size: 1, In: true, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = 0xaaaa_bbbb_cccc_dddd }},
		fakeStep{exit: Exit{Reason: ExitIO, Port: 0x64, Size: 4, In: true, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = 0xaaaa_bbbb_cccc_dddd }},
		fakeStep{exit: Exit{Reason: ExitIO, Port: 0x3f8, Size: 2, In: true, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = 0xaaaa_bbbb_cccc_dddd }},
		fakeStep{exit: Exit{Reason: ExitIO, Port: 0x67, Size: 2, InstrLen: 1}}, // spans the range's end
	)
	tv.step(v)
	if dev.writes != 1 || dev.lastOff != 2 || dev.lastSize != 2 || dev.lastWrite != 0xdddd {
		t.Fatalf("out: %+v", dev)
	}
	tv.step(v)
	if v.Regs.RAX != 0xaaaa_bbbb_cccc_dd44 || dev.lastOff != 4 {
		t.Fatalf("in al: RAX %#x", v.Regs.RAX)
	}
	tv.step(v)
	if v.Regs.RAX != 0x11223344 {
		t.Fatalf("in eax: RAX %#x (must zero-extend)", v.Regs.RAX)
	}
	tv.step(v)
	if v.Regs.RAX != 0xaaaa_bbbb_cccc_ffff || tv.IO().Unhandled() != 1 {
		t.Fatalf("unhandled in: RAX %#x unhandled %d", v.Regs.RAX, tv.IO().Unhandled())
	}
	tv.step(v)
	if dev.writes != 1 || tv.IO().Unhandled() != 2 {
		t.Fatalf("straddling out reached the device")
	}
	if v.Regs.RIP != 0xfff0+5 {
		t.Fatalf("RIP %#x", v.Regs.RIP)
	}
	tv.wantRunning(t)
}

func TestStopExits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   fakeStep
		runErr error
		reason StopReason
		msg    string
	}{
		{"shutdown", fakeStep{exit: Exit{Reason: ExitShutdown, Raw: 0x7f, Info1: 1, Info2: 2}, rip: 0xabc, setRIP: true},
			nil, Shutdown, "vCPU 0 shut down (triple fault) at RIP 0xabc (exit code 0x7f, info 0x1/0x2)"},
		{"invalid", fakeStep{exit: func() Exit {
			e := Exit{Reason: ExitInvalid}
			e.DetailLen = uint8(copy(e.Detail[:], "VMRUN failed: bad CR0"))
			return e
		}()}, nil, Error, "guest entry failed at RIP 0xfff0: VMRUN failed: bad CR0"},
		{"unhandled", fakeStep{exit: Exit{Reason: ExitUnhandled, Raw: 0x8d}}, nil, Fault, "unhandled exit unhandled (backend code 0x8d"},
		{"bad reason", fakeStep{exit: Exit{Reason: 200}}, nil, Fault, "unhandled exit unknown"},
		{"run error", fakeStep{}, errors.New("VMRUN #GP"), Error, "guest entry failed: VMRUN #GP"},
		{"bad io size", fakeStep{exit: Exit{Reason: ExitIO, Size: 3}}, nil, Error, "3-byte port access"},
		{"bad exception", fakeStep{exit: Exit{Reason: ExitException, Vector: 40}}, nil, Error, "exception vector 40"},
		{"machine check", fakeStep{exit: Exit{Reason: ExitException, Vector: VectorMC}}, nil, Error, "machine check (#MC) while the guest ran"},
		{"mmio nothing there", fakeStep{exit: Exit{Reason: ExitMMIO, GPA: 0xfebc0000, Write: true}}, nil, Fault,
			"guest-physical address 0xfebc0000 is not RAM or a device (write at RIP 0xfff0)"},
		{"mmio on RAM", fakeStep{exit: Exit{Reason: ExitMMIO, GPA: 0x1000}}, nil, Error, "which is RAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tv := newTestVM(t, Config{})
			tv.script(0, tc.step)
			tv.fake(0).runErr = tc.runErr
			if got := tv.RunVCPU(tv.VCPU(0)); got != tc.reason {
				t.Fatalf("RunVCPU = %v, want %v", got, tc.reason)
			}
			tv.wantStop(t, tc.reason, tc.msg)
		})
	}
}

func TestExceptionReflected(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitException, Vector: VectorAC, HasErr: true, ErrCode: 0}},
		fakeStep{exit: Exit{Reason: ExitException, Vector: VectorDB}},
		fakeStep{exit: Exit{Reason: ExitException, Vector: VectorPF, HasErr: true, ErrCode: 6, Info2: 0x5000}},
	)
	tv.step(v)
	if v.Pending != (Event{Kind: EventException, Vector: VectorAC, HasErr: true}) {
		t.Fatalf("%+v", v.Pending)
	}
	tv.step(v)
	if ev, _ := tv.fake(0).lastInjected(); ev.Vector != VectorAC || v.Pending != (Event{Kind: EventException, Vector: VectorDB}) {
		t.Fatalf("%+v %+v", ev, v.Pending)
	}
	tv.step(v)
	if v.Pending != (Event{Kind: EventException, Vector: VectorPF, HasErr: true, ErrCode: 6}) || v.SRegs.CR2 != 0x5000 || !v.SRegsDirty {
		t.Fatalf("%+v CR2 %#x", v.Pending, v.SRegs.CR2)
	}
}

func TestInjectExceptionDoubleAndTripleFault(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	v.InjectException(VectorGP, 0x18)
	v.InjectException(VectorNP, 0x20)
	if v.Pending != (Event{Kind: EventException, Vector: VectorDF, HasErr: true}) {
		t.Fatalf("contributory+contributory: %+v", v.Pending)
	}
	v.InjectException(VectorGP, 0)
	tv.wantStop(t, Shutdown, "while delivering a double fault (triple fault)")

	tv = newTestVM(t, Config{})
	v = tv.VCPU(0)
	v.InjectException(VectorPF, 2)
	v.InjectException(VectorPF, 2)
	if v.Pending.Vector != VectorDF {
		t.Fatalf("#PF+#PF: %+v", v.Pending)
	}
	v.HasPending = false
	v.InjectException(VectorGP, 0)
	v.InjectException(VectorUD, 5) // benign: replaces, no error code
	if v.Pending != (Event{Kind: EventException, Vector: VectorUD}) {
		t.Fatalf("benign: %+v", v.Pending)
	}
	// A queued external interrupt is not lost.
	v.Pending, v.HasPending = Event{Kind: EventExtInt, Vector: 0x41}, true
	v.InjectException(VectorGP, 0)
	if !v.PendingInterrupt(0x41) || v.Pending.Vector != VectorGP {
		t.Fatal("interrupt lost")
	}
	tv.wantRunning(t)
}

func TestPauseAdvancesAndYields(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	tv.script(0, fakeStep{exit: Exit{Reason: ExitPause, InstrLen: 2}, rip: 0x10, setRIP: true})
	tv.step(v)
	if v.Regs.RIP != 0x12 || v.Exits[ExitPause] != 1 {
		t.Fatalf("RIP %#x", v.Regs.RIP)
	}
}

// TestSRegsStaleAfterEntry: the core never trusts system state cached
// before an entry; it asks the backend once per exit, and only when needed.
func TestSRegsStaleAfterEntry(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	f := tv.fake(0)
	tv.script(0,
		fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}},
		fakeStep{exit: Exit{Reason: ExitRDMSR, InstrLen: 2}, pre: func(v *VCPU) {
			v.Regs.RCX = MSREFER
			v.backend.(*fakeVCPU).sregs.EFER = eferSCE | eferSVME // the guest changed EFER
		}},
	)
	tv.step(v)
	if f.getSRegs != 0 || f.sregLoads != 1 {
		t.Fatalf("CPUID: GetSRegs %d loads %d", f.getSRegs, f.sregLoads)
	}
	tv.step(v)
	if f.getSRegs != 1 || v.Regs.RAX != eferSCE {
		t.Fatalf("EFER read %#x (GetSRegs %d), want SCE with SVME hidden", v.Regs.RAX, f.getSRegs)
	}
}

// allExitsScript is a script that exercises every non-stopping exit
// reason in the long-mode environment; every step sets the registers it
// needs, so the script can loop forever.
func allExitsScript(tb testing.TB, e *longEnv) []fakeStep {
	tb.Helper()
	io := &recDevice{readVal: 0x5a}
	if err := e.IO().Register(0x3f8, 8, io); err != nil {
		tb.Fatal(err)
	}
	// Instructions at fixed code offsets.
	prog := map[uint64][]byte{
		0x000: {0x0f, 0xa2},                                                 // cpuid
		0x010: {0x89, 0x18},                                                 // mov [rax], ebx
		0x020: {0x48, 0x8b, 0x08},                                           // mov rcx, [rax]
		0x030: {0x0f, 0xb6, 0x48, 0x04},                                     // movzx ecx, byte [rax+4]
		0x040: {0xf3, 0xab},                                                 // rep stosd
		0x050: {0xf3, 0x6e},                                                 // rep outsb
		0x060: {0x6d},                                                       // insd
		0x070: {0xc7, 0x05, 0x00, 0x00, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12}, // mov dword [rip+x], imm (patched below)
		0x080: {0xf3, 0xa4},                                                 // rep movsb (device -> RAM)
		0x090: {0x0f, 0x32},                                                 // rdmsr
	}
	for off, b := range prog {
		writeRAM(tb, e.Mem, envCodePA+off, b)
	}
	// RIP-relative store: target envDevGPA+0x10 from RIP = envCodeVA+0x70+10.
	disp := uint32(envDevGPA + 0x10 - (envCodeVA + 0x70 + 10))
	writeRAM(tb, e.Mem, envCodePA+0x72, []byte{byte(disp), byte(disp >> 8), byte(disp >> 16), byte(disp >> 24)})
	writeRAM(tb, e.Mem, envDataPA, []byte("hello, world, from RAM"))
	at := func(off uint64) uint64 { return envCodeVA + off }
	ifOn := func(v *VCPU) { v.Regs.RFLAGS = rflagsFixed | rflagsIF }
	return []fakeStep{
		{exit: Exit{Reason: ExitNone}},
		{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: at(0), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RCX = 7, 0 }},
		{exit: Exit{Reason: ExitCPUID}, rip: at(0), setRIP: true, // decoded length
			pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RCX = 0x40000000, 0 }},
		{exit: Exit{Reason: ExitRDMSR, InstrLen: 2}, rip: at(0x90), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX = MSREFER }},
		{exit: Exit{Reason: ExitRDMSR}, rip: at(0x90), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RCX = MSRPAT }},
		{exit: Exit{Reason: ExitWRMSR, InstrLen: 2},
			pre: func(v *VCPU) { v.Regs.RCX, v.Regs.RDX, v.Regs.RAX = MSRSTAR, 0x00230010, 0 }},
		{exit: Exit{Reason: ExitWRMSR, InstrLen: 2},
			pre: func(v *VCPU) { v.Regs.RCX, v.Regs.RDX, v.Regs.RAX = MSREFER, 0, eferSCE|eferLME|eferNXE }},
		{exit: Exit{Reason: ExitRDMSR, InstrLen: 2},
			pre: func(v *VCPU) { v.Regs.RCX = 0x6e0 }}, // TSC_DEADLINE: #GP
		{exit: Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = 'x' }},
		{exit: Exit{Reason: ExitIO, Port: 0x3fd, Size: 1, In: true, InstrLen: 1}},
		{exit: Exit{Reason: ExitIO, Port: 0x80, Size: 1, In: true, InstrLen: 1}}, // no device
		{exit: Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, String: true, Rep: true}, rip: at(0x50), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RSI, v.Regs.RCX, v.Regs.RDX = envDataVA, 13, 0x3f8; v.Regs.RFLAGS = rflagsFixed }},
		{exit: Exit{Reason: ExitIO, Port: 0x3f8, Size: 4, In: true, String: true}, rip: at(0x60), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RDI, v.Regs.RDX = envDataVA+0x100, 0x3f8 }},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 8, Write: true}, rip: at(0x10), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RBX = envDevGPA+8, 0xcafe }},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA}, rip: at(0x20), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RAX = envDevGPA }},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 4}, rip: at(0x30), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RAX = envDevGPA }},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 0x20, Write: true}, rip: at(0x40), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RDI, v.Regs.RCX, v.Regs.RAX = envDevGPA+0x20, 4, 0x01020304 }},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 0x10, Write: true}, rip: at(0x70), setRIP: true},
		{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 0x40}, rip: at(0x80), setRIP: true,
			pre: func(v *VCPU) { v.Regs.RSI, v.Regs.RDI, v.Regs.RCX = envDevGPA+0x40, envDataVA+0x200, 8 }},
		{exit: Exit{Reason: ExitHypercall, InstrLen: 3},
			pre: func(v *VCPU) { v.Regs.RAX = HypercallVersion }},
		{exit: Exit{Reason: ExitHypercall, InstrLen: 3},
			pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RBX, v.Regs.RCX = HypercallSetTimer, 0x30, MaxTimerDelayMicros }},
		{exit: Exit{Reason: ExitHypercall, InstrLen: 3},
			pre: func(v *VCPU) { v.Regs.RAX = 99 }},
		{exit: Exit{Reason: ExitHLT, InstrLen: 1}, // an interrupt is pending: HLT returns at once
			pre: func(v *VCPU) { ifOn(v); v.VM.Interrupt(0, 0x50) }},
		{exit: Exit{Reason: ExitHLT, InstrLen: 1}, // a timer that falls due in HLT
			pre: func(v *VCPU) { ifOn(v); v.VM.armTimer(v, 0x31, 0) }},
		{exit: Exit{Reason: ExitIntrWindow}, pre: func(v *VCPU) { v.VM.Interrupt(0, 0x51); v.VM.Interrupt(0, 0x52) }},
		{exit: Exit{Reason: ExitExtIntr}},
		{exit: Exit{Reason: ExitExtIntr}, pre: func(v *VCPU) { ifOn(v) }},
		{exit: Exit{Reason: ExitException, Vector: VectorAC, HasErr: true}},
		{exit: Exit{Reason: ExitPause, InstrLen: 2}},
	}
}

// TestAllExitsAllocationFree: thousands of exits of every non-stopping
// reason allocate nothing (once the MMIO decode cache is warm).
func TestAllExitsAllocationFree(t *testing.T) {
	e := newLongEnv(t)
	steps := allExitsScript(t, e)
	e.script(0, steps...)
	f := e.fake(0)
	f.loop = true
	run := func() {
		for range steps {
			e.step(e.v)
		}
	}
	run() // warm the decode cache
	e.wantRunning(t)
	allocs := testing.AllocsPerRun(200, run)
	e.wantRunning(t)
	if allocs != 0 {
		t.Fatalf("%v allocations per %d exits, want 0", allocs, len(steps))
	}
	for r := ExitNone; r < numExitReasons; r++ {
		switch r {
		case ExitShutdown, ExitInvalid, ExitUnhandled:
			continue
		}
		if e.v.Exits[r] < 200 {
			t.Errorf("exit %v seen %d times", r, e.v.Exits[r])
		}
	}
	if f.nInjected == 0 || e.dev.writes == 0 || e.dev.reads == 0 {
		t.Fatalf("script did not exercise injection/devices: %d %d %d", f.nInjected, e.dev.writes, e.dev.reads)
	}
}

// TestRunVCPUMemStats: RunVCPU over 100000 exits allocates only for the
// final stop message.
func TestRunVCPUMemStats(t *testing.T) {
	e := newLongEnv(t)
	steps := allExitsScript(t, e)
	const total = 100000
	count := 0
	steps = append(steps, fakeStep{exit: Exit{Reason: ExitNone}, pre: func(v *VCPU) {
		count += len(steps)
		if count >= total {
			v.Exit = Exit{Reason: ExitHypercall, InstrLen: 3}
			v.Regs.RAX, v.Regs.RBX = HypercallExit, 3
		}
	}})
	e.script(0, steps...)
	e.fake(0).loop = true
	for range steps { // warm up
		e.step(e.v)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	reason := e.RunVCPU(e.v)
	runtime.ReadMemStats(&after)
	if reason != Exited {
		_, _, msg := e.Stopped()
		t.Fatalf("stopped %v: %s", reason, msg)
	}
	exits := uint64(0)
	for _, n := range e.v.Exits {
		exits += n
	}
	mallocs := after.Mallocs - before.Mallocs
	t.Logf("%d exits, %d mallocs", exits, mallocs)
	if exits < total || mallocs > 50 {
		t.Fatalf("%d exits, %d mallocs: want >= %d exits and only the stop message's allocations", exits, mallocs, total)
	}
}

func BenchmarkExitCPUID(b *testing.B) {
	tv := newTestVM(b, Config{})
	v := tv.VCPU(0)
	tv.script(0, fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}, rip: 0x1000, setRIP: true,
		pre: func(v *VCPU) { v.Regs.RAX, v.Regs.RCX = 1, 0 }})
	tv.fake(0).loop = true
	b.ReportAllocs()
	for b.Loop() {
		tv.step(v)
	}
}

type nullPort struct{}

func (nullPort) In(off uint16, size uint8) uint32         { return 0 }
func (nullPort) Out(off uint16, size uint8, value uint32) {}

func BenchmarkExitIO(b *testing.B) {
	tv := newTestVM(b, Config{})
	v := tv.VCPU(0)
	for i := uint16(0); i < 16; i++ { // a realistic bus: 16 devices
		if err := tv.IO().Register(0x100+i*0x10, 8, nullPort{}); err != nil {
			b.Fatal(err)
		}
	}
	tv.script(0, fakeStep{exit: Exit{Reason: ExitIO, Port: 0x1a0, Size: 1, InstrLen: 1}, rip: 0x1000, setRIP: true})
	tv.fake(0).loop = true
	b.ReportAllocs()
	for b.Loop() {
		tv.step(v)
	}
}

func benchMMIO(b *testing.B, miss bool) {
	e := newLongEnv(b)
	e.code(b, 0x89, 0x18) // mov [rax], ebx
	e.script(0, fakeStep{exit: Exit{Reason: ExitMMIO, GPA: envDevGPA + 8, Write: true}, rip: envCodeVA, setRIP: true,
		pre: func(v *VCPU) {
			v.Regs.RAX, v.Regs.RBX = envDevGPA+8, 1
			if miss {
				v.c.decode = [decodeCacheSize]decodeEntry{}
			}
		}})
	e.fake(0).loop = true
	b.ReportAllocs()
	for b.Loop() {
		e.step(e.v)
	}
	if r, _, msg := e.Stopped(); r != Running {
		b.Fatal(msg)
	}
}

// BenchmarkExitMMIO: a 4-byte MMIO store in 64-bit mode with 4-level
// paging (walks for the fetch and the operand), decode cache warm.
func BenchmarkExitMMIO(b *testing.B) { benchMMIO(b, false) }

// BenchmarkExitMMIODecodeMiss: the same with the decode cache cleared
// every exit (x86asm decodes, and allocates, each time).
func BenchmarkExitMMIODecodeMiss(b *testing.B) { benchMMIO(b, true) }

func TestExitReasonStrings(t *testing.T) {
	if ExitMMIO.String() != "mmio" || ExitUnhandled.String() != "unhandled" || ExitReason(99).String() != "unknown" {
		t.Fatal("exit reason names")
	}
	if !strings.Contains(ExitIntrWindow.String(), "window") {
		t.Fatal(ExitIntrWindow.String())
	}
}

// TestLoopYieldsEachTimeSlice: a vCPU whose guest exits and re-enters
// without ever blocking (ExitNone over and over) gives the host CPU to
// other runnable goroutines once its time slice is over, even on one
// host CPU: a VM started beside a busy one is not left waiting for the
// runtime's preemption (a CI failure: the second VM of a bundle started
// only after the first one ended, 11 s later).
func TestLoopYieldsEachTimeSlice(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var now atomic.Int64
	tv := newTestVM(t, Config{Clock: now.Load})
	v := tv.VCPU(0)
	tv.script(0, fakeStep{exit: Exit{Reason: ExitNone}})
	tv.fake(0).loop = true
	for round := range 3 {
		var ran atomic.Bool
		go ran.Store(true)
		// Inside the slice the loop keeps the CPU (the other goroutine
		// may still run if the runtime preempts the test: not asserted).
		for range 100 {
			tv.step(v)
		}
		now.Add(timeSlice)
		tv.step(v) // the slice ended: this step yields
		if !ran.Load() {
			t.Fatalf("round %d: a runnable goroutine did not run when the vCPU's time slice ended", round)
		}
	}
	tv.wantRunning(t)
}
