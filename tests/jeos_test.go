package tests

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The JeOS tests boot Debian's stock kernel with the JeOS initramfs (built
// by `juice jeos`, cached in build/jeos) under juice and drive its shell
// through juice's console, as a user of `make run` does.

// cachedImage is a JeOS image built once per test binary, on first use.
type cachedImage struct {
	sync.Mutex
	img  jeos.Image
	err  error
	done bool
}

// get returns the image, building it with build (Dir build/jeos under the
// repository, Source the repository) the first time; what names it in the
// failure message.
func (c *cachedImage) get(t testing.TB, what string, build func(jeos.Options) (jeos.Image, error)) jeos.Image {
	t.Helper()
	c.Lock()
	defer c.Unlock()
	if !c.done {
		root := Root(t)
		c.img, c.err = build(jeos.Options{Dir: filepath.Join(root, jeos.DefaultDir), Source: root})
		c.done = true
	}
	if c.err != nil {
		t.Fatalf("building the %s: %v", what, c.err)
	}
	return c.img
}

// jeosImage is the default JeOS image.
var jeosImage cachedImage

// JeOS returns the default JeOS image, building it on first use (apt-get
// download of the kernel package, u-root build: about a minute cold).
func JeOS(t testing.TB) jeos.Image {
	t.Helper()
	return jeosImage.get(t, "JeOS image", jeos.Build)
}

// jeosVM is the JeOS guest as one VM: the given kernel (the bzImage or the
// PVH vmlinux), the initramfs, the plain command line a user would give.
func jeosVM(img jeos.Image, kernel, cmdline string) launch.VMSpec {
	return launch.VMSpec{
		Name:    "jeos",
		Kernel:  kernel,
		Cmdline: cmdline,
		Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}},
		Memory:  "256M",
	}
}

// console is the guest's serial input: what the test types.
type console struct {
	t *testing.T
	w *io.PipeWriter
}

func (c console) typeLine(s string) {
	c.t.Helper()
	// Enter is a carriage return, as a terminal sends it.
	if _, err := io.WriteString(c.w, s+"\r"); err != nil {
		c.t.Fatalf("typing %q: %v", s, err)
	}
}

// dump asks juice for its state dump (the console escape Ctrl-\ d) and
// gives it a few seconds to reach the console, for the failure log.
func (c console) dump(r *Run) {
	if _, err := io.WriteString(c.w, "\x1cd"); err != nil || !r.M.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	r.M.Console.Wait(ctx, r.next, func(text string) bool {
		return strings.Contains(text, "juice: dump 1: vm ") && strings.Contains(text, " vcpu ")
	})
	// A second dump a moment later shows what moved.
	time.Sleep(time.Second)
	io.WriteString(c.w, "\x1cd")
	time.Sleep(2 * time.Second)
}

// bootJeOS starts juice with the JeOS VM and returns the run and its
// console input.
func bootJeOS(t *testing.T, kernel, cmdline string, timeout time.Duration) (*Run, console) {
	img := JeOS(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	r := BootVMs(t, launch.Config{Mem: "512M", Stdin: pr, Timeout: timeout}, jeosVM(img, kernel, cmdline))
	return r, console{t: t, w: pw}
}

// contains matches a console line containing s.
func contains(s string) func(string) bool {
	return func(text string) bool { return strings.Contains(text, s) }
}

// uptimeRE is the output of `cat /proc/uptime` on the guest's console.
var uptimeRE = regexp.MustCompile(`^\[jeos\] (\$ )*[0-9]+\.[0-9]+ [0-9]+\.[0-9]+\s*$`)

// TestJeOSShell: Debian's kernel reaches user space under juice on AMD-V
// (QEMU TCG); a command typed on the console runs and its output comes
// back; `reboot` restarts the VM from its images and it reaches user space
// again; `poweroff` ends the VM with status 0, and juice with it.
func TestJeOSShell(t *testing.T) {
	img := JeOS(t)
	r, in := bootJeOS(t, img.Kernel, "console=ttyS0", 6*time.Minute)
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	shellCommand(t, r, in)

	shellExpect(t, r, in, "reboot", "juice: vm jeos: the guest reset the machine (reboot)", 90*time.Second)
	r.ExpectNext("juice: vm jeos: restarting (boot 2)")
	l, err := r.M.Console.Wait(r.ctx, r.next, contains("[jeos] "+jeos.ReadyMarker))
	if err != nil {
		r.fail("the ready marker after the reboot", err)
	}
	r.next = l.Index + 1
	shellCommand(t, r, in)

	shellExpect(t, r, in, "poweroff", "juice: vm jeos: exited with status 0: guest powered off (ACPI S5)", 90*time.Second)
	r.ExpectExit(0)
}

// shellCommand types `cat /proc/uptime` and waits for its output.
func shellCommand(t *testing.T, r *Run, in console) {
	t.Helper()
	shellRun(t, r, in, "", 90*time.Second)
}

// shellRun types prefix (commands ending in "; ", or "") followed by `cat
// /proc/uptime` on one line and waits (at most budget) until the uptime
// comes back: then the commands before it ran too. The shell reads lines
// in the tty's canonical mode, so what is typed while it is still busy
// waits in the tty and is never lost: each line is typed once.
func shellRun(t *testing.T, r *Run, in console, prefix string, budget time.Duration) {
	t.Helper()
	in.typeLine(prefix + "cat /proc/uptime")
	ctx, cancel := context.WithTimeout(r.ctx, budget)
	l, err := r.M.Console.Wait(ctx, r.next, uptimeRE.MatchString)
	cancel()
	if err != nil {
		in.dump(r)
		r.fail("the output of `"+prefix+"cat /proc/uptime`", err)
	}
	r.next = l.Index + 1
}

// TestJeOSPanic: a guest whose kernel panics (its initramfs has no such
// init, so the kernel cannot mount a root file system) stops with the
// panic's reason on juice's console, while a second JeOS VM booting at the
// same time goes on to user space and powers off normally, and a third,
// with too little RAM for the kernel, is refused by name.
func TestJeOSPanic(t *testing.T) {
	img := JeOS(t)
	// The survivor boots the PVH vmlinux, the doomed VM the bzImage: both
	// loaders, side by side.
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	good := jeosVM(img, kernel, "console=ttyS0 "+jeos.PoweroffArg)
	good.Name, good.Memory = "survivor", "192M"
	bad := jeosVM(img, img.Kernel, "console=ttyS0 rdinit=/nonexistent")
	bad.Name, bad.Memory, bad.Modules = "doomed", "192M", nil
	// A third VM too small for the kernel: refused when juice builds it,
	// with a message naming it; the other two run anyway.
	tiny := jeosVM(img, img.Kernel, "console=ttyS0")
	tiny.Name, tiny.Memory = "tiny", "48M"
	r := BootVMs(t, launch.Config{Mem: "704M", Timeout: 6 * time.Minute}, good, bad, tiny)
	t.Logf("refused: %s", r.Expect(`juice: vm tiny: kernel "`))
	panicLine := "juice: vm doomed: stopped: guest kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"
	r.Expect(panicLine)
	r.ExpectMatch("the survivor's ready marker", contains("[survivor] "+jeos.ReadyMarker))
	r.Expect("juice: vm survivor: exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)
	idx := func(prefix string) int {
		for i, l := range r.Texts() {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		return -1
	}
	if p, s := idx(panicLine), idx("[survivor] "+jeos.ReadyMarker); s >= 0 && p > s {
		t.Logf("the survivor reached user space before the other VM panicked (lines %d, %d): both still ran side by side", s, p)
	}
}

// TestJeOSBochs: Debian's kernel (the PVH vmlinux: Bochs would spend
// minutes in the bzImage's XZ decompression) with the JeOS initramfs
// reaches user space under juice on VT-x with EPT (Bochs), as
// TestJeOSShell does on AMD-V: a command typed on the console (Bochs's
// COM1 is then a socket, see launch.BochsSocketRC) runs and its output
// comes back; `reboot` restarts the VM and it reaches user space again;
// `poweroff` ends the VM with status 0, and juice with it. About 3-4
// minutes.
func TestJeOSBochs(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skipf("no vmlinux in the JeOS image: %v", img.Notes)
	}
	start := time.Now()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	in := console{t: t, w: pw}
	vm := jeosVM(img, img.Vmlinux, "console=ttyS0")
	r := BootVMs(t, launch.Config{Emulator: launch.EmulatorBochs, Mem: "768M", Stdin: pr, Timeout: 20 * time.Minute}, vm)
	r.Expect("juice: vm jeos: starting")
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	t.Logf("ready marker after %v", time.Since(start).Round(time.Second))
	shellRun(t, r, in, "", bochsShellBudget)
	t.Logf("command output after %v", time.Since(start).Round(time.Second))

	shellExpect(t, r, in, "reboot", "juice: vm jeos: the guest reset the machine (reboot)", bochsShellBudget)
	r.ExpectNext("juice: vm jeos: restarting (boot 2)")
	l, err := r.M.Console.Wait(r.ctx, r.next, contains("[jeos] "+jeos.ReadyMarker))
	if err != nil {
		r.fail("the ready marker after the reboot", err)
	}
	r.next = l.Index + 1
	t.Logf("ready marker after the reboot after %v", time.Since(start).Round(time.Second))
	shellRun(t, r, in, "", bochsShellBudget)

	shellExpect(t, r, in, "poweroff", "juice: vm jeos: exited with status 0: guest powered off (ACPI S5)", bochsShellBudget)
	r.ExpectExit(0)
	t.Logf("powered off after %v", time.Since(start).Round(time.Second))
}

// bochsShellBudget is how long the Bochs test keeps typing a command,
// which runs the guest some 20 times slower than QEMU.
const bochsShellBudget = 5 * time.Minute

// shellExpect types cmd once and waits (at most budget) for a console
// line starting with want.
func shellExpect(t *testing.T, r *Run, in console, cmd, want string, budget time.Duration) {
	t.Helper()
	in.typeLine(cmd)
	ctx, cancel := context.WithTimeout(r.ctx, budget)
	l, err := r.M.Console.Wait(ctx, r.next, launch.HasPrefix(want))
	cancel()
	if err != nil {
		in.dump(r)
		r.fail(fmt.Sprintf("%q after typing %q", want, cmd), err)
	}
	r.next = l.Index + 1
}

// TestJeOSConsoleCommands: juice's own command line on its console
// (Ctrl-\ :) lists the bundle's VMs with their state, restarts a running
// guest from its images and stops it; keys typed there never reach the
// guest; juice ends when its last VM has stopped (status 125: the first
// VM did not exit by itself).
func TestJeOSConsoleCommands(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	r, in := bootJeOS(t, kernel, "console=ttyS0", 5*time.Minute)
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	cmd := func(line string) {
		if _, err := io.WriteString(in.w, "\x1c:"+line+"\r"); err != nil {
			t.Fatal(err)
		}
	}
	cmd("list")
	row := regexp.MustCompile(`juice: jeos +running +256 MiB +1 +1 +[0-9]+$`)
	r.ExpectMatch("the list's row for the running VM", row.MatchString)
	cmd("restart jeos")
	r.ExpectNext("juice: vm jeos: restarted from juice's console")
	r.ExpectNext("juice: vm jeos: restarting (boot 2)")
	l, err := r.M.Console.Wait(r.ctx, r.next, contains("[jeos] "+jeos.ReadyMarker))
	if err != nil {
		r.fail("the ready marker after the restart", err)
	}
	r.next = l.Index + 1
	shellCommand(t, r, in) // the guest still takes its own input
	cmd("list")
	row2 := regexp.MustCompile(`juice: jeos +running +256 MiB +1 +2 +[0-9]+$`)
	l, err = r.M.Console.Wait(r.ctx, r.next, row2.MatchString)
	if err != nil {
		r.fail("the list's row after the restart (2 boots)", err)
	}
	r.next = l.Index + 1
	cmd("stop jeos")
	r.ExpectNext("juice: vm jeos: stopped (killed): stopped from juice's console")
	res := r.Wait()
	if !res.Exited() || res.Status != 125 {
		t.Fatalf("run ended: %v; want juice to exit with status 125 once its only VM was stopped", res)
	}
	for _, l := range r.Texts() {
		if strings.Contains(l, "[jeos]") && (strings.Contains(l, "restart jeos") || strings.Contains(l, "stop jeos")) {
			t.Errorf("the guest saw juice's command line: %q", l)
		}
	}
}

// TestJeOSHvc0Shell: a JeOS guest with a virtio console keeps a shell on
// hvc0 beside the one on COM1; Ctrl-\ n moves juice's console input to
// hvc0, a command typed there runs with hvc0 as its terminal and its
// output comes back in the VM's stream; Ctrl-\ n again returns to COM1,
// where poweroff ends the VM.
func TestJeOSHvc0Shell(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	vm := jeosVM(img, kernel, "console=ttyS0")
	vm.Devices = &bundle.ManifestDevices{Console: true}
	r := BootVMs(t, launch.Config{Mem: "512M", Stdin: pr, Timeout: 5 * time.Minute}, vm)
	in := console{t: t, w: pw}
	r.ExpectMatch("the guest's ready marker with hvc0", func(s string) bool {
		return strings.Contains(s, "[jeos] "+jeos.ReadyMarker) && strings.Contains(s, "vport")
	})
	io.WriteString(pw, "\x1cn")
	r.ExpectNext("juice: console input goes to vm jeos virtio console (hvc0)")
	fd0 := regexp.MustCompile(`^\[jeos\] .*-> /dev/hvc0\s*$`)
	// The hvc0 shell may still be starting: what is typed waits in the
	// virtio console's input buffer and the tty.
	in.typeLine("ls -l /proc/self/fd/0")
	r.ExpectMatch("the hvc0 shell's answer", fd0.MatchString)
	io.WriteString(pw, "\x1cn")
	r.ExpectNext("juice: console input goes to vm jeos COM1 (ttyS0)")
	shellCommand(t, r, in)
	shellExpect(t, r, in, "poweroff", "juice: vm jeos: exited with status 0: guest powered off (ACPI S5)", 90*time.Second)
	r.ExpectExit(0)
}
