// Package cmdline parses juice's kernel command line into a Config.
//
// The command line is a list of words separated by spaces or tabs. juice
// reads these words and ignores every other word (BOOT_IMAGE=..., quiet,
// root=..., so one GRUB entry can be shared with Linux):
//
//	console=ttyS0 | ttyS1 | ttyS2 | ttyS3 [,BAUD]
//	console=uart,io,0xPORT[,BAUD]        (Linux earlycon style)
//	console=uart8250,io,0xPORT[,BAUD]
//	juice.mode=run | selftest
//	juice.panic=halt | poweroff
//
// ttyS0..ttyS3 are the legacy COM ports 0x3f8, 0x2f8, 0x3e8, 0x2e8. BAUD is
// decimal, at least 50, divides 115200 exactly (the 8250 clock), and may
// carry Linux's "n8" suffix (no parity, 8 bits: the only framing juice
// drives). Other console= values (tty0, hvc0, uart,mmio,...) name consoles
// juice cannot drive and are ignored, as Linux allows several console=
// words; the last console= juice understands wins. Any other word starting
// with "juice." is an error, as is any byte outside printable ASCII (other
// than the tab separator) anywhere on the line.
//
// This is kernel-context code: every function is //go:nosplit, allocates
// nothing and cannot panic on any input.
package cmdline

// Defaults.
const (
	// DefaultPort is COM1's I/O base.
	DefaultPort = 0x3f8
	// DefaultBaud is the console speed when none is given.
	DefaultBaud = 115200
	// uartClock is the 8250 divisor base: BAUD must divide it.
	uartClock = 115200
	// minBaud is the slowest speed accepted.
	minBaud = 50
	// maxPort is the highest I/O base that leaves room for the UART's
	// eight registers.
	maxPort = 0xfff8
)

// Mode is what juice does once booted.
type Mode uint8

// Modes.
const (
	// ModeRun boots normally (the default).
	ModeRun Mode = iota
	// ModeSelftest runs the in-kernel self-tests and reports.
	ModeSelftest
	// ModeCrashtest makes juice take a CPU exception in Go code on
	// purpose, to show the fatal-exception report (integration tests).
	ModeCrashtest
	// ModeSyscalltest makes the runtime issue a system call juice does
	// not know (integration tests).
	ModeSyscalltest
	// ModeOOMtest makes juice allocate until memory runs out
	// (integration tests).
	ModeOOMtest
	// ModeEntrytest breaks the initial state of a VM named "broken" so
	// that its first entry fails (integration tests of the readable
	// entry-failure message).
	ModeEntrytest
	// ModeSMPFailtest withholds the STARTUP IPIs from the last
	// application processor, so that it never answers, then runs the
	// self-test on the others (integration tests of the left-out CPU).
	ModeSMPFailtest
	// ModeSMPStress runs goroutines, garbage collection and timers on
	// every CPU for a while and reports (integration tests).
	ModeSMPStress
)

// String returns the mode's command-line name.
//
//go:nosplit
func (m Mode) String() string {
	switch m {
	case ModeRun:
		return "run"
	case ModeSelftest:
		return "selftest"
	case ModeCrashtest:
		return "crashtest"
	case ModeSyscalltest:
		return "syscalltest"
	case ModeOOMtest:
		return "oomtest"
	case ModeEntrytest:
		return "entrytest"
	case ModeSMPFailtest:
		return "smpfailtest"
	case ModeSMPStress:
		return "smpstress"
	}
	return "invalid"
}

// What a fatal error does (values of Config.Panic).
const (
	// PanicHalt stops the CPUs (the default): the console stays readable.
	PanicHalt uint8 = 0
	// PanicPoweroff powers the machine off (useful under test harnesses).
	PanicPoweroff uint8 = 1
)

// Config is what the command line controls.
type Config struct {
	// ConsolePort is the 8250 UART's I/O base.
	ConsolePort uint16
	// ConsoleBaud is the UART speed; it divides 115200.
	ConsoleBaud uint32
	// Mode selects normal operation or self-test.
	Mode Mode
	// Panic is PanicHalt or PanicPoweroff.
	Panic uint8
	// StressSeconds is how long juice.mode=smpstress runs
	// (juice.stress=SECONDS, 1 to MaxStressSeconds); 0 means its default.
	StressSeconds uint16
	// VCPUs is where guests' vCPUs run: VCPUsAuto (the default: spread
	// over every CPU), VCPUsBoot (juice.vcpus=boot: all on the boot CPU)
	// or VCPUsSpread (juice.vcpus=spread).
	VCPUs uint8
}

// Values of Config.VCPUs.
const (
	VCPUsAuto   uint8 = 0
	VCPUsBoot   uint8 = 1
	VCPUsSpread uint8 = 2
)

// MaxStressSeconds bounds juice.stress.
const MaxStressSeconds = 3600

// Defaults sets c to the defaults: COM1 at 115200, ModeRun, PanicHalt.
//
//go:nosplit
func Defaults(c *Config) {
	*c = Config{ConsolePort: DefaultPort, ConsoleBaud: DefaultBaud, Mode: ModeRun, Panic: PanicHalt}
}

// Status is Parse's verdict.
type Status uint8

// Parse results.
const (
	// StatusOK: every word was understood or ignored.
	StatusOK Status = iota
	// StatusUnknownKey: a word starts with "juice." but names no known key.
	StatusUnknownKey
	// StatusBadValue: a known key (or a console= juice drives) has a value
	// it cannot use.
	StatusBadValue
	// StatusGarbled: a word holds a byte outside printable ASCII.
	StatusGarbled
)

// String returns a short human phrase for the status.
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnknownKey:
		return "unknown juice.* option"
	case StatusBadValue:
		return "bad value for a command-line option"
	case StatusGarbled:
		return "non-printable byte on the command line"
	}
	return "unknown command-line status"
}

// isSpace reports whether c separates words.
//
//go:nosplit
func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// NextWord returns the bounds [start, end) of the first word at or after
// offset off. At the end of b it returns start == end == len(b). An offset
// below 0 counts as 0. Iterate with:
//
//	for s, e := NextWord(b, 0); s < len(b); s, e = NextWord(b, e) { ... }
//
//go:nosplit
func NextWord(b []byte, off int) (start, end int) {
	i, n := uint(0), uint(len(b))
	if off > 0 {
		i = uint(off)
	}
	for i < n && isSpace(b[i]) {
		i++
	}
	if i >= n {
		return len(b), len(b)
	}
	start = int(i)
	for i < n && !isSpace(b[i]) {
		i++
	}
	return start, int(i)
}

// Parse sets *c to the defaults and then applies the words of b in order.
// A bad word is not applied, but the words after it still are (so a good
// console= setting can carry the error report); the first bad word's status
// and bounds [badStart, badEnd) in b are returned. On StatusOK badStart and
// badEnd are 0.
//
//go:nosplit
func Parse(b []byte, c *Config) (st Status, badStart, badEnd int) {
	Defaults(c)
	for s, e := NextWord(b, 0); s < len(b); s, e = NextWord(b, e) {
		if s < 0 || e > len(b) || s > e {
			break // cannot happen: NextWord returns in-range bounds
		}
		if ws := word(b[s:e], c); ws != StatusOK && st == StatusOK {
			st, badStart, badEnd = ws, s, e
		}
	}
	return st, badStart, badEnd
}

// word applies one word to c.
//
//go:nosplit
func word(w []byte, c *Config) Status {
	for _, ch := range w {
		if ch < 0x20 || ch > 0x7e {
			return StatusGarbled
		}
	}
	if hasPrefix(w, "console=") {
		return console(w[len("console="):], c)
	}
	if !hasPrefix(w, "juice.") {
		return StatusOK // someone else's word
	}
	key, val, hasVal := cut(w, '=')
	switch {
	case equal(key, "juice.mode"):
		switch {
		case !hasVal:
			return StatusBadValue
		case equal(val, "run"):
			c.Mode = ModeRun
		case equal(val, "selftest"):
			c.Mode = ModeSelftest
		case equal(val, "crashtest"):
			c.Mode = ModeCrashtest
		case equal(val, "syscalltest"):
			c.Mode = ModeSyscalltest
		case equal(val, "oomtest"):
			c.Mode = ModeOOMtest
		case equal(val, "entrytest"):
			c.Mode = ModeEntrytest
		case equal(val, "smpfailtest"):
			c.Mode = ModeSMPFailtest
		case equal(val, "smpstress"):
			c.Mode = ModeSMPStress
		default:
			return StatusBadValue
		}
	case equal(key, "juice.vcpus"):
		switch {
		case !hasVal:
			return StatusBadValue
		case equal(val, "boot"):
			c.VCPUs = VCPUsBoot
		case equal(val, "spread"):
			c.VCPUs = VCPUsSpread
		default:
			return StatusBadValue
		}
	case equal(key, "juice.stress"):
		n, ok := parseSeconds(val)
		if !hasVal || !ok {
			return StatusBadValue
		}
		c.StressSeconds = n
	case equal(key, "juice.panic"):
		switch {
		case !hasVal:
			return StatusBadValue
		case equal(val, "halt"):
			c.Panic = PanicHalt
		case equal(val, "poweroff"):
			c.Panic = PanicPoweroff
		default:
			return StatusBadValue
		}
	default:
		return StatusUnknownKey
	}
	return StatusOK
}

// console applies the value of a console= word.
//
//go:nosplit
func console(v []byte, c *Config) Status {
	name, rest, hasRest := cut(v, ',')
	var port uint16
	switch {
	case equal(name, "ttyS0"):
		port = 0x3f8
	case equal(name, "ttyS1"):
		port = 0x2f8
	case equal(name, "ttyS2"):
		port = 0x3e8
	case equal(name, "ttyS3"):
		port = 0x2e8
	case equal(name, "uart"), equal(name, "uart8250"):
		if !hasRest {
			return StatusBadValue
		}
		space, after, hasAfter := cut(rest, ',')
		if !equal(space, "io") {
			if equal(space, "mmio") || equal(space, "mmio16") || equal(space, "mmio32") ||
				equal(space, "mmio32be") || hasPrefix(space, "0x") {
				return StatusOK // a memory-mapped UART: not ours to drive
			}
			return StatusBadValue
		}
		if !hasAfter {
			return StatusBadValue
		}
		addr, speed, hasSpeed := cut(after, ',')
		p, ok := parsePort(addr)
		if !ok {
			return StatusBadValue
		}
		baud := uint32(DefaultBaud)
		if hasSpeed {
			if baud, ok = parseBaud(speed); !ok {
				return StatusBadValue
			}
		}
		c.ConsolePort, c.ConsoleBaud = p, baud
		return StatusOK
	default:
		return StatusOK // tty0, hvc0, ttyS4, ...: some other console
	}
	baud := uint32(DefaultBaud)
	if hasRest {
		var ok bool
		if baud, ok = parseBaud(rest); !ok {
			return StatusBadValue
		}
	}
	c.ConsolePort, c.ConsoleBaud = port, baud
	return StatusOK
}

// parsePort parses "0x" followed by 1 to 4 hex digits, a usable I/O base.
//
//go:nosplit
func parsePort(s []byte) (uint16, bool) {
	if len(s) < 3 || len(s) > 6 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0, false
	}
	var v uint32
	for _, ch := range s[2:] {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	if v == 0 || v > maxPort {
		return 0, false
	}
	return uint16(v), true
}

// parseSeconds parses a decimal count of seconds, 1 to MaxStressSeconds.
//
//go:nosplit
func parseSeconds(s []byte) (uint16, bool) {
	if len(s) == 0 || len(s) > 4 {
		return 0, false
	}
	var v uint32
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint32(ch-'0')
	}
	if v == 0 || v > MaxStressSeconds {
		return 0, false
	}
	return uint16(v), true
}

// parseBaud parses a decimal speed, optionally followed by "n8".
//
//go:nosplit
func parseBaud(s []byte) (uint32, bool) {
	if len(s) > 2 && s[len(s)-2] == 'n' && s[len(s)-1] == '8' {
		s = s[:len(s)-2]
	}
	if len(s) == 0 || len(s) > 6 { // 115200 has six digits
		return 0, false
	}
	var v uint32
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint32(ch-'0')
	}
	if v < minBaud || uartClock%v != 0 {
		return 0, false
	}
	return v, true
}

// cut splits s at the first sep: before, after, and whether sep was found.
//
//go:nosplit
func cut(s []byte, sep byte) (before, after []byte, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, nil, false
}

// equal reports whether b holds exactly the bytes of s.
//
//go:nosplit
func equal(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b) && i < len(s); i++ {
		if b[i] != s[i] {
			return false
		}
	}
	return true
}

// hasPrefix reports whether b starts with s.
//
//go:nosplit
func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && equal(b[:len(s)], s)
}
