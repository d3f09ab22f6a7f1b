// Package uart drives a 16550A-compatible serial port by polling.
//
// It is juice's console and panic channel, so it is kernel-context code:
// it runs before the Go runtime starts and inside interrupt and fatal
// paths. Every function is //go:nosplit and allocation-free, and nothing
// here can hang: a transmitter that never becomes ready costs a bounded
// number of polls once, after which the UART is marked stuck and each
// further byte costs one status read until the transmitter recovers.
//
// Port I/O goes through a portio.Ports seam (juice/cpu's IN/OUT on bare
// metal, a modelled 16550 in tests).
package uart

import "juice/drivers/portio"

// Register offsets from the base port (16550A data sheet). DLL and DLM
// overlay THR/RBR and IER while LCR.DLAB is set.
const (
	regData = 0 // RBR (read) / THR (write); DLL when DLAB=1
	regIER  = 1 // interrupt enable; DLM when DLAB=1
	regFCR  = 2 // FIFO control (write); IIR when read
	regLCR  = 3 // line control
	regMCR  = 4 // modem control
	regLSR  = 5 // line status
	regSCR  = 7 // scratch
)

// Register bits used by the driver.
const (
	lcrDLAB  = 0x80 // divisor latch access
	lcr8N1   = 0x03 // 8 data bits, no parity, 1 stop bit
	fcrValue = 0xC7 // FIFO enable, clear RX and TX FIFOs, RX trigger 14 bytes
	mcrValue = 0x03 // DTR and RTS asserted; OUT2 off (interrupts are unused)
	lsrDR    = 0x01 // receive data ready
	lsrTHRE  = 0x20 // transmit holding register empty
)

// BaseClock is the UART's divisor base: the 1.8432 MHz crystal divided by
// 16, i.e. the highest baud rate (divisor 1).
const BaseClock = 115200

// MaxPolls bounds how many times WriteByte reads LSR waiting for THRE.
// At 115200 baud a full 16-byte FIFO drains in about 1.4 ms, and an I/O
// port read costs roughly 1 µs on hardware (more when trapped by a
// hypervisor), so the bound is generous for any baud rate ≥ 300 while a
// dead UART costs at most a fraction of a second, once.
const MaxPolls = 1 << 17

// COM port base addresses on PC-compatible machines.
const (
	COM1 uint16 = 0x3F8
	COM2 uint16 = 0x2F8
	COM3 uint16 = 0x3E8
	COM4 uint16 = 0x2E8
)

// Status reports the outcome of Init.
type Status uint8

// Status values.
const (
	StatusOK      Status = iota // the UART is present and programmed
	StatusAbsent                // the scratch register did not hold a value: no UART at the port
	StatusBadBaud               // baud is 0, above BaseClock, or not BaseClock/n for a 16-bit n
	StatusNoPorts               // the Ports seam lacks byte-wide IN/OUT
)

// String names the status; safe anywhere (it returns constants).
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusAbsent:
		return "uart absent"
	case StatusBadBaud:
		return "bad baud rate"
	case StatusNoPorts:
		return "no port I/O"
	}
	return "unknown uart status"
}

// UART is one polled 16550A. The zero value is an uninitialised UART on
// which every method is a harmless no-op, so a console that failed Init
// can still be written to.
//
// The only pointer it holds (the Ports seam) is written once, by Init,
// which the kernel calls before the garbage collector can be running; no
// other method writes a pointer, so no write barrier fires in interrupt
// or fatal paths.
type UART struct {
	p       *portio.Ports
	base    uint16
	ready   bool   // Init succeeded
	stuck   bool   // the last THRE wait timed out
	dropped uint64 // bytes given up on because THRE never set
}

// Init probes for a 16550 at port and programs it for baud, 8N1, FIFOs on
// and all UART interrupts off. Presence is detected through the scratch
// register: two distinct values written to it must read back. On any
// status but StatusOK the UART stays (or becomes) uninitialised.
//
//go:nosplit
func (u *UART) Init(p *portio.Ports, port uint16, baud uint32) Status {
	u.ready = false
	u.stuck = false
	u.dropped = 0
	u.base = port
	if !p.Has8() {
		u.p = nil
		return StatusNoPorts
	}
	u.p = p
	if baud == 0 || baud > BaseClock || BaseClock%baud != 0 {
		return StatusBadBaud
	}
	div := BaseClock / baud // 1..115200; only ≤ 0xFFFF fits the latch
	if div > 0xFFFF {
		return StatusBadBaud
	}
	if !u.scratchOK(0x5A) || !u.scratchOK(0xA5) {
		return StatusAbsent
	}
	p.Out8(port+regIER, 0x00)
	p.Out8(port+regLCR, lcrDLAB)
	p.Out8(port+regData, uint8(div))
	p.Out8(port+regIER, uint8(div>>8))
	p.Out8(port+regLCR, lcr8N1)
	p.Out8(port+regFCR, fcrValue)
	p.Out8(port+regMCR, mcrValue)
	u.ready = true
	return StatusOK
}

// scratchOK writes v to the scratch register and reports whether it reads
// back unchanged.
//
//go:nosplit
func (u *UART) scratchOK(v uint8) bool {
	u.p.Out8(u.base+regSCR, v)
	return u.p.In8(u.base+regSCR) == v
}

// Port returns the base I/O port given to Init.
//
//go:nosplit
func (u *UART) Port() uint16 { return u.base }

// Ready reports whether Init succeeded.
//
//go:nosplit
func (u *UART) Ready() bool { return u.ready }

// Dropped returns how many bytes were discarded because the transmitter
// never became ready.
//
//go:nosplit
func (u *UART) Dropped() uint64 { return u.dropped }

// WriteByte transmits b, waiting at most MaxPolls LSR reads for the
// transmit holding register to empty. If the wait times out the byte is
// dropped and the UART is marked stuck: while stuck, each byte gets a
// single LSR read and is dropped unless THRE is set, so a dead UART never
// slows juice down more than once. It does no newline translation.
//
// The error result exists only so that the method has io.ByteWriter's
// signature (go vet insists); it is always nil. Dropped counts losses.
//
//go:nosplit
func (u *UART) WriteByte(b byte) error {
	if !u.ready {
		return nil
	}
	polls := MaxPolls
	if u.stuck {
		polls = 1
	}
	for i := 0; i < polls; i++ {
		if u.p.In8(u.base+regLSR)&lsrTHRE != 0 {
			u.stuck = false
			u.p.Out8(u.base+regData, b)
			return nil
		}
	}
	u.stuck = true
	u.dropped++
	return nil
}

// Write transmits b, sending "\r\n" for each '\n'.
//
//go:nosplit
func (u *UART) Write(b []byte) {
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' {
			u.WriteByte('\r')
		}
		u.WriteByte(b[i])
	}
}

// WriteString transmits s, sending "\r\n" for each '\n'.
//
//go:nosplit
func (u *UART) WriteString(s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			u.WriteByte('\r')
		}
		u.WriteByte(s[i])
	}
}

// TryReadByte returns the next received byte, if one is waiting; it
// never blocks. An uninitialised UART never has data. (It is not called
// ReadByte because go vet reserves that name for io.ByteReader's
// signature, whose error result cannot be built before the runtime.)
//
//go:nosplit
func (u *UART) TryReadByte() (byte, bool) {
	if !u.ready {
		return 0, false
	}
	lsr := u.p.In8(u.base + regLSR)
	// 0xFF is what a floating (removed) bus reads: not data.
	if lsr == 0xFF || lsr&lsrDR == 0 {
		return 0, false
	}
	return u.p.In8(u.base + regData), true
}
