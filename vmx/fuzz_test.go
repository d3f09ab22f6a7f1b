package vmx

import (
	"testing"

	"juice/vmm"
)

// FuzzTranslateExit feeds arbitrary exit information to TranslateExit:
// it must not panic, must keep the raw words, and must only produce
// records the core can act on.
func FuzzTranslateExit(f *testing.F) {
	f.Add(uint32(30), uint64(0x3f8<<16), uint64(0), uint64(0), uint32(1), uint32(0), uint32(0), uint32(0))
	f.Add(uint32(48), uint64(2|1<<7|1<<8), uint64(0xfee00000), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint32(1<<31|33), uint64(4), uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint32(1<<31|34), uint64(1<<63), uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint32(0), uint64(0xdead0000), uint64(0), uint64(0), uint32(1), uint32(0x80000b0e), uint32(6), uint32(0))
	f.Add(uint32(49), uint64(0), ^uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, reason uint32, qual, gpa, gla uint64, ilen, info, ierr, idt uint32) {
		r := RawExit{Reason: reason, Qual: qual, GPA: gpa, GLA: gla, InstrLen: ilen, IntrInfo: info, IntrError: ierr, IDTInfo: idt}
		var e vmm.Exit
		TranslateExit(&r, &e)
		if e.Raw != uint64(reason) || e.Info1 != qual {
			t.Fatalf("raw words lost: %+v", e)
		}
		if e.InstrLen > 15 || int(e.DetailLen) > len(e.Detail) {
			t.Fatalf("bad lengths: %+v", e)
		}
		switch e.Reason {
		case vmm.ExitIO:
			if e.Size != 1 && e.Size != 2 && e.Size != 4 {
				t.Fatalf("I/O size %d", e.Size)
			}
		case vmm.ExitException:
			if e.Vector > 31 {
				t.Fatalf("exception vector %d", e.Vector)
			}
		case vmm.ExitInvalid:
			if e.DetailLen == 0 {
				t.Fatal("ExitInvalid without a message")
			}
		case vmm.ExitMMIO, vmm.ExitCPUID, vmm.ExitRDMSR, vmm.ExitWRMSR, vmm.ExitHLT, vmm.ExitHypercall,
			vmm.ExitShutdown, vmm.ExitIntrWindow, vmm.ExitExtIntr, vmm.ExitPause, vmm.ExitUnhandled:
		default:
			t.Fatalf("reason %v", e.Reason)
		}
		if e.Reason != vmm.ExitInvalid && e.DetailLen != 0 {
			t.Fatalf("detail on %v", e.Reason)
		}
		if reason&(1<<31) != 0 && e.Reason != vmm.ExitInvalid {
			t.Fatalf("entry failure %#x became %v", reason, e.Reason)
		}
	})
}

// FuzzEvents checks EncodeEvent and DecodeEvent against each other.
func FuzzEvents(f *testing.F) {
	f.Add(uint8(vmm.EventException), uint8(14), true, uint32(2), true)
	f.Add(uint8(vmm.EventSoftInt), uint8(0x80), false, uint32(0), true)
	f.Add(uint8(vmm.EventNMI), uint8(2), false, uint32(0), false)
	f.Fuzz(func(t *testing.T, kind, vector uint8, hasErr bool, code uint32, protected bool) {
		ev := vmm.Event{Kind: vmm.EventKind(kind), Vector: vector, HasErr: hasErr, ErrCode: code}
		info, ec, ok := EncodeEvent(ev, protected)
		if !ok {
			if info != 0 || ec != 0 {
				t.Fatal("refused event left values")
			}
			return
		}
		if info&IntrValid == 0 || info&0x7fff_f000 != 0 {
			t.Fatalf("info %#x", info)
		}
		back, _, ok := DecodeEvent(info, ec)
		if !protected || !ev.HasErr { // the code travels only with HasErr, and not in real mode
			ev.HasErr, ev.ErrCode = false, 0
		}
		if !ok || back != ev {
			t.Fatalf("%+v → %#x/%#x → %+v %v", ev, info, ec, back, ok)
		}
		// Re-encoding the decoded IDT-vectoring form gives the same word.
		if info2, ec2, ok := EncodeEvent(back, true); !ok || info2 != info || ec2 != ec {
			t.Fatalf("re-encode %#x/%#x → %#x/%#x %v", info, ec, info2, ec2, ok)
		}
	})
}

// FuzzCheckGuestState runs the guest-state checks on arbitrary states: no
// panic, and the error and detail forms agree.
func FuzzCheckGuestState(f *testing.F) {
	s := goodLong()
	f.Add(s.CR0, s.CR4, s.EFER, s.CS.Attr, s.SS.Attr, s.TR.Attr, s.CS.Limit, s.TR.Base, uint16(0x10), longExtra.RIP, longExtra.RFLAGS, uint32(0), uint32(0), true)
	r := goodReal()
	f.Add(r.CR0, r.CR4, r.EFER, r.CS.Attr, r.SS.Attr, r.TR.Attr, r.CS.Limit, r.TR.Base, uint16(0xf000), uint64(0xfff0), uint64(2), uint32(1), uint32(1), false)
	f.Fuzz(func(t *testing.T, cr0, cr4, efer uint64, csAttr, ssAttr, trAttr uint16, csLimit uint32, trBase uint64, csSel uint16,
		rip, rflags uint64, activity, intr uint32, ug bool) {
		c := testControls()
		if !ug {
			c.Proc2 &^= Proc2UnrestrictedGuest
		}
		s := goodLong()
		s.CR0, s.CR4, s.EFER = cr0, cr4, efer
		s.CS.Attr, s.SS.Attr, s.TR.Attr = csAttr, ssAttr, trAttr
		s.CS.Limit, s.TR.Base, s.CS.Selector = csLimit, trBase, csSel
		x := GuestExtra{RIP: rip, RFLAGS: rflags, Activity: activity, Interruptibility: intr}
		err := CheckGuestState(&s, &x, &c)
		var e vmm.Exit
		found := SetGuestStateDetail(&e, &s, &x, &c)
		if (err != nil) != found {
			t.Fatalf("CheckGuestState %v, SetGuestStateDetail %v", err, found)
		}
		if err != nil {
			ge := err.(*GuestStateError)
			if ge.Field.Name() == "" || ge.Field.Type() != TypeGuest || ge.Reason == "" {
				t.Fatalf("error names no guest field: %v", err)
			}
		}
	})
}

// FuzzAccessRights converts arbitrary values both ways.
func FuzzAccessRights(f *testing.F) {
	f.Add(uint16(0x9b), uint32(0xa09b))
	f.Fuzz(func(t *testing.T, attr uint16, ar uint32) {
		a := attr & 0xfff
		if SegmentAttr(AccessRights(a)) != a {
			t.Fatalf("attr %#x does not round-trip", a)
		}
		got := SegmentAttr(ar)
		if got&0xf000 != 0 || AccessRights(got)&0xfffe_0f00 != 0 {
			t.Fatalf("ar %#x → %#x", ar, got)
		}
	})
}
