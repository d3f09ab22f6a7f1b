// Package tests holds juice's integration tests: they boot the built kernel
// under QEMU (PVH, GRUB under SeaBIOS, GRUB under OVMF) and Bochs (VT-x)
// and check what it prints on the serial console and how it exits. This file is the harness
// the tests share; it drives the emulator through juice/cmd/juice/launch,
// the same code `juice run` uses.
//
// The tests need build/juice.elf and build/juice-mb1test.elf (`make build`;
// the harness runs it once when they are missing) or a directory holding
// both named by $JUICE_KERNEL_DIR. They skip when QEMU or the GRUB tools are
// missing, unless JUICE_REQUIRE_EMULATORS=1 (`make test` sets it), which
// makes them fail instead.
package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/cmd/juice/launch"
)

// BootTimeout bounds one boot. QEMU TCG on a loaded 2-core machine is slow;
// a healthy self-test boot takes a few seconds.
const BootTimeout = 120 * time.Second

// HaltGrace is how long a run must stay alive after a fatal message to
// count as halted (not reset: the runs use -no-reboot, so a reset or triple
// fault would end QEMU).
const HaltGrace = 2 * time.Second

// Names of the images in the kernel directory.
const (
	// KernelImage is juice's bootable image.
	KernelImage = "juice.elf"
	// MB1TestImage is the test-only variant that QEMU -kernel boots by
	// multiboot v1, a loader juice does not support.
	MB1TestImage = "juice-mb1test.elf"
)

// maxEmulators is how many emulators the tests of this package run at
// once ($JUICE_TEST_EMULATORS, default 2): TCG is CPU-bound.
var maxEmulators = func() int {
	if n, err := strconv.Atoi(os.Getenv("JUICE_TEST_EMULATORS")); err == nil && n > 0 {
		return n
	}
	return 2
}()

// defaultCPUs is the machine's CPU count for runs that do not choose one
// ($JUICE_TEST_CPUS, default 1): JUICE_TEST_CPUS=2 runs the whole suite
// on a two-CPU machine.
var defaultCPUs = func() int {
	if n, err := strconv.Atoi(os.Getenv("JUICE_TEST_CPUS")); err == nil && n > 0 {
		return n
	}
	return 0
}()

// slots limits the emulators running at once: maxEmulators host CPUs'
// worth, a machine with n CPUs counting as n (QEMU's multi-threaded TCG
// runs a host thread per CPU): on a 2-core machine a 4-CPU juice runs
// alone rather than beside other emulators. An overcommitted host
// stalls a virtual CPU that holds a lock while the others spin on it.
var slots = newWeighted(maxEmulators)

// weighted is a counting semaphore taken in weights.
type weighted struct {
	mu   sync.Mutex
	cond *sync.Cond
	free int
	max  int
}

func newWeighted(n int) *weighted {
	w := &weighted{free: n, max: n}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// acquire takes n units (at most the capacity), waiting for them; it
// returns what it took, for release.
func (w *weighted) acquire(n int) int {
	n = max(1, min(n, w.max))
	w.mu.Lock()
	for w.free < n {
		w.cond.Wait()
	}
	w.free -= n
	w.mu.Unlock()
	return n
}

func (w *weighted) release(n int) {
	w.mu.Lock()
	w.free += n
	w.mu.Unlock()
	w.cond.Broadcast()
}

// RequireEmulatorsEnv is the variable that turns missing emulators from a
// skip into a failure.
const RequireEmulatorsEnv = "JUICE_REQUIRE_EMULATORS"

// missingTool skips the test, or fails it when RequireEmulatorsEnv is 1.
func missingTool(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireEmulatorsEnv) == "1" {
		t.Fatalf("%s, and %s=1: run `make setup`", what, RequireEmulatorsEnv)
	}
	t.Skipf("%s (set %s=1 to make this a failure)", what, RequireEmulatorsEnv)
}

// RequireEmulators skips or fails t (see RequireEmulatorsEnv) unless the
// host programs the boot path b needs are installed: QEMU, plus GRUB's ISO
// tools for the GRUB paths, plus OVMF for grub-efi.
func RequireEmulators(t testing.TB, b launch.Boot) {
	t.Helper()
	if _, err := exec.LookPath(launch.DefaultQEMU); err != nil {
		missingTool(t, launch.DefaultQEMU+" not found")
	}
	if b == launch.BootGRUBBIOS || b == launch.BootGRUBEFI {
		if missing := launch.MissingISOTools(); len(missing) > 0 {
			missingTool(t, fmt.Sprintf("%s not found", strings.Join(missing, ", ")))
		}
	}
	if b == launch.BootGRUBEFI {
		if _, err := launch.FindFirmware(); err != nil {
			missingTool(t, err.Error())
		}
	}
}

// RequireBochs skips or fails t (see RequireEmulatorsEnv) unless Bochs,
// its ROM images and GRUB's ISO tools are installed.
func RequireBochs(t testing.TB) {
	t.Helper()
	if missing := launch.MissingBochs(""); len(missing) > 0 {
		missingTool(t, fmt.Sprintf("%s not found", strings.Join(missing, ", ")))
	}
}

// rootOnce caches Root's answer.
var rootOnce = sync.OnceValues(findRoot)

// findRoot walks up from the working directory to the go.mod of module
// juice.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			first := ""
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "module ") {
					first = strings.TrimSpace(strings.TrimPrefix(l, "module "))
					break
				}
			}
			f.Close()
			if first == "juice" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module juice above the working directory")
		}
		dir = parent
	}
}

// Root returns the repository root.
func Root(t testing.TB) string {
	t.Helper()
	root, err := rootOnce()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildMu serializes the `make build` fallback.
var buildMu sync.Mutex

// buildErr remembers a failed `make build` so it runs only once.
var buildErr error

// built records that `make build` ran.
var built bool

// KernelDir returns the directory holding the kernel images:
// $JUICE_KERNEL_DIR if set, else <root>/build.
func KernelDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("JUICE_KERNEL_DIR"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	return filepath.Join(Root(t), "build")
}

// Kernel returns the absolute path of image name (KernelImage or
// MB1TestImage) in KernelDir. If it is missing from <root>/build, it runs
// `make build` once for the whole test binary; if that fails, or the image
// is still missing, the test fails.
func Kernel(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(KernelDir(t), name)
	// The stat also ties go test's result cache to the image.
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("JUICE_KERNEL_DIR") != "" {
		t.Fatalf("%s not found (JUICE_KERNEL_DIR is set, so it is not built)", path)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if !built {
		built = true
		cmd := exec.Command("make", "build")
		cmd.Dir = Root(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make build: %v\n%s", err, out)
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s still missing after make build: %v", path, err)
	}
	return path
}

// Run is one emulator run under test.
type Run struct {
	// M is the running emulator.
	M *launch.Machine

	t      testing.TB
	ctx    context.Context
	cancel context.CancelFunc
	next   int // console index after the last line ExpectNext matched
}

// Boot starts juice as cfg describes and registers its cleanup: the
// emulator is killed when the test ends, and its command line, console and
// standard error (and a Bochs run's bochsrc) go to the test log if the
// test failed. Defaults: Kernel is Kernel(t, KernelImage), Timeout is
// BootTimeout. It skips or fails when the emulators are missing
// (RequireEmulators, RequireBochs), and waits for a free slot when
// maxEmulators runs are already going.
func Boot(t testing.TB, cfg launch.Config) *Run {
	t.Helper()
	if cfg.Emulator == launch.EmulatorBochs {
		RequireBochs(t)
	} else {
		RequireEmulators(t, cfg.Boot)
	}
	if cfg.Kernel == "" {
		cfg.Kernel = Kernel(t, KernelImage)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = BootTimeout
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = defaultCPUs
	}
	weight := slots.acquire(cfg.CPUs)
	r := &Run{t: t}
	r.ctx, r.cancel = context.WithTimeout(context.Background(), cfg.Timeout+30*time.Second)
	m, err := launch.Start(r.ctx, cfg)
	if err != nil {
		r.cancel()
		slots.release(weight)
		t.Fatalf("starting the emulator: %v", err)
	}
	r.M = m
	t.Cleanup(func() {
		res := m.Kill()
		r.cancel()
		slots.release(weight)
		if t.Failed() {
			if m.BochsRC != "" {
				t.Logf("bochsrc:\n%s", m.BochsRC)
			}
			t.Logf("emulator: %s\nresult: %v\n--- console ---\n%s--- end of console ---\n%s stderr: %s",
				m.CommandLine(), res, m.Console, res.Emulator, strings.TrimSpace(res.Stderr))
		}
	})
	return r
}

// fail reports that a wait for want ended with err.
func (r *Run) fail(want string, err error) {
	r.t.Helper()
	if errors.Is(err, launch.ErrConsoleClosed) {
		r.t.Fatalf("%s never appeared: the run ended: %v", want, r.M.Wait())
	}
	r.t.Fatalf("%s never appeared: %v", want, err)
}

// ExpectMatch waits until some console line (text after the timestamp)
// satisfies match and returns its text; it fails the test if the run ends
// or times out first. desc describes the line for the failure message.
func (r *Run) ExpectMatch(desc string, match func(text string) bool) string {
	r.t.Helper()
	l, err := r.M.Console.Wait(r.ctx, 0, match)
	if err != nil {
		r.fail(desc, err)
	}
	if l.Index+1 > r.next {
		r.next = l.Index + 1
	}
	return l.Text
}

// Expect waits for a line whose text starts with prefix (see ExpectMatch).
func (r *Run) Expect(prefix string) string {
	r.t.Helper()
	return r.ExpectMatch(fmt.Sprintf("a line starting %q", prefix), launch.HasPrefix(prefix))
}

// ExpectNext is Expect for a line after every line matched so far by this
// run's Expect* calls: it checks order.
func (r *Run) ExpectNext(prefix string) string {
	r.t.Helper()
	l, err := r.M.Console.Wait(r.ctx, r.next, launch.HasPrefix(prefix))
	if err != nil {
		r.fail(fmt.Sprintf("a line starting %q (after line %d)", prefix, r.next), err)
	}
	r.next = l.Index + 1
	return l.Text
}

// Texts returns the console lines so far, timestamps stripped.
func (r *Run) Texts() []string { return r.M.Console.Texts() }

// Find returns the texts so far that start with prefix.
func (r *Run) Find(prefix string) []string {
	var out []string
	for _, t := range r.Texts() {
		if strings.HasPrefix(t, prefix) {
			out = append(out, t)
		}
	}
	return out
}

// Wait waits for the run to end (at most its timeout) and returns how.
func (r *Run) Wait() launch.Result { return r.M.Wait() }

// ExpectExit waits for the run to end and fails the test unless juice
// exited (debug-exit or announced power-off) with status.
func (r *Run) ExpectExit(status int) launch.Result {
	r.t.Helper()
	res := r.Wait()
	if !res.Exited() || res.Status != status {
		r.t.Fatalf("run ended: %v; want juice to exit with status %d", res, status)
	}
	return res
}

// ExpectHalted fails the test unless the emulator is still running
// HaltGrace from now (juice halted the CPU rather than resetting,
// triple-faulting or exiting), then stops it.
func (r *Run) ExpectHalted() {
	r.t.Helper()
	select {
	case <-r.M.Done():
		r.t.Fatalf("run ended within %v, want a halted machine: %v", HaltGrace, r.M.Wait())
	case <-time.After(HaltGrace):
	}
	r.M.Kill()
}

// ExpectHaltOrExit accepts either ending after a fatal error: juice exits
// with status within HaltGrace, or it halts and the emulator is still
// running then. It returns true for an exit.
func (r *Run) ExpectHaltOrExit(status int) bool {
	r.t.Helper()
	select {
	case <-r.M.Done():
		res := r.M.Wait()
		if !res.Exited() || res.Status != status {
			r.t.Fatalf("run ended: %v; want a halt or an exit with status %d", res, status)
		}
		return true
	case <-time.After(HaltGrace):
		r.M.Kill()
		return false
	}
}

// Kill stops the emulator now.
func (r *Run) Kill() launch.Result { return r.M.Kill() }
