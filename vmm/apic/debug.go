package apic

import (
	"fmt"
	"strings"
)

// Debug descriptions of the interrupt controllers' state, for juice's
// state dump (an operator's escape key, a failing test). Not on any hot
// path: they allocate.

// vectorList formats the vectors set in a 256-bit register, e.g. "[0x30
// 0xec]".
func vectorList(r *[8]uint32) string {
	var b strings.Builder
	b.WriteByte('[')
	for v := 0; v < 256; v++ {
		if bitSet(r, uint8(v)) {
			if b.Len() > 1 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%#x", v)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// DebugString describes the local APIC: mode, priorities, the IRR, ISR
// and TMR vectors, and its timer.
func (a *LAPIC) DebugString() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	mode := "xAPIC"
	switch {
	case !a.enabled():
		mode = "disabled"
	case a.x2():
		mode = "x2APIC"
	}
	in := int64(0)
	if a.armed {
		in = a.deadline - a.now()
	}
	return fmt.Sprintf("lapic %d %s svr=%#x tpr=%#x ppr=%#x irr=%s isr=%s tmr=%s lvt-timer=%#x armed=%v due-in=%dns tsc-deadline=%#x lint0=%#x",
		a.id, mode, a.svr, a.tpr, a.ppr(), vectorList(&a.irr), vectorList(&a.isr), vectorList(&a.tmr),
		a.lvt[lvtTimer], a.armed, in, a.tscDeadline, a.lvt[lvtLINT0])
}

// DebugString describes the I/O APIC pins that are unmasked or asserted:
// their line level and redirection entry.
func (io *IOAPIC) DebugString() string {
	io.mu.Lock()
	defer io.mu.Unlock()
	var b strings.Builder
	b.WriteString("ioapic")
	for i := range io.redir {
		e := io.redir[i]
		if e&RedirMasked != 0 && !io.line[i] {
			continue
		}
		fmt.Fprintf(&b, " pin%d{line=%v vec=%#x level=%v masked=%v rirr=%v dest=%#x}",
			i, io.line[i], uint8(e), e&RedirLevel != 0, e&RedirMasked != 0, e&RedirRemoteIRR != 0, uint8(e>>56))
	}
	return b.String()
}
