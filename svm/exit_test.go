package svm

import (
	"strings"
	"testing"

	"juice/vmm"
)

// ioInfo builds an IOIO EXITINFO1 from the APM's field layout (15.10.2).
func ioInfo(port uint16, size int, in, str, rep bool) uint64 {
	v := uint64(port) << 16
	switch size {
	case 1:
		v |= 1 << 4
	case 2:
		v |= 1 << 5
	case 4:
		v |= 1 << 6
	}
	if in {
		v |= 1
	}
	if str {
		v |= 1 << 2
	}
	if rep {
		v |= 1 << 3
	}
	return v | 1<<8 // A32, ignored by the translation
}

func TestTranslateExit(t *testing.T) {
	const rip = 0x1000
	cases := []struct {
		name string
		in   RawExit
		want vmm.Exit // Raw/Info1/Info2 are filled from in by the loop
	}{
		// Port I/O: the length comes from EXITINFO2 even without NRIP save.
		{"out dx,al", RawExit{Code: 0x7b, Info1: ioInfo(0x3f8, 1, false, false, false), Info2: rip + 1, RIP: rip},
			vmm.Exit{Reason: vmm.ExitIO, Port: 0x3f8, Size: 1, InstrLen: 1}},
		{"in eax,0x71", RawExit{Code: 0x7b, Info1: ioInfo(0x71, 4, true, false, false), Info2: rip + 2, RIP: rip},
			vmm.Exit{Reason: vmm.ExitIO, Port: 0x71, Size: 4, In: true, InstrLen: 2}},
		{"rep outsw, 0xffff", RawExit{Code: 0x7b, Info1: ioInfo(0xffff, 2, false, true, true), Info2: rip + 3, RIP: rip},
			vmm.Exit{Reason: vmm.ExitIO, Port: 0xffff, Size: 2, String: true, Rep: true, InstrLen: 3}},
		{"insd with NRIP save", RawExit{Code: 0x7b, Info1: ioInfo(0x1f0, 4, true, true, false), Info2: rip + 1, NRIP: rip + 1, RIP: rip, NRIPSave: true},
			vmm.Exit{Reason: vmm.ExitIO, Port: 0x1f0, Size: 4, In: true, String: true, InstrLen: 1}},
		{"io with bogus next RIP", RawExit{Code: 0x7b, Info1: ioInfo(0x80, 1, false, false, false), Info2: rip - 1, RIP: rip},
			vmm.Exit{Reason: vmm.ExitIO, Port: 0x80, Size: 1}},
		{"io without size bits", RawExit{Code: 0x7b, Info1: 0x3f8 << 16, Info2: rip + 1, RIP: rip},
			vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"io with two size bits", RawExit{Code: 0x7b, Info1: 0x3f8<<16 | 3<<4, Info2: rip + 1, RIP: rip},
			vmm.Exit{Reason: vmm.ExitUnhandled}},

		// Nested page faults.
		{"npf read", RawExit{Code: 0x400, Info1: 1<<32 | 1<<2, Info2: 0xfee00030, RIP: rip},
			vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xfee00030}},
		{"npf write", RawExit{Code: 0x400, Info1: 1<<32 | 1<<2 | 1<<1, Info2: 0xfec00000, RIP: rip, NRIPSave: true, NRIP: rip + 3},
			vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xfec00000, Write: true}},
		{"npf fetch", RawExit{Code: 0x400, Info1: 1<<32 | 1<<4 | 1<<2, Info2: 0xffff_fff0, RIP: rip},
			vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0xffff_fff0, Fetch: true}},
		{"npf without final/walk bits (QEMU)", RawExit{Code: 0x400, Info1: 1 << 1, Info2: 0x1_0000_0000, RIP: rip},
			vmm.Exit{Reason: vmm.ExitMMIO, GPA: 0x1_0000_0000, Write: true}},
		{"npf on a guest page-table walk", RawExit{Code: 0x400, Info1: 1<<33 | 1<<2, Info2: 0x8000_0000, RIP: rip},
			vmm.Exit{Reason: vmm.ExitUnhandled, GPA: 0x8000_0000}},
		{"npf during event delivery", RawExit{Code: 0x400, Info1: 1<<32 | 1<<1, Info2: 0xe000_0000, IntInfo: 0x8000_0020, RIP: rip},
			vmm.Exit{Reason: vmm.ExitUnhandled, GPA: 0xe000_0000}},

		// Instruction intercepts: fixed lengths without NRIP save.
		{"cpuid", RawExit{Code: 0x72, RIP: rip}, vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},
		{"cpuid with NRIP save (prefixed)", RawExit{Code: 0x72, RIP: rip, NRIP: rip + 3, NRIPSave: true}, vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 3}},
		{"cpuid with NRIP save but nRIP 0", RawExit{Code: 0x72, RIP: rip, NRIPSave: true}, vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},
		{"cpuid without NRIP save ignores nRIP", RawExit{Code: 0x72, RIP: rip, NRIP: rip + 5}, vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},
		{"rdmsr", RawExit{Code: 0x7c, Info1: 0, RIP: rip}, vmm.Exit{Reason: vmm.ExitRDMSR, InstrLen: 2}},
		{"wrmsr", RawExit{Code: 0x7c, Info1: 1, RIP: rip}, vmm.Exit{Reason: vmm.ExitWRMSR, InstrLen: 2}},
		{"msr with bad EXITINFO1", RawExit{Code: 0x7c, Info1: 2, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"hlt", RawExit{Code: 0x78, RIP: rip}, vmm.Exit{Reason: vmm.ExitHLT, InstrLen: 1}},
		{"hlt with NRIP save", RawExit{Code: 0x78, RIP: rip, NRIP: rip + 1, NRIPSave: true}, vmm.Exit{Reason: vmm.ExitHLT, InstrLen: 1}},
		{"vmmcall", RawExit{Code: 0x81, RIP: rip}, vmm.Exit{Reason: vmm.ExitHypercall, InstrLen: 3}},
		{"pause", RawExit{Code: 0x77, RIP: rip}, vmm.Exit{Reason: vmm.ExitPause, InstrLen: 2}},
		{"16-bit IP wrap falls back to the fixed length", RawExit{Code: 0x72, RIP: 0xffff, NRIP: 0x1, NRIPSave: true}, vmm.Exit{Reason: vmm.ExitCPUID, InstrLen: 2}},

		// Events.
		{"shutdown", RawExit{Code: 0x7f, RIP: rip}, vmm.Exit{Reason: vmm.ExitShutdown}},
		{"intr", RawExit{Code: 0x60, RIP: rip}, vmm.Exit{Reason: vmm.ExitExtIntr}},
		{"nmi", RawExit{Code: 0x61, RIP: rip}, vmm.Exit{Reason: vmm.ExitExtIntr}},
		{"smi", RawExit{Code: 0x62, RIP: rip}, vmm.Exit{Reason: vmm.ExitExtIntr}},
		{"init", RawExit{Code: 0x63, RIP: rip}, vmm.Exit{Reason: vmm.ExitExtIntr}},
		{"vintr", RawExit{Code: 0x64, RIP: rip}, vmm.Exit{Reason: vmm.ExitIntrWindow}},

		// Exceptions.
		{"#DE", RawExit{Code: 0x40, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 0}},
		{"#DB", RawExit{Code: 0x41, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 1}},
		{"#UD", RawExit{Code: 0x46, Info1: 0x77, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 6}},
		{"#DF", RawExit{Code: 0x48, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 8, HasErr: true}},
		{"#GP", RawExit{Code: 0x4d, Info1: 0x18, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 13, HasErr: true, ErrCode: 0x18}},
		{"#PF", RawExit{Code: 0x4e, Info1: 0x6, Info2: 0xdead_b000, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 14, HasErr: true, ErrCode: 6}},
		{"#AC", RawExit{Code: 0x51, Info1: 0, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 17, HasErr: true}},
		{"#MC", RawExit{Code: 0x52, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 18}},
		{"vector 31", RawExit{Code: 0x5f, RIP: rip}, vmm.Exit{Reason: vmm.ExitException, Vector: 31}},

		// Everything else.
		{"rdtsc", RawExit{Code: 0x6e, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"cr0 write", RawExit{Code: 0x10, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"vmrun", RawExit{Code: 0x80, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"xsetbv", RawExit{Code: 0x8d, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"avic", RawExit{Code: 0x401, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
		{"high bits of a real code", RawExit{Code: 1<<32 | 0x7f, RIP: rip}, vmm.Exit{Reason: vmm.ExitUnhandled}},
	}
	for _, c := range cases {
		var got vmm.Exit
		got.Detail[0] = 'x' // stale state must be cleared
		got.Port = 99
		TranslateExit(&c.in, &got)
		want := c.want
		want.Raw, want.Info1, want.Info2 = c.in.Code, c.in.Info1, c.in.Info2
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
	}
}

func TestTranslateExitInvalid(t *testing.T) {
	for _, c := range []struct {
		code uint64
		want string
	}{
		{0xffff_ffff_ffff_ffff, "VMEXIT_INVALID"},
		{0x0000_0000_ffff_ffff, "VMEXIT_INVALID"}, // QEMU's 32-bit form
		{0xffff_ffff_ffff_fffe, "VMEXIT_BUSY"},
		{0x0000_0000_ffff_fffe, "VMEXIT_BUSY"},
	} {
		var e vmm.Exit
		TranslateExit(&RawExit{Code: c.code}, &e)
		d := string(e.Detail[:e.DetailLen])
		if e.Reason != vmm.ExitInvalid || !strings.Contains(d, c.want) || e.Raw != c.code {
			t.Errorf("code %#x: %v %q", c.code, e.Reason, d)
		}
	}
}

func TestErrCodeVectors(t *testing.T) {
	// The vectors that push an error code (APM Vol. 2, 8.2), listed here
	// independently of the implementation's mask.
	pushes := map[uint8]bool{8: true, 10: true, 11: true, 12: true, 13: true, 14: true, 17: true, 21: true, 29: true, 30: true}
	for v := uint8(0); v < 32; v++ {
		var e vmm.Exit
		TranslateExit(&RawExit{Code: 0x40 + uint64(v), Info1: 0xabcd}, &e)
		if e.HasErr != pushes[v] {
			t.Errorf("vector %d: HasErr %v", v, e.HasErr)
		}
		if e.HasErr && e.ErrCode != 0xabcd {
			t.Errorf("vector %d: ErrCode %#x", v, e.ErrCode)
		}
	}
}

func TestTranslateExitAllocs(t *testing.T) {
	r := RawExit{Code: 0x7b, Info1: ioInfo(0x3f8, 1, false, false, false), Info2: 0x1001, RIP: 0x1000}
	var e vmm.Exit
	if n := testing.AllocsPerRun(1000, func() { TranslateExit(&r, &e) }); n != 0 {
		t.Errorf("TranslateExit allocates %v times", n)
	}
	inv := RawExit{Code: 0xffffffff}
	if n := testing.AllocsPerRun(1000, func() { TranslateExit(&inv, &e) }); n != 0 {
		t.Errorf("TranslateExit(invalid) allocates %v times", n)
	}
}

func FuzzTranslateExit(f *testing.F) {
	f.Add(uint64(0x7b), uint64(0x3f80010), uint64(0x1001), uint64(0), uint64(0), uint64(0x1000), false)
	f.Add(uint64(0x400), uint64(1<<33), uint64(0xfee00000), uint64(0x80000020), uint64(0), uint64(0), true)
	f.Add(uint64(0x72), uint64(0), uint64(0), uint64(0), uint64(0x1003), uint64(0x1000), true)
	f.Add(uint64(0xffffffff), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), false)
	f.Add(uint64(0x4e), uint64(6), uint64(0xdead), uint64(0), uint64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, code, info1, info2, intInfo, nrip, rip uint64, nripSave bool) {
		r := RawExit{Code: code, Info1: info1, Info2: info2, IntInfo: intInfo, NRIP: nrip, RIP: rip, NRIPSave: nripSave}
		var e vmm.Exit
		TranslateExit(&r, &e)
		if e.Raw != code || e.Info1 != info1 || e.Info2 != info2 {
			t.Fatal("raw values not carried")
		}
		if e.InstrLen > 15 {
			t.Fatalf("InstrLen %d", e.InstrLen)
		}
		if e.Reason == vmm.ExitNone || e.Reason > vmm.ExitUnhandled {
			t.Fatalf("reason %v", e.Reason)
		}
		if e.Reason == vmm.ExitIO && e.Size != 1 && e.Size != 2 && e.Size != 4 {
			t.Fatalf("io size %d", e.Size)
		}
		if e.Reason == vmm.ExitInvalid && e.DetailLen == 0 {
			t.Fatal("invalid without detail")
		}
		if int(e.DetailLen) > len(e.Detail) {
			t.Fatal("DetailLen too long")
		}
	})
}

func BenchmarkExitTranslate(b *testing.B) {
	rs := []RawExit{
		{Code: 0x7b, Info1: ioInfo(0x3f8, 1, false, false, false), Info2: 0x1001, RIP: 0x1000},
		{Code: 0x400, Info1: 1<<32 | 2, Info2: 0xfee00000, RIP: 0x1000},
		{Code: 0x72, RIP: 0x1000},
		{Code: 0x4d, Info1: 0x18},
	}
	var e vmm.Exit
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		TranslateExit(&rs[i&3], &e)
	}
}
