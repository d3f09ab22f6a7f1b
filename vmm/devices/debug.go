package devices

import "fmt"

// Debug descriptions for juice's state dump (not on any hot path: they
// allocate).

// DebugString describes the UART's interrupt-relevant state: the enabled
// interrupts, the pending source, the receiver and host queue fill, and
// the interrupt output.
func (u *UART) DebugString() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return fmt.Sprintf("uart ier=%#x iir=%#x mcr=%#x lcr=%#x fifo=%v trigger=%d rx=%d host=%d dropped=%d thre-pending=%v line=%v sent=%v delivering=%v",
		u.ier, u.intID(), u.mcr, u.lcr, u.fifoOn, u.trigger, u.rxN, u.hostN, u.dropped, u.thrPending, u.line, u.sent, u.delivering)
}

// DebugString describes both 8259s: request, in-service and mask
// registers, input levels and vector bases.
func (p *PIC) DebugString() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, s := &p.chip[0], &p.chip[1]
	return fmt.Sprintf("pic master{irr=%#x isr=%#x imr=%#x lines=%#x base=%#x} slave{irr=%#x isr=%#x imr=%#x lines=%#x base=%#x}",
		m.irr, m.isr, m.imr, m.level, m.base, s.irr, s.isr, s.imr, s.level, s.base)
}
