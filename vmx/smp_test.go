package vmx

import (
	"errors"
	"strings"
	"testing"

	"juice/vmm"
)

// Per-CPU host state of the SMP fake: each CPU has its own GS base, GDT
// (with its own TSS) and IDT, as juice's kernel gives them.
func smpGS(n int) uint64  { return hostGS + uint64(n)*0x1000 }
func smpGDT(n int) uint64 { return hostGDT + uint64(n)*0x100 }
func smpIDT(n int) uint64 { return hostIDT + uint64(n)*0x1000 }
func smpTSS(n int) uint64 { return hostTSSBase + uint64(n)*0x80 }

// newSMPEnv is newBackendEnv on a fake machine with n CPUs: the backend
// learns the CPU from the fake (Backend.CPU) and runs Close's VMCLEAR
// through it (Backend.OnCPU); the host state differs per CPU. VMX is on
// on the CPUs in enable; the backend's thread is left on CPU 0.
func newSMPEnv(t *testing.T, n int, enable ...int) *env {
	t.Helper()
	host := testHost(t, 64*mib)
	m := bochsMSRs()
	caps := Decode(CPUID1ECXVMX, &m)
	f := newFakeCPU(t, host, caps.VMCSRevision)
	f.setCPUs(n)
	f.install(t)
	b, err := NewWithMSRs(caps, &m, host)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{host: host, b: b, f: f, hs: stubHost(b)}
	b.CPU, b.OnCPU = f.cpu, f.onCPU
	cr4 := make([]uint64, n)
	for i := range cr4 {
		cr4[i] = hostCR4
	}
	b.ReadCR4 = func() uint64 { return cr4[f.on] }
	b.WriteCR4 = func(v uint64) { cr4[f.on] = v }
	rdmsr := b.RDMSR
	b.RDMSR = func(msr uint32) uint64 {
		if msr == MSRGSBase {
			return smpGS(f.on)
		}
		return rdmsr(msr)
	}
	b.SGDT = func(p *[10]byte) { putTableReg(p, smpGDT(f.on), 0x2f) }
	b.SIDT = func(p *[10]byte) { putTableReg(p, smpIDT(f.on), 0xfff) }
	b.ReadHost64 = func(a uint64) uint64 {
		lo, hi := tssDescriptor(smpTSS(f.on), 0x67)
		switch a {
		case smpGDT(f.on) + 0x18:
			return lo
		case smpGDT(f.on) + 0x20:
			return hi
		}
		t.Fatalf("ReadHost64(%#x) on cpu %d: outside its TSS descriptor", a, f.on)
		return 0
	}
	for _, c := range enable {
		f.switchTo(c)
		if err := b.Enable(); err != nil {
			t.Fatalf("Enable on cpu %d: %v", c, err)
		}
	}
	f.switchTo(0)
	e.free = host.Frames.FreeCount()
	return e
}

// hostOn reports whether c's VMCS holds CPU n's host state.
func (e *env) hostOn(c *VCPU, n int) bool {
	return e.field(c, HostGSBase) == smpGS(n) && e.field(c, HostTRBase) == smpTSS(n) &&
		e.field(c, HostGDTRBase) == smpGDT(n) && e.field(c, HostIDTRBase) == smpIDT(n) &&
		e.field(c, HostTRSelector) == HostTSSSelector && e.field(c, HostCR4)&CR4VMXE != 0
}

// TestSMPVMCSLifeCycle follows VMCSs across two CPUs: built on one CPU and
// cleared there, bound to another at the first Run (VMPTRLD there, host
// state of that CPU, flushes there, VMLAUNCH), current per CPU, refused
// on the wrong CPU, cleared on their own CPU by Close.
func TestSMPVMCSLifeCycle(t *testing.T) {
	e := newSMPEnv(t, 2, 0, 1)
	f, b := e.f, e.b
	if !b.EnabledOn(0) || !b.EnabledOn(1) || b.EnabledOn(2) || f.cpus[1].vmxonPA == 0 || f.vmxonPA == 0 {
		t.Fatal("VMX is not on on both CPUs")
	}
	// The builder runs on CPU 0.
	_, vA, cA := e.addVCPU(t, goodProt())
	_, vB, cB := e.addVCPU(t, goodProt())
	if f.vmcs(cA.VMCSAddr()).active != -1 || f.cur != nil || b.current[0] != 0 {
		t.Fatal("a new VMCS stayed active on the builder's CPU")
	}
	if !e.hostOn(cA, 0) {
		t.Error("NewVCPU did not write the builder's host state")
	}
	e.f.exit = exitWith(ReasonHLT, 0, 1)

	// vCPU A's thread runs on CPU 1.
	f.switchTo(1)
	ptrlds := f.ptrlds
	if err := cA.Run(vA); err != nil {
		t.Fatal(err)
	}
	last := f.last()
	if last.vmcs != cA.VMCSAddr() || last.launched || cA.CPU() != 1 {
		t.Errorf("first run on cpu 1: VMCS %#x, VMRESUME %v, bound to %d", last.vmcs, last.launched, cA.CPU())
	}
	if f.ptrlds != ptrlds+1 || b.current[1] != cA.VMCSAddr() || f.currentOn(1) != cA.VMCSAddr() || f.currentOn(0) != 0 {
		t.Errorf("after the first run on cpu 1: %d VMPTRLDs, current %#x/%#x", f.ptrlds-ptrlds, b.current, f.currentOn(1))
	}
	if !e.hostOn(cA, 1) {
		t.Errorf("host state not cpu 1's: GS %#x TR %#x GDTR %#x IDTR %#x", e.field(cA, HostGSBase),
			e.field(cA, HostTRBase), e.field(cA, HostGDTRBase), e.field(cA, HostIDTRBase))
	}
	if f.inveptOn[1] != 1 || f.invvpidOn[1] < 1 || f.inveptOn[0] != 0 {
		t.Errorf("flushes: INVEPT per cpu %v, INVVPID per cpu %v", f.inveptOn[:2], f.invvpidOn[:2])
	}

	// vCPU B on CPU 0, then A again on CPU 1: each CPU keeps its own
	// current VMCS, so neither needs a VMPTRLD.
	f.switchTo(0)
	if err := cB.Run(vB); err != nil || cB.CPU() != 0 || !e.hostOn(cB, 0) {
		t.Fatalf("vCPU B on cpu 0: %v, bound to %d", err, cB.CPU())
	}
	if b.current[0] != cB.VMCSAddr() || b.current[1] != cA.VMCSAddr() {
		t.Errorf("current per CPU %#x", b.current[:2])
	}
	f.switchTo(1)
	ptrlds = f.ptrlds
	cA.Run(vA)
	if last := f.last(); last.vmcs != cA.VMCSAddr() || !last.launched || f.ptrlds != ptrlds {
		t.Errorf("second run of A: VMCS %#x, VMRESUME %v, %d VMPTRLDs", last.vmcs, last.launched, f.ptrlds-ptrlds)
	}

	// A on the wrong CPU: refused, nothing touched.
	f.switchTo(0)
	enters, ptrlds, writes := f.enters, f.ptrlds, f.vmcs(cA.VMCSAddr()).vals
	vA.Regs.RIP = 0x5555
	err := cA.Run(vA)
	var wrong *WrongCPUError
	if !errors.As(err, &wrong) || wrong.Bound != 1 || wrong.On != 0 || !strings.Contains(err.Error(), "bound to host cpu 1 entered on cpu 0") {
		t.Errorf("Run on the wrong CPU = %v", err)
	}
	if f.enters != enters || f.ptrlds != ptrlds || f.vmcs(cA.VMCSAddr()).vals != writes || b.current[0] != cB.VMCSAddr() {
		t.Error("a refused Run touched a VMCS")
	}
	s := vmm.SRegs{CR0: 0x1234}
	cA.GetSRegs(&s)
	cA.RequestInterruptWindow(true)
	if s.CR0 != 0x1234 || f.vmcs(cA.VMCSAddr()).vals != writes || f.ptrlds != ptrlds {
		t.Error("GetSRegs or RequestInterruptWindow on the wrong CPU touched the VMCS")
	}
	cA.RequestInterruptWindow(false)

	// A new vCPU built on CPU 1 while A is current there leaves A current.
	f.switchTo(1)
	_, vC, cC := e.addVCPU(t, goodReal())
	if f.currentOn(1) != cA.VMCSAddr() || b.current[1] != cA.VMCSAddr() {
		t.Errorf("building on cpu 1 changed its current VMCS to %#x", f.currentOn(1))
	}
	ptrlds = f.ptrlds
	cA.Run(vA)
	if last := f.last(); last.vmcs != cA.VMCSAddr() || !last.launched || f.ptrlds != ptrlds {
		t.Error("A lost its VMCS to the new vCPU")
	}
	_ = vC

	// Close from CPU 0 clears A on CPU 1 and B on CPU 0; C never ran and
	// is active nowhere.
	f.switchTo(0)
	cA.Close()
	if f.lastClear != cA.VMCSAddr() || f.lastClearOn != 1 || b.current[1] != 0 || f.currentOn(1) != 0 || f.on != 0 {
		t.Errorf("Close of A: VMCLEAR of %#x on cpu %d, current on cpu 1 %#x", f.lastClear, f.lastClearOn, b.current[1])
	}
	f.switchTo(1)
	cB.Close()
	if f.lastClear != cB.VMCSAddr() || f.lastClearOn != 0 || b.current[0] != 0 {
		t.Errorf("Close of B: VMCLEAR of %#x on cpu %d", f.lastClear, f.lastClearOn)
	}
	clears := f.clears
	cC.Close()
	if f.clears != clears {
		t.Error("Close cleared a VMCS that was active nowhere")
	}
	if got := e.host.Frames.FreeCount(); got != e.free-3*1024 {
		t.Errorf("%d frames leaked", e.free-3*1024-got)
	}
}

// TestSMPRefusals: a vCPU cannot be built or first run on a CPU outside
// VMX operation, and a VMCS that cannot be cleared on its own CPU keeps
// its pages rather than being cleared elsewhere.
func TestSMPRefusals(t *testing.T) {
	e := newSMPEnv(t, 3, 0, 1) // VMXON failed (or never ran) on cpu 2
	f, b := e.f, e.b

	f.switchTo(2)
	ram, hpa, _ := e.host.AllocPages(16)
	vm := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa), Host: e.host}
	if _, err := b.NewVCPU(vm, &vmm.VCPU{VM: vm, SRegs: goodProt()}); err == nil || !strings.Contains(err.Error(), "not in VMX operation") {
		t.Errorf("NewVCPU on cpu 2 = %v", err)
	}
	if e.host.Frames.FreeCount() != e.free-16 {
		t.Error("a refused vCPU kept frames")
	}

	f.switchTo(0)
	_, v, c := e.addVCPU(t, goodProt())
	f.switchTo(2)
	if err := c.Run(v); err == nil || !strings.Contains(err.Error(), "cpu 2, which is not in VMX operation") || c.CPU() != -1 {
		t.Errorf("first Run on cpu 2 = %v (bound to %d)", err, c.CPU())
	}
	f.switchTo(1)
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	if err := c.Run(v); err != nil || c.CPU() != 1 {
		t.Fatalf("Run on cpu 1 = %v", err)
	}

	// Without OnCPU, Close on another CPU may not VMCLEAR: the VMCS's
	// pages stay allocated (its CPU may still write them back).
	b.OnCPU = nil
	f.switchTo(0)
	free := e.host.Frames.FreeCount()
	clears := f.clears
	c.Close()
	if f.clears != clears || f.currentOn(1) != c.VMCSAddr() {
		t.Error("Close cleared the VMCS off its CPU")
	}
	if !e.host.Frames.IsAllocated(c.VMCSAddr()) || e.host.Frames.FreeCount() == free {
		t.Error("Close freed the VMCS it could not clear, or kept the VM's EPT and bitmaps")
	}
}
