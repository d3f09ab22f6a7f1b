package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"juice/cmd/juice/launch"
	"juice/cmd/juice/launch/testkernel"
)

// These tests check the harness itself with generated test kernels, so
// they do not need juice.

func TestRoot(t *testing.T) {
	root := Root(t)
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module juice\n") {
		t.Fatalf("Root = %s: go.mod %q, %v", root, b, err)
	}
	if got := KernelDir(t); got != filepath.Join(root, "build") && os.Getenv("JUICE_KERNEL_DIR") == "" {
		t.Errorf("KernelDir = %s", got)
	}
}

func TestKernelDirOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("JUICE_KERNEL_DIR", dir)
	if got := KernelDir(t); got != dir {
		t.Errorf("KernelDir = %s, want %s", got, dir)
	}
	os.WriteFile(filepath.Join(dir, KernelImage), []byte("x"), 0o644)
	if got := Kernel(t, KernelImage); got != filepath.Join(dir, KernelImage) {
		t.Errorf("Kernel = %s", got)
	}
	// A missing image in an override directory is not built: it fails.
	f := runFake(t, func(tb testing.TB) { Kernel(tb, MB1TestImage) })
	if !f.failed || !strings.Contains(f.log(), "JUICE_KERNEL_DIR") {
		t.Errorf("Kernel of a missing image: failed=%v log=%q", f.failed, f.log())
	}
}

// fakeTB records failures of harness calls that are meant to fail.
type fakeTB struct {
	testing.TB // the real test: cleanups run there
	mu         sync.Mutex
	failed     bool
	skipped    bool
	msgs       []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

// runFake runs body with a fakeTB in its own goroutine (Fatal ends it) and
// returns the fake.
func runFake(t *testing.T, body func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	return f
}

// kernelFor writes a test kernel.
func kernelFor(t *testing.T, p testkernel.Program) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.elf")
	if err := testkernel.Write(path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHarnessExit(t *testing.T) {
	t.Parallel()
	k := kernelFor(t, testkernel.Program{
		Output: "BIOS junk[    0.000001] juice: booted by pvh\n[    0.000002] one\n[    0.000003] two\n",
		Status: 3,
	})
	r := Boot(t, launch.Config{Kernel: k, Mem: "32M"})
	if got := r.ExpectNext("juice: booted by pvh"); got != "juice: booted by pvh" {
		t.Errorf("ExpectNext = %q", got)
	}
	r.ExpectNext("two")
	if got := r.Find("t"); len(got) != 1 || got[0] != "two" {
		t.Errorf("Find = %q", got)
	}
	r.ExpectExit(3)

	// Order matters for ExpectNext, not for Expect; a wrong status fails.
	f := runFake(t, func(tb testing.TB) {
		rr := &Run{M: r.M, t: tb, ctx: r.ctx, next: r.next}
		rr.Expect("one")
		rr.ExpectNext("one")
	})
	if !f.failed || !strings.Contains(f.log(), `"one"`) {
		t.Errorf("ExpectNext of an earlier line: failed=%v log=%q", f.failed, f.log())
	}
	f = runFake(t, func(tb testing.TB) { (&Run{M: r.M, t: tb, ctx: r.ctx}).ExpectExit(0) })
	if !f.failed || !strings.Contains(f.log(), "status 3") {
		t.Errorf("ExpectExit(0) of a status-3 run: failed=%v log=%q", f.failed, f.log())
	}
	f = runFake(t, func(tb testing.TB) { (&Run{M: r.M, t: tb, ctx: r.ctx}).ExpectHalted() })
	if !f.failed {
		t.Error("ExpectHalted passed for an ended run")
	}
}

func TestHarnessHalt(t *testing.T) {
	t.Parallel()
	k := kernelFor(t, testkernel.Program{Output: "[    0.000001] juice: fatal: unknown boot loader\n", Action: testkernel.Halt})
	r := Boot(t, launch.Config{Kernel: k, Mem: "32M"})
	if got := r.Expect("juice: fatal: "); got != "juice: fatal: unknown boot loader" {
		t.Errorf("Expect = %q", got)
	}
	if r.ExpectHaltOrExit(launch.PanicStatus) {
		t.Error("ExpectHaltOrExit reported an exit for a halted machine")
	}
	if r.M.Running() {
		t.Error("machine still running after ExpectHaltOrExit")
	}
}

func TestHarnessReset(t *testing.T) {
	t.Parallel()
	k := kernelFor(t, testkernel.Program{Output: "[    0.000001] juice: fatal: x\n", Action: testkernel.TripleFault})
	r := Boot(t, launch.Config{Kernel: k, Mem: "32M"})
	// A line that never comes fails at once when the run ends.
	f := runFake(t, func(tb testing.TB) { (&Run{M: r.M, t: tb, ctx: r.ctx}).Expect("never") })
	if !f.failed || !strings.Contains(f.log(), "reset") {
		t.Errorf("Expect on a reset run: failed=%v log=%q", f.failed, f.log())
	}
	f = runFake(t, func(tb testing.TB) { (&Run{M: r.M, t: tb, ctx: r.ctx}).ExpectHaltOrExit(launch.PanicStatus) })
	if !f.failed {
		t.Error("ExpectHaltOrExit passed for a reset")
	}
}

// On failure the cleanup logs the command line and the console.
func TestHarnessLogsOnFailure(t *testing.T) {
	t.Parallel()
	k := kernelFor(t, testkernel.Program{Output: "[    0.000001] remember me\n", Status: 0})
	var f *fakeTB
	t.Run("inner", func(t *testing.T) {
		f = runFake(t, func(tb testing.TB) {
			r := Boot(tb, launch.Config{Kernel: k, Mem: "32M"})
			r.ExpectExit(1)
		})
	})
	if !f.failed {
		t.Fatal("ExpectExit(1) passed for a status-0 run")
	}
	log := f.log()
	for _, want := range []string{"qemu-system-x86_64", "-kernel " + k, "remember me", "--- console ---"} {
		if !strings.Contains(log, want) {
			t.Errorf("failure log lacks %q:\n%s", want, log)
		}
	}
}
