// Package devices holds the emulated platform juice gives its guests: a
// 16550A UART for the console (UART), the isa-debug-exit port guests use
// to end themselves (ExitPort), QEMU's pvpanic port (PVPanic), the PC/AT
// interrupt controllers, timer, RTC and ACPI PM timer, an MMIO test device
// (Scratch), and PrefixWriter, which tags each VM's console lines with its
// name. Port devices implement vmm.PortDevice, MMIO devices
// vmm.MMIODevice; their accessors run on the exit path and do not
// allocate.
package devices

import (
	"io"
	"sync"
)

// Legacy port bases.
const (
	// COM1 is the first PC serial port's base.
	COM1 = 0x3f8
	// COM1IRQ is the ISA IRQ line COM1 drives on a PC.
	COM1IRQ = 4
	// UARTPorts is the number of ports a 16550 decodes from its base.
	UARTPorts = 8
)

// 16550 register offsets and bits (National Semiconductor PC16550D data
// sheet).
const (
	regData = 0 // RBR (read) / THR (write); DLL when LCR.DLAB
	regIER  = 1 // interrupt enable; DLM when LCR.DLAB
	regIIR  = 2 // interrupt identification (read) / FCR (write)
	regLCR  = 3
	regMCR  = 4
	regLSR  = 5
	regMSR  = 6
	regSCR  = 7

	lcrDLAB = 0x80

	ierERBFI = 0x01 // received data available (and character timeout)
	ierETBEI = 0x02 // transmitter holding register empty
	ierELSI  = 0x04 // receiver line status
	ierEDSSI = 0x08 // modem status

	// IIR interrupt identification codes (bits 3:0), highest priority
	// first; bits 7:6 read 11 while the FIFOs are enabled.
	iirLineStatus = 0x06
	iirRxData     = 0x04
	iirTimeout    = 0x0c
	iirTHRE       = 0x02
	iirModem      = 0x00
	iirNoInt      = 0x01
	iirFIFOsOn    = 0xc0

	fcrEnable  = 0x01
	fcrClearRx = 0x02
	// FCR bit 2 clears the transmit FIFO, which is always empty here; bit
	// 3 (DMA mode) has no effect.
	fcrTrigShift = 6

	lsrDR   = 0x01
	lsrOE   = 0x02
	lsrTHRE = 0x20
	lsrTEMT = 0x40

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10

	msrDCTS = 0x01
	msrDDSR = 0x02
	msrTERI = 0x04
	msrDDCD = 0x08
	msrCTS  = 0x10
	msrDSR  = 0x20
	msrRI   = 0x40
	msrDCD  = 0x80
)

// Buffer sizes.
const (
	// uartLine is the UART's output buffer: the longest run of bytes
	// written to the writer at once when no newline comes.
	uartLine = 256
	// uartFIFO is the 16550A's receive FIFO depth.
	uartFIFO = 16
	// UARTHostQueue is how many bytes Feed holds behind the receive FIFO
	// while the guest drains it; Feed drops what does not fit.
	UARTHostQueue = 4096
)

// uartTrigger maps FCR bits 7:6 to the receive FIFO trigger level.
var uartTrigger = [4]uint8{1, 4, 8, 14}

// UART is a 16550A serial port (National Semiconductor PC16550D
// semantics), complete enough for Linux's 8250 driver to run it with
// interrupts.
//
// Transmitter: bytes the guest writes to THR go to an io.Writer one whole
// line at a time (or every 256 bytes without a newline; Flush writes a
// partial line). The transmitter is infinitely fast: LSR.THRE and TEMT
// are always set, and the THR-empty interrupt condition is set again by
// every THR write (the byte leaves at once). That condition is also set
// when IER.ETBEI goes from 0 to 1 (the THR is always empty), and cleared
// by an IIR read that reports it.
//
// Receiver: Feed (any goroutine) appends host input to a queue of
// UARTHostQueue bytes behind the receiver; bytes move from it into the
// receive FIFO (16 bytes with FCR bit 0 set, the 1-byte holding register
// without) as space frees, so pasted input waits for the guest instead of
// being lost. What does not fit in the queue is dropped, counted
// (Dropped) and reported as an overrun (LSR.OE). An FCR write that
// clears the receive FIFO, or switches the FIFOs on or off, discards only
// the bytes in the FIFO or holding register, as on hardware; the queue
// then refills it.
//
// Interrupts, by the data sheet's priorities: line status (IER.ELSI and
// LSR.OE, cleared by reading LSR); received data (IER.ERBFI and the FIFO
// at or above its trigger level, 1/4/8/14 from FCR bits 7:6, or any data
// without FIFOs); character timeout (IIR 0x0C: IER.ERBFI, FIFOs on, and
// data below the trigger level; it is reported at once rather than four
// character times later, so the guest sees every byte without delay and
// no timer is needed); THR empty; modem status (IER.EDSSI and a delta bit
// set in MSR, cleared by reading MSR). IIR bits 7:6 read 11 while the
// FIFOs are enabled. The interrupt output goes to the function given to
// SetIRQ, gated by MCR.OUT2 as on a PC; in loopback the OUT2 pin is
// inactive, so the line stays low.
//
// Loopback (MCR bit 4): THR writes go into the receiver instead of the
// writer (overrunning a full FIFO sets LSR.OE; without FIFOs the new byte
// replaces the unread one), host input waits in the queue, and MCR's
// DTR, RTS, OUT1 and OUT2 drive MSR's DSR, CTS, RI and DCD. Outside
// loopback MSR shows a connected modem with carrier (CTS, DSR, DCD).
// Input changes set MSR's delta bits. LCR, SCR and the divisor latch
// behind LCR.DLAB read back as written. Line errors (parity, framing,
// break) never happen.
//
// Register it on the I/O bus at COM1 with UARTPorts ports: In and Out take
// offsets from that base (vmm.PortDevice). In, Out and Feed may run on
// different goroutines; none of them allocates.
type UART struct {
	w io.Writer

	mu                 sync.Mutex
	ier, lcr, mcr, scr uint8
	dll, dlm           uint8
	fifoOn             bool
	trigger            uint8 // receive FIFO trigger level (FIFOs on)
	lsrOE              bool  // overrun, until LSR is read
	msrDelta           uint8 // MSR bits 3:0, until MSR is read
	thrPending         bool  // THR-empty interrupt condition
	lastRx             uint8 // RBR's value when the receiver is empty

	rx         [uartFIFO]byte // receive FIFO (ring)
	rxHead     uint8
	rxN        uint8
	host       [UARTHostQueue]byte // Feed's queue (ring)
	hostHead   int
	hostN      int
	dropped    uint64
	n          int
	buf        [uartLine]byte
	irq        func(level bool)
	line       bool // the interrupt output as last computed
	sent       bool // the level last passed to irq
	delivering bool // a goroutine is calling irq; it delivers later changes too
}

// NewUART returns a UART whose output goes to w, in the state firmware
// leaves it (115200 8N1, interrupts off, FIFOs off) with no interrupt
// line: see SetIRQ.
func NewUART(w io.Writer) *UART {
	return &UART{w: w, dll: 1, lcr: 0x03, trigger: 1}
}

// SetIRQ connects the UART's interrupt output to irq, which is called
// with the new level (true = asserted) each time the output changes; if
// the output is high already, irq(true) is called before SetIRQ returns.
// Call it while setting the VM up, before the guest runs.
//
// irq is called without the UART's lock held, on the goroutine whose
// access (In, Out, Feed) changed the level, or on one already calling irq
// at that moment, which then delivers the change as well. Calls are never
// concurrent and arrive in order; the last call always carries the
// current level. irq may call back into the UART; it must not block for
// long and must not panic. Wire it to a level-sensitive input of the
// interrupt controller, e.g. PIC.Raise(COM1IRQ) / PIC.Lower(COM1IRQ).
func (u *UART) SetIRQ(irq func(level bool)) {
	u.mu.Lock()
	u.irq = irq
	u.sent = false
	u.unlock()
}

// In reads size bytes starting at register offset off, one register per
// byte as the ISA bus splits wide accesses; offsets past the UART read
// 0xff.
func (u *UART) In(off uint16, size uint8) uint32 {
	u.mu.Lock()
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		v |= uint32(u.read(off+uint16(k))) << (8 * k)
	}
	u.unlock()
	return v
}

// Out writes the size low bytes of value starting at register offset off,
// one register per byte.
func (u *UART) Out(off uint16, size uint8, value uint32) {
	u.mu.Lock()
	for k := uint8(0); k < size && k < 4; k++ {
		u.write(off+uint16(k), uint8(value>>(8*k)))
	}
	u.unlock()
}

// Feed queues host input for the guest to receive and returns how many
// bytes of b were accepted: all of them unless the queue (UARTHostQueue
// bytes behind the receive FIFO) is full; the rest are dropped, counted
// in Dropped and flagged to the guest as an overrun. It may be called
// from any goroutine and does not block on the guest.
func (u *UART) Feed(b []byte) int {
	u.mu.Lock()
	n := 0
	for n < len(b) {
		if u.hostN == len(u.host) {
			if u.pull(); u.hostN == len(u.host) {
				break
			}
		}
		tail := (u.hostHead + u.hostN) % len(u.host)
		end := len(u.host)
		if tail < u.hostHead {
			end = u.hostHead
		}
		c := copy(u.host[tail:end], b[n:])
		n += c
		u.hostN += c
	}
	if n < len(b) {
		u.dropped += uint64(len(b) - n)
		u.lsrOE = true
	}
	u.pull()
	u.unlock()
	return n
}

// Dropped returns how many Feed bytes were dropped because the host queue
// was full.
func (u *UART) Dropped() uint64 {
	u.mu.Lock()
	d := u.dropped
	u.mu.Unlock()
	return d
}

// Pending returns how many received bytes wait for the guest: in the
// receive FIFO (or holding register) and in the host queue.
func (u *UART) Pending() int {
	u.mu.Lock()
	n := int(u.rxN) + u.hostN
	u.mu.Unlock()
	return n
}

// IRQLevel reports the interrupt output as last computed (the level irq
// was or is about to be called with).
func (u *UART) IRQLevel() bool {
	u.mu.Lock()
	l := u.line
	u.mu.Unlock()
	return l
}

// unlock recomputes the interrupt output, releases the lock and, unless
// another goroutine is already doing it, calls irq until the level it
// last passed matches the output. Called with u.mu held.
func (u *UART) unlock() {
	u.line = u.mcr&(mcrOUT2|mcrLoop) == mcrOUT2 && u.intID() != iirNoInt
	if u.delivering || u.irq == nil || u.line == u.sent {
		u.mu.Unlock()
		return
	}
	u.delivering = true
	for u.irq != nil && u.line != u.sent {
		level, irq := u.line, u.irq
		u.sent = level
		u.mu.Unlock()
		irq(level)
		u.mu.Lock()
	}
	u.delivering = false
	u.mu.Unlock()
}

// rxCap is the receiver's capacity: the FIFO, or the holding register.
func (u *UART) rxCap() uint8 {
	if u.fifoOn {
		return uartFIFO
	}
	return 1
}

// pull moves queued host input into the receiver while it has room (not
// in loopback, where the serial input is disconnected).
func (u *UART) pull() {
	if u.mcr&mcrLoop != 0 {
		return
	}
	for c := u.rxCap(); u.rxN < c && u.hostN > 0; {
		u.rx[(u.rxHead+u.rxN)%uartFIFO] = u.host[u.hostHead]
		u.rxN++
		u.hostHead = (u.hostHead + 1) % len(u.host)
		u.hostN--
	}
}

// receive puts one byte from the (looped-back) line into the receiver; a
// full receiver is overrun: the FIFO keeps its bytes and loses the new
// one, the holding register is overwritten.
func (u *UART) receive(b byte) {
	if u.rxN < u.rxCap() {
		u.rx[(u.rxHead+u.rxN)%uartFIFO] = b
		u.rxN++
		return
	}
	u.lsrOE = true
	if !u.fifoOn {
		u.rx[u.rxHead%uartFIFO] = b
	}
}

// clearRx empties the receive FIFO or holding register.
func (u *UART) clearRx() {
	u.rxHead, u.rxN = 0, 0
}

// intID returns the highest-priority pending, enabled interrupt's IIR
// code (bits 3:0), or iirNoInt.
func (u *UART) intID() uint8 {
	switch {
	case u.ier&ierELSI != 0 && u.lsrOE:
		return iirLineStatus
	case u.ier&ierERBFI != 0 && u.rxN > 0:
		if u.fifoOn && u.rxN < u.trigger {
			return iirTimeout
		}
		return iirRxData
	case u.ier&ierETBEI != 0 && u.thrPending:
		return iirTHRE
	case u.ier&ierEDSSI != 0 && u.msrDelta != 0:
		return iirModem
	}
	return iirNoInt
}

// read reads the register at offset off, with its side effects.
func (u *UART) read(off uint16) uint8 {
	if off >= UARTPorts {
		return 0xff
	}
	dlab := u.lcr&lcrDLAB != 0
	switch off {
	case regData:
		if dlab {
			return u.dll
		}
		if u.rxN > 0 {
			u.lastRx = u.rx[u.rxHead%uartFIFO]
			u.rxHead = (u.rxHead + 1) % uartFIFO
			u.rxN--
			u.pull()
		}
		return u.lastRx
	case regIER:
		if dlab {
			return u.dlm
		}
		return u.ier
	case regIIR:
		id := u.intID()
		if id == iirTHRE {
			u.thrPending = false
		}
		if u.fifoOn {
			id |= iirFIFOsOn
		}
		return id
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		v := uint8(lsrTHRE | lsrTEMT)
		if u.rxN > 0 {
			v |= lsrDR
		}
		if u.lsrOE {
			v |= lsrOE
			u.lsrOE = false
		}
		return v
	case regMSR:
		v := u.msrIn() | u.msrDelta
		u.msrDelta = 0
		return v
	default: // regSCR
		return u.scr
	}
}

// msrIn is the modem status inputs (MSR bits 7:4): in loopback the MCR
// outputs drive them (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD); otherwise a
// connected modem with carrier (CTS, DSR, DCD).
func (u *UART) msrIn() uint8 {
	if u.mcr&mcrLoop == 0 {
		return msrCTS | msrDSR | msrDCD
	}
	var m uint8
	if u.mcr&mcrRTS != 0 {
		m |= msrCTS
	}
	if u.mcr&mcrDTR != 0 {
		m |= msrDSR
	}
	if u.mcr&mcrOUT1 != 0 {
		m |= msrRI
	}
	if u.mcr&mcrOUT2 != 0 {
		m |= msrDCD
	}
	return m
}

// write writes the register at offset off, with its side effects.
func (u *UART) write(off uint16, v uint8) {
	if off >= UARTPorts {
		return
	}
	dlab := u.lcr&lcrDLAB != 0
	switch off {
	case regData:
		if dlab {
			u.dll = v
			return
		}
		if u.mcr&mcrLoop != 0 { // loopback keeps data off the line
			u.receive(v)
		} else {
			u.emit(v)
		}
		u.thrPending = true // the byte left at once: THR is empty again
	case regIER:
		if dlab {
			u.dlm = v
			return
		}
		if v&ierETBEI != 0 && u.ier&ierETBEI == 0 {
			u.thrPending = true // enabling ETBEI with THR empty interrupts
		}
		u.ier = v & 0x0f
	case regIIR: // FCR
		on := v&fcrEnable != 0
		if on != u.fifoOn {
			u.clearRx() // a mode change clears both FIFOs
			u.fifoOn = on
		}
		if on { // the other bits are written only with FCR0 set
			if v&fcrClearRx != 0 {
				u.clearRx()
			}
			u.trigger = uartTrigger[v>>fcrTrigShift]
		}
		u.pull()
	case regLCR:
		u.lcr = v
	case regMCR:
		old := u.msrIn()
		u.mcr = v & 0x1f
		now := u.msrIn()
		ch := old ^ now
		if ch&msrCTS != 0 {
			u.msrDelta |= msrDCTS
		}
		if ch&msrDSR != 0 {
			u.msrDelta |= msrDDSR
		}
		if ch&old&msrRI != 0 { // trailing edge of RI
			u.msrDelta |= msrTERI
		}
		if ch&msrDCD != 0 {
			u.msrDelta |= msrDDCD
		}
		u.pull()
	case regLSR, regMSR: // read-only status
	default: // regSCR
		u.scr = v
	}
}

// emit buffers one output byte, writing the buffer out at a newline or
// when it is full.
func (u *UART) emit(b byte) {
	if u.n < len(u.buf) {
		u.buf[u.n] = b
		u.n++
	}
	if b == '\n' || u.n == len(u.buf) {
		u.flush()
	}
}

// flush writes the buffered bytes. Write errors are dropped: the console
// is best effort and the guest cannot be told.
func (u *UART) flush() {
	if u.n == 0 {
		return
	}
	u.w.Write(u.buf[:u.n])
	u.n = 0
}

// FlushPartial passes a partial line (bytes written since the last
// newline) on to the writer without ending it: a prompt, or the echo of
// what the user is typing, which would otherwise wait for its newline.
func (u *UART) FlushPartial() {
	u.mu.Lock()
	u.flush()
	u.mu.Unlock()
}

// Flush writes out a partial line (at VM stop), then flushes the writer if
// it has a Flush() error method (as PrefixWriter's writer does).
func (u *UART) Flush() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.flush()
	if f, ok := u.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}
