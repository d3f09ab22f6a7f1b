package vmx

import (
	"strings"
	"testing"

	"juice/vmm"
)

// ioQual builds an I/O exit qualification from the SDM's layout (Table
// 28-5): size-1 in bits 2:0, IN in bit 3, string 4, REP 5, immediate 6,
// port 31:16.
func ioQual(port uint16, size int, in, str, rep bool) uint64 {
	q := uint64(port)<<16 | uint64(size-1)
	if in {
		q |= 1 << 3
	}
	if str {
		q |= 1 << 4
	}
	if rep {
		q |= 1 << 5
	}
	return q
}

// intrInfo builds an interruption-information word: vector, type in bits
// 10:8, error-code-valid bit 11, valid bit 31.
func intrInfo(vector uint8, typ uint32, errValid bool) uint32 {
	v := 1<<31 | typ<<8 | uint32(vector)
	if errValid {
		v |= 1 << 11
	}
	return v
}

func detail(e *vmm.Exit) string { return string(e.Detail[:e.DetailLen]) }

func TestTranslateExit(t *testing.T) {
	cases := []struct {
		name string
		in   RawExit
		want vmm.Exit // Raw/Info1/Info2 are filled by the loop unless set
		// info2 overrides the expected Info2 (default: GLA).
		info2  *uint64
		detail string
	}{
		// Port I/O.
		{name: "out dx,al", in: RawExit{Reason: 30, Qual: ioQual(0x3f8, 1, false, false, false), InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitIO, Port: 0x3f8, Size: 1, InstrLen: 1}},
		{name: "in eax,0x71 (immediate)", in: RawExit{Reason: 30, Qual: ioQual(0x71, 4, true, false, false) | 1<<6, InstrLen: 2},
			want: vmm.Exit{Reason: vmm.ExitIO, Port: 0x71, Size: 4, In: true, InstrLen: 2}},
		{name: "rep outsw to 0xffff", in: RawExit{Reason: 30, Qual: ioQual(0xffff, 2, false, true, true), InstrLen: 3, GLA: 0x7000},
			want: vmm.Exit{Reason: vmm.ExitIO, Port: 0xffff, Size: 2, String: true, Rep: true, InstrLen: 3}},
		{name: "insd", in: RawExit{Reason: 30, Qual: ioQual(0x1f0, 4, true, true, false), InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitIO, Port: 0x1f0, Size: 4, In: true, String: true, InstrLen: 1}},
		{name: "io with bogus length", in: RawExit{Reason: 30, Qual: ioQual(0x80, 1, false, false, false), InstrLen: 16},
			want: vmm.Exit{Reason: vmm.ExitIO, Port: 0x80, Size: 1}},
		{name: "io size code 2 (3 bytes)", in: RawExit{Reason: 30, Qual: 0x3f8<<16 | 2, InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "io size code 7", in: RawExit{Reason: 30, Qual: 0x3f8<<16 | 7, InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitUnhandled}},

		// EPT violations.
		{name: "ept read", in: RawExit{Reason: 48, Qual: 1 | 1<<7 | 1<<8, GPA: 0xfee00030, GLA: 0xfee00030, InstrLen: 7},
			want: vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xfee00030}, info2: u64(0xfee00030)},
		{name: "ept write", in: RawExit{Reason: 48, Qual: 2 | 1<<7 | 1<<8, GPA: 0xfec00000, GLA: 0xc0000000},
			want: vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xfec00000, Write: true}, info2: u64(0xfec00000)},
		{name: "ept fetch", in: RawExit{Reason: 48, Qual: 4 | 1<<7 | 1<<8, GPA: 0xffff_fff0},
			want: vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xffff_fff0, Fetch: true}, info2: u64(0xffff_fff0)},
		{name: "ept write, no linear address (paging off)", in: RawExit{Reason: 48, Qual: 2, GPA: 0x1_0000_0000},
			want: vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0x1_0000_0000, Write: true}, info2: u64(0x1_0000_0000)},
		{name: "ept on a guest page-table access", in: RawExit{Reason: 48, Qual: 1 | 1<<7, GPA: 0x8000_0000},
			want: vmm.Exit{Reason: vmm.ExitUnhandled, GPA: 0x8000_0000}, info2: u64(0x8000_0000)},
		{name: "ept during event delivery", in: RawExit{Reason: 48, Qual: 2 | 1<<7 | 1<<8, GPA: 0xe000_0000, IDTInfo: intrInfo(32, 0, false)},
			want: vmm.Exit{Reason: vmm.ExitUnhandled, GPA: 0xe000_0000}, info2: u64(0xe000_0000)},
		{name: "ept misconfiguration", in: RawExit{Reason: 49, GPA: 0xfee0_0000},
			want: vmm.Exit{Reason: vmm.ExitInvalid, GPA: 0xfee0_0000}, info2: u64(0xfee0_0000),
			detail: "EPT misconfiguration at guest-physical 0xfee00000"},
		{name: "ept misconfiguration at 0", in: RawExit{Reason: 49},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, info2: u64(0),
			detail: "EPT misconfiguration at guest-physical 0x0"},

		// Instructions.
		{name: "cpuid", in: RawExit{Reason: 10, InstrLen: 2}, want: vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},
		{name: "cpuid with a prefix", in: RawExit{Reason: 10, InstrLen: 3}, want: vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 3}},
		{name: "cpuid, length 0", in: RawExit{Reason: 10}, want: vmm.Exit{Reason: vmm.ExitCPUID}},
		{name: "hlt", in: RawExit{Reason: 12, InstrLen: 1}, want: vmm.Exit{Reason: vmm.ExitHLT, InstrLen: 1}},
		{name: "vmcall", in: RawExit{Reason: 18, InstrLen: 3}, want: vmm.Exit{Reason: vmm.ExitHypercall, InstrLen: 3}},
		{name: "rdmsr", in: RawExit{Reason: 31, InstrLen: 2}, want: vmm.Exit{Reason: vmm.ExitRDMSR, InstrLen: 2}},
		{name: "wrmsr", in: RawExit{Reason: 32, InstrLen: 2}, want: vmm.Exit{Reason: vmm.ExitWRMSR, InstrLen: 2}},
		{name: "pause", in: RawExit{Reason: 40, InstrLen: 2}, want: vmm.Exit{Reason: vmm.ExitPause, InstrLen: 2}},
		{name: "15-byte instruction", in: RawExit{Reason: 10, InstrLen: 15}, want: vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 15}},
		{name: "length above 15", in: RawExit{Reason: 12, InstrLen: 0x100}, want: vmm.Exit{Reason: vmm.ExitHLT}},

		// Events.
		{name: "triple fault", in: RawExit{Reason: 2}, want: vmm.Exit{Reason: vmm.ExitShutdown}},
		{name: "external interrupt", in: RawExit{Reason: 1}, want: vmm.Exit{Reason: vmm.ExitExtIntr}},
		{name: "external interrupt acknowledged", in: RawExit{Reason: 1, IntrInfo: intrInfo(0x30, 0, false)},
			want: vmm.Exit{Reason: vmm.ExitExtIntr, Vector: 0x30}},
		{name: "init", in: RawExit{Reason: 3}, want: vmm.Exit{Reason: vmm.ExitExtIntr}},
		{name: "sipi", in: RawExit{Reason: 4}, want: vmm.Exit{Reason: vmm.ExitExtIntr}},
		{name: "smi", in: RawExit{Reason: 6}, want: vmm.Exit{Reason: vmm.ExitExtIntr}},
		{name: "preemption timer", in: RawExit{Reason: 52}, want: vmm.Exit{Reason: vmm.ExitExtIntr}},
		{name: "interrupt window", in: RawExit{Reason: 7}, want: vmm.Exit{Reason: vmm.ExitIntrWindow}},
		{name: "nmi", in: RawExit{Reason: 0, IntrInfo: intrInfo(2, 2, false)}, want: vmm.Exit{Reason: vmm.ExitExtIntr, Vector: 2}},

		// Exceptions.
		{name: "#DB", in: RawExit{Reason: 0, IntrInfo: intrInfo(1, 3, false), Qual: 0x4000},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 1}},
		{name: "#AC", in: RawExit{Reason: 0, IntrInfo: intrInfo(17, 3, true), IntrError: 0},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 17, HasErr: true}},
		{name: "#GP", in: RawExit{Reason: 0, IntrInfo: intrInfo(13, 3, true), IntrError: 0x18},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 13, HasErr: true, ErrCode: 0x18}},
		{name: "#PF", in: RawExit{Reason: 0, IntrInfo: intrInfo(14, 3, true), IntrError: 6, Qual: 0xdead_b000, GLA: 0x1234},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 14, HasErr: true, ErrCode: 6}, info2: u64(0xdead_b000)},
		{name: "#MC", in: RawExit{Reason: 0, IntrInfo: intrInfo(18, 3, false)},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 18}},
		{name: "INT3 (software exception)", in: RawExit{Reason: 0, IntrInfo: intrInfo(3, 6, false), InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 3, InstrLen: 1}},
		{name: "INT1 (privileged software exception)", in: RawExit{Reason: 0, IntrInfo: intrInfo(1, 5, false), InstrLen: 1},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 1, InstrLen: 1}},
		{name: "hardware exception ignores the length", in: RawExit{Reason: 0, IntrInfo: intrInfo(6, 3, false), InstrLen: 2},
			want: vmm.Exit{Reason: vmm.ExitException, Vector: 6}},
		{name: "exception info not valid", in: RawExit{Reason: 0, IntrInfo: 13},
			want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "exception of type external interrupt", in: RawExit{Reason: 0, IntrInfo: intrInfo(0x20, 0, false)},
			want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "exception vector 32", in: RawExit{Reason: 0, IntrInfo: intrInfo(32, 3, false)},
			want: vmm.Exit{Reason: vmm.ExitUnhandled}},

		// Entry failures.
		{name: "invalid guest state", in: RawExit{Reason: 1<<31 | 33},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: invalid guest state"},
		{name: "invalid guest state, PDPTEs", in: RawExit{Reason: 1<<31 | 33, Qual: 2},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: invalid guest state (loading the PDPTEs)"},
		{name: "invalid guest state, NMI", in: RawExit{Reason: 1<<31 | 33, Qual: 3},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: invalid guest state (NMI injection while blocked by STI)"},
		{name: "invalid guest state, link pointer", in: RawExit{Reason: 1<<31 | 33, Qual: 4},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: invalid guest state (invalid VMCS link pointer)"},
		{name: "reason 33 without bit 31", in: RawExit{Reason: 33},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: invalid guest state"},
		{name: "MSR loading", in: RawExit{Reason: 1<<31 | 34, Qual: 3},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: entry 3 of the VM-entry MSR-load area is invalid"},
		{name: "machine check", in: RawExit{Reason: 1<<31 | 41},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: machine-check event"},
		{name: "bit 31 with another reason", in: RawExit{Reason: 1<<31 | 12},
			want: vmm.Exit{Reason: vmm.ExitInvalid}, detail: "VM entry failed: exit reason 12"},

		// Everything else.
		{name: "rdtsc", in: RawExit{Reason: 16, InstrLen: 2}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "cr access", in: RawExit{Reason: 28, Qual: 0x4}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "xsetbv", in: RawExit{Reason: 55, InstrLen: 3}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "vmlaunch in the guest", in: RawExit{Reason: 20, InstrLen: 3}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "nmi window", in: RawExit{Reason: 8}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "mwait", in: RawExit{Reason: 36, InstrLen: 3}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "unknown reason", in: RawExit{Reason: 200}, want: vmm.Exit{Reason: vmm.ExitUnhandled}},
		{name: "high bits of a real reason (bit 27: enclave)", in: RawExit{Reason: 1<<27 | 10, InstrLen: 2},
			want: vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},
	}
	for _, c := range cases {
		var got vmm.Exit
		got.Detail[0] = 'x' // stale state must be cleared
		got.DetailLen = 40
		got.Port = 99
		TranslateExit(&c.in, &got)
		want := c.want
		want.Raw, want.Info1, want.Info2 = uint64(c.in.Reason), c.in.Qual, c.in.GLA
		if c.info2 != nil {
			want.Info2 = *c.info2
		}
		gotD := detail(&got)
		got.Detail, got.DetailLen = [96]byte{}, 0
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
		if gotD != c.detail {
			t.Errorf("%s: Detail %q, want %q", c.name, gotD, c.detail)
		}
	}
}

func u64(v uint64) *uint64 { return &v }

func TestInstructionError(t *testing.T) {
	// The SDM's table (Vol. 3C 31.4, Table 31-1), by number.
	want := map[InstructionError]string{
		1:  "VMCALL executed in VMX root operation",
		2:  "VMCLEAR with invalid physical address",
		3:  "VMCLEAR with VMXON pointer",
		4:  "VMLAUNCH with non-clear VMCS",
		5:  "VMRESUME with non-launched VMCS",
		6:  "VMRESUME after VMXOFF",
		7:  "VM entry with invalid control field(s)",
		8:  "VM entry with invalid host-state field(s)",
		9:  "VMPTRLD with invalid physical address",
		10: "VMPTRLD with VMXON pointer",
		11: "VMPTRLD with incorrect VMCS revision identifier",
		12: "VMREAD/VMWRITE from/to unsupported VMCS component",
		13: "VMWRITE to read-only VMCS component",
		15: "VMXON executed in VMX root operation",
		16: "VM entry with invalid executive-VMCS pointer",
		17: "VM entry with non-launched executive VMCS",
		18: "VM entry with executive-VMCS pointer not VMXON pointer",
		19: "VMCALL with non-clear VMCS",
		20: "VMCALL with invalid VM-exit control fields",
		22: "VMCALL with incorrect MSEG revision identifier",
		23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
		24: "VMCALL with invalid SMM-monitor features",
		25: "VM entry with invalid VM-execution control fields in executive VMCS",
		26: "VM entry with events blocked by MOV SS",
		28: "invalid operand to INVEPT/INVVPID",
	}
	for n := InstructionError(0); n < 40; n++ {
		w, ok := want[n]
		if !ok {
			w = "reserved"
		}
		if got := n.String(); got != w {
			t.Errorf("error %d: %q, want %q", n, got, w)
		}
	}
	if ErrEntryInvalidControl != 7 || ErrEntryInvalidHostState != 8 || ErrVMLAUNCHNonClear != 4 ||
		ErrVMRESUMENonLaunched != 5 || ErrEntryBlockedByMOVSS != 26 || ErrInvalidINVEPTINVVPID != 28 {
		t.Error("constants")
	}
}

func TestSetEntryErrorDetail(t *testing.T) {
	var e vmm.Exit
	e.Port = 7
	SetEntryErrorDetail(&e, true, ErrEntryInvalidControl)
	if e.Reason != vmm.ExitInvalid || e.Raw != 7 || e.Port != 0 {
		t.Errorf("exit %+v", e)
	}
	if d := detail(&e); d != "VMLAUNCH failed: VM-instruction error 7 (VM entry with invalid control field(s))" {
		t.Errorf("Detail %q", d)
	}
	SetEntryErrorDetail(&e, false, 26)
	if d := detail(&e); d != "VMRESUME failed: VM-instruction error 26 (VM entry with events blocked by MOV SS)" {
		t.Errorf("Detail %q", d)
	}
	// Long messages are cut at Detail's size.
	SetEntryErrorDetail(&e, false, ErrEntryInvalidExecCtlSMM)
	if d := detail(&e); len(d) != len(e.Detail) || !strings.HasPrefix(d, "VMRESUME failed: VM-instruction error 25 (VM entry with invalid") {
		t.Errorf("long Detail %q (%d)", d, len(d))
	}
	SetEntryErrorDetail(&e, true, 0)
	if d := detail(&e); d != "VMLAUNCH failed: VM-instruction error 0 (reserved)" {
		t.Errorf("Detail %q", d)
	}
}

func TestDetailNumbers(t *testing.T) {
	for _, c := range []struct {
		v        uint64
		dec, hex string
	}{{0, "0", "0x0"}, {9, "9", "0x9"}, {10, "10", "0xa"}, {0xdeadbeef, "3735928559", "0xdeadbeef"},
		{^uint64(0), "18446744073709551615", "0xffffffffffffffff"}} {
		var e vmm.Exit
		detailDec(&e, c.v)
		detailPut(&e, " ")
		detailHex(&e, c.v)
		if got := detail(&e); got != c.dec+" "+c.hex {
			t.Errorf("%d: %q", c.v, got)
		}
	}
	var e vmm.Exit
	e.DetailLen = 200 // corrupt length: clamped, nothing written past the end
	detailPut(&e, "x")
	detailHex(&e, 5)
	if int(e.DetailLen) != len(e.Detail) {
		t.Errorf("DetailLen %d", e.DetailLen)
	}
}

func TestEvents(t *testing.T) {
	cases := []struct {
		name      string
		e         vmm.Event
		protected bool
		info, err uint32
		ok        bool
		soft      bool
	}{
		{"external interrupt", vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30}, true, 0x8000_0030, 0, true, false},
		{"nmi", vmm.Event{Kind: vmm.EventNMI, Vector: 2}, true, 0x8000_0202, 0, true, false},
		{"#GP with error code", vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x10}, true, 0x8000_0b0d, 0x10, true, false},
		{"#GP in real mode drops the code", vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true, ErrCode: 0x10}, false, 0x8000_030d, 0, true, false},
		{"#UD", vmm.Event{Kind: vmm.EventException, Vector: 6}, true, 0x8000_0306, 0, true, false},
		{"#PF", vmm.Event{Kind: vmm.EventException, Vector: 14, HasErr: true, ErrCode: 2}, true, 0x8000_0b0e, 2, true, false},
		{"#BP is a software exception", vmm.Event{Kind: vmm.EventException, Vector: 3}, true, 0x8000_0603, 0, true, true},
		{"#OF is a software exception", vmm.Event{Kind: vmm.EventException, Vector: 4}, true, 0x8000_0604, 0, true, true},
		{"INT 0x80", vmm.Event{Kind: vmm.EventSoftInt, Vector: 0x80}, true, 0x8000_0480, 0, true, true},
		{"exception vector 32", vmm.Event{Kind: vmm.EventException, Vector: 32}, true, 0, 0, false, false},
		{"#UD with an error code", vmm.Event{Kind: vmm.EventException, Vector: 6, HasErr: true}, true, 0, 0, false, false},
		{"NMI vector 3", vmm.Event{Kind: vmm.EventNMI, Vector: 3}, true, 0, 0, false, false},
		{"interrupt with an error code", vmm.Event{Kind: vmm.EventExtInt, Vector: 0x30, HasErr: true}, true, 0, 0, false, false},
		{"INTn with an error code", vmm.Event{Kind: vmm.EventSoftInt, Vector: 0x30, HasErr: true}, true, 0, 0, false, false},
		{"bad kind", vmm.Event{Kind: 9, Vector: 0x30}, true, 0, 0, false, false},
	}
	for _, c := range cases {
		info, errc, ok := EncodeEvent(c.e, c.protected)
		if ok != c.ok || info != c.info || errc != c.err {
			t.Errorf("%s: EncodeEvent = %#x, %#x, %v; want %#x, %#x, %v", c.name, info, errc, ok, c.info, c.err, c.ok)
			continue
		}
		if !ok {
			continue
		}
		// Back again (the real-mode case loses its error code by design).
		e, soft, ok := DecodeEvent(info, errc)
		want := c.e
		if !c.protected {
			want.HasErr, want.ErrCode = false, 0
		}
		if !ok || e != want || soft != c.soft {
			t.Errorf("%s: DecodeEvent(%#x) = %+v soft=%v %v, want %+v soft=%v", c.name, info, e, soft, ok, want, c.soft)
		}
	}
	// IDT-vectoring forms EncodeEvent never produces.
	if e, soft, ok := DecodeEvent(intrInfo(1, 5, false), 0); !ok || !soft || e != (vmm.Event{Kind: vmm.EventException, Vector: 1}) {
		t.Errorf("INT1: %+v %v %v", e, soft, ok)
	}
	if _, _, ok := DecodeEvent(intrInfo(0, 7, false), 0); ok {
		t.Error("type 7 (other event) decoded")
	}
	if _, _, ok := DecodeEvent(0x0000_0b0e, 2); ok {
		t.Error("invalid word decoded")
	}
}

func TestDecodeCRAccess(t *testing.T) {
	cases := []struct {
		q    uint64
		want CRAccess
	}{
		{0x0000_0300, CRAccess{CR: 0, Type: CRAccessMovTo, GPR: 3}},        // mov cr0, rbx
		{0x0000_0f14, CRAccess{CR: 4, Type: CRAccessMovFrom, GPR: 15}},     // mov r15, cr4
		{0x0000_0023, CRAccess{CR: 3, Type: CRAccessCLTS}},                 // clts
		{0x0011_0030, CRAccess{CR: 0, Type: CRAccessLMSW, LMSWData: 0x11}}, // lmsw ax
		{0x0031_0070, CRAccess{CR: 0, Type: CRAccessLMSW, LMSWMemory: true, LMSWData: 0x31}},
		{0x0000_0508, CRAccess{CR: 8, Type: CRAccessMovTo, GPR: 5}}, // mov cr8, rbp
	}
	for _, c := range cases {
		if got := DecodeCRAccess(c.q); got != c.want {
			t.Errorf("DecodeCRAccess(%#x) = %+v, want %+v", c.q, got, c.want)
		}
	}
}

func TestExitPathAllocs(t *testing.T) {
	raws := []RawExit{
		{Reason: 30, Qual: ioQual(0x3f8, 1, false, false, false), InstrLen: 1},
		{Reason: 48, Qual: 2, GPA: 0xfee00000},
		{Reason: 49, GPA: 0xfee00000},
		{Reason: 1<<31 | 34, Qual: 12},
		{Reason: 0, IntrInfo: intrInfo(14, 3, true)},
	}
	var e vmm.Exit
	c := testControls()
	s := goodReal()
	bad := s
	bad.TR.Attr = 0
	if n := testing.AllocsPerRun(100, func() {
		for i := range raws {
			TranslateExit(&raws[i], &e)
		}
		SetEntryErrorDetail(&e, true, 7)
		_, _, _ = EncodeEvent(vmm.Event{Kind: vmm.EventException, Vector: 13, HasErr: true}, true)
		_, _, _ = DecodeEvent(0x8000_0b0e, 0)
		TranslateExit(&RawExit{Reason: 1<<31 | 33}, &e)
		_ = SetGuestStateDetail(&e, &bad, nil, &c)
		_ = SetGuestStateDetail(&e, &s, nil, &c)
	}); n != 0 {
		t.Fatalf("exit path allocates %v times", n)
	}
}
