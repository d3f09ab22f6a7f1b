package vmx

import (
	"encoding/binary"
	"strings"
	"testing"

	"juice/vmm"
)

func exitDetail(e *vmm.Exit) string { return string(e.Detail[:e.DetailLen]) }

func TestNewNamesWhatIsMissing(t *testing.T) {
	host := testHost(t, 4*mib)
	good := bochsMSRs()
	goodCaps := Decode(CPUID1ECXVMX, &good)
	noINVEPT := good
	noINVEPT.EPTVPIDCap &^= EPTCapINVEPT | EPTCapINVEPTCtx | EPTCapINVEPTAll
	noTrue := good
	noTrue.Basic &^= BasicTrueControls
	for _, c := range []struct {
		name string
		caps Caps
		m    MSRs
		want string
	}{
		{"no VMX", Caps{}, good, "no VT-x"},
		{"firmware", Caps{Present: true, DisabledByFirmware: true}, good, "disabled by firmware"},
		{"no EPT", Caps{Present: true, VMCSRevision: 2, VMCSSize: 4096}, good, "no EPT"},
		{"big VMCS", Caps{Present: true, EPT: true, EPT4Level: true, EPTWriteBack: true, VMCSSize: 8192}, good, "more than a page"},
		{"no INVEPT", Decode(CPUID1ECXVMX, &noINVEPT), noINVEPT, "INVEPT"},
		{"CR3 exiting forced", Decode(CPUID1ECXVMX, &noTrue), noTrue, `cannot disable "CR3-load exiting"`},
	} {
		m := c.m
		if _, err := NewWithMSRs(c.caps, &m, host); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewWithMSRs = %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if _, err := NewWithMSRs(goodCaps, &good, nil); err == nil || !strings.Contains(err.Error(), "host memory") {
		t.Errorf("NewWithMSRs without a host: %v", err)
	}
	if _, err := NewWithMSRs(goodCaps, nil, host); err == nil {
		t.Error("NewWithMSRs without MSRs succeeded")
	}
	// New refuses before reading any MSR (which would fault on a CPU
	// without VMX).
	if _, err := New(Caps{}, host); err == nil || !strings.Contains(err.Error(), "no VT-x") {
		t.Errorf("New(no VMX) = %v", err)
	}
	b, err := NewWithMSRs(goodCaps, &good, host)
	if err != nil || b.Name() != "vmx" {
		t.Fatalf("NewWithMSRs: %v", err)
	}
	want, _ := ChooseControls(&good, Options{})
	if b.Controls != want || !b.Controls.VPID() || b.EPT != (EPTOptions{Page2M: true, Page1G: true}) {
		t.Errorf("controls %+v, EPT %+v", b.Controls, b.EPT)
	}
	// Without INVVPID, VPIDs cannot be flushed: the backend runs without.
	noINVVPID := good
	noINVVPID.EPTVPIDCap &^= VPIDCapINVVPID | VPIDCapINVVPIDSingle | VPIDCapINVVPIDAll
	b, err = NewWithMSRs(Decode(CPUID1ECXVMX, &noINVVPID), &noINVVPID, host)
	if err != nil || b.Controls.VPID() {
		t.Errorf("without INVVPID: %v, VPID %v", err, err == nil && b.Controls.VPID())
	}
}

func TestEnable(t *testing.T) {
	m := bochsMSRs()
	caps := Decode(CPUID1ECXVMX, &m)
	newB := func(t *testing.T) (*Backend, *hostStubs, *fakeCPU, *vmm.Host) {
		host := testHost(t, 4*mib)
		f := newFakeCPU(t, host, caps.VMCSRevision)
		f.install(t)
		b, err := NewWithMSRs(caps, &m, host)
		if err != nil {
			t.Fatal(err)
		}
		return b, stubHost(b), f, host
	}

	t.Run("unlocked", func(t *testing.T) {
		b, h, f, host := newB(t)
		free := host.Frames.FreeCount()
		if err := b.Enable(); err != nil {
			t.Fatal(err)
		}
		if got := h.msr[MSRFeatureControl]; got != FeatureControlLock|FeatureControlVMXOutsideSMX {
			t.Errorf("IA32_FEATURE_CONTROL = %#x", got)
		}
		if h.cr0 != hostCR0|CR0NE {
			t.Errorf("CR0 = %#x, want NE added", h.cr0)
		}
		if h.cr4 != hostCR4|CR4VMXE {
			t.Errorf("CR4 = %#x, want VMXE added", h.cr4)
		}
		rev, _ := host.Mem.Load32(f.vmxonPA)
		if f.vmxonPA == 0 || rev != caps.VMCSRevision || host.Frames.FreeCount() != free-1 {
			t.Errorf("VMXON region %#x, revision %#x", f.vmxonPA, rev)
		}
		// A second VMXON on the same CPU fails and gives its page back.
		if err := b.Enable(); err == nil || host.Frames.FreeCount() != free-1 {
			t.Errorf("second Enable: %v, free %d", err, host.Frames.FreeCount())
		}
	})
	t.Run("locked on", func(t *testing.T) {
		b, h, _, _ := newB(t)
		h.msr[MSRFeatureControl] = FeatureControlLock | FeatureControlVMXOutsideSMX
		h.cr0 |= CR0NE
		if err := b.Enable(); err != nil || h.wrmsrs != 0 {
			t.Errorf("Enable: %v, %d WRMSRs", err, h.wrmsrs)
		}
	})
	for _, c := range []struct {
		name string
		set  func(h *hostStubs)
		want string
	}{
		{"locked off", func(h *hostStubs) { h.msr[MSRFeatureControl] = FeatureControlLock | FeatureControlVMXInSMX }, "disabled by firmware"},
		{"paging off", func(h *hostStubs) { h.cr0 &^= CR0PG }, "CR0"},
		{"CR0 bit 32", func(h *hostStubs) { h.cr0 |= 1 << 32 }, "CR0"},
		{"CR4 bit 22", func(h *hostStubs) { h.cr4 |= 1 << 31 }, "CR4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, h, f, _ := newB(t)
			c.set(h)
			if err := b.Enable(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Enable = %v, want an error naming %q", err, c.want)
			}
			if f.vmxonPA != 0 {
				t.Error("VMXON ran")
			}
		})
	}
	t.Run("NewVCPU before Enable", func(t *testing.T) {
		b, _, _, host := newB(t)
		ram, hpa, _ := host.AllocPages(16)
		vm := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa), Host: host}
		v := &vmm.VCPU{VM: vm, SRegs: goodProt()}
		if _, err := b.NewVCPU(vm, v); err == nil || !strings.Contains(err.Error(), "Enable") {
			t.Errorf("NewVCPU = %v", err)
		}
	})
}

func TestNewVCPUSetsUpTheVMCS(t *testing.T) {
	m := bochsMSRs()
	s := goodProt()
	e := newBackendEnv(t, m)
	ram, hpa, _ := e.host.AllocPages(1024)
	vm := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa), Host: e.host}
	v := &vmm.VCPU{VM: vm, SRegs: s, SRegsDirty: true, MSRDirty: true,
		Regs: vmm.Regs{RIP: 0x10_0000, RSP: 0x8000, RFLAGS: 0},
		MSR:  vmm.MSRState{PAT: 0x0606_0606_0606_0606, STAR: 0x23_0010 << 32, LSTAR: 0xffff_ffff_8100_0000, KernelGSBase: 0x77, SysenterCS: 0x10, SysenterEIP: 0xc000_0000, TSCOffset: 1234}}
	be, err := e.b.NewVCPU(vm, v)
	if err != nil {
		t.Fatal(err)
	}
	c := be.(*VCPU)
	f := e.f
	pa := c.VMCSAddr()
	vmcs := f.vmcs(pa)
	if rev, _ := e.host.Mem.Load32(pa); rev != e.b.Caps.VMCSRevision || pa&0xfff != 0 {
		t.Errorf("VMCS at %#x has revision %#x", pa, rev)
	}
	// Filled, then cleared: active on no CPU until its first Run, and the
	// CPU has no current VMCS, as before.
	if f.lastClear != pa || vmcs.active != -1 || vmcs.launched || f.cur != nil || e.b.current[0] != 0 || c.CPU() != -1 {
		t.Error("the new VMCS was not cleared after setup, or stayed current")
	}
	fld := func(enc Encoding) uint64 {
		if !vmcs.written[enc] {
			t.Errorf("%s was never written", enc.Name())
		}
		return vmcs.vals[enc]
	}

	// Controls: every word within its capability MSR, with juice's needs.
	ctl := e.b.Controls
	for k, enc := range [numControls]Encoding{PinControls, ProcControls, Proc2Controls, ExitControls, EntryControls} {
		w := uint32(fld(enc))
		cm := m.capMSR(Control(k))
		if w&uint32(cm) != uint32(cm) || w&^uint32(cm>>32) != 0 {
			t.Errorf("%v controls %#x outside their capability MSR %#x", Control(k), w, cm)
		}
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"external-interrupt and NMI exiting", fld(PinControls)&(PinExternalInterruptExiting|PinNMIExiting) == PinExternalInterruptExiting|PinNMIExiting},
		{"HLT, MWAIT, MONITOR exiting", fld(ProcControls)&(ProcHLTExiting|ProcMWAITExiting|ProcMONITORExiting) == ProcHLTExiting|ProcMWAITExiting|ProcMONITORExiting},
		{"I/O and MSR bitmaps", fld(ProcControls)&(ProcUseIOBitmaps|ProcUseMSRBitmaps) == ProcUseIOBitmaps|ProcUseMSRBitmaps},
		{"TPR shadow", fld(ProcControls)&ProcUseTPRShadow != 0},
		{"no interrupt window yet", fld(ProcControls)&ProcInterruptWindowExiting == 0},
		{"no CR3 exiting", fld(ProcControls)&(ProcCR3LoadExiting|ProcCR3StoreExiting) == 0},
		{"EPT, VPID, unrestricted guest, PLE", fld(Proc2Controls) == Proc2EnableEPT|Proc2EnableVPID|Proc2UnrestrictedGuest|Proc2PauseLoopExiting},
		{"64-bit host", fld(ExitControls)&ExitCtlHostAddrSpaceSize != 0},
		{"entry: 32-bit guest", fld(EntryControls)&EntryCtlIA32eModeGuest == 0},
		{"exception bitmap #DB #UD #AC #MC", fld(ExceptionBitmap) == 1<<1|1<<6|1<<17|1<<18},
		{"CR3-target count 0", fld(CR3TargetCount) == 0},
		{"VMCS link pointer", fld(VMCSLinkPointer) == ^uint64(0)},
		{"EPTP", fld(EPTPointer) == c.EPT().EPTP() && c.EPT().Root() != 0},
		{"VPID", fld(VirtualProcessorID) == uint64(c.VPID()) && c.VPID() != 0},
		{"TPR threshold", fld(TPRThreshold) == 0},
		{"PLE", fld(PLEGap) == pleGap && fld(PLEWindow) == pleWindow},
		{"no event", fld(EntryIntrInfo) == 0},
		// Host state.
		{"host CR0", fld(HostCR0) == hostCR0|CR0NE},
		{"host CR3", fld(HostCR3) == hostCR3},
		{"host CR4", fld(HostCR4) == hostCR4|CR4VMXE},
		{"host CS", fld(HostCSSelector) == 0x08},
		{"host SS DS ES", fld(HostSSSelector) == 0x10 && fld(HostDSSelector) == 0x10 && fld(HostESSelector) == 0x10},
		{"host FS GS", fld(HostFSSelector) == 0 && fld(HostGSSelector) == 0},
		{"host TR", fld(HostTRSelector) == 0x18},
		{"host FS base", fld(HostFSBase) == hostFS},
		{"host GS base", fld(HostGSBase) == hostGS},
		{"host TR base", fld(HostTRBase) == hostTSSBase},
		{"host GDTR IDTR", fld(HostGDTRBase) == hostGDT && fld(HostIDTRBase) == hostIDT},
		{"host PAT EFER", fld(HostIA32PAT) == hostPAT && fld(HostIA32EFER) == hostEFER},
		{"host SYSENTER", fld(HostIA32SysenterCS) == 0 && fld(HostIA32SysenterESP) == 0 && fld(HostIA32SysenterEIP) == 0},
		// Guest state.
		{"guest RIP RSP RFLAGS", fld(GuestRIP) == 0x10_0000 && fld(GuestRSP) == 0x8000 && fld(GuestRFLAGS) == 2},
		{"guest CR0 with NE", fld(GuestCR0) == s.CR0|CR0NE && fld(CR0ReadShadow) == s.CR0},
		{"guest CR4 with VMXE", fld(GuestCR4) == CR4VMXE && fld(CR4ReadShadow) == 0},
		{"CR0 mask", fld(CR0GuestHostMask) == ctl.CR0Mask() && ctl.CR0Mask()&CR0NE != 0},
		{"guest CS", fld(GuestCSSelector) == uint64(s.CS.Selector) && fld(GuestCSAccessRights) == uint64(AccessRights(s.CS.Attr))},
		{"guest TR", fld(GuestTRAccessRights) == uint64(AccessRights(s.TR.Attr))},
		{"guest EFER", fld(GuestIA32EFER) == 0},
		{"guest PAT from MSRState", fld(GuestIA32PAT) == 0x0606_0606_0606_0606},
		{"guest SYSENTER", fld(GuestIA32SysenterCS) == 0x10 && fld(GuestIA32SysenterEIP) == 0xc000_0000},
		{"TSC offset", fld(TSCOffset) == 1234},
		{"guest DR7 DEBUGCTL", fld(GuestDR7) == 0x400 && fld(GuestIA32DebugCtl) == 0},
		{"active, nothing blocked", fld(GuestActivityState) == 0 && fld(GuestInterruptibility) == 0 && fld(GuestPendingDebugExcept) == 0},
		{"SRegsDirty, MSRDirty cleared", !v.SRegsDirty && !v.MSRDirty},
		{"no flush before the vCPU has a CPU", f.invepts == 0 && f.invvpids == 0},
	} {
		if !c.ok {
			t.Errorf("VMCS: %s wrong", c.name)
		}
	}

	// The EPT maps the VM's RAM.
	if got, _, ok := c.EPT().Lookup(0x1234); !ok || got != hpa+0x1234 {
		t.Errorf("EPT maps 0x1234 to %#x (%v)", got, ok)
	}
	// The bitmaps intercept everything.
	for _, r := range []struct {
		enc Encoding
		n   uint64
	}{{IOBitmapAAddr, IOBitmapSize}, {IOBitmapBAddr, IOBitmapSize}, {MSRBitmapAddr, MSRBitmapSize}, {VirtualAPICPageAddr, 4096}} {
		a := fld(r.enc)
		b, ok := e.host.Mem.Bytes(a, r.n)
		if !ok || a&0xfff != 0 || !e.host.Frames.IsAllocated(a) {
			t.Fatalf("%s %#x is not a host page", r.enc.Name(), a)
		}
		if r.enc == VirtualAPICPageAddr {
			continue
		}
		for i, x := range b {
			if x != 0xff {
				t.Errorf("%s: byte %d is %#x", r.enc.Name(), i, x)
				break
			}
		}
	}
	// The MSR lists.
	entryList, exitStore, exitLoad := fld(EntryMSRLoadAddr), fld(ExitMSRStoreAddr), fld(ExitMSRLoadAddr)
	if fld(EntryMSRLoadCount) != 5 || fld(ExitMSRLoadCount) != 5 || fld(ExitMSRStoreCount) != 1 ||
		exitStore != entryList || entryList&15 != 0 || exitLoad&15 != 0 {
		t.Fatalf("MSR lists: entry load %#x/%d, exit store %#x/%d, exit load %#x/%d", entryList, fld(EntryMSRLoadCount),
			exitStore, fld(ExitMSRStoreCount), exitLoad, fld(ExitMSRLoadCount))
	}
	readList := func(a uint64, n int) map[uint32]uint64 {
		out := map[uint32]uint64{}
		for i := 0; i < n; i++ {
			b, ok := e.host.Mem.Bytes(a+uint64(16*i), 16)
			if !ok {
				t.Fatalf("MSR list at %#x outside host memory", a)
			}
			idx, resv := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if resv != 0 || idx == MSRFSBase || idx == MSRGSBase {
				t.Errorf("MSR list entry %d: %#x/%#x cannot be loaded", i, idx, resv)
			}
			out[idx] = binary.LittleEndian.Uint64(b[8:])
		}
		return out
	}
	if got, want := readList(entryList, 5), map[uint32]uint64{MSRKernelGSBase: 0x77, MSRSTAR: 0x23_0010 << 32,
		MSRLSTAR: 0xffff_ffff_8100_0000, MSRCSTAR: 0, MSRSFMASK: 0}; !mapsEqual(got, want) {
		t.Errorf("guest MSR list %#x, want %#x", got, want)
	}
	if got, want := readList(exitLoad, 5), map[uint32]uint64{MSRKernelGSBase: 0x5000, MSRSTAR: hostSTAR,
		MSRLSTAR: hostLSTAR, MSRCSTAR: 0, MSRSFMASK: hostSFMASK}; !mapsEqual(got, want) {
		t.Errorf("host MSR list %#x, want %#x", got, want)
	}
	if got := readList(exitStore, 1); len(got) != 1 || got[MSRKernelGSBase] != 0x77 {
		t.Errorf("exit MSR-store list %#x", got)
	}

	// A second vCPU of the same VM shares the EPT and bitmaps but not the
	// VMCS or VPID.
	v2 := &vmm.VCPU{VM: vm, ID: 1, SRegs: s, SRegsDirty: true}
	be2, err := e.b.NewVCPU(vm, v2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := be2.(*VCPU)
	if c2.EPT() != c.EPT() || e.field(c2, IOBitmapAAddr) != fld(IOBitmapAAddr) ||
		c2.VMCSAddr() == pa || c2.VPID() == c.VPID() {
		t.Error("second vCPU: shared state wrong")
	}
	c2.Close()
	c.Close()
	if e.host.Frames.FreeCount() != e.free-1024 {
		t.Errorf("%d frames leaked", e.free-1024-e.host.Frames.FreeCount())
	}
}

func mapsEqual(a, b map[uint32]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNewVCPURefusesBadState(t *testing.T) {
	e := newBackendEnv(t, bochsMSRs())
	s := goodProt()
	s.CS.Attr = vmm.SegP | vmm.SegS | 0x3 // a data segment in CS
	ram, hpa, _ := e.host.AllocPages(16)
	vm := &vmm.VM{Mem: vmm.NewGuestMemory(ram, hpa), Host: e.host}
	_, err := e.b.NewVCPU(vm, &vmm.VCPU{VM: vm, SRegs: s})
	if err == nil || !strings.Contains(err.Error(), "guest CS access rights") {
		t.Errorf("NewVCPU = %v", err)
	}
	if e.host.Frames.FreeCount() != e.free-16 {
		t.Error("a refused vCPU kept frames")
	}
	// A failing VMWRITE during setup is named and leaks nothing.
	e.f.failWrite, e.f.failing = HostTRBase, true
	_, err = e.b.NewVCPU(vm, &vmm.VCPU{VM: vm, SRegs: goodProt()})
	if err == nil || !strings.Contains(err.Error(), "VMWRITE of host TR base") {
		t.Errorf("NewVCPU with a failing VMWRITE = %v", err)
	}
	if e.host.Frames.FreeCount() != e.free-16 || e.b.current[0] != 0 || e.f.cur != nil {
		t.Error("a failed vCPU kept frames or its VMCS current")
	}
}

func TestRunRoundTrip(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	in := vmm.Regs{RAX: 1, RBX: 2, RCX: 3, RDX: 4, RSI: 5, RDI: 6, RBP: 7, RSP: 8, R8: 9, R9: 10, R10: 11,
		R11: 12, R12: 13, R13: 14, R14: 15, R15: 16, RIP: 0x2000, RFLAGS: 0x202}
	v.Regs = in
	v.SRegs.CR2 = 0xdead_0000
	v.SRegsDirty = true
	e.f.exit = func(f *fakeCPU, regs *vmm.Regs, cr2 *uint64) Status {
		vm := f.cur
		*regs = vmm.Regs{RAX: 0x41, RBX: 0x42, RCX: 0x43, RDX: 0x44, RSI: 0x45, RDI: 0x46, RBP: 0x47,
			R8: 0x48, R9: 0x49, R10: 0x4a, R11: 0x4b, R12: 0x4c, R13: 0x4d, R14: 0x4e, R15: 0x4f}
		vm.vals[GuestRIP], vm.vals[GuestRSP], vm.vals[GuestRFLAGS] = 0x3000, 0x7000, 0x246
		vm.vals[ExitReason], vm.vals[ExitInstrLen] = ReasonCPUID, 2
		*cr2 = 0xbeef_0000
		// The VM-exit MSR-store list: the guest's KERNEL_GS_BASE.
		e.host.Mem.Store64(vm.vals[ExitMSRStoreAddr]+8, 0x1234_5678)
		return Succeeded
	}
	for i := 0; i < 3; i++ {
		v.SRegsValid = true
		if err := c.Run(v); err != nil {
			t.Fatal(err)
		}
		got := e.f.last()
		if i == 0 {
			want := in
			if got.regs != want || got.rip != 0x2000 || got.rsp != 8 || got.rflags != 0x202 || got.cr2 != 0xdead_0000 {
				t.Errorf("entry state %+v rip %#x rsp %#x rflags %#x cr2 %#x", got.regs, got.rip, got.rsp, got.rflags, got.cr2)
			}
		}
		if got.launched != (i > 0) {
			t.Errorf("entry %d: launched = %v (VMLAUNCH first, then VMRESUME)", i, got.launched)
		}
		want := vmm.Regs{RAX: 0x41, RBX: 0x42, RCX: 0x43, RDX: 0x44, RSI: 0x45, RDI: 0x46, RBP: 0x47, RSP: 0x7000,
			R8: 0x48, R9: 0x49, R10: 0x4a, R11: 0x4b, R12: 0x4c, R13: 0x4d, R14: 0x4e, R15: 0x4f, RIP: 0x3000, RFLAGS: 0x246}
		if v.Regs != want {
			t.Errorf("after exit %d: regs %+v", i, v.Regs)
		}
		if v.Exit.Reason != vmm.ExitCPUID || v.Exit.InstrLen != 2 || v.Exit.Raw != ReasonCPUID {
			t.Errorf("exit %+v", v.Exit)
		}
		if v.SRegsValid || v.MSR.KernelGSBase != 0x1234_5678 {
			t.Errorf("SRegsValid %v, KernelGSBase %#x", v.SRegsValid, v.MSR.KernelGSBase)
		}
	}
	var s vmm.SRegs
	c.GetSRegs(&s)
	if s.CR2 != 0xbeef_0000 || s.CS != v.SRegs.CS || s.CR0 != v.SRegs.CR0 || s.TR != v.SRegs.TR {
		t.Errorf("GetSRegs: %+v", s)
	}
	// CR8 lives in the virtual-APIC page.
	v.SRegs.CR8 = 9
	v.SRegsDirty = true
	c.Run(v)
	c.GetSRegs(&s)
	if s.CR8 != 9 || c.vapic[vapicTPR] != 0x90 {
		t.Errorf("CR8 %d, TPR %#x", s.CR8, c.vapic[vapicTPR])
	}
	// MSRDirty reloads the guest list.
	v.MSR.LSTAR, v.MSRDirty = 0xffff_ffff_8200_0000, true
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	c.Run(v)
	if got := binary.LittleEndian.Uint64(c.misc[guestMSRs+2*msrEntry+8:]); got != 0xffff_ffff_8200_0000 || v.MSRDirty {
		t.Errorf("guest LSTAR in the list %#x", got)
	}
}

func TestRunInjectsEvents(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	for _, tc := range []struct {
		name     string
		ev       vmm.Event
		realMode bool
		zeroLen  bool
		info     uint32
		err, len uint64
		rip      uint64
	}{
		{name: "interrupt", ev: vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30}, info: IntrValid | 0x30},
		{name: "NMI", ev: vmm.Event{Kind: vmm.EventNMI, Vector: 2}, info: IntrValid | IntrTypeNMI<<8 | 2},
		{name: "#GP", ev: vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x18},
			info: IntrValid | IntrTypeHWExcept<<8 | IntrErrValid | 13, err: 0x18},
		{name: "#GP real mode", realMode: true, ev: vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x18},
			info: IntrValid | IntrTypeHWExcept<<8 | 13},
		{name: "INT3 zero length", zeroLen: true, ev: vmm.Event{Kind: vmm.EventException, Vector: 3},
			info: IntrValid | IntrTypeSoftExcept<<8 | 3},
		{name: "INT3 as hardware", ev: vmm.Event{Kind: vmm.EventException, Vector: 3},
			info: IntrValid | IntrTypeHWExcept<<8 | 3},
		{name: "INT 0x80 zero length", zeroLen: true, ev: vmm.Event{Kind: vmm.EventSoftInt, Vector: 0x80},
			info: IntrValid | IntrTypeSoftInt<<8 | 0x80},
		{name: "INT 0x80 re-aimed", ev: vmm.Event{Kind: vmm.EventSoftInt, Vector: 0x80},
			info: IntrValid | IntrTypeSoftInt<<8 | 0x80, len: 2, rip: 0x1000 - 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.b.zeroLenInjection = tc.zeroLen
			v.SRegs = goodProt()
			if tc.realMode {
				v.SRegs = goodReal()
			}
			v.SRegsDirty = true
			v.Regs.RIP, v.Regs.RFLAGS = 0x1000, 0x202
			e.setField(c, EntryInstrLen, 7)
			v.Pending, v.HasPending = tc.ev, true
			if err := c.Run(v); err != nil {
				t.Fatal(err)
			}
			got := e.f.last()
			want := tc.rip
			if want == 0 {
				want = 0x1000
			}
			if uint32(got.intrInfo) != tc.info || (tc.info&IntrErrValid != 0 && got.errCode != tc.err) || got.rip != want {
				t.Errorf("injected %#x err %#x at %#x, want %#x err %#x at %#x", got.intrInfo, got.errCode, got.rip, tc.info, tc.err, want)
			}
			if soft := (tc.info>>8)&7 == IntrTypeSoftInt || (tc.info>>8)&7 == IntrTypeSoftExcept; soft && got.len != tc.len {
				t.Errorf("instruction length %d, want %d", got.len, tc.len)
			}
			if v.HasPending {
				t.Error("the event is still pending after its delivery")
			}
		})
	}

	// An event VM entry would refuse is reported without entering.
	n := e.f.enters
	v.Pending, v.HasPending = vmm.Event{Kind: vmm.EventNMI, Vector: 3}, true
	c.Run(v)
	if e.f.enters != n || v.Exit.Reason != vmm.ExitInvalid || !strings.Contains(exitDetail(&v.Exit), "cannot be injected") {
		t.Errorf("bad event: %d entries, exit %v %q", e.f.enters-n, v.Exit.Reason, exitDetail(&v.Exit))
	}

	// An interrupted delivery is queued again; INTn is not (the guest
	// re-executes it).
	for _, tc := range []struct {
		idt, idtErr uint32
		want        vmm.Event
		requeued    bool
	}{
		{IntrValid | 0x41, 0, vmm.Event{Kind: vmm.EventExtInt, Vector: 0x41}, true},
		{IntrValid | IntrTypeHWExcept<<8 | IntrErrValid | 14, 6, vmm.Event{Kind: vmm.EventException, Vector: 14, HasErr: true, ErrCode: 6}, true},
		{IntrValid | IntrTypeSoftInt<<8 | 0x80, 0, vmm.Event{}, false},
		{IntrValid | IntrTypeSoftExcept<<8 | 3, 0, vmm.Event{}, false},
	} {
		v.HasPending = false
		e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
			f.cur.vals[ExitReason] = ReasonEPTViolation
			f.cur.vals[ExitQualification] = EPTQualWrite
			f.cur.vals[GuestPhysicalAddr] = 0xfee0_0000
			f.cur.vals[IDTVectoringInfo] = uint64(tc.idt)
			f.cur.vals[IDTVectoringError] = uint64(tc.idtErr)
			return Succeeded
		}
		c.Run(v)
		if v.HasPending != tc.requeued || (tc.requeued && v.Pending != tc.want) {
			t.Errorf("IDT vectoring %#x: pending %v %+v", tc.idt, v.HasPending, v.Pending)
		}
		if v.Exit.GPA != 0xfee0_0000 {
			t.Errorf("GPA %#x", v.Exit.GPA)
		}
	}
	// A failed entry keeps the event.
	v.Pending, v.HasPending = vmm.Event{Kind: vmm.EventExtInt, Vector: 0x31}, true
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status { return f.failValid(ErrEntryInvalidHostState) }
	c.Run(v)
	if !v.HasPending || v.Pending.Vector != 0x31 || v.Exit.Reason != vmm.ExitInvalid {
		t.Errorf("after a failed entry: pending %v, exit %v", v.HasPending, v.Exit.Reason)
	}
}

func TestICEBPMovesRIP(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		f.cur.vals[ExitReason] = ReasonExceptionNMI
		f.cur.vals[ExitIntrInfo] = IntrValid | IntrTypePrivSoftEx<<8 | 1
		f.cur.vals[ExitInstrLen] = 1
		return Succeeded
	}
	v.Regs.RIP = 0x1000
	c.Run(v)
	if v.Exit.Reason != vmm.ExitException || v.Exit.Vector != 1 || v.Regs.RIP != 0x1001 {
		t.Errorf("ICEBP: exit %v vector %d, RIP %#x", v.Exit.Reason, v.Exit.Vector, v.Regs.RIP)
	}
	// A hardware #DB (single step) leaves RIP alone.
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		f.cur.vals[ExitReason] = ReasonExceptionNMI
		f.cur.vals[ExitIntrInfo] = IntrValid | IntrTypeHWExcept<<8 | 1
		f.cur.vals[GuestRIP] = 0x2000
		return Succeeded
	}
	c.Run(v)
	if v.Regs.RIP != 0x2000 {
		t.Errorf("#DB trap: RIP %#x", v.Regs.RIP)
	}
	// A host NMI in the guest is the host's: nothing for the core to do.
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		f.cur.vals[ExitReason] = ReasonExceptionNMI
		f.cur.vals[ExitIntrInfo] = IntrValid | IntrTypeNMI<<8 | 2
		return Succeeded
	}
	c.Run(v)
	if v.Exit.Reason != vmm.ExitExtIntr || v.HasPending {
		t.Errorf("host NMI: exit %v, pending %v", v.Exit.Reason, v.HasPending)
	}
}

// crQual is a MOV-to-CR exit qualification.
func crQual(cr, gpr uint8) uint64 { return uint64(cr) | uint64(gpr)<<8 }

// exits plays a sequence of exit writers, one per entry (the last repeats).
func exits(ws ...func(*fakeCPU, *vmm.Regs, *uint64) Status) func(*fakeCPU, *vmm.Regs, *uint64) Status {
	i := 0
	return func(f *fakeCPU, r *vmm.Regs, cr2 *uint64) Status {
		w := ws[min(i, len(ws)-1)]
		i++
		return w(f, r, cr2)
	}
}

func TestCRAccessEmulation(t *testing.T) {
	t.Run("CR0.NE from real mode", func(t *testing.T) {
		e := newEnv(t, bochsMSRs(), goodReal())
		v, c := e.v, e.c
		v.Regs.RIP, v.Regs.RAX, v.Regs.RBX = 0x7c00, 0xffff_ffff_6000_0031, 0 // PE, ET, NE, CD, NW (upper half ignored)
		e.f.exit = exits(exitWith(ReasonCRAccess, crQual(0, 0), 3), exitWith(ReasonHLT, 0, 1))
		if err := c.Run(v); err != nil {
			t.Fatal(err)
		}
		if e.f.enters != 2 || v.Exit.Reason != vmm.ExitHLT {
			t.Fatalf("%d entries, exit %v: the CR write should be emulated in the backend", e.f.enters, v.Exit.Reason)
		}
		if e.f.last().rip != 0x7c03 {
			t.Errorf("re-entered at %#x, want past the 3-byte MOV", e.f.last().rip)
		}
		want := uint64(0x6000_0031)
		if e.field(c, CR0ReadShadow) != want || e.field(c, GuestCR0) != e.b.Controls.GuestCR0(want) {
			t.Errorf("shadow %#x, CR0 %#x", e.field(c, CR0ReadShadow), e.field(c, GuestCR0))
		}
		var s vmm.SRegs
		c.GetSRegs(&s)
		if s.CR0 != want {
			t.Errorf("guest sees CR0 %#x", s.CR0)
		}
	})
	t.Run("long mode via CR0.PG", func(t *testing.T) {
		s := goodProt()
		s.CR4 = CR4PAE
		s.EFER = EFERLME
		s.CR3 = 0x10_0000
		e := newEnv(t, bochsMSRs(), s)
		v, c := e.v, e.c
		v.Regs.R9 = 0x8000_0031 // PG, NE, ET, PE
		e.f.exit = exits(exitWith(ReasonCRAccess, crQual(0, 9), 4), exitWith(ReasonHLT, 0, 1))
		c.Run(v)
		if e.field(c, GuestIA32EFER) != EFERLME|EFERLMA || e.field(c, EntryControls)&EntryCtlIA32eModeGuest == 0 {
			t.Errorf("EFER %#x, entry controls %#x", e.field(c, GuestIA32EFER), e.field(c, EntryControls))
		}
		if e.f.invvpids < 2 {
			t.Error("paging changed without a VPID flush")
		}
	})
	t.Run("PAE paging loads the PDPTEs", func(t *testing.T) {
		s := goodProt()
		s.CR0 |= CR0PG
		s.CR3 = 0x2_0000
		e := newEnv(t, bochsMSRs(), s)
		v, c := e.v, e.c
		ram, _ := e.vm.Mem.Slice(0x2_0000, 32)
		for i := 0; i < 4; i++ {
			binary.LittleEndian.PutUint64(ram[8*i:], uint64(0x3_0001+0x1000*i))
		}
		v.Regs.RDX = CR4PAE
		e.f.exit = exits(exitWith(ReasonCRAccess, crQual(4, 2)|1<<6, 3), exitWith(ReasonHLT, 0, 1))
		// CR4 writes exit only for masked bits; say PAE's write did.
		c.Run(v)
		for i := 0; i < 4; i++ {
			if got := e.field(c, GuestPDPTE0+Encoding(2*i)); got != uint64(0x3_0001+0x1000*i) {
				t.Errorf("PDPTE%d = %#x", i, got)
			}
		}
		if e.field(c, CR4ReadShadow) != CR4PAE || e.field(c, GuestCR4) != CR4PAE|CR4VMXE {
			t.Errorf("CR4 shadow %#x field %#x", e.field(c, CR4ReadShadow), e.field(c, GuestCR4))
		}
	})
	t.Run("CR4.VMXE is #GP", func(t *testing.T) {
		e := newEnv(t, bochsMSRs(), goodProt())
		v, c := e.v, e.c
		v.Regs.RIP, v.Regs.RCX = 0x5000, CR4VMXE
		e.f.exit = exits(exitWith(ReasonCRAccess, crQual(4, 1), 3), exitWith(ReasonHLT, 0, 1))
		c.Run(v)
		got := e.f.last()
		if got.rip != 0x5000 || uint32(got.intrInfo) != IntrValid|IntrTypeHWExcept<<8|IntrErrValid|13 || got.errCode != 0 {
			t.Errorf("second entry at %#x with event %#x", got.rip, got.intrInfo)
		}
		if e.field(c, CR4ReadShadow) != 0 {
			t.Error("the refused write changed the shadow")
		}
	})
	t.Run("LMSW cannot clear PE", func(t *testing.T) {
		e := newEnv(t, bochsMSRs(), goodProt())
		v, c := e.v, e.c
		e.f.exit = exits(exitWith(ReasonCRAccess, uint64(CRAccessLMSW)<<4|0x8<<16, 3), exitWith(ReasonHLT, 0, 1))
		c.Run(v)
		if got := e.field(c, CR0ReadShadow); got != 0x11|cr0TS {
			t.Errorf("CR0 after LMSW %#x", got)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		e := newEnv(t, bochsMSRs(), goodProt())
		v, c := e.v, e.c
		v.Regs.RAX = 0x31
		e.f.exit = exitWith(ReasonCRAccess, crQual(0, 0), 3)
		c.Run(v)
		if e.f.enters != maxCRExits || v.Exit.Reason != vmm.ExitNone || v.Exit.Raw != ReasonCRAccess {
			t.Errorf("%d entries, exit %v", e.f.enters, v.Exit.Reason)
		}
	})
	t.Run("CR3 is not emulated", func(t *testing.T) {
		e := newEnv(t, bochsMSRs(), goodProt())
		v, c := e.v, e.c
		e.f.exit = exitWith(ReasonCRAccess, crQual(3, 0), 3)
		c.Run(v)
		if e.f.enters != 1 || v.Exit.Reason != vmm.ExitUnhandled {
			t.Errorf("%d entries, exit %v", e.f.enters, v.Exit.Reason)
		}
	})
	t.Run("real mode needs unrestricted guest", func(t *testing.T) {
		m := bochsMSRs()
		m.Procbased2 &^= uint64(Proc2UnrestrictedGuest) << 32
		s := goodProt()
		s.CR0 |= CR0PG
		e := newEnv(t, m, s)
		v, c := e.v, e.c
		v.Regs.RAX = 0x10 // clears PE and PG
		e.f.exit = exitWith(ReasonCRAccess, crQual(0, 0), 3)
		c.Run(v)
		if v.Exit.Reason != vmm.ExitUnhandled {
			t.Errorf("exit %v", v.Exit.Reason)
		}
	})
}

func TestEntryFailures(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c

	// Invalid controls: the detail names the bit.
	e.setField(c, PinControls, e.field(c, PinControls)|PinPostedInterrupts)
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status { return f.failValid(ErrEntryInvalidControl) }
	c.Run(v)
	if d := exitDetail(&v.Exit); v.Exit.Reason != vmm.ExitInvalid || v.Exit.Raw != 7 ||
		d != "VMLAUNCH failed: invalid controls: pin-based bit 7 must be 0 (process posted interrupts)" {
		t.Errorf("invalid controls: %v %q", v.Exit.Reason, d)
	}
	// Controls the MSRs allow: the SDM's text.
	e.setField(c, PinControls, uint64(e.b.Controls.Pin))
	c.Run(v)
	if d := exitDetail(&v.Exit); d != "VMLAUNCH failed: VM-instruction error 7 (VM entry with invalid control field(s))" {
		t.Errorf("invalid controls, none wrong: %q", d)
	}

	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status { return FailInvalid }
	c.Run(v)
	if d := exitDetail(&v.Exit); d != "VMLAUNCH failed: VMfailInvalid (no current VMCS)" {
		t.Errorf("VMfailInvalid: %q", d)
	}

	// Invalid guest state: the hardware says nothing more; the detail
	// names the field.
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		f.cur.vals[ExitReason] = ReasonEntryFailure | ReasonInvalidGuestState
		f.cur.vals[GuestTRAccessRights] = uint64(AccessRights(vmm.SegP | 0x9)) // an available TSS
		return Succeeded
	}
	v.Pending, v.HasPending = vmm.Event{Kind: vmm.EventExtInt, Vector: 0x20}, true
	v.Regs.RFLAGS = 0x202
	c.Run(v)
	if d := exitDetail(&v.Exit); v.Exit.Reason != vmm.ExitInvalid ||
		!strings.HasPrefix(d, "VM entry failed: invalid guest state: guest TR access rights: TR must be a busy TSS") {
		t.Errorf("invalid guest state: %v %q", v.Exit.Reason, d)
	}
	if !v.HasPending {
		t.Error("the event was lost with the failed entry")
	}
	// The VMCS is still not launched: the next entry is a VMLAUNCH.
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	c.Run(v)
	if e.f.last().launched || v.Exit.Reason != vmm.ExitHLT || v.HasPending {
		t.Errorf("after a failed VMLAUNCH: launched %v, exit %v", e.f.last().launched, v.Exit.Reason)
	}
	// Launched now: a failing VMRESUME says so.
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status { return f.failValid(ErrEntryInvalidHostState) }
	c.Run(v)
	if d := exitDetail(&v.Exit); d != "VMRESUME failed: VM-instruction error 8 (VM entry with invalid host-state field(s))" {
		t.Errorf("VMRESUME failure: %q", d)
	}

	// A bad state from the core is refused before entry.
	n := e.f.enters
	v.SRegs = goodProt()
	v.SRegs.SS.Attr = vmm.SegP | vmm.SegS | 0xb
	v.SRegsDirty = true
	c.Run(v)
	if d := exitDetail(&v.Exit); e.f.enters != n || !strings.HasPrefix(d, "invalid guest state: guest SS access rights") {
		t.Errorf("bad SRegs: %d entries, %q", e.f.enters-n, d)
	}
	// A failing VMWRITE is named.
	v.SRegs, v.SRegsDirty = goodProt(), true
	e.f.failWrite, e.f.failing = GuestRFLAGS, true
	c.Run(v)
	if d := exitDetail(&v.Exit); e.f.enters != n || d != "VMWRITE of guest RFLAGS failed" {
		t.Errorf("failed VMWRITE: %q", d)
	}
	e.f.failing = false
	c.Run(v)
	if e.f.enters != n+1 {
		t.Error("the failure stuck")
	}
}

func TestExplainControls(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	if err := e.c.bind(); err != nil { // as the first Run would
		t.Fatal(err)
	}
	var out vmm.Exit
	e.setField(e.c, Proc2Controls, e.field(e.c, Proc2Controls)|1<<22)
	if !e.c.explainControls(&out) {
		t.Error("nothing found")
	}
	if d := exitDetail(&out); d != "secondary processor-based bit 22 must be 0 (mode-based execute control for EPT)" {
		t.Errorf("%q", d)
	}
	out = vmm.Exit{}
	e.setField(e.c, Proc2Controls, uint64(e.b.Controls.Proc2))
	e.setField(e.c, ExitControls, e.field(e.c, ExitControls)&^ExitCtlHostAddrSpaceSize)
	// Host address-space size is juice's need, not the MSR's: nothing
	// to blame.
	if e.c.explainControls(&out) || exitDetail(&out) != "" {
		t.Errorf("%q", exitDetail(&out))
	}
	e.setField(e.c, PinControls, 0)
	e.c.explainControls(&out)
	if d := exitDetail(&out); d != "pin-based bit 1 must be 1" {
		t.Errorf("%q", d)
	}
}

func TestInterruptWindowAndShadow(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	proc := func() uint64 { return e.field(c, ProcControls) }
	c.RequestInterruptWindow(true)
	if proc()&ProcInterruptWindowExiting == 0 {
		t.Fatal("interrupt-window exiting not set")
	}
	e.f.exit = exitWith(ReasonInterruptWindow, 0, 0)
	c.Run(v)
	if v.Exit.Reason != vmm.ExitIntrWindow || proc()&ProcInterruptWindowExiting == 0 {
		t.Errorf("window exit %v; still armed %v", v.Exit.Reason, proc()&ProcInterruptWindowExiting != 0)
	}
	c.RequestInterruptWindow(false)
	if proc()&ProcInterruptWindowExiting != 0 || proc() != uint64(e.b.Controls.Proc) {
		t.Errorf("window off: %#x", proc())
	}

	// STI; HLT: the HLT exit reports blocking by STI.
	e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
		f.cur.vals[ExitReason], f.cur.vals[ExitInstrLen] = ReasonHLT, 1
		f.cur.vals[GuestRFLAGS] = 0x202
		f.cur.vals[GuestRIP] = 0x4000
		f.cur.vals[GuestInterruptibility] = InterruptibilitySTI
		return Succeeded
	}
	c.Run(v)
	if c.CanInjectInterrupt(v) {
		t.Error("interrupt injectable in the STI shadow")
	}
	v.Regs.RIP++ // the core completes the HLT
	if !c.CanInjectInterrupt(v) {
		t.Error("the shadow outlived the instruction")
	}
	v.HasPending = true
	if c.CanInjectInterrupt(v) {
		t.Error("injectable with an event pending")
	}
	v.Pending = vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30}
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	c.Run(v)
	if got := e.f.last(); got.intr != 0 || uint32(got.intrInfo) != IntrValid|0x30 {
		t.Errorf("entry with interruptibility %#x, event %#x", got.intr, got.intrInfo)
	}
	v.Regs.RFLAGS = 2
	if c.CanInjectInterrupt(v) {
		t.Error("injectable with IF clear")
	}
}

func TestVMCSSwitching(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	_, v2, c2 := e.addVCPU(t, goodReal())
	v1, c1 := e.v, e.c
	e.f.exit = exitWith(ReasonHLT, 0, 1)
	c1.Run(v1)
	if e.f.last().vmcs != c1.VMCSAddr() {
		t.Fatal("vCPU 1 ran another VMCS")
	}
	c2.Run(v2)
	if e.f.last().vmcs != c2.VMCSAddr() {
		t.Fatal("vCPU 2 ran another VMCS")
	}
	// vCPU 1 again, between two of vCPU 2's runs.
	c1.RequestInterruptWindow(true)
	var s vmm.SRegs
	c1.GetSRegs(&s)
	if s.CS != goodProt().CS || e.field(c2, ProcControls)&ProcInterruptWindowExiting != 0 ||
		e.field(c1, ProcControls)&ProcInterruptWindowExiting == 0 {
		t.Error("vCPU 1's accesses went to vCPU 2's VMCS")
	}
	c1.Close()
	if e.b.current[0] != c2.VMCSAddr() {
		// Closing vCPU 1 cleared its VMCS, which was current.
		if e.b.current[0] != 0 {
			t.Errorf("current = %#x", e.b.current[0])
		}
	}
	c2.Run(v2)
	if e.f.last().vmcs != c2.VMCSAddr() || !e.f.last().launched {
		t.Error("vCPU 2 lost its VMCS")
	}
	if err := c1.Run(v1); err != ErrClosed {
		t.Errorf("Run after Close: %v", err)
	}
	c1.Close()
	c2.Close()
	if e.host.Frames.FreeCount() != e.free-2*1024 {
		t.Errorf("%d frames leaked", e.free-2*1024-e.host.Frames.FreeCount())
	}
	// VPIDs are reused.
	_, _, c3 := e.addVCPU(t, goodProt())
	if c3.VPID() != 1 {
		t.Errorf("VPID %d after all were freed", c3.VPID())
	}
}

func TestVPIDAllocator(t *testing.T) {
	var a vpidAllocator
	seen := map[uint16]bool{}
	for i := 0; i < 65535; i++ {
		id, ok := a.alloc()
		if !ok || id == 0 || seen[id] {
			t.Fatalf("alloc %d: %d %v", i, id, ok)
		}
		seen[id] = true
	}
	if _, ok := a.alloc(); ok {
		t.Fatal("65536th VPID")
	}
	a.free(300)
	a.free(0)
	if id, ok := a.alloc(); !ok || id != 300 {
		t.Errorf("reuse: %d %v", id, ok)
	}
}

func TestHostDecoders(t *testing.T) {
	for _, base := range []uint64{0, 0x1234_5678, hostTSSBase, 0xffff_ffff_ffff_ffff} {
		lo, hi := tssDescriptor(base, 0x67)
		if got := SystemDescriptorBase(lo, hi); got != base {
			t.Errorf("base %#x decoded as %#x", base, got)
		}
	}
	var b [10]byte
	putTableReg(&b, 0xffff_8000_0001_2000, 0x2f)
	if got := ParseTableRegister(&b); got != (vmm.Table{Base: 0xffff_8000_0001_2000, Limit: 0x2f}) {
		t.Errorf("%+v", got)
	}
}

func TestRunAllocs(t *testing.T) {
	e := newEnv(t, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	v.Regs.RAX = 0x31
	e.f.exit = exits(exitWith(ReasonCRAccess, crQual(0, 0), 3), exitWith(ReasonIO, 0x3f8<<16, 1))
	var s vmm.SRegs
	n := testing.AllocsPerRun(200, func() {
		v.Pending, v.HasPending = vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30}, true
		v.Regs.RFLAGS = 0x202
		if err := c.Run(v); err != nil {
			t.Fatal(err)
		}
		c.CanInjectInterrupt(v)
		c.RequestInterruptWindow(true)
		c.RequestInterruptWindow(false)
		c.GetSRegs(&s)
		v.SRegs = s
		v.SRegsDirty = true
		v.MSRDirty = true
	})
	if n != 0 {
		t.Errorf("Run allocates: %v per run", n)
	}
	if v.Exit.Reason != vmm.ExitIO || v.Exit.Port != 0x3f8 {
		t.Errorf("exit %+v", v.Exit)
	}
}

// FuzzRunExit feeds arbitrary exits to Run: it must not panic, must fill
// a sane exit record and must never leave a pending event it did not get
// from the hardware or the core.
func FuzzRunExit(f *testing.F) {
	f.Add(uint32(ReasonCRAccess), uint64(0x300), uint32(3), uint32(0), uint32(0), uint64(0x31))
	f.Add(uint32(ReasonEPTViolation), uint64(EPTQualWrite), uint32(0), uint32(0), uint32(IntrValid|0x41), uint64(0))
	f.Add(uint32(ReasonExceptionNMI), uint64(0), uint32(1), uint32(IntrValid|IntrTypePrivSoftEx<<8|1), uint32(0), uint64(0))
	f.Add(uint32(ReasonEntryFailure|ReasonInvalidGuestState), uint64(0), uint32(0), uint32(0), uint32(0), uint64(0))
	f.Add(uint32(ReasonCRAccess), uint64(CRAccessLMSW<<4|0xffff<<16), uint32(4), uint32(0), uint32(0), uint64(0))
	e := newEnv(f, bochsMSRs(), goodProt())
	v, c := e.v, e.c
	f.Fuzz(func(t *testing.T, reason uint32, qual uint64, ilen, intrInfo, idtInfo uint32, reg uint64) {
		e.f.t = t
		e.f.enters = 0
		v.Regs = vmm.Regs{RAX: reg, R15: reg, RIP: 0x1000, RFLAGS: 2}
		v.SRegs, v.SRegsDirty, v.HasPending = goodProt(), true, false
		e.f.exit = func(f *fakeCPU, _ *vmm.Regs, _ *uint64) Status {
			f.cur.vals[ExitReason] = uint64(reason)
			f.cur.vals[ExitQualification] = qual
			f.cur.vals[ExitInstrLen] = uint64(ilen)
			f.cur.vals[ExitIntrInfo] = uint64(intrInfo)
			f.cur.vals[IDTVectoringInfo] = uint64(idtInfo)
			return Succeeded
		}
		if err := c.Run(v); err != nil {
			t.Fatal(err)
		}
		if int(v.Exit.DetailLen) > len(v.Exit.Detail) {
			t.Fatalf("DetailLen %d", v.Exit.DetailLen)
		}
		if e.f.enters < 1 || e.f.enters > maxCRExits {
			t.Fatalf("%d entries", e.f.enters)
		}
		if v.HasPending && idtInfo&IntrValid == 0 && reason&0xffff != ReasonCRAccess {
			t.Fatalf("pending %+v from nowhere", v.Pending)
		}
	})
}
