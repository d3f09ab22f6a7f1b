package svm

import (
	"testing"

	"juice/vmm"
)

// field is one VMCB field as the APM (Vol. 2, Tables B-1 and B-2) lays it
// out: offset and width in bytes, written here from the spec, and the
// accessor pair under test.
type field struct {
	name  string
	off   uint
	width uint
	get   func(VMCB) uint64
	set   func(VMCB, uint64)
}

// apmFields lists the VMCB fields with the offsets of the APM tables.
var apmFields = []field{
	// Control area (Table B-1).
	{"CR read intercepts", 0x000, 2, func(m VMCB) uint64 { return uint64(m.InterceptCRRead()) }, func(m VMCB, v uint64) { m.SetInterceptCRRead(uint16(v)) }},
	{"CR write intercepts", 0x002, 2, func(m VMCB) uint64 { return uint64(m.InterceptCRWrite()) }, func(m VMCB, v uint64) { m.SetInterceptCRWrite(uint16(v)) }},
	{"DR read intercepts", 0x004, 2, func(m VMCB) uint64 { return uint64(m.InterceptDRRead()) }, func(m VMCB, v uint64) { m.SetInterceptDRRead(uint16(v)) }},
	{"DR write intercepts", 0x006, 2, func(m VMCB) uint64 { return uint64(m.InterceptDRWrite()) }, func(m VMCB, v uint64) { m.SetInterceptDRWrite(uint16(v)) }},
	{"exception intercepts", 0x008, 4, func(m VMCB) uint64 { return uint64(m.InterceptExceptions()) }, func(m VMCB, v uint64) { m.SetInterceptExceptions(uint32(v)) }},
	{"misc intercepts 1 (INTR..SHUTDOWN)", 0x00C, 4, func(m VMCB) uint64 { return uint64(m.InterceptMisc1()) }, func(m VMCB, v uint64) { m.SetInterceptMisc1(uint32(v)) }},
	{"misc intercepts 2 (VMRUN..)", 0x010, 4, func(m VMCB) uint64 { return uint64(m.InterceptMisc2()) }, func(m VMCB, v uint64) { m.SetInterceptMisc2(uint32(v)) }},
	{"misc intercepts 3 (INVLPGB..)", 0x014, 4, func(m VMCB) uint64 { return uint64(m.InterceptMisc3()) }, func(m VMCB, v uint64) { m.SetInterceptMisc3(uint32(v)) }},
	{"PAUSE filter threshold", 0x03C, 2, func(m VMCB) uint64 { return uint64(m.PauseFilterThreshold()) }, func(m VMCB, v uint64) { m.SetPauseFilterThreshold(uint16(v)) }},
	{"PAUSE filter count", 0x03E, 2, func(m VMCB) uint64 { return uint64(m.PauseFilterCount()) }, func(m VMCB, v uint64) { m.SetPauseFilterCount(uint16(v)) }},
	{"IOPM_BASE_PA", 0x040, 8, VMCB.IOPMBase, VMCB.SetIOPMBase},
	{"MSRPM_BASE_PA", 0x048, 8, VMCB.MSRPMBase, VMCB.SetMSRPMBase},
	{"TSC_OFFSET", 0x050, 8, VMCB.TSCOffset, VMCB.SetTSCOffset},
	{"guest ASID", 0x058, 4, func(m VMCB) uint64 { return uint64(m.ASID()) }, func(m VMCB, v uint64) { m.SetASID(uint32(v)) }},
	{"TLB_CONTROL", 0x05C, 1, func(m VMCB) uint64 { return uint64(m.TLBControl()) }, func(m VMCB, v uint64) { m.SetTLBControl(uint8(v)) }},
	{"V_INTR (V_TPR..V_INTR_VECTOR)", 0x060, 8, VMCB.VIntr, VMCB.SetVIntr},
	{"interrupt shadow", 0x068, 8, VMCB.InterruptShadow, VMCB.SetInterruptShadow},
	{"EXITCODE", 0x070, 8, VMCB.ExitCode, VMCB.SetExitCode},
	{"EXITINFO1", 0x078, 8, VMCB.ExitInfo1, VMCB.SetExitInfo1},
	{"EXITINFO2", 0x080, 8, VMCB.ExitInfo2, VMCB.SetExitInfo2},
	{"EXITINTINFO", 0x088, 8, VMCB.ExitIntInfo, VMCB.SetExitIntInfo},
	{"NP_ENABLE", 0x090, 8, VMCB.NPControl, VMCB.SetNPControl},
	{"EVENTINJ", 0x0A8, 8, VMCB.EventInj, VMCB.SetEventInj},
	{"N_CR3", 0x0B0, 8, VMCB.NCR3, VMCB.SetNCR3},
	{"LBR virtualization", 0x0B8, 8, VMCB.LBRVirt, VMCB.SetLBRVirt},
	{"VMCB clean bits", 0x0C0, 4, func(m VMCB) uint64 { return uint64(m.CleanBits()) }, func(m VMCB, v uint64) { m.SetCleanBits(uint32(v)) }},
	{"nRIP", 0x0C8, 8, VMCB.NRIP, VMCB.SetNRIP},
	{"guest instruction bytes fetched", 0x0D0, 1, func(m VMCB) uint64 { return uint64(m.InsnLen()) }, func(m VMCB, v uint64) { m.SetInsnLen(uint8(v)) }},

	// State save area (Table B-2), offsets from the VMCB's start.
	{"CPL", 0x4CB, 1, func(m VMCB) uint64 { return uint64(m.CPL()) }, func(m VMCB, v uint64) { m.SetCPL(uint8(v)) }},
	{"EFER", 0x4D0, 8, VMCB.EFER, VMCB.SetEFER},
	{"CR4", 0x548, 8, VMCB.CR4, VMCB.SetCR4},
	{"CR3", 0x550, 8, VMCB.CR3, VMCB.SetCR3},
	{"CR0", 0x558, 8, VMCB.CR0, VMCB.SetCR0},
	{"DR7", 0x560, 8, VMCB.DR7, VMCB.SetDR7},
	{"DR6", 0x568, 8, VMCB.DR6, VMCB.SetDR6},
	{"RFLAGS", 0x570, 8, VMCB.RFLAGS, VMCB.SetRFLAGS},
	{"RIP", 0x578, 8, VMCB.RIP, VMCB.SetRIP},
	{"RSP", 0x5D8, 8, VMCB.RSP, VMCB.SetRSP},
	{"RAX", 0x5F8, 8, VMCB.RAX, VMCB.SetRAX},
	{"STAR", 0x600, 8, VMCB.STAR, VMCB.SetSTAR},
	{"LSTAR", 0x608, 8, VMCB.LSTAR, VMCB.SetLSTAR},
	{"CSTAR", 0x610, 8, VMCB.CSTAR, VMCB.SetCSTAR},
	{"SFMASK", 0x618, 8, VMCB.SFMASK, VMCB.SetSFMASK},
	{"KernelGsBase", 0x620, 8, VMCB.KernelGSBase, VMCB.SetKernelGSBase},
	{"SYSENTER_CS", 0x628, 8, VMCB.SysenterCS, VMCB.SetSysenterCS},
	{"SYSENTER_ESP", 0x630, 8, VMCB.SysenterESP, VMCB.SetSysenterESP},
	{"SYSENTER_EIP", 0x638, 8, VMCB.SysenterEIP, VMCB.SetSysenterEIP},
	{"CR2", 0x640, 8, VMCB.CR2, VMCB.SetCR2},
	{"G_PAT", 0x668, 8, VMCB.GPAT, VMCB.SetGPAT},
	{"DBGCTL", 0x670, 8, VMCB.DebugCtl, VMCB.SetDebugCtl},
}

// apmSegments are the segment registers' offsets in the state save area.
var apmSegments = []struct {
	name string
	r    SegReg
	off  uint
}{
	{"ES", SegES, 0x400}, {"CS", SegCS, 0x410}, {"SS", SegSS, 0x420}, {"DS", SegDS, 0x430},
	{"FS", SegFS, 0x440}, {"GS", SegGS, 0x450}, {"GDTR", SegGDTR, 0x460}, {"LDTR", SegLDTR, 0x470},
	{"IDTR", SegIDTR, 0x480}, {"TR", SegTR, 0x490},
}

func newTestVMCB(t testing.TB) VMCB {
	t.Helper()
	m, ok := NewVMCB(make([]byte, VMCBSize))
	if !ok {
		t.Fatal("NewVMCB refused a full page")
	}
	return m
}

// TestVMCBLayout writes an all-ones value through each setter and checks
// that exactly the APM's bytes changed, then reads it back.
func TestVMCBLayout(t *testing.T) {
	m := newTestVMCB(t)
	for _, f := range apmFields {
		m.Clear()
		want := ^uint64(0) >> (64 - 8*f.width)
		f.set(m, ^uint64(0))
		for i, b := range m.Bytes() {
			in := uint(i) >= f.off && uint(i) < f.off+f.width
			if in && b != 0xff || !in && b != 0 {
				t.Errorf("%s: byte %#x is %#x after setting the field (APM: %d bytes at %#x)", f.name, i, b, f.width, f.off)
				break
			}
		}
		if got := f.get(m); got != want {
			t.Errorf("%s: reads back %#x, want %#x", f.name, got, want)
		}
		// A distinct pattern checks the byte order.
		m.Clear()
		pat := uint64(0x0807060504030201) & want
		f.set(m, pat)
		for i := uint(0); i < f.width; i++ {
			if m.Bytes()[f.off+i] != byte(i+1) {
				t.Errorf("%s: byte %d of the field is %#x, want %#x (little-endian)", f.name, i, m.Bytes()[f.off+i], i+1)
			}
		}
		if got := f.get(m); got != pat {
			t.Errorf("%s: pattern reads back %#x, want %#x", f.name, got, pat)
		}
	}
}

func TestVMCBExportedOffsets(t *testing.T) {
	// The exported constants against the APM tables.
	for _, c := range []struct {
		name      string
		got, want uint
	}{
		{"OffIOPMBase", OffIOPMBase, 0x40}, {"OffMSRPMBase", OffMSRPMBase, 0x48}, {"OffTSCOffset", OffTSCOffset, 0x50},
		{"OffGuestASID", OffGuestASID, 0x58}, {"OffTLBControl", OffTLBControl, 0x5c}, {"OffVIntr", OffVIntr, 0x60},
		{"OffInterruptShadow", OffInterruptShadow, 0x68}, {"OffExitCode", OffExitCode, 0x70}, {"OffExitInfo1", OffExitInfo1, 0x78},
		{"OffExitInfo2", OffExitInfo2, 0x80}, {"OffExitIntInfo", OffExitIntInfo, 0x88}, {"OffNPControl", OffNPControl, 0x90},
		{"OffEventInj", OffEventInj, 0xa8}, {"OffNCR3", OffNCR3, 0xb0}, {"OffCleanBits", OffCleanBits, 0xc0},
		{"OffNRIP", OffNRIP, 0xc8}, {"OffInsnLen", OffInsnLen, 0xd0}, {"OffInsnBytes", OffInsnBytes, 0xd1},
		{"OffCPL", OffCPL, 0x4cb}, {"OffEFER", OffEFER, 0x4d0}, {"OffCR4", OffCR4, 0x548}, {"OffCR3", OffCR3, 0x550},
		{"OffCR0", OffCR0, 0x558}, {"OffDR7", OffDR7, 0x560}, {"OffDR6", OffDR6, 0x568}, {"OffRFLAGS", OffRFLAGS, 0x570},
		{"OffRIP", OffRIP, 0x578}, {"OffRSP", OffRSP, 0x5d8}, {"OffRAX", OffRAX, 0x5f8}, {"OffCR2", OffCR2, 0x640},
		{"OffGPAT", OffGPAT, 0x668},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, APM says %#x", c.name, c.got, c.want)
		}
	}
}

func TestVMCBSegments(t *testing.T) {
	m := newTestVMCB(t)
	for _, s := range apmSegments {
		m.Clear()
		seg := vmm.Segment{Selector: 0x1234, Attr: 0x0a9b, Limit: 0x89abcdef, Base: 0x1122334455667788}
		m.SetSeg(s.r, seg)
		b := m.Bytes()
		// selector (2), attrib (2), limit (4), base (8), little-endian.
		want := []byte{0x34, 0x12, 0x9b, 0x0a, 0xef, 0xcd, 0xab, 0x89, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}
		for i, w := range want {
			if b[s.off+uint(i)] != w {
				t.Errorf("%s: byte %d at %#x is %#x, want %#x", s.name, i, s.off+uint(i), b[s.off+uint(i)], w)
			}
		}
		nonzero := 0
		for _, x := range b {
			if x != 0 {
				nonzero++
			}
		}
		if nonzero != len(want) {
			t.Errorf("%s: %d bytes changed, want %d", s.name, nonzero, len(want))
		}
		if got := m.Seg(s.r); got != seg {
			t.Errorf("%s: reads back %+v", s.name, got)
		}
	}
	m.Clear()
	m.SetTable(SegIDTR, vmm.Table{Base: 0xfffff000, Limit: 0x7ff})
	if got := m.Table(SegIDTR); got != (vmm.Table{Base: 0xfffff000, Limit: 0x7ff}) {
		t.Errorf("IDTR reads back %+v", got)
	}
	if m.U32(0x484) != 0x7ff || m.U64(0x488) != 0xfffff000 {
		t.Errorf("IDTR limit/base not at 0x484/0x488")
	}
	// Out-of-range registers are ignored.
	m.SetSeg(numSegRegs, vmm.Segment{Base: 1})
	if m.Seg(numSegRegs) != (vmm.Segment{}) {
		t.Error("Seg(numSegRegs) is not zero")
	}
}

func TestVMCBGeneric(t *testing.T) {
	m := newTestVMCB(t)
	m.SetU64(0x578, 0xdeadbeefcafef00d)
	if m.RIP() != 0xdeadbeefcafef00d || m.U64(OffRIP) != 0xdeadbeefcafef00d {
		t.Error("SetU64/RIP disagree")
	}
	m.SetU32(0x58, 7)
	m.SetU16(0x3e, 3000)
	m.SetU8(0x5c, 3)
	if m.ASID() != 7 || m.PauseFilterCount() != 3000 || m.TLBControl() != 3 || m.U8(0x5c) != 3 || m.U16(0x3e) != 3000 || m.U32(0x58) != 7 {
		t.Error("generic setters and typed getters disagree")
	}
	// Past the end: no panic, nothing written, zero read.
	m.Clear()
	m.SetU64(VMCBSize-7, ^uint64(0))
	m.SetU32(VMCBSize-3, ^uint32(0))
	m.SetU16(VMCBSize-1, 0xffff)
	m.SetU8(VMCBSize, 0xff)
	for i, b := range m.Bytes() {
		if b != 0 {
			t.Fatalf("out-of-range store wrote byte %#x", i)
		}
	}
	if m.U64(VMCBSize-7) != 0 || m.U32(1<<40) != 0 || m.U16(VMCBSize-1) != 0 || m.U8(VMCBSize) != 0 {
		t.Error("out-of-range load is not 0")
	}
	m.SetU64(VMCBSize-8, 1)
	if m.U64(VMCBSize-8) != 1 {
		t.Error("last 8 bytes not accessible")
	}
	if _, ok := NewVMCB(make([]byte, VMCBSize-1)); ok {
		t.Error("NewVMCB accepted a short page")
	}
}

func TestInsnBytes(t *testing.T) {
	m := newTestVMCB(t)
	copy(m.Bytes()[0xd1:], []byte{0x89, 0x07, 0x90})
	m.SetInsnLen(2)
	if b := m.InsnBytes(); len(b) != 2 || b[0] != 0x89 || b[1] != 0x07 {
		t.Errorf("InsnBytes = %x", b)
	}
	m.SetInsnLen(200)
	if len(m.InsnBytes()) != 15 {
		t.Error("InsnBytes not capped at 15")
	}
}

// TestInterceptBitsMatchExitCodes checks the intercept bit constants
// against the exit codes (bit n of the word at 0x0C exits with 0x60+n,
// of the word at 0x10 with 0x80+n: APM Appendix C).
func TestInterceptBitsMatchExitCodes(t *testing.T) {
	misc1 := []struct {
		bit  uint32
		code uint64
	}{
		{InterceptINTR, ExitIntr}, {InterceptNMI, ExitNMI}, {InterceptSMI, ExitSMI}, {InterceptINIT, ExitInit},
		{InterceptVINTR, ExitVIntr}, {InterceptCR0SelWrite, ExitCR0SelWr}, {InterceptIDTRRead, ExitIDTRRead},
		{InterceptGDTRRead, ExitGDTRRead}, {InterceptLDTRRead, ExitLDTRRead}, {InterceptTRRead, ExitTRRead},
		{InterceptIDTRWrite, ExitIDTRWrite}, {InterceptGDTRWrite, ExitGDTRWrite}, {InterceptLDTRWrite, ExitLDTRWrite},
		{InterceptTRWrite, ExitTRWrite}, {InterceptRDTSC, ExitRDTSC}, {InterceptRDPMC, ExitRDPMC},
		{InterceptPUSHF, ExitPUSHF}, {InterceptPOPF, ExitPOPF}, {InterceptCPUID, ExitCPUID}, {InterceptRSM, ExitRSM},
		{InterceptIRET, ExitIRET}, {InterceptINTn, ExitSWInt}, {InterceptINVD, ExitINVD}, {InterceptPAUSE, ExitPause},
		{InterceptHLT, ExitHLT}, {InterceptINVLPG, ExitINVLPG}, {InterceptINVLPGA, ExitINVLPGA},
		{InterceptIOIOProt, ExitIOIO}, {InterceptMSRProt, ExitMSR}, {InterceptTaskSwitch, ExitTaskSwitch},
		{InterceptFERRFreeze, ExitFERRFreeze}, {InterceptShutdown, ExitShutdown},
	}
	for i, c := range misc1 {
		if c.bit != 1<<i || c.code != 0x60+uint64(i) {
			t.Errorf("misc1 entry %d: bit %#x code %#x", i, c.bit, c.code)
		}
	}
	misc2 := []struct {
		bit  uint32
		code uint64
	}{
		{Intercept2VMRUN, ExitVMRUN}, {Intercept2VMMCALL, ExitVMMCALL}, {Intercept2VMLOAD, ExitVMLOAD},
		{Intercept2VMSAVE, ExitVMSAVE}, {Intercept2STGI, ExitSTGI}, {Intercept2CLGI, ExitCLGI},
		{Intercept2SKINIT, ExitSKINIT}, {Intercept2RDTSCP, ExitRDTSCP}, {Intercept2ICEBP, ExitICEBP},
		{Intercept2WBINVD, ExitWBINVD}, {Intercept2MONITOR, ExitMONITOR}, {Intercept2MWAIT, ExitMWAIT},
		{Intercept2MWAITCond, ExitMWAITCond}, {Intercept2XSETBV, ExitXSETBV}, {Intercept2RDPRU, ExitRDPRU},
		{Intercept2EFERWrite, ExitEFERWrTrap},
	}
	for i, c := range misc2 {
		if c.bit != 1<<i || c.code != 0x80+uint64(i) {
			t.Errorf("misc2 entry %d: bit %#x code %#x", i, c.bit, c.code)
		}
	}
}

func TestEncodeDecodeEvent(t *testing.T) {
	cases := []struct {
		e    vmm.Event
		want uint64
		ok   bool
	}{
		{vmm.Event{Kind: vmm.EventExtInt, Vector: 0x20}, 0x8000_0020, true},
		{vmm.Event{Kind: vmm.EventExtInt, Vector: 0xff, HasErr: true, ErrCode: 5}, 0x8000_00ff, true}, // no error code for INTR
		{vmm.Event{Kind: vmm.EventNMI, Vector: 0x77}, 0x8000_0202, true},
		{vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x18}, 0x18_8000_0b0d, true},
		{vmm.Event{Kind: vmm.EventException, Vector: 14, HasErr: true, ErrCode: 0xffffffff}, 0xffffffff_8000_0b0e, true},
		{vmm.Event{Kind: vmm.EventException, Vector: 6}, 0x8000_0306, true},
		{vmm.Event{Kind: vmm.EventSoftInt, Vector: 0x80}, 0x8000_0480, true},
		{vmm.Event{Kind: vmm.EventException, Vector: 2}, 0, false},
		{vmm.Event{Kind: vmm.EventException, Vector: 32}, 0, false},
		{vmm.Event{Kind: 9, Vector: 1}, 0, false},
	}
	for _, c := range cases {
		got, ok := EncodeEvent(c.e)
		if got != c.want || ok != c.ok {
			t.Errorf("EncodeEvent(%+v) = %#x, %v; want %#x, %v", c.e, got, ok, c.want, c.ok)
			continue
		}
		if !ok {
			continue
		}
		back, ok := DecodeEvent(got)
		want := c.e
		if want.Kind == vmm.EventNMI {
			want.Vector = 2
		}
		if want.Kind != vmm.EventException {
			want.HasErr, want.ErrCode = false, 0
		}
		if !ok || back != want {
			t.Errorf("DecodeEvent(%#x) = %+v, %v; want %+v", got, back, ok, want)
		}
	}
	for _, v := range []uint64{0, 0x0000_030e, 0x8000_0100, 0x8000_0500, 0x8000_0700} {
		if e, ok := DecodeEvent(v); ok {
			t.Errorf("DecodeEvent(%#x) = %+v, want invalid", v, e)
		}
	}
}
