package launch

// Bochs runs juice on an emulated Intel CPU with VT-x and EPT (QEMU TCG
// emulates AMD-V only). Bochs has no -kernel and no isa-debug-exit, its
// serial port writes to a file, and Debian's build starts in its debugger:
// a run builds the GRUB ISO, writes a bochsrc next to it, feeds "c" to the
// debugger, follows the serial file into the Console as it grows, and reads
// juice's status from its "juice: power off, status N" line (Bochs exits
// with status 1 after any shutdown). A run with Config.Stdin puts COM1 in
// Bochs's socket-client mode instead: Bochs connects to a loopback port
// the run listens on, and the connection carries the console both ways
// (its output is still copied to the serial file). /work/shared/design/
// testbeds.md has the facts this file relies on.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Emulator selects the program that emulates the machine.
type Emulator string

// The emulators.
const (
	// EmulatorQEMU is QEMU with TCG: AMD-V with nested paging under -cpu
	// max (the default).
	EmulatorQEMU Emulator = "qemu"
	// EmulatorBochs is Bochs: VT-x with EPT under its corei7_skylake_x
	// model. It boots only the GRUB ISO under its BIOS (BootGRUBBIOS).
	EmulatorBochs Emulator = "bochs"
)

// String returns the emulator's usual name, for messages.
func (e Emulator) String() string {
	switch e {
	case "", EmulatorQEMU:
		return "QEMU"
	case EmulatorBochs:
		return "Bochs"
	}
	return string(e)
}

// DefaultBochs is the Bochs binary used when Config.Bochs is empty.
const DefaultBochs = "bochs"

// DefaultBochsCPU is the Bochs CPU model used when Config.CPU is empty: an
// Intel CPU with VT-x, EPT (with 1 GiB pages and A/D bits), VPID,
// unrestricted guest and the preemption timer.
const DefaultBochsCPU = "corei7_skylake_x"

// The ROM images a Bochs run loads (Debian's bochsbios and vgabios).
const (
	// BochsBIOS is the system BIOS.
	BochsBIOS = "/usr/share/bochs/BIOS-bochs-latest"
	// BochsVGABIOS is the VGA BIOS.
	BochsVGABIOS = "/usr/share/vgabios/vgabios.bin"
)

// The files of a Bochs run, relative to its work directory (Bochs runs
// there, so the bochsrc needs no quoting of host paths).
const (
	// BochsRCName is the generated configuration.
	BochsRCName = "bochsrc"
	// BochsSerialName is where COM1's output goes.
	BochsSerialName = "serial.txt"
	// BochsLogName is Bochs's own log (errors and panics).
	BochsLogName = "bochs.log"
	// BochsISOName is the GRUB ISO.
	BochsISOName = "juice.iso"
)

// BochsStartGap is the least time between two Bochs starts on this host:
// runs whose start times are 1 s apart or less can collide (each binds an
// RFB port). Starts are serialized within this process and, through a lock
// file in the temporary directory, with other processes.
const BochsStartGap = 1500 * time.Millisecond

// bochsHostMaxMB is the largest "host" memory Bochs accepts.
const bochsHostMaxMB = 2048

// bochsIPS is the emulated instructions per second (the time base of the
// emulated clocks; with clock sync=none guest time runs at this rate of
// emulated instructions, not at wall-clock speed).
const bochsIPS = 200000000

// serialPoll is how often a Bochs run looks for new serial output.
const serialPoll = 20 * time.Millisecond

// bochsModelRE is the accepted form of a Bochs CPU model name.
var bochsModelRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// MissingBochs returns what a Bochs run with binary bin ("" means
// DefaultBochs) lacks on this host: the binary, the ROM images, GRUB's ISO
// tools. It is empty when everything is there.
func MissingBochs(bin string) []string {
	if bin == "" {
		bin = DefaultBochs
	}
	var missing []string
	if _, err := exec.LookPath(bin); err != nil {
		missing = append(missing, bin)
	}
	for _, f := range []string{BochsBIOS, BochsVGABIOS} {
		if !isFile(f) {
			missing = append(missing, f)
		}
	}
	return append(missing, MissingISOTools()...)
}

// BochsMemMB converts a Config.Mem value (QEMU's syntax: a number with an
// optional K, M, G or T suffix, MiB without one) to whole MiB, as Bochs's
// "memory: guest=" wants it.
func BochsMemMB(mem string) (int, error) {
	if !memRE.MatchString(mem) {
		return 0, fmt.Errorf("bad memory size %q (want e.g. 256M or 1G)", mem)
	}
	num, unit := mem, byte('m')
	if c := mem[len(mem)-1]; c < '0' || c > '9' {
		num, unit = mem[:len(mem)-1], c|0x20
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad memory size %q: %v", mem, err)
	}
	shift := map[byte]uint{'k': 10, 'm': 20, 'g': 30, 't': 40}[unit]
	const limit = 1 << 20 // MiB: far beyond any emulated machine
	if n == 0 || n >= limit<<20>>shift {
		return 0, fmt.Errorf("memory size %q out of range", mem)
	}
	b := n << shift
	if b%(1<<20) != 0 {
		return 0, fmt.Errorf("memory size %q is not a whole number of MiB (Bochs counts in MiB)", mem)
	}
	return int(b >> 20), nil
}

// BochsRC returns the bochsrc of a run of cfg: BIOS boot from the GRUB
// ISO BochsISOName on the secondary ATA channel, COM1 into BochsSerialName,
// the log into BochsLogName, cfg.CPU as the CPU model (default
// DefaultBochsCPU) with cfg.CPUs processors, cfg.Mem of RAM, a triple
// fault stopping Bochs rather than resetting, the RFB display not waiting
// for a viewer, no sound, no mouse; then cfg.ExtraArgs, one line each.
// cfg is checked and its defaults filled as Start does. A run with
// cfg.Stdin (and not cfg.Interactive, which Bochs ignores) connects COM1
// to a TCP socket instead of the file (see BochsSocketRC); Machine.BochsRC
// is the configuration a run used.
func BochsRC(cfg Config) (string, error) {
	return bochsRC(cfg, fmt.Sprintf("com1: enabled=1, mode=file, dev=%s", BochsSerialName))
}

// BochsSocketRC is BochsRC with COM1 in Bochs's socket-client mode: at its
// start Bochs connects to addr (an IPv4 "host:port") and the guest's serial
// output and input travel over that TCP connection. A run with
// Config.Stdin uses it with the address of a listener it opened.
func BochsSocketRC(cfg Config, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.ContainsAny(host, ":, \t\r\n\"") {
		return "", fmt.Errorf("bad COM1 socket address %q (want an IPv4 host:port)", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("bad COM1 socket address %q: bad port", addr)
	}
	return bochsRC(cfg, fmt.Sprintf("com1: enabled=1, mode=socket-client, dev=%s", addr))
}

// bochsRC is BochsRC with com1 as the COM1 line.
func bochsRC(cfg Config, com1 string) (string, error) {
	if cfg.Emulator == "" {
		cfg.Emulator = EmulatorBochs
	}
	if cfg.Kernel == "" {
		cfg.Kernel = "-" // not needed for the configuration
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return "", err
	}
	if cfg.Emulator != EmulatorBochs {
		return "", fmt.Errorf("BochsRC: emulator %s is not Bochs", cfg.Emulator)
	}
	mb, err := BochsMemMB(cfg.Mem)
	if err != nil {
		return "", err
	}
	for _, l := range cfg.ExtraArgs {
		if strings.ContainsAny(l, "\n\r") {
			return "", fmt.Errorf("extra bochsrc line %q holds a line break", l)
		}
	}
	var b strings.Builder
	b.WriteString("# Written by juice (cmd/juice/launch) for one Bochs run.\n")
	fmt.Fprintf(&b, "romimage: file=%s\n", BochsBIOS)
	fmt.Fprintf(&b, "vgaromimage: file=%s\n", BochsVGABIOS)
	// Debian's Bochs has no nogui display; timeout=0: do not wait for a
	// viewer.
	b.WriteString("display_library: rfb, options=\"timeout=0\"\n")
	fmt.Fprintf(&b, "memory: guest=%d, host=%d\n", mb, min(mb, bochsHostMaxMB))
	fmt.Fprintf(&b, "cpu: model=%s, count=%d, ips=%d, reset_on_triple_fault=0\n", cfg.CPU, cfg.CPUs, bochsIPS)
	b.WriteString("clock: sync=none, time0=local\n")
	b.WriteString("ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14\n")
	fmt.Fprintf(&b, "ata0-slave: type=cdrom, path=\"%s\", status=inserted\n", BochsISOName)
	b.WriteString("boot: cdrom\n")
	b.WriteString(com1 + "\n")
	b.WriteString("port_e9_hack: enabled=1\n")
	fmt.Fprintf(&b, "log: %s\n", BochsLogName)
	b.WriteString("panic: action=fatal\n")
	b.WriteString("error: action=report\n")
	b.WriteString("info: action=ignore\n")
	b.WriteString("debug: action=ignore\n")
	b.WriteString("mouse: enabled=0\n")
	// Without these Bochs aborts at start ("buffer overflow detected").
	b.WriteString("speaker: enabled=0\n")
	b.WriteString("sound: driver=dummy\n")
	for _, l := range cfg.ExtraArgs {
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// bochsExitRE finds Bochs's closing message on its standard error.
var bochsExitRE = regexp.MustCompile(`Bochs is exiting with the following message:\r?\n(?:\[[^\]]*\] *)?([^\r\n]*)`)

// bochsPanicRE finds a PANIC line of Bochs's log.
var bochsPanicRE = regexp.MustCompile(`>>PANIC<< ([^\r\n]*)`)

// BochsExitMessage returns Bochs's own account of why it stopped, from its
// output (standard output and error, then its log): the message after
// "Bochs is exiting with the following message:" without the device tag,
// or else the text of the last ">>PANIC<<" log line; "" if there is none.
// Examples: "ACPI control: soft power off", "Shutdown port: shutdown
// requested", "exception(): 3rd (13) exception with no resolution".
func BochsExitMessage(output string) string {
	if m := bochsExitRE.FindAllStringSubmatch(output, -1); len(m) > 0 {
		if s := strings.TrimSpace(m[len(m)-1][1]); s != "" {
			return s
		}
	}
	if m := bochsPanicRE.FindAllStringSubmatch(output, -1); len(m) > 0 {
		return strings.TrimSpace(m[len(m)-1][1])
	}
	return ""
}

// bochsTripleFault reports whether Bochs's exit message is the stop of a
// machine that triple-faulted (reset_on_triple_fault=0).
func bochsTripleFault(msg string) bool {
	return strings.Contains(msg, "exception with no resolution")
}

// bochsShutdown reports whether Bochs's exit message is a shutdown the
// guest asked for: ACPI S5 or the "Shutdown" string on port 0x8900.
func bochsShutdown(msg string) bool {
	return strings.Contains(msg, "soft power off") || strings.Contains(msg, "shutdown requested")
}

// ClassifyBochs turns the end of a Bochs run into a Result: Bochs's exit
// code (code, -1 when it died by a signal), the console texts (timestamps
// stripped) and Bochs's output (standard output and error, and its log),
// which names why it stopped (see BochsExitMessage, kept as Reason).
// Bochs exits with status 1 after every shutdown, so juice's status comes
// from its "juice: power off, status N" line: with the line the run is a
// PowerOff whatever the code; a triple fault is a Reset; a guest shutdown
// without the line is a Reset too (as an unannounced power-off is under
// QEMU); anything else is an emulator failure. Timeouts and kills are the
// caller's to set.
func ClassifyBochs(code int, texts []string, output string) Result {
	r := Result{Emulator: EmulatorBochs, QEMUCode: code, Stderr: output, Reason: BochsExitMessage(output)}
	status, announced := PowerOffStatus(texts)
	switch {
	case code < 0:
		r.Outcome = Killed
	case bochsTripleFault(r.Reason):
		r.Outcome = Reset
	case announced:
		r.Outcome, r.Status = PowerOff, status
	case bochsShutdown(r.Reason):
		r.Outcome = Reset
	default:
		r.Outcome = QEMUFailed
	}
	return r
}

// bochsRebootReason is Result.Reason after a Bochs run stopped because the
// machine reset (Bochs has no -no-reboot).
const bochsRebootReason = "the machine reset: GRUB booted juice a second time (run stopped)"

// grubBooting matches GRUB's "Booting `juice'" line: a second one means the
// machine reset.
func grubBooting(text string) bool {
	return strings.Contains(text, "Booting `"+GRUBEntry+"'")
}

// bochsStarts serializes Bochs starts within this process.
var bochsStarts struct {
	mu   sync.Mutex
	last time.Time
}

// startSpaced runs start (which starts one Bochs) at least BochsStartGap
// after the previous Bochs start of this process and, as far as the lock
// file allows, of other processes on this host.
func startSpaced(ctx context.Context, start func() error) error {
	bochsStarts.mu.Lock()
	defer bochsStarts.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	hostLast, release, err := lockBochsStarts(ctx)
	if err != nil {
		return err
	}
	last := bochsStarts.last
	if hostLast.After(last) {
		last = hostLast
	}
	wait := BochsStartGap - time.Since(last)
	if wait > BochsStartGap {
		wait = BochsStartGap // a clock step or a time stamp from the future
	}
	if !last.IsZero() && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			release(time.Time{})
			return ctx.Err()
		}
	}
	err = start()
	now := time.Now()
	if err != nil {
		now = time.Time{}
	} else {
		bochsStarts.last = now
	}
	release(now)
	return err
}

// serialTail follows a file that an emulator appends to and copies what
// it adds to dst: the file need not exist yet, and it is polled rather
// than watched.
type serialTail struct {
	path string
	dst  io.Writer
	stop chan struct{}
	done chan struct{}
}

// tailFile starts following path into dst every poll.
func tailFile(path string, dst io.Writer, poll time.Duration) *serialTail {
	s := &serialTail{path: path, dst: dst, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(poll)
	return s
}

// run is the polling loop.
func (s *serialTail) run(poll time.Duration) {
	defer close(s.done)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		final := false
		select {
		case <-s.stop:
			final = true
		case <-tick.C:
		}
		if f == nil {
			f, _ = os.Open(s.path)
		}
		for f != nil {
			n, err := f.Read(buf)
			if n > 0 {
				s.dst.Write(buf[:n])
			}
			if err != nil || n == 0 {
				break
			}
		}
		if final {
			return
		}
	}
}

// Finish copies what is left in the file and stops following it.
func (s *serialTail) Finish() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// infoFilter passes its writes on to w line by line, leaving out Bochs's
// info and debug log lines ("00000000000i[PLUGIN] ..."), which it prints
// on its standard error before it has read the configuration.
type infoFilter struct {
	w       io.Writer
	mu      sync.Mutex
	partial []byte
}

// bochsInfoRE matches an info or debug line of Bochs's log format.
var bochsInfoRE = regexp.MustCompile(`^[0-9]{11}[id]\[`)

// Write filters complete lines; an unfinished line waits for its end.
func (f *infoFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := f.partial[:i+1]
		if !bochsInfoRE.Match(line) {
			f.w.Write(line)
		}
		f.partial = f.partial[i+1:]
	}
	return len(p), nil
}

// logTail returns the last n bytes of the file at path, from a line start
// where possible, or "" if it cannot be read.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	k, _ := f.ReadAt(b, off)
	b = b[:k]
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// bochsLogTail is how much of the end of Bochs's log a Result keeps.
const bochsLogTail = 4096

// startBochs starts a Bochs run of cfg (normalized, files checked).
func startBochs(ctx context.Context, cfg Config) (*Machine, error) {
	if missing := MissingBochs(cfg.Bochs); len(missing) > 0 {
		return nil, fmt.Errorf("%w: Bochs run: missing %s", ErrNoEmulator, strings.Join(missing, ", "))
	}
	// With input to type, COM1 is a socket Bochs connects to; else the
	// serial file, followed as it grows.
	var sock *serialSocket
	rc, err := BochsRC(cfg)
	if err == nil && cfg.Stdin != nil && !cfg.Interactive {
		if sock, err = listenSerial(); err != nil {
			return nil, err
		}
		if rc, err = BochsSocketRC(cfg, sock.Addr()); err != nil {
			sock.Finish()
		}
	}
	if err != nil {
		return nil, err
	}
	dir := cfg.WorkDir
	cleanup := func() {}
	if dir == "" {
		dir, err = os.MkdirTemp("", "juice-bochs-")
		if err != nil {
			if sock != nil {
				sock.Finish()
			}
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	if sock != nil {
		prev := cleanup
		cleanup = func() {
			sock.Finish()
			prev()
		}
	}
	fail := func(err error) (*Machine, error) {
		cleanup()
		return nil, err
	}
	// Output of an earlier run in the same WorkDir must not be read.
	for _, f := range []string{BochsSerialName, BochsLogName} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	if err := BuildISO(ctx, cfg.Kernel, cfg.Append, cfg.Initrd, filepath.Join(dir, BochsISOName)); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, BochsRCName), []byte(rc), 0o644); err != nil {
		return fail(err)
	}

	m := &Machine{
		Console: NewConsole(),
		Args:    []string{cfg.Bochs, "-q", "-f", BochsRCName},
		BochsRC: rc,
		done:    make(chan struct{}),
		parent:  ctx,
	}
	m.cmd = exec.Command(cfg.Bochs, "-q", "-f", BochsRCName)
	dieWithParent(m.cmd)
	m.cmd.Dir = dir
	// Debian's Bochs starts in its debugger: "c" continues; at EOF the
	// debugger is not asked again.
	m.cmd.Stdin = strings.NewReader("c\n")
	m.cmd.Stdout = &m.stderr
	m.cmd.Stderr = &m.stderr
	if cfg.EchoStderr != nil {
		m.cmd.Stderr = io.MultiWriter(&m.stderr, &infoFilter{w: cfg.EchoStderr})
	}
	var console io.Writer = m.Console
	if cfg.Echo != nil {
		console = io.MultiWriter(m.Console, cfg.Echo)
	}
	serialPath := filepath.Join(dir, BochsSerialName)
	if sock != nil {
		// The serial output also goes to the file, as in file mode.
		f, err := os.Create(serialPath)
		if err != nil {
			return fail(err)
		}
		sock.serve(io.MultiWriter(console, &serialFile{f: f}), cfg.Stdin, f)
		m.finish = sock.Finish
	}
	if err := startSpaced(ctx, m.cmd.Start); err != nil {
		if ctx.Err() != nil {
			return fail(err)
		}
		return fail(fmt.Errorf("%w: %s: %v", ErrNoEmulator, cfg.Bochs, err))
	}
	if sock == nil {
		m.finish = tailFile(serialPath, console, serialPoll).Finish
	}
	logPath := filepath.Join(dir, BochsLogName)
	m.cleanup = cleanup
	m.classify = func(code int) Result {
		out := m.stderr.String()
		if t := logTail(logPath, bochsLogTail); t != "" {
			out += "\n--- end of " + BochsLogName + " ---\n" + t
		}
		r := ClassifyBochs(code, m.Console.Texts(), out)
		if m.rebooted.Load() {
			r.Outcome, r.Status, r.Reason = Reset, 0, bochsRebootReason
		}
		return r
	}
	runCtx := m.run(ctx, cfg.Timeout)
	go m.stopOnReboot(runCtx)
	if sock != nil {
		if err := sock.waitConnected(m.done, bochsConnectTimeout); err != nil {
			// Bochs runs but has not connected (a com1 line in
			// ExtraArgs, a connection refused): without its console
			// the run is useless.
			r := m.Kill()
			msg := ""
			if reason := BochsExitMessage(r.Stderr); reason != "" {
				msg = " (Bochs says: " + reason + ")"
			}
			return nil, fmt.Errorf("Bochs run: COM1 did not connect to %s: %v%s", sock.Addr(), err, msg)
		}
	}
	return m, nil
}

// bochsConnectTimeout is how long a run with Config.Stdin waits for Bochs
// to connect COM1 to its socket: Bochs connects as it sets up its devices,
// well within a second on an idle host.
var bochsConnectTimeout = 60 * time.Second

// bochsDrain is how long the end of a socket run waits for the rest of
// the serial output after Bochs exited (its end of the connection closes
// with it).
const bochsDrain = 5 * time.Second

// serialSocket is COM1 of a Bochs run with input: a listener on the
// loopback interface that Bochs connects to in its socket-client mode. The
// connection carries the guest's serial output to the console and the
// run's input to the guest.
type serialSocket struct {
	ln        net.Listener
	connected chan struct{} // closed once Bochs has connected
	done      chan struct{} // closed when the output copy has ended
	finished  chan struct{} // closed by Finish
	once      sync.Once
	mu        sync.Mutex
	served    bool // serve was called: done will close
	conn      net.Conn
	err       error // why no connection came, once done is closed
}

// listenSerial opens a serial socket on a free loopback port.
func listenSerial() (*serialSocket, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("Bochs run: a socket for COM1 on 127.0.0.1: %w", err)
	}
	return &serialSocket{ln: ln, connected: make(chan struct{}), done: make(chan struct{}), finished: make(chan struct{})}, nil
}

// Addr returns the "127.0.0.1:port" Bochs connects to.
func (s *serialSocket) Addr() string { return s.ln.Addr().String() }

// serve accepts Bochs's connection in the background, then copies what
// arrives on it to out and what in yields to it; closer (may be nil) is
// closed when the output copy ends.
func (s *serialSocket) serve(out io.Writer, in io.Reader, closer io.Closer) {
	s.mu.Lock()
	select {
	case <-s.finished:
		s.mu.Unlock()
		if closer != nil {
			closer.Close()
		}
		return
	default:
	}
	s.served = true
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if closer != nil {
			defer closer.Close()
		}
		conn, err := acceptLoopback(s.ln)
		s.ln.Close()
		s.mu.Lock()
		if err == nil {
			select {
			case <-s.finished:
				// Finish came first: the run is over.
				conn.Close()
				err = net.ErrClosed
			default:
				s.conn = conn
			}
		}
		s.err = err
		s.mu.Unlock()
		if err != nil {
			return
		}
		close(s.connected)
		go func() {
			// Ends when in ends, or at the first write after
			// Finish closed the connection.
			io.Copy(conn, in)
		}()
		io.Copy(out, conn)
	}()
}

// acceptLoopback returns the first connection to ln from the loopback
// interface (only a process of this host can be Bochs), dropping others.
func acceptLoopback(ln net.Listener) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
			return c, nil
		}
		c.Close()
	}
}

// waitConnected waits until Bochs has connected, it has exited (exited is
// closed, or Finish ran: not an error here, the run's result says why) or
// timeout passes.
func (s *serialSocket) waitConnected(exited <-chan struct{}, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.connected:
		return nil
	case <-exited:
		return nil
	case <-s.done:
		select {
		case <-s.finished:
			// Bochs exited (Finish runs then) before connecting.
			return nil
		default:
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	case <-t.C:
		return fmt.Errorf("no connection within %v", timeout)
	}
}

// Finish stops listening, copies what is left of the output (for at most
// bochsDrain: Bochs has exited, so its end is closed) and closes the
// connection. It may be called more than once.
func (s *serialSocket) Finish() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.finished)
		if !s.served {
			close(s.done)
		}
		s.mu.Unlock()
		s.ln.Close()
		t := time.NewTimer(bochsDrain)
		select {
		case <-s.done:
		case <-t.C:
		}
		t.Stop()
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
	})
	<-s.done
}

// serialFile is the copy of a socket run's serial output in
// BochsSerialName: it never fails a write, so that a full disk does not
// stop the console.
type serialFile struct {
	f   *os.File
	err error
}

// Write writes p to the file until a write fails.
func (w *serialFile) Write(p []byte) (int, error) {
	if w.err == nil {
		_, w.err = w.f.Write(p)
	}
	return len(p), nil
}

// stopOnReboot stops Bochs when GRUB boots a second time: the machine
// reset, and Bochs, unlike QEMU under -no-reboot, would boot again.
func (m *Machine) stopOnReboot(ctx context.Context) {
	first, err := m.Console.Wait(ctx, 0, grubBooting)
	if err != nil {
		return
	}
	if _, err := m.Console.Wait(ctx, first.Index+1, grubBooting); err != nil {
		return
	}
	m.rebooted.Store(true)
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(stopGrace):
		m.cmd.Process.Kill()
	}
}
