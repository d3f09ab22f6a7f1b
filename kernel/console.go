package kernel

import (
	"juice/cpu"
	"juice/drivers/portio"
	"juice/drivers/uart"
)

// The console: a 16550 UART, polled. Kernel-context printing (kputs and
// friends) prefixes each line with the monotonic time since entry, like
// every juice log line; the runtime's own writes to fds 1 and 2 go out as
// they are.

var (
	ports  portio.Ports
	uart0  uart.UART
	atBOL  = true // the console is at the beginning of a line
	numBuf [24]byte
)

//go:nosplit
func portsInit() {
	ports.In8 = cpu.Inb
	ports.Out8 = cpu.Outb
	ports.In16 = cpu.Inw
	ports.Out16 = cpu.Outw
	ports.In32 = cpu.Inl
	ports.Out32 = cpu.Outl
}

// consoleWrite sends raw bytes (from the runtime) to the console.
//
//go:nosplit
func consoleWrite(b []byte) {
	uart0.Write(b)
	if len(b) > 0 {
		atBOL = b[len(b)-1] == '\n'
	}
}

// kstamp writes "[    S.UUUUUU] ". Kernel context.
//
//go:nosplit
func kstamp() {
	ns := uint64(0)
	if tscHz != 0 {
		ns = nanotime()
	}
	sec := ns / 1e9
	us := (ns % 1e9) / 1000
	uart0.WriteByte('[')
	// seconds, right-aligned in 5 columns
	n := fmtUint(sec)
	for i := n; i < 5; i++ {
		uart0.WriteByte(' ')
	}
	uart0.Write(numBuf[len(numBuf)-n:])
	uart0.WriteByte('.')
	m := fmtUint(us)
	for i := m; i < 6; i++ {
		uart0.WriteByte('0')
	}
	uart0.Write(numBuf[len(numBuf)-m:])
	uart0.WriteByte(']')
	uart0.WriteByte(' ')
}

// kputs prints s, stamping each new line. Kernel context.
//
//go:nosplit
func kputs(s string) {
	for i := 0; i < len(s); i++ {
		if atBOL {
			kstamp()
			atBOL = false
		}
		c := s[i]
		if c == '\n' {
			uart0.WriteByte('\r')
			atBOL = true
		}
		uart0.WriteByte(c)
	}
}

// kputb prints the bytes of b like kputs.
//
//go:nosplit
func kputb(b []byte) {
	for i := 0; i < len(b); i++ {
		if atBOL {
			kstamp()
			atBOL = false
		}
		c := b[i]
		if c == '\n' {
			uart0.WriteByte('\r')
			atBOL = true
		}
		uart0.WriteByte(c)
	}
}

// fmtUint formats v into the tail of numBuf and returns its length.
//
//go:nosplit
func fmtUint(v uint64) int {
	i := len(numBuf)
	for {
		i--
		numBuf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 || i == 0 {
			break
		}
	}
	return len(numBuf) - i
}

//go:nosplit
func kputDec(v int64) {
	if v < 0 {
		kputs("-")
		v = -v
	}
	n := fmtUint(uint64(v))
	kputb(numBuf[len(numBuf)-n:])
}

//go:nosplit
func kputUint(v uint64) {
	n := fmtUint(v)
	kputb(numBuf[len(numBuf)-n:])
}

//go:nosplit
func kputHex(v uint64) {
	const digits = "0123456789abcdef"
	numBuf[0] = '0'
	numBuf[1] = 'x'
	n := 2
	started := false
	for shift := 60; shift >= 0; shift -= 4 {
		d := (v >> uint(shift)) & 0xf
		if d != 0 || started || shift == 0 {
			started = true
			numBuf[n] = digits[d]
			n++
		}
	}
	kputb(numBuf[:n])
}

// Console is the console for Go code once the runtime runs: whole writes
// go out through write(2), so lines from different threads do not mix.
