package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"juice/cmd/juice/launch"
)

// selftestChecks are the self-test checks every boot must pass (the
// kernel may run more).
var selftestChecks = []string{
	"goroutines", "channels", "select", "maps", "defer-panic-recover",
	"sync", "gc", "timers", "sleep", "context-deadline", "crypto-rand",
}

// selftest boots juice in self-test mode by boot with mem of RAM and checks
// the protocol: the loader line, the entry-to-main figure, every required
// check ok, a consistent summary with 0 failed, the footprint, the
// power-off line, and exit status 0.
func selftest(t *testing.T, boot launch.Boot, loader, mem string) {
	r := Boot(t, launch.Config{Boot: boot, Mem: mem, Append: launch.SelftestArgs})
	r.ExpectNext("juice: booted by " + loader)
	r.ExpectNext("boot: entry to main ")
	done := r.ExpectNext("selftest: done in ")
	r.ExpectNext("mem: footprint ")
	r.ExpectNext("juice: power off, status 0")
	r.ExpectExit(0)
	checkSelftestLines(t, r.Texts(), done)
}

// checkSelftestLines checks the per-check lines against the required list
// and the summary line done.
func checkSelftestLines(t *testing.T, texts []string, done string) {
	t.Helper()
	ok := map[string]bool{}
	var fails []string
	for _, l := range texts {
		rest, found := strings.CutPrefix(l, "selftest: ")
		if !found || strings.HasPrefix(rest, "done in ") {
			continue
		}
		switch {
		case strings.HasSuffix(rest, " ok"):
			ok[strings.TrimSuffix(rest, " ok")] = true
		case strings.Contains(rest, " FAIL"):
			fails = append(fails, l)
		default:
			t.Errorf("malformed self-test line %q", l)
		}
	}
	for _, c := range selftestChecks {
		if !ok[c] {
			t.Errorf("no %q line", "selftest: "+c+" ok")
		}
	}
	for _, f := range fails {
		t.Errorf("failed check: %s", f)
	}
	_, passed, failed, parsed := launch.SelftestDone(done)
	if !parsed {
		t.Fatalf("malformed summary %q", done)
	}
	if failed != 0 || passed != len(ok) || failed != len(fails) {
		t.Errorf("summary %q, but the console shows %d ok and %d FAIL lines", done, len(ok), len(fails))
	}
}

func TestSelftestPVH(t *testing.T) {
	t.Parallel()
	selftest(t, launch.BootPVH, "pvh", "64M")
}

func TestSelftestGRUB(t *testing.T) {
	t.Parallel()
	selftest(t, launch.BootGRUBBIOS, "multiboot2", "64M")
}

// Under OVMF too, 64 MiB is enough: the post-link step leaves the 32 MiB
// lazy bss tail out of the image's load range, so GRUB finds room for it.
func TestSelftestGRUBEFI(t *testing.T) {
	t.Parallel()
	selftest(t, launch.BootGRUBEFI, "multiboot2", "64M")
}

// In normal mode juice prints its banner and stays up.
func TestBannerRun(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Append: "juice.panic=poweroff"})
	r.ExpectNext("juice: booted by pvh")
	r.Expect("juice ")
	// QEMU -cpu max exposes AMD-V (SVM) with nested paging.
	r.ExpectMatch(`a "cpu: " line naming svm`, func(s string) bool {
		return strings.HasPrefix(s, "cpu: ") && strings.Contains(strings.ToLower(s), "svm")
	})
	r.Expect("memory: ")
	if f := r.Find("juice: fatal: "); len(f) > 0 {
		t.Fatalf("fatal error in normal mode: %q", f)
	}
	if f := r.Find("selftest: "); len(f) > 0 {
		t.Errorf("self-test ran without juice.mode=selftest: %q", f)
	}
	if !r.M.Running() {
		t.Fatalf("juice stopped after its banner: %v", r.Wait())
	}
	r.Kill()
}

// Too little RAM is a fatal error, reported on the console, and with
// juice.panic=poweroff the run ends with status 127.
func TestTooLittleRAM(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "24M", Append: "juice.mode=selftest juice.panic=poweroff"})
	fatal := r.Expect("juice: fatal: ")
	if !strings.Contains(strings.ToLower(fatal), "memory") {
		t.Errorf("fatal message %q does not mention memory", fatal)
	}
	r.ExpectExit(launch.PanicStatus)
	if f := r.Find("selftest: done"); len(f) > 0 {
		t.Errorf("self-test finished despite the fatal error: %q", f)
	}
}

// A garbled command line is a fatal error naming the bad word. The words
// are parsed once the console is up; whether juice.panic=poweroff took
// effect by then is juice's choice, so a halt or an exit with status 127
// both pass.
func TestGarbledCmdline(t *testing.T) {
	cases := []struct {
		name, append, names string
	}{
		{"unknown-word", "juice.mode=selftest juice.bogus=1 juice.panic=poweroff", "juice.bogus"},
		{"non-ascii", "juice.mode=selftest juice.panic=poweroff garbl\xe9d", "garbl"},
		{"bad-value", "juice.mode=selftest juice.panic=sometimes", "juice.panic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := Boot(t, launch.Config{Mem: "64M", Append: c.append})
			fatal := r.Expect("juice: fatal: ")
			if !strings.Contains(fatal, c.names) {
				t.Errorf("fatal message %q does not name %q", fatal, c.names)
			}
			exited := r.ExpectHaltOrExit(launch.PanicStatus)
			t.Logf("fatal: %q; ended by %s", fatal, map[bool]string{true: "exit 127", false: "halt"}[exited])
			if f := r.Find("selftest: done"); len(f) > 0 {
				t.Errorf("self-test ran despite the bad command line: %q", f)
			}
		})
	}
}

// Booted by a loader juice does not support (QEMU's multiboot v1), juice
// cannot read its command line: it reports the fatal error and halts.
func TestUnknownLoader(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Kernel: Kernel(t, MB1TestImage), Mem: "64M"})
	fatal := r.Expect("juice: fatal: ")
	if !strings.Contains(fatal, "unknown boot loader") {
		t.Errorf("fatal message %q does not say %q", fatal, "unknown boot loader")
	}
	r.ExpectHalted()
	if texts := r.Texts(); slices.ContainsFunc(texts, func(s string) bool { return strings.HasPrefix(s, "juice: booted by") }) {
		t.Errorf("juice claims a known loader: %q", texts)
	}
}

// Every printed juice line carries the timestamp prefix.
func TestTimestamps(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", Append: launch.SelftestArgs})
	r.Expect("juice: power off, status ")
	r.Wait()
	started := false
	for _, raw := range r.M.Console.Lines() {
		clean := launch.Clean(raw)
		text, stamped := launch.StripTimestamp(clean)
		first := !started && strings.HasPrefix(text, "juice: booted by")
		if first {
			started = true
		}
		if !started || strings.TrimSpace(clean) == "" {
			continue // firmware output
		}
		// Firmware text may precede the first line without a newline.
		if !stamped || !first && !strings.HasPrefix(clean, "[") {
			t.Errorf("line without a leading timestamp: %q", clean)
		}
	}
	if !started {
		t.Fatalf("no %q line", "juice: booted by")
	}
}

// A CPU exception in Go code (juice.mode=crashtest writes through a
// non-canonical pointer) is reported with its vector, error code,
// registers and the goroutine's stack trace; then juice stops.
func TestCPUException(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", Append: "juice.mode=crashtest juice.panic=poweroff"})
	f := r.Expect("juice: fatal: CPU exception #GP (13")
	if !strings.Contains(f, "error 0x0") || !strings.Contains(f, "at RIP 0x") {
		t.Errorf("exception line %q lacks the error code or RIP", f)
	}
	r.Expect("rip=0x")
	r.Expect("rax=0x")
	r.Expect("r13=0x")
	r.Expect("juice: exception in main.crash at ")
	r.Expect("goroutine 1 [running]:")
	r.Expect("main.crash()")
	r.ExpectExit(launch.PanicStatus)
	if f := r.Find("crashtest: survived"); len(f) > 0 {
		t.Fatalf("juice kept running after the exception: %q", f)
	}
}

// A system call juice does not know is named, with its caller's PC, and
// juice stops.
func TestUnknownSyscall(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", Append: "juice.mode=syscalltest juice.panic=poweroff"})
	f := r.Expect("juice: fatal: unknown system call 500 from PC 0x")
	if strings.HasSuffix(f, "0x0") {
		t.Errorf("no caller PC in %q", f)
	}
	r.ExpectExit(launch.PanicStatus)
}

// Running out of memory is a clear message, not a hang or a triple fault.
func TestOutOfMemory(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", Append: "juice.mode=oomtest juice.panic=poweroff"})
	r.Expect("juice: fatal: out of memory: ")
	r.ExpectExit(launch.PanicStatus)
}

// A CPU without RDSEED and RDRAND (QEMU's qemu64 model) is refused with a
// clear message: juice never fakes randomness.
func TestNoEntropySource(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", CPU: "qemu64", Append: "juice.mode=selftest juice.panic=poweroff"})
	r.Expect("juice: fatal: this CPU has neither RDSEED nor RDRAND")
	r.ExpectExit(launch.PanicStatus)
}

// Without QEMU's isa-debug-exit device juice powers off through ACPI S5
// (the DSDT's \_S5 object): QEMU exits by itself after the self-test.
func TestACPIPowerOff(t *testing.T) {
	t.Parallel()
	r := Boot(t, launch.Config{Mem: "64M", NoDebugExit: true, Append: launch.SelftestArgs})
	r.Expect("selftest: done in ")
	r.Expect("juice: power off, status 0")
	r.ExpectExit(0)
	if f := r.Find("juice: power-off failed"); len(f) > 0 {
		t.Fatalf("ACPI power-off failed: %q", f)
	}
}

// console=ttyS1 moves juice's console to the second UART (QEMU's second
// -serial, a file here): nothing of juice's appears on the first.
func TestConsolePort(t *testing.T) {
	t.Parallel()
	com2 := filepath.Join(t.TempDir(), "com2.txt")
	r := Boot(t, launch.Config{Mem: "64M", Append: "console=ttyS1,57600 " + launch.SelftestArgs,
		ExtraArgs: []string{"-serial", "file:" + com2}})
	r.ExpectExit(0)
	out, err := os.ReadFile(com2)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"juice: booted by pvh", "selftest: done in ", "0 failed", "juice: power off, status 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("COM2 output lacks %q:\n%s", want, text)
		}
	}
	if f := r.Find("selftest: "); len(f) > 0 {
		t.Errorf("self-test lines on COM1 with console=ttyS1: %q", f)
	}
}
