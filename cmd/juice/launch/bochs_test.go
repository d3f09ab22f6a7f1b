package launch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch/testkernel"
)

// requireBochs skips the test when Bochs, its ROM images or the ISO tools
// are missing, or fails it when JUICE_REQUIRE_EMULATORS=1.
func requireBochs(t *testing.T) {
	t.Helper()
	if missing := MissingBochs(""); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
}

func TestBochsMemMB(t *testing.T) {
	good := map[string]int{"256M": 256, "256m": 256, "256": 256, "1G": 1024, "2g": 2048,
		"65536K": 64, "1": 1, "4096M": 4096}
	for in, want := range good {
		if got, err := BochsMemMB(in); err != nil || got != want {
			t.Errorf("BochsMemMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "0M", "M", "1.5G", "1000K", "-1M", "256MB", "1T",
		"99999999999999999999M", "18446744073709551615K", "1048576M"} {
		if got, err := BochsMemMB(bad); err == nil {
			t.Errorf("BochsMemMB(%q) = %d, want an error", bad, got)
		}
	}
}

// rcLines returns the bochsrc lines that are not comments.
func rcLines(rc string) []string {
	var out []string
	for _, l := range strings.Split(rc, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestBochsRCDefaults(t *testing.T) {
	rc, err := BochsRC(Config{})
	if err != nil {
		t.Fatal(err)
	}
	lines := rcLines(rc)
	for _, want := range []string{
		"romimage: file=" + BochsBIOS,
		"vgaromimage: file=" + BochsVGABIOS,
		`display_library: rfb, options="timeout=0"`,
		"memory: guest=256, host=256",
		"cpu: model=corei7_skylake_x, count=1, ips=200000000, reset_on_triple_fault=0",
		"clock: sync=none, time0=local",
		"ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14",
		`ata0-slave: type=cdrom, path="juice.iso", status=inserted`,
		"boot: cdrom",
		"com1: enabled=1, mode=file, dev=serial.txt",
		"log: bochs.log",
		"panic: action=fatal",
		"info: action=ignore",
		"mouse: enabled=0",
		"speaker: enabled=0",
		"sound: driver=dummy",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("bochsrc lacks %q:\n%s", want, rc)
		}
	}
	// One directive per line, each "name: value".
	seen := map[string]bool{}
	for _, l := range lines {
		name, _, ok := strings.Cut(l, ": ")
		if !ok || seen[name] {
			t.Errorf("bad or repeated directive %q", l)
		}
		seen[name] = true
	}
	// The same with the Emulator set explicitly.
	rc2, err := BochsRC(Config{Emulator: EmulatorBochs, Kernel: "k.elf", Boot: BootGRUBBIOS})
	if err != nil || rc2 != rc {
		t.Errorf("explicit Bochs config differs: %v\n%s", err, rc2)
	}
}

func TestBochsRCSettings(t *testing.T) {
	rc, err := BochsRC(Config{Mem: "4G", CPUs: 2, CPU: "ryzen", ExtraArgs: []string{"cpuid: x2apic=0", "clock: sync=realtime"}})
	if err != nil {
		t.Fatal(err)
	}
	lines := rcLines(rc)
	for _, want := range []string{"memory: guest=4096, host=2048", "cpu: model=ryzen, count=2, ips=200000000, reset_on_triple_fault=0"} {
		if !slices.Contains(lines, want) {
			t.Errorf("bochsrc lacks %q:\n%s", want, rc)
		}
	}
	// Extra lines come last, in order, so that they override.
	if n := len(lines); n < 2 || lines[n-2] != "cpuid: x2apic=0" || lines[n-1] != "clock: sync=realtime" {
		t.Errorf("extra lines not at the end:\n%s", rc)
	}
	rc, err = BochsRC(Config{Mem: "64M"})
	if err != nil || !slices.Contains(rcLines(rc), "memory: guest=64, host=64") {
		t.Errorf("64M: %v\n%s", err, rc)
	}
}

func TestBochsConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Boot: BootPVH}, "grub-bios"},
		{Config{Boot: BootGRUBEFI}, "grub-bios"},
		{Config{Mem: "lots"}, "bad memory size"},
		{Config{Mem: "1500K"}, "whole number of MiB"},
		{Config{CPU: "corei7; rm -rf"}, "bad Bochs CPU model"},
		{Config{CPUs: 300}, "bad CPU count"},
		{Config{ExtraArgs: []string{"a: b\nc: d"}}, "line break"},
		{Config{Emulator: EmulatorQEMU}, "not Bochs"},
		{Config{Emulator: "vbox"}, "unknown emulator"},
	} {
		if _, err := BochsRC(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("BochsRC(%+v) error %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := QEMUArgs(Config{Emulator: EmulatorBochs, Kernel: "k"}, Media{ISO: "x.iso"}); err == nil {
		t.Error("QEMUArgs accepted a Bochs config")
	}
	_, err := Start(context.Background(), Config{Emulator: EmulatorBochs, Kernel: filepath.Join(t.TempDir(), "missing.elf")})
	if err == nil || !strings.Contains(err.Error(), "kernel image") {
		t.Errorf("Start with a missing kernel: %v", err)
	}
	k := writeKernel(t, testkernel.Program{})
	_, err = Start(context.Background(), Config{Emulator: EmulatorBochs, Kernel: k, Bochs: filepath.Join(t.TempDir(), "no-bochs")})
	if !errors.Is(err, ErrNoEmulator) {
		t.Errorf("Start with a missing Bochs: err = %v, want ErrNoEmulator", err)
	}
}

// Bochs's standard error after the guest's ACPI power-off, a triple fault
// and a configuration error, as Bochs 2.7 writes them.
const (
	bochsACPIOff = "00000000000i[      ] reading configuration from bochsrc\n" +
		"========================================================================\n" +
		"Bochs is exiting with the following message:\n" +
		"[ACPI  ] ACPI control: soft power off\n" +
		"========================================================================\n"
	bochsTriple = "========================================================================\n" +
		"Bochs is exiting with the following message:\n" +
		"[CPU0  ] exception(): 3rd (13) exception with no resolution\n" +
		"========================================================================\n"
	bochsBadRC = "Bochs is exiting with the following message:\n" +
		"[      ] bochsrc:5: cpu directive malformed.\n" +
		"========================================================================\n" +
		"00000000000i[SIM   ] quit_sim called with exit code 1\n"
	bochsShutdownLog = "00752325609p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n"
)

func TestBochsExitMessage(t *testing.T) {
	for in, want := range map[string]string{
		bochsACPIOff:     "ACPI control: soft power off",
		bochsTriple:      "exception(): 3rd (13) exception with no resolution",
		bochsBadRC:       "bochsrc:5: cpu directive malformed.",
		bochsShutdownLog: "Shutdown port: shutdown requested",
		"00000001e[SER   ] com1: transmit FIFO overflow\n" + bochsShutdownLog + "\n--- end of bochs.log ---\n": "Shutdown port: shutdown requested",
		// The closing message wins over the log's PANIC lines.
		bochsTriple + "\n--- end of bochs.log ---\n" + "0p[ACPI  ] >>PANIC<< ACPI control: soft power off\n": "exception(): 3rd (13) exception with no resolution",
		"":                       "",
		"Next at t=0\n<bochs:1>": "",
	} {
		if got := BochsExitMessage(in); got != want {
			t.Errorf("BochsExitMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassifyBochs(t *testing.T) {
	banner := []string{"  Booting `juice'", "", "juice: booted by multiboot2"}
	off := func(n string) []string {
		return append(append([]string(nil), banner...), "juice: power off, status "+n)
	}
	cases := []struct {
		name    string
		code    int
		texts   []string
		output  string
		outcome Outcome
		status  int
		exit    int
		says    string // in String()
	}{
		{"ACPI power-off", 1, off("0"), bochsACPIOff, PowerOff, 0, 0, "status 0"},
		{"power-off with status", 1, off("3"), bochsACPIOff, PowerOff, 3, 3, "status 3"},
		{"panic power-off", 1, off("127"), bochsACPIOff, PowerOff, 127, 127, "status 127"},
		{"shutdown port", 1, off("5"), bochsShutdownLog, PowerOff, 5, 5, "status 5"},
		{"power-off line, Bochs exit 0", 0, off("4"), "", PowerOff, 4, 4, "status 4"},
		{"triple fault", 1, banner, bochsTriple, Reset, 0, ExitReset, "triple-faulted"},
		{"triple fault after a power-off line", 1, off("0"), bochsTriple, Reset, 0, ExitReset, "triple-faulted"},
		{"unannounced power-off", 1, banner, bochsACPIOff, Reset, 0, ExitReset, "without juice's power-off line"},
		{"configuration error", 1, nil, bochsBadRC, QEMUFailed, 0, ExitQEMUFailed, "cpu directive malformed"},
		{"no message at all", 1, banner, "", QEMUFailed, 0, ExitQEMUFailed, "Bochs failed (exit code 1)"},
		{"signal", -1, off("0"), "", Killed, 0, ExitKilled, "killed"},
	}
	for _, c := range cases {
		r := ClassifyBochs(c.code, c.texts, c.output)
		if r.Outcome != c.outcome || r.Status != c.status || r.ExitCode() != c.exit {
			t.Errorf("%s: ClassifyBochs(%d) = %v status %d exit %d; want %v status %d exit %d",
				c.name, c.code, r.Outcome, r.Status, r.ExitCode(), c.outcome, c.status, c.exit)
		}
		if r.Emulator != EmulatorBochs || r.QEMUCode != c.code || r.Stderr != c.output || r.Reason != BochsExitMessage(c.output) {
			t.Errorf("%s: fields not kept: %+v", c.name, r)
		}
		if s := r.String(); !strings.Contains(s, c.says) {
			t.Errorf("%s: String() = %q, want it to say %q", c.name, s, c.says)
		}
	}
	if s := (Result{Emulator: EmulatorBochs, Outcome: TimedOut}).String(); s != "timed out: Bochs killed" {
		t.Errorf("timeout: %q", s)
	}
	if s := (Result{Outcome: TimedOut}).String(); s != "timed out: QEMU killed" {
		t.Errorf("QEMU timeout: %q", s)
	}
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.txt")
	c := NewConsole()
	tail := tailFile(path, c, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The file does not exist yet: nothing happens.
	time.Sleep(20 * time.Millisecond)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("[    0.000001] one\r\n[    0.0000")
	if _, err := c.Wait(ctx, 0, HasPrefix("one")); err != nil {
		t.Fatalf("first line not followed: %v (%q)", err, c.Raw())
	}
	f.WriteString("02] two\r\n")
	if l, err := c.Wait(ctx, 1, HasPrefix("two")); err != nil || l.Index != 1 {
		t.Fatalf("second line: %+v %v (%q)", l, err, c.Raw())
	}
	// What is written just before Finish is not lost.
	f.WriteString("three, unterminated")
	tail.Finish()
	tail.Finish() // harmless
	c.Close()
	if got, want := c.Texts(), []string{"one", "two", "three, unterminated"}; !slices.Equal(got, want) {
		t.Errorf("texts %q, want %q", got, want)
	}
	f.WriteString("\nafter\n")
	time.Sleep(20 * time.Millisecond)
	if strings.Contains(string(c.Raw()), "after") {
		t.Error("read after Finish")
	}
}

func TestInfoFilter(t *testing.T) {
	var out bytes.Buffer
	f := &infoFilter{w: &out}
	in := "00000000000i[      ] LTDL_LIBRARY_PATH not set\n00000000000i[PLUGIN] loaded plugin libbx_serial.so\n" +
		"=====\nBochs is exiting with the following message:\n[ACPI  ] ACPI control: soft power off\n" +
		"00000000000d[X] debug\n00751379818e[CPU0  ] an error\n"
	// Byte by byte: lines split across writes are filtered as wholes.
	for i := 0; i < len(in); i++ {
		if n, err := f.Write([]byte{in[i]}); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	}
	want := "=====\nBochs is exiting with the following message:\n[ACPI  ] ACPI control: soft power off\n00751379818e[CPU0  ] an error\n"
	if out.String() != want {
		t.Errorf("filtered %q, want %q", out.String(), want)
	}
}

func TestStartSpaced(t *testing.T) {
	var times []time.Time
	rec := func() error {
		times = append(times, time.Now())
		return nil
	}
	for i := 0; i < 2; i++ {
		if err := startSpaced(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if d := times[1].Sub(times[0]); d < BochsStartGap {
		t.Errorf("two starts %v apart, want at least %v", d, BochsStartGap)
	}
	// A wait cut short by the context returns its error without
	// starting; so does a context that has already ended.
	called := false
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := startSpaced(ctx, func() error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called || time.Since(begin) >= BochsStartGap {
		t.Errorf("cancelled wait: err %v, started %v, after %v", err, called, time.Since(begin))
	}
	err = startSpaced(ctx, func() error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Errorf("ended context: err %v, started %v", err, called)
	}
	// A start that fails is reported and does not count as a start.
	failed := errors.New("no")
	if err := startSpaced(context.Background(), func() error { return failed }); err != failed {
		t.Errorf("start error %v", err)
	}
	if err := startSpaced(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if d := times[2].Sub(times[1]); d < BochsStartGap {
		t.Errorf("start after a failed one %v after the last, want at least %v", d, BochsStartGap)
	}
}

// fakeBochs writes an executable shell script standing in for Bochs: it
// checks its arguments, the "c" on its standard input, and the files of
// the work directory, then runs body there.
func fakeBochs(t *testing.T, body string) string {
	t.Helper()
	if missing := MissingBochs("/bin/sh"); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
	script := `#!/bin/sh
read cmd
[ "$cmd" = c ] || { echo "stdin: $cmd" >&2; exit 3; }
[ "$*" = "-q -f bochsrc" ] || { echo "args: $*" >&2; exit 4; }
[ -s juice.iso ] || { echo "no ISO" >&2; exit 5; }
grep -q '^com1: enabled=1, mode=file, dev=serial.txt$' bochsrc || { echo "bad bochsrc" >&2; exit 6; }
[ ! -e serial.txt ] || { echo "stale serial.txt" >&2; exit 7; }
` + body
	path := filepath.Join(t.TempDir(), "fake-bochs")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// The serial file reaches the Console while Bochs runs; the power-off line
// gives the status although Bochs exits with 1; stderr echo leaves out
// Bochs's info lines.
func TestBochsFakeStreaming(t *testing.T) {
	t.Parallel()
	bochs := fakeBochs(t, `
printf '  Booting \140juice\047\r\n[    0.000001] juice: booted by multiboot2\r\n' > serial.txt
i=0
while [ ! -e go-on ]; do sleep 0.05; i=$((i+1)); [ $i -lt 400 ] || exit 8; done
printf '[    0.000002] juice: power off, status 3' >> serial.txt
echo '00000000000i[      ] noise' >&2
printf 'Bochs is exiting with the following message:\n[ACPI  ] ACPI control: soft power off\n' >&2
echo '02856022840p[ACPI  ] >>PANIC<< ACPI control: soft power off' > bochs.log
exit 1
`)
	dir := t.TempDir()
	// A serial file left by an earlier run is removed before the start.
	os.WriteFile(filepath.Join(dir, BochsSerialName), []byte("old\n"), 0o644)
	kernel := writeKernel(t, testkernel.Program{})
	var echo, echoErr lockedBuffer
	m := boot(t, Config{Emulator: EmulatorBochs, Bochs: bochs, Kernel: kernel, Mem: "64M", WorkDir: dir,
		Append: "a b", Echo: &echo, EchoStderr: &echoErr, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Console.Wait(ctx, 0, HasPrefix("juice: booted by multiboot2")); err != nil {
		t.Fatalf("booted line: %v", err)
	}
	if !m.Running() {
		t.Fatalf("the console was read only after Bochs ended: %v", m.Wait())
	}
	if err := os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	if r.Outcome != PowerOff || r.Status != 3 || r.ExitCode() != 3 || r.QEMUCode != 1 || r.Reason != "ACPI control: soft power off" {
		t.Errorf("result %+v, want power-off status 3", r)
	}
	if !strings.Contains(r.Stderr, ">>PANIC<< ACPI control") {
		t.Errorf("Stderr lacks the log's end: %q", r.Stderr)
	}
	if echo.String() != string(m.Console.Raw()) || strings.Contains(echo.String(), "old") {
		t.Errorf("echo %q, console %q", echo.String(), m.Console.Raw())
	}
	if e := echoErr.String(); strings.Contains(e, "noise") || !strings.Contains(e, "soft power off") {
		t.Errorf("stderr echo %q", e)
	}
	if rc, err := os.ReadFile(filepath.Join(dir, BochsRCName)); err != nil || string(rc) != m.BochsRC || !strings.Contains(m.BochsRC, "guest=64") {
		t.Errorf("bochsrc on disk %q (%v), Machine.BochsRC %q", rc, err, m.BochsRC)
	}
	if m.CommandLine() != bochs+" -q -f bochsrc" {
		t.Errorf("command line %q", m.CommandLine())
	}
}

// A second "Booting `juice'" from GRUB means the machine reset: the run
// stops with Reset instead of booting again.
func TestBochsFakeReboot(t *testing.T) {
	t.Parallel()
	bochs := fakeBochs(t, `
printf '  Booting \140juice\047\r\n[    0.000001] juice: booted by multiboot2\r\n' > serial.txt
sleep 0.2
printf '  Booting \140juice\047\r\n' >> serial.txt
exec sleep 60
`)
	m := boot(t, Config{Emulator: EmulatorBochs, Bochs: bochs, Kernel: writeKernel(t, testkernel.Program{}), Timeout: time.Minute})
	start := time.Now()
	r := m.Wait()
	if r.Outcome != Reset || r.ExitCode() != ExitReset || r.Reason != bochsRebootReason {
		t.Errorf("result %+v, want a reset", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("stopping took %v", d)
	}
	if !strings.Contains(r.String(), "GRUB booted juice a second time") {
		t.Errorf("String() = %q", r.String())
	}
}

// The time limit kills Bochs; a configuration error is an emulator
// failure with Bochs's message.
func TestBochsFakeTimeoutAndFailure(t *testing.T) {
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{})
	hang := fakeBochs(t, "printf 'hello\\r\\n' > serial.txt\nexec sleep 60\n")
	m := boot(t, Config{Emulator: EmulatorBochs, Bochs: hang, Kernel: kernel, Timeout: 2 * time.Second})
	if r := m.Wait(); r.Outcome != TimedOut || r.ExitCode() != ExitTimeout || r.String() != "timed out: Bochs killed" {
		t.Errorf("result %+v, want timed out", r)
	}
	if !slices.Contains(m.Console.Texts(), "hello") {
		t.Errorf("console %q", m.Console.Texts())
	}
	bad := fakeBochs(t, "printf 'Bochs is exiting with the following message:\\n[      ] bochsrc:5: cpu directive malformed.\\n' >&2\nexit 1\n")
	m = boot(t, Config{Emulator: EmulatorBochs, Bochs: bad, Kernel: kernel, Timeout: time.Minute})
	if r := m.Wait(); r.Outcome != QEMUFailed || r.ExitCode() != ExitQEMUFailed || !strings.Contains(r.String(), "cpu directive malformed") {
		t.Errorf("result %+v, want a Bochs failure", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := Start(ctx, Config{Emulator: EmulatorBochs, Bochs: hang, Kernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := m.Wait(); r.Outcome != Killed {
		t.Errorf("cancelled: %+v, want killed", r)
	}
}

// Real Bochs runs of the test kernel: the shutdown port ends Bochs and
// the status comes from the power-off line, the command line arrives, a
// triple fault is reported, a halted machine runs until the time limit.
func TestBochsBoot(t *testing.T) {
	requireBochs(t)
	cmdline := `juice.mode=selftest it's a\b é`
	cases := []struct {
		name    string
		p       testkernel.Program
		timeout time.Duration
		check   func(t *testing.T, m *Machine, r Result)
		stdin   bool // COM1 on a socket (Config.Stdin)
	}{
		{"shutdown", testkernel.Program{Output: "[    0.000001] juice: power off, status 5\n", ShowCmdline: true, Action: testkernel.Shutdown}, 2 * time.Minute,
			func(t *testing.T, m *Machine, r Result) {
				if r.Outcome != PowerOff || r.Status != 5 || r.ExitCode() != 5 || r.Reason != "Shutdown port: shutdown requested" {
					t.Errorf("result %+v, want power-off status 5", r)
				}
				want := `cmdline: [juice.mode=selftest it\'s a\\b é]`
				if !slices.Contains(m.Console.Texts(), want) {
					t.Errorf("command line not passed through: want %q in %q", want, m.Console.Texts())
				}
			}, false},
		{"shutdown-socket", testkernel.Program{Output: "[    0.000001] juice: power off, status 6\n", ShowCmdline: true, Action: testkernel.Shutdown}, 2 * time.Minute,
			func(t *testing.T, m *Machine, r Result) {
				if r.Outcome != PowerOff || r.Status != 6 || r.Reason != "Shutdown port: shutdown requested" {
					t.Errorf("result %+v, want power-off status 6", r)
				}
				if !strings.Contains(m.BochsRC, "mode=socket-client, dev=127.0.0.1:") {
					t.Errorf("COM1 not on a socket:\n%s", m.BochsRC)
				}
				texts := m.Console.Texts()
				if !slices.Contains(texts, "  Booting `juice'") || !slices.Contains(texts, `cmdline: [juice.mode=selftest it\'s a\\b é]`) {
					t.Errorf("console through the socket: %q", texts)
				}
			}, true},
		{"triple-fault", testkernel.Program{Output: "[    0.000001] about to fault\n", Action: testkernel.TripleFault}, 2 * time.Minute,
			func(t *testing.T, m *Machine, r Result) {
				if r.Outcome != Reset || r.ExitCode() != ExitReset || !strings.Contains(r.String(), "triple-faulted") {
					t.Errorf("result %+v (%v), want a triple fault", r, r)
				}
				if !slices.Contains(m.Console.Texts(), "about to fault") {
					t.Errorf("console %q", m.Console.Texts())
				}
			}, false},
		{"halt", testkernel.Program{Output: "[    0.000001] halting\n", Action: testkernel.Halt}, 25 * time.Second,
			func(t *testing.T, m *Machine, r Result) {
				if r.Outcome != TimedOut || r.ExitCode() != ExitTimeout {
					t.Errorf("result %+v, want timed out", r)
				}
				if !slices.Contains(m.Console.Texts(), "halting") {
					t.Errorf("console %q", m.Console.Texts())
				}
			}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Emulator: EmulatorBochs, Kernel: writeKernel(t, c.p), Mem: "32M", Append: cmdline, Timeout: c.timeout}
			if c.stdin {
				pr, pw := io.Pipe()
				defer pw.Close()
				cfg.Stdin = pr
			}
			m := boot(t, cfg)
			start := time.Now()
			r := m.Wait()
			t.Logf("%v in %v", r, time.Since(start).Round(time.Millisecond))
			c.check(t, m, r)
		})
	}
}

func TestBochsSocketRC(t *testing.T) {
	cfg := Config{Mem: "64M", ExtraArgs: []string{"cpuid: x2apic=0"}}
	file, err := BochsRC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := BochsSocketRC(cfg, "127.0.0.1:4321")
	if err != nil {
		t.Fatal(err)
	}
	// Only the COM1 line differs; the extra lines still come last.
	want := strings.Replace(file, "com1: enabled=1, mode=file, dev=serial.txt\n", "com1: enabled=1, mode=socket-client, dev=127.0.0.1:4321\n", 1)
	if sock != want || sock == file {
		t.Errorf("socket bochsrc:\n%s\nwant:\n%s", sock, want)
	}
	if l := rcLines(sock); l[len(l)-1] != "cpuid: x2apic=0" {
		t.Errorf("extra line not last: %q", l)
	}
	for _, bad := range []string{"", "127.0.0.1", ":80", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
		"[::1]:80", "a b:80", "a,b:80", "host:80\nx: y", "h\":80"} {
		if rc, err := BochsSocketRC(cfg, bad); err == nil {
			t.Errorf("BochsSocketRC(%q) accepted:\n%s", bad, rc)
		}
	}
	if _, err := BochsSocketRC(Config{Mem: "lots"}, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "bad memory size") {
		t.Errorf("bad config: %v", err)
	}
}

// fakeBochsEnv names the behaviour of the test binary run as a fake Bochs
// with COM1 on a socket (see TestBochsFakeSocketHelper).
const fakeBochsEnv = "JUICE_FAKE_BOCHS_SOCKET"

// fakeSocketBochs writes a script that runs this test binary as a Bochs
// that behaves as mode says (see TestBochsFakeSocketHelper).
func fakeSocketBochs(t *testing.T, mode string) string {
	t.Helper()
	if missing := MissingBochs("/bin/sh"); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" + fakeBochsEnv + "=" + mode + " exec '" + strings.ReplaceAll(exe, "'", `'\''`) +
		"' -test.run='^TestBochsFakeSocketHelper$' -- \"$@\"\n"
	path := filepath.Join(t.TempDir(), "fake-bochs")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBochsFakeSocketHelper is not a test: run by fakeSocketBochs's
// script, it stands in for Bochs. It checks its arguments and the "c" on
// its standard input, reads COM1's line from the bochsrc, then:
//   - echo: connects to the socket, writes GRUB's banner and a booted
//     line, answers each line it receives (ended by "\r") with "echo: "
//     and the line, and for the line "poweroff" writes juice's power-off
//     line with status 3 and exits as Bochs does after an ACPI power-off;
//   - never: does not connect and runs until it is killed;
//   - badrc: exits at once as Bochs does with a configuration error.
func TestBochsFakeSocketHelper(t *testing.T) {
	mode := os.Getenv(fakeBochsEnv)
	if mode == "" {
		return
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "fake Bochs: "+format+"\n", args...)
		os.Exit(9)
	}
	args := flag.Args()
	if strings.Join(args, " ") != "-q -f bochsrc" {
		fail("args %q", args)
	}
	cmd, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if cmd != "c\n" {
		fail("stdin %q", cmd)
	}
	rc, err := os.ReadFile("bochsrc")
	if err != nil {
		fail("%v", err)
	}
	m := regexp.MustCompile(`(?m)^com1: enabled=1, mode=socket-client, dev=(127\.0\.0\.1:[0-9]+)$`).FindSubmatch(rc)
	if m == nil {
		fail("no socket COM1 in:\n%s", rc)
	}
	switch mode {
	case "never":
		os.WriteFile("started", nil, 0o644)
		time.Sleep(time.Minute)
		os.Exit(8)
	case "badrc":
		fmt.Fprint(os.Stderr, bochsBadRC)
		os.Exit(1)
	case "echo":
	default:
		fail("mode %q", mode)
	}
	conn, err := net.Dial("tcp", string(m[1]))
	if err != nil {
		fail("%v", err)
	}
	io.WriteString(conn, "  Booting `juice'\r\n[    0.000001] juice: booted by multiboot2\r\n")
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			fail("reading COM1: %v", err)
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "poweroff" {
			break
		}
		fmt.Fprintf(conn, "echo: %s\r\n", line)
	}
	io.WriteString(conn, "[    0.000002] juice: power off, status 3")
	conn.Close()
	fmt.Fprint(os.Stderr, bochsACPIOff)
	os.Exit(1)
}

// With Config.Stdin, COM1 is a socket: what is written to Stdin reaches
// the guest, what the guest writes reaches the Console, Echo and the
// serial file; the power-off line gives the status as in file mode.
func TestBochsFakeSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, BochsSerialName), []byte("old\n"), 0o644)
	pr, pw := io.Pipe()
	defer pw.Close()
	var echo lockedBuffer
	m := boot(t, Config{Emulator: EmulatorBochs, Bochs: fakeSocketBochs(t, "echo"), Kernel: writeKernel(t, testkernel.Program{}),
		WorkDir: dir, Stdin: pr, Echo: &echo, Timeout: time.Minute})
	if !strings.Contains(m.BochsRC, "com1: enabled=1, mode=socket-client, dev=127.0.0.1:") {
		t.Errorf("bochsrc:\n%s", m.BochsRC)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Console.Wait(ctx, 0, HasPrefix("juice: booted by multiboot2")); err != nil {
		t.Fatalf("booted line: %v", err)
	}
	for _, s := range []string{"cat /proc/uptime", "é ü"} {
		io.WriteString(pw, s+"\r")
		if _, err := m.Console.Wait(ctx, 0, HasPrefix("echo: "+s)); err != nil {
			t.Fatalf("typed %q: %v", s, err)
		}
	}
	io.WriteString(pw, "poweroff\r")
	r := m.Wait()
	if r.Outcome != PowerOff || r.Status != 3 || r.QEMUCode != 1 || r.Reason != "ACPI control: soft power off" {
		t.Errorf("result %+v, want power-off status 3", r)
	}
	want := "  Booting `juice'\r\n[    0.000001] juice: booted by multiboot2\r\necho: cat /proc/uptime\r\necho: é ü\r\n[    0.000002] juice: power off, status 3"
	if raw := string(m.Console.Raw()); raw != want {
		t.Errorf("console %q, want %q", raw, want)
	}
	if echo.String() != want {
		t.Errorf("echo %q", echo.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, BochsSerialName)); err != nil || string(b) != want {
		t.Errorf("serial file %q (%v), want %q", b, err, want)
	}
	// Typing after the end fails nowhere and blocks nothing.
	done := make(chan struct{})
	go func() {
		io.WriteString(pw, "late\r")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("a write to Stdin after the run blocked")
	}
}

// A Bochs that never connects its COM1 is killed and Start says so within
// the connection timeout; one that exits first (a bad bochsrc) is an
// emulator failure with Bochs's message, as in file mode.
func TestBochsFakeSocketFailures(t *testing.T) {
	// Not parallel: it shortens bochsConnectTimeout.
	defer func(d time.Duration) { bochsConnectTimeout = d }(bochsConnectTimeout)
	bochsConnectTimeout = 3 * time.Second
	kernel := writeKernel(t, testkernel.Program{})
	pr, pw := io.Pipe()
	defer pw.Close()
	start := time.Now()
	m, err := Start(context.Background(), Config{Emulator: EmulatorBochs, Bochs: fakeSocketBochs(t, "never"), Kernel: kernel, Stdin: pr, Timeout: time.Minute})
	if err == nil {
		m.Kill()
		t.Fatal("Start succeeded without a COM1 connection")
	}
	if !strings.Contains(err.Error(), "COM1 did not connect to 127.0.0.1:") || !strings.Contains(err.Error(), "no connection within 3s") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("giving up took %v", d)
	}
	m, err = Start(context.Background(), Config{Emulator: EmulatorBochs, Bochs: fakeSocketBochs(t, "badrc"), Kernel: kernel, Stdin: pr, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Wait(); r.Outcome != QEMUFailed || !strings.Contains(r.String(), "cpu directive malformed") {
		t.Errorf("result %+v, want a Bochs failure", r)
	}
	// A run cancelled while Bochs has not connected is killed, not an
	// error of Start's.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	go func() {
		// Cancel once the fake Bochs runs (it is then waited for).
		for i := 0; i < 1000; i++ {
			if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	bochsConnectTimeout = time.Minute
	start = time.Now()
	m, err = Start(ctx, Config{Emulator: EmulatorBochs, Bochs: fakeSocketBochs(t, "never"), Kernel: kernel, Stdin: pr, WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Wait(); r.Outcome != Killed {
		t.Errorf("cancelled: %+v, want killed", r)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancelled run took %v", d)
	}
}
