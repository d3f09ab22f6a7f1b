// Package devices holds the minimal emulated platform juice gives its
// guests: a 16550A UART for the console (UART), the isa-debug-exit port
// guests use to end themselves (ExitPort), an MMIO test device (Scratch),
// and PrefixWriter, which tags each VM's console lines with its name. UART
// and ExitPort implement vmm.PortDevice, Scratch vmm.MMIODevice; their
// accessors run on the exit path and do not allocate.
package devices

import (
	"io"
	"sync"
)

// Legacy port bases.
const (
	// COM1 is the first PC serial port's base.
	COM1 = 0x3f8
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

	iirNoInt   = 0x01
	iirFIFOsOn = 0xc0
	fcrEnable  = 0x01

	lsrTHRE = 0x20
	lsrTEMT = 0x40

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10

	msrCTS = 0x10
	msrDSR = 0x20
	msrRI  = 0x40
	msrDCD = 0x80
)

// uartLine is the UART's output buffer: the longest run of bytes written
// to the writer at once when no newline comes.
const uartLine = 256

// UART is a 16550A serial port with an output-only line: bytes the guest
// writes to THR go to an io.Writer one whole line at a time; the receiver
// never has data. The transmitter is always ready (LSR reports THRE and
// TEMT), so guests that poll LSR never wait. No interrupt is ever raised:
// IIR always reads "no interrupt pending" (Linux's 8250 driver then
// detects the missing THRE interrupt and drives output from a timer). All
// other registers (IER, LCR, MCR, SCR, the divisor latch behind DLAB, the
// FIFO enable in FCR) read back as written, and MCR loopback drives MSR as
// on real hardware, so drivers' probes find a 16550A.
//
// Register it on the I/O bus at COM1 with UARTPorts ports: In and Out take
// offsets from that base (vmm.PortDevice).
type UART struct {
	w io.Writer

	mu                      sync.Mutex
	ier, lcr, mcr, scr, fcr uint8
	dll, dlm                uint8
	n                       int
	buf                     [uartLine]byte
}

// NewUART returns a UART whose output goes to w.
func NewUART(w io.Writer) *UART {
	return &UART{w: w, dll: 1, lcr: 0x03} // 115200 8N1, as firmware leaves it
}

// In reads size bytes starting at register offset off, one register per
// byte as the ISA bus splits wide accesses; offsets past the UART read
// 0xff.
func (u *UART) In(off uint16, size uint8) uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		v |= uint32(u.read(off+uint16(k))) << (8 * k)
	}
	return v
}

// Out writes the size low bytes of value starting at register offset off,
// one register per byte.
func (u *UART) Out(off uint16, size uint8, value uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k := uint8(0); k < size && k < 4; k++ {
		u.write(off+uint16(k), uint8(value>>(8*k)))
	}
}

// read reads the register at offset off.
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
		return 0 // no received data
	case regIER:
		if dlab {
			return u.dlm
		}
		return u.ier
	case regIIR:
		if u.fcr&fcrEnable != 0 {
			return iirNoInt | iirFIFOsOn
		}
		return iirNoInt
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		return lsrTHRE | lsrTEMT
	case regMSR:
		return u.msr()
	default: // regSCR
		return u.scr
	}
}

// msr is the modem status: in loopback the MCR outputs drive the inputs
// (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD); otherwise a connected modem with
// carrier (CTS, DSR, DCD). The delta bits never set.
func (u *UART) msr() uint8 {
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

// write writes the register at offset off.
func (u *UART) write(off uint16, v uint8) {
	if off >= UARTPorts {
		return
	}
	dlab := u.lcr&lcrDLAB != 0
	switch off {
	case regData:
		if dlab {
			u.dll = v
		} else if u.mcr&mcrLoop == 0 { // loopback keeps data off the line
			u.emit(v)
		}
	case regIER:
		if dlab {
			u.dlm = v
		} else {
			u.ier = v & 0x0f
		}
	case regIIR: // FCR: only the enable bit is visible (in IIR)
		u.fcr = v & fcrEnable
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1f
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
