package svm

import (
	"testing"

	"juice/vmm"
)

// entrySeen is what the fake CPU found in the VMCB's interrupt controls
// at entry.
type entrySeen struct {
	vintr, misc1, eventInj uint64
}

// virqExit returns an exit writer that records the entry's interrupt
// controls in seen and exits with code, leaving V_IRQ set (the guest did
// not take the virtual interrupt) when left, else clearing it as the CPU
// does when it takes one.
func virqExit(seen *entrySeen, code uint64, left bool) func(VMCB, *vmm.Regs) {
	return func(m VMCB, _ *vmm.Regs) {
		*seen = entrySeen{vintr: m.VIntr(), misc1: uint64(m.InterceptMisc1()), eventInj: m.EventInj()}
		if !left {
			m.SetVIntr(m.VIntr() &^ VIntrIRQ)
		}
		m.SetExitCode(code)
	}
}

// TestExternalInterruptPostedAsVIRQ: an external interrupt the guest can
// take now (IF set, no shadow) goes in as a virtual interrupt (V_IRQ,
// V_INTR_VECTOR, V_IGN_TPR, highest priority, no VINTR intercept), never
// through EVENTINJ, whose INTR type QEMU's TCG delivers a second time on
// its next exit request. Taken, it is gone after the exit and the VMCB's
// interrupt controls are back to what the core asked for; not taken (an
// exit came first), it is pending again.
func TestExternalInterruptPostedAsVIRQ(t *testing.T) {
	e := newEnv(t, qemuCaps, long64())
	m := e.c.VMCB()
	m.SetVIntr(m.VIntr() | 0x3) // V_TPR (CR8) 3: kept, and ignored by the interrupt
	var seen entrySeen
	ev := vmm.Event{Kind: vmm.EventExtInt, Vector: 0xec}

	e.v.Regs.RFLAGS = 2 | RFLAGSIF
	e.v.Pending, e.v.HasPending = ev, true
	e.f.exit = virqExit(&seen, ExitHLT, false)
	e.c.Run(e.v)
	want := VIntrMasking | 0x3 | VIntrIRQ | VIntrIgnTPR | VIntrPrioMask | uint64(0xec)<<VIntrVectorShift
	if seen.vintr != want || seen.eventInj != 0 || seen.misc1&InterceptVINTR != 0 {
		t.Errorf("at entry: V_INTR %#x (want %#x), EVENTINJ %#x, VINTR intercepted %v",
			seen.vintr, want, seen.eventInj, seen.misc1&InterceptVINTR != 0)
	}
	if e.v.HasPending {
		t.Errorf("taken interrupt still pending: %+v", e.v.Pending)
	}
	if m.VIntr() != VIntrMasking|0x3 || m.InterceptMisc1()&InterceptVINTR != 0 {
		t.Errorf("after the exit: V_INTR %#x, VINTR intercepted %v; want %#x and no window",
			m.VIntr(), m.InterceptMisc1()&InterceptVINTR != 0, VIntrMasking|0x3)
	}

	// Not taken: pending again, the same event.
	e.v.Pending, e.v.HasPending = ev, true
	e.f.exit = virqExit(&seen, ExitIntr, true)
	e.c.Run(e.v)
	if !e.v.HasPending || e.v.Pending != ev {
		t.Errorf("interrupt not taken: pending %v %+v, want %+v", e.v.HasPending, e.v.Pending, ev)
	}
	if m.VIntr()&(VIntrIRQ|VIntrVectorMask) != 0 {
		t.Errorf("V_IRQ left posted after the exit: V_INTR %#x", m.VIntr())
	}

	// With an interrupt window requested (more interrupts wait), the
	// entry carries the interrupt instead, and the request is re-armed
	// after the exit.
	e.c.RequestInterruptWindow(true)
	e.f.exit = virqExit(&seen, ExitHLT, false)
	e.c.Run(e.v)
	if seen.vintr&VIntrIRQ == 0 || seen.vintr&VIntrVectorMask != uint64(0xec)<<VIntrVectorShift || seen.misc1&InterceptVINTR != 0 {
		t.Errorf("with a window requested, at entry: V_INTR %#x, VINTR intercepted %v", seen.vintr, seen.misc1&InterceptVINTR != 0)
	}
	if m.VIntr()&VIntrIRQ == 0 || m.VIntr()&VIntrVectorMask != 0 || m.InterceptMisc1()&InterceptVINTR == 0 {
		t.Errorf("window request not re-armed after the exit: V_INTR %#x misc1 %#x", m.VIntr(), m.InterceptMisc1())
	}
	e.c.RequestInterruptWindow(false)
	if e.v.HasPending {
		t.Errorf("taken interrupt still pending: %+v", e.v.Pending)
	}

	// A VMRUN that fails leaves the interrupt pending.
	e.v.Pending, e.v.HasPending = ev, true
	e.f.exit = virqExit(&seen, ExitInvalid, true)
	e.c.Run(e.v)
	if e.v.Exit.Reason != vmm.ExitInvalid || !e.v.HasPending || e.v.Pending != ev {
		t.Errorf("failed VMRUN: exit %v, pending %v %+v", e.v.Exit.Reason, e.v.HasPending, e.v.Pending)
	}
}

// TestExternalInterruptWithIFClearUsesEVENTINJ: an external interrupt the
// guest cannot take by its RFLAGS.IF or interrupt shadow (one whose
// delivery an exit interrupted, re-queued from EXITINTINFO) still goes
// through EVENTINJ, which delivers it regardless, as it must.
func TestExternalInterruptWithIFClearUsesEVENTINJ(t *testing.T) {
	for _, c := range []struct {
		name   string
		rflags uint64
		shadow uint64
	}{
		{"IF clear", 2, 0},
		{"interrupt shadow", 2 | RFLAGSIF, interruptShadow},
	} {
		e := newEnv(t, qemuCaps, long64())
		var seen entrySeen
		e.v.Regs.RFLAGS = c.rflags
		e.c.VMCB().SetInterruptShadow(c.shadow)
		e.v.Pending, e.v.HasPending = vmm.Event{Kind: vmm.EventExtInt, Vector: 0x41}, true
		e.f.exit = virqExit(&seen, ExitHLT, false)
		e.c.Run(e.v)
		if seen.eventInj != 0x8000_0041 || seen.vintr&VIntrIRQ != 0 {
			t.Errorf("%s: EVENTINJ %#x, V_INTR %#x at entry; want EVENTINJ 0x80000041 and no V_IRQ",
				c.name, seen.eventInj, seen.vintr)
		}
		if e.v.HasPending {
			t.Errorf("%s: delivered interrupt still pending", c.name)
		}
	}
}

// TestDecodeQEMUInterruptInDelivery: QEMU records a hardware interrupt it
// is delivering inside the guest with the exception type; an EXITINTINFO
// like that (type 3, vector 32 or more, which no exception has) is the
// external interrupt, re-queued as one.
func TestDecodeQEMUInterruptInDelivery(t *testing.T) {
	e, ok := DecodeEvent(0x8000_03ec)
	if !ok || e != (vmm.Event{Kind: vmm.EventExtInt, Vector: 0xec}) {
		t.Errorf("DecodeEvent(0x800003ec) = %+v, %v; want external interrupt 0xec", e, ok)
	}
	env := newEnv(t, qemuCaps, long64())
	env.f.exit = func(m VMCB, _ *vmm.Regs) {
		m.SetExitCode(ExitIntr)
		m.SetExitIntInfo(0x8000_03ec)
	}
	env.c.Run(env.v)
	if !env.v.HasPending || env.v.Pending != (vmm.Event{Kind: vmm.EventExtInt, Vector: 0xec}) {
		t.Errorf("re-queued %v %+v", env.v.HasPending, env.v.Pending)
	}
	if _, ok := EncodeEvent(env.v.Pending); !ok {
		t.Error("the re-queued interrupt cannot be injected")
	}
}
