package vmm

import "testing"

func TestMSRPolicy(t *testing.T) {
	const tsc = 1_000_000
	type rd struct {
		idx uint32
		val uint64
		ok  bool
	}
	type wr struct {
		idx uint32
		val uint64
		ok  bool
	}
	for _, vendor := range []string{intelVendor, amdVendor} {
		t.Run(vendor, func(t *testing.T) {
			tv := newTestVM(t, Config{VCPUs: 2, HostCPUID: fakeCPUID(vendor), HostTSC: func() uint64 { return tsc }})
			v0, v1 := tv.VCPU(0), tv.VCPU(1)
			intel := vendor == intelVendor
			loadSRegs(v0)
			for _, r := range []rd{
				{MSRTSC, tsc, true},
				{MSRPlatformID, 0, intel},
				{MSRAPICBase, 0xfee00900, true},
				{MSRFeatureControl, 1, intel},
				{MSRBIOSSignID, 1 << 32, true},
				{MSRMTRRCap, 0x400, true},
				{MSRMiscEnable, 0x1801, intel},
				{MSRDebugCtl, 0, true},
				{MSRPAT, 0x0007040600070406, true},
				{MSRMTRRDefType, 0x806, true},
				{MSREFER, 0, true},
				{MSRSysenterCS, 0, true},
				{MSRHWCR, 1 << 24, !intel},
				{MSRDECfg, 2, !intel},
				// Not on the list: #GP, never a host value.
				{0x6e0, 0, false},          // TSC_DEADLINE
				{0x3b, 0, false},           // TSC_ADJUST
				{0x48, 0, false},           // SPEC_CTRL
				{0x10a, 0, false},          // ARCH_CAPABILITIES
				{0x480, 0, false},          // VMX_BASIC
				{0x802, 0, false},          // x2APIC ID
				{0xc0000103, 0, false},     // TSC_AUX
				{0xc0010114, 0, false},     // VM_CR
				{0xc0010117, 0, false},     // VM_HSAVE_PA
				{0x179, 0, false},          // MCG_CAP
				{0xffffffff, 0, false},     // nonsense
				{0x40000000, 0, false},     // hypervisor range
				{0xc0010010, 0, false},     // SYSCFG
				{0x4b564d00, 0, false},     // KVM's wall clock
				{0x00000000, 0, false},     // P5_MC_ADDR
				{0xc0000080 + 5, 0, false}, // just past SFMASK
			} {
				val, ok := tv.rdmsr(v0, r.idx)
				if ok != r.ok || ok && val != r.val {
					t.Errorf("rdmsr %#x = %#x, %v; want %#x, %v", r.idx, val, ok, r.val, r.ok)
				}
			}
			if val, _ := tv.rdmsr(v1, MSRAPICBase); val != 0xfee00800 {
				t.Errorf("AP APIC base %#x", val)
			}
			for _, w := range []wr{
				{MSRSTAR, 0x0023001000000000, true},
				{MSRLSTAR, 0xffffffff81000000, true},
				{MSRLSTAR, 0x0000800000000000, false}, // non-canonical
				{MSRCSTAR, 0xffffffff81000040, true},
				{MSRSFMASK, 0x47700, true},
				{MSRSFMASK, 1 << 32, false},
				{MSRKernelGSBase, 0xffff888000000000, true},
				{MSRKernelGSBase, 0x8000000000000000, false},
				{MSRSysenterCS, 0x10, true},
				{MSRSysenterESP, 0xfffffe0000001000, true},
				{MSRSysenterEIP, 0x1234_0000_0000_0000, false},
				{MSRPAT, 0x0007010600070106, true},
				{MSRPAT, 0x0007040600070402, false}, // type 2 is reserved
				{MSRPAT, 0x0007040600070416, false}, // reserved bits
				{MSRMTRRDefType, 0x800, true},
				{MSRMTRRDefType, 0x803, false}, // type 3 reserved
				{MSRMTRRDefType, 0xc06, false}, // FE without fixed MTRRs
				{MSRMTRRDefType, 0x1806, false},
				{MSRMTRRCap, 0x400, false}, // read-only
				{MSRAPICBase, 0xfee00900, true},
				{MSRAPICBase, 0xfec00900, false}, // relocation not supported
				{MSRAPICBase, 0xfee00d00, false}, // x2APIC enable
				{MSRDebugCtl, 0, true},
				{MSRDebugCtl, 1, false},
				{MSRBIOSSignID, 0, true},
				{MSRPlatformID, 0, false},
				{MSRFeatureControl, 5, false},
				{MSRMiscEnable, 0x1800, intel},         // fast strings off
				{MSRMiscEnable, 0x1800 | 1<<18, false}, // MWAIT enable
				{MSRHWCR, 1 << 24, !intel},
				{MSRHWCR, 1<<24 | 1<<30, false},
				{MSRDECfg, 2, !intel},
				{0x6e0, 1, false},
				{0xc0010117, 0x1000, false},
			} {
				if ok := tv.wrmsr(v0, w.idx, w.val); ok != w.ok {
					t.Errorf("wrmsr %#x <- %#x = %v, want %v", w.idx, w.val, ok, w.ok)
				}
			}
			want := MSRState{STAR: 0x0023001000000000, LSTAR: 0xffffffff81000000, CSTAR: 0xffffffff81000040, SFMASK: 0x47700,
				KernelGSBase: 0xffff888000000000, SysenterCS: 0x10, SysenterESP: 0xfffffe0000001000, PAT: 0x0007010600070106}
			if v0.MSR != want || !v0.MSRDirty {
				t.Errorf("MSR state %+v, want %+v", v0.MSR, want)
			}
			if val, _ := tv.rdmsr(v0, MSRMTRRDefType); val != 0x800 {
				t.Errorf("MTRRdefType %#x", val)
			}
			if intel {
				if val, _ := tv.rdmsr(v0, MSRMiscEnable); val != 0x1800 {
					t.Errorf("MISC_ENABLE %#x", val)
				}
			}
			// TSC: a write sets the offset.
			if !tv.wrmsr(v0, MSRTSC, tsc+500) || v0.MSR.TSCOffset != 500 {
				t.Errorf("TSC offset %d", v0.MSR.TSCOffset)
			}
			if val, _ := tv.rdmsr(v0, MSRTSC); val != tsc+500 {
				t.Errorf("TSC %d", val)
			}
			if !tv.wrmsr(v0, MSRTSC, 0) || v0.MSR.TSCOffset+tsc != 0 {
				t.Errorf("TSC offset %#x", v0.MSR.TSCOffset)
			}
			// The other vCPU's state is its own.
			if v1.MSR.LSTAR != 0 || v1.MSR.PAT != patPowerOn {
				t.Error("MSR writes leaked to another vCPU")
			}
		})
	}
}

func TestMSREFER(t *testing.T) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	setFlat32(v)
	loadSRegs(v)
	f := tv.fake(0)
	for _, c := range []struct {
		name  string
		cr0   uint64
		efer  uint64 // current (hardware)
		write uint64
		ok    bool
		want  uint64
	}{
		{"enable long mode", cr0PE, 0, eferLME | eferSCE | eferNXE, true, eferLME | eferSCE | eferNXE},
		{"LMA is read-only (set)", cr0PE, 0, eferLMA, true, 0},
		{"LMA is read-only (clear)", cr0PE | cr0PG, eferLME | eferLMA, eferLME, true, eferLME | eferLMA},
		{"LME change while paging", cr0PE | cr0PG, 0, eferLME, false, 0},
		{"clear LME while paging", cr0PE | cr0PG, eferLME | eferLMA, eferLMA, false, eferLME | eferLMA},
		{"SVME hidden", cr0PE, 0, eferSVME, false, 0},
		{"FFXSR", cr0PE, 0, 1 << 14, false, 0},
		{"LMSLE", cr0PE, 0, 1 << 13, false, 0},
		{"reserved", cr0PE, 0, 1 << 40, false, 0},
	} {
		v.SRegsValid = false
		f.sregs.CR0, f.sregs.EFER = c.cr0, c.efer|eferSVME // the hardware has SVME
		ok := tv.wrmsr(v, MSREFER, c.write)
		if ok != c.ok {
			t.Errorf("%s: wrmsr = %v, want %v", c.name, ok, c.ok)
			continue
		}
		got, _ := tv.rdmsr(v, MSREFER)
		want := c.want
		if !ok {
			want = c.efer
		}
		if got != want {
			t.Errorf("%s: EFER reads %#x, want %#x", c.name, got, want)
		}
		if ok && !v.SRegsDirty {
			t.Errorf("%s: EFER write not marked dirty", c.name)
		}
		v.SRegsDirty = false
	}
	// FS/GS base go to the segment state.
	v.SRegsValid = false
	if !tv.wrmsr(v, MSRFSBase, 0x7f0000001000) || !tv.wrmsr(v, MSRGSBase, 0xffff888000002000) || tv.wrmsr(v, MSRGSBase, 1<<63) {
		t.Fatal("FS/GS base writes")
	}
	if v.SRegs.FS.Base != 0x7f0000001000 || v.SRegs.GS.Base != 0xffff888000002000 || !v.SRegsDirty {
		t.Fatalf("FS %#x GS %#x", v.SRegs.FS.Base, v.SRegs.GS.Base)
	}
	if val, _ := tv.rdmsr(v, MSRGSBase); val != 0xffff888000002000 {
		t.Fatalf("GS base reads %#x", val)
	}
}

// TestEFERNeedsCPUID: EFER bits follow the CPUID the guest sees.
func TestEFERNeedsCPUID(t *testing.T) {
	host := fakeCPUID(intelVendor)
	tv := newTestVM(t, Config{HostCPUID: func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
		a, b, c, d := host(leaf, sub)
		if leaf == 0x80000001 {
			d &^= 1 << 20 // no NX
		}
		return a, b, c, d
	}})
	v := tv.VCPU(0)
	setFlat32(v)
	if tv.wrmsr(v, MSREFER, eferNXE) || !tv.wrmsr(v, MSREFER, eferSCE) {
		t.Fatal("NXE accepted without NX, or SCE refused")
	}
}
