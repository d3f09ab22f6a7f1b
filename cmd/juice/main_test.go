package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
	"juice/cmd/juice/launch/testkernel"
	"juice/vmm/bundle"
)

// juice runs Main and returns its status and output.
func juice(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	rc := Main(args, nil, &out, &errOut)
	return rc, out.String(), errOut.String()
}

func TestUsageAndStubs(t *testing.T) {
	cases := []struct {
		args   []string
		rc     int
		output string // expected in stdout+stderr
	}{
		{nil, 2, "Usage:"},
		{[]string{"help"}, 0, "juice run"},
		{[]string{"--help"}, 0, "juice bench"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"jeos", "stray"}, 2, "unexpected argument"},
		{[]string{"jeos", "--kernel-package"}, 2, "flag needs an argument"},
		{[]string{"jeos", "-h"}, 0, "-kernel-package"},
		{[]string{"jeos", "--out", "/dev/null/jeos"}, 1, "juice jeos: mkdir /dev/null"},
		{[]string{"image"}, 2, "want iso, usb or pxe"},
		{[]string{"image", "usb"}, 2, "-o FILE is required"},
		{[]string{"image", "pxe"}, 2, "-o DIR is required"},
		{[]string{"image", "usb", "-o", "u.img", "--size", "lots"}, 2, "bad size"},
		{[]string{"image", "iso", "-o", "x.iso", "--size", "1G"}, 2, "flag provided but not defined"},
		{[]string{"run", "--cpu", "intel", "--boot", "usb-bios"}, 2, "boots only --boot grub-bios"},
		{[]string{"image", "floppy"}, 2, "unknown image"},
		{[]string{"image", "iso"}, 2, "-o FILE is required"},
		{[]string{"image", "iso", "-o", "x.iso", "stray"}, 2, "unexpected argument"},
		{[]string{"run", "--cpu", "intel", "--boot", "pvh"}, 2, "boots only --boot grub-bios, not pvh"},
		{[]string{"run", "--cpu", "intel", "--boot", "grub-efi"}, 2, "boots only --boot grub-bios"},
		{[]string{"run", "--cpu", "intel", "--juice", "/no/such/kernel.elf"}, 2, "kernel image"},
		{[]string{"run", "--cpu", "arm"}, 2, "unknown --cpu"},
		{[]string{"run", "--boot", "pxe"}, 2, "unknown boot path"},
		{[]string{"run", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"run", "--timeout", "soon"}, 2, "invalid value"},
		{[]string{"run", "--timeout", "-5"}, 2, "negative"},
		{[]string{"run", "--mem", "lots", "--juice", os.Args[0]}, 2, "bad memory size"},
		{[]string{"run", "--juice", "/no/such/kernel.elf"}, 2, "kernel image"},
		{[]string{"run", "-h"}, 0, "-selftest"},
		{[]string{"run", "--append", "x"}, 2, "--append needs --kernel (juice's own command line is --juice-append)"},
		{[]string{"run", "--initrd", "m"}, 2, "--initrd needs --kernel"},
		{[]string{"run", "--vm-mem", "16M"}, 2, "--vm-mem needs --kernel"},
		{[]string{"run", "--kernel", "k", "--bundle", "m.json"}, 2, "exclude each other"},
		{[]string{"run", "--bundle", "m.json", "--name", "x"}, 2, "--name describes the --kernel VM"},
		{[]string{"run", "--kernel", "/no/such/guest.elf", "--juice", os.Args[0]}, 2, "guest.elf"},
		{[]string{"run", "--kernel", os.Args[0], "--vm-mem", "lots", "--juice", os.Args[0]}, 2, "lots"},
		{[]string{"run", "--bundle", "/no/such/manifest.json", "--juice", os.Args[0]}, 2, "manifest.json"},
		{[]string{"image", "iso", "-o", "x.iso", "--append", "x"}, 2, "--append needs --kernel"},
		{[]string{"bench", "--runs", "0"}, 2, "at least 1"},
		{[]string{"bench", "--juice", "/no/such/kernel.elf"}, 1, "no such file"},
	}
	for _, c := range cases {
		rc, out, errOut := juice(c.args...)
		if rc != c.rc || !strings.Contains(out+errOut, c.output) {
			t.Errorf("juice %q = %d, %q / %q; want %d and %q", c.args, rc, out, errOut, c.rc, c.output)
		}
	}
}

func TestSecondsFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "90": 90 * time.Second, "1.5": 1500 * time.Millisecond, "2m": 2 * time.Minute, "250ms": 250 * time.Millisecond} {
		var s seconds
		if err := s.Set(in); err != nil || time.Duration(s) != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, time.Duration(s), err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "-1s"} {
		var s seconds
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

// needQEMU skips without QEMU, or fails with JUICE_REQUIRE_EMULATORS=1.
func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(launch.DefaultQEMU); err != nil {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// testKernel writes a generated kernel (see package testkernel).
func testKernel(t *testing.T, p testkernel.Program) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.elf")
	if err := testkernel.Write(path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// `juice run` passes the guest's status through and maps the other ends.
func TestRunExitStatus(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	status7 := testKernel(t, testkernel.Program{Output: "[    0.000001] juice: power off, status 7\n", ShowCmdline: true, Status: 7})
	rc, out, errOut := juice("run", "--juice", status7, "--mem", "32M", "--juice-append", "a b", "--selftest", "--timeout", "120")
	if rc != 7 {
		t.Errorf("rc = %d, want 7\nstdout: %s\nstderr: %s", rc, out, errOut)
	}
	if !strings.Contains(out, "cmdline: [a b "+launch.SelftestArgs+"]") {
		t.Errorf("--juice-append/--selftest not passed: %q", out)
	}
	if !strings.Contains(errOut, "status 7") {
		t.Errorf("no result note on stderr: %q", errOut)
	}

	// With a guest: the bundle goes to QEMU as -initrd; the test kernel
	// ignores it, and the status still comes through.
	guest := filepath.Join(t.TempDir(), "guest.elf")
	os.WriteFile(guest, []byte("not a kernel"), 0o644)
	rc, out, errOut = juice("run", "--juice", status7, "--mem", "32M", "--kernel", guest, "--append", "g", "--initrd", guest+" x", "--timeout", "120")
	if rc != 7 {
		t.Errorf("with --kernel: rc = %d, want 7\nstdout: %s\nstderr: %s", rc, out, errOut)
	}

	reset := testKernel(t, testkernel.Program{Output: "x\n", Action: testkernel.TripleFault})
	rc, _, errOut = juice("run", "--juice", reset, "--mem", "32M", "--timeout", "120")
	if rc != launch.ExitReset || !strings.Contains(errOut, "juice reset or triple-faulted") {
		t.Errorf("triple fault: rc = %d, stderr %q", rc, errOut)
	}

	halt := testKernel(t, testkernel.Program{Output: "halting\n", Action: testkernel.Halt})
	rc, out, errOut = juice("run", "--juice", halt, "--mem", "32M", "--timeout", "2")
	if rc != launch.ExitTimeout || !strings.Contains(errOut, "timed out") || !strings.Contains(out, "halting\n") {
		t.Errorf("timeout: rc = %d, stdout %q, stderr %q", rc, out, errOut)
	}
}

// `juice run --cpu intel` runs Bochs: the GRUB ISO carries juice's command
// line and the bundle, and the status of the power-off line comes back
// although Bochs exits with 1.
func TestRunIntel(t *testing.T) {
	if missing := launch.MissingBochs(""); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	t.Parallel()
	k := testKernel(t, testkernel.Program{Output: "[    0.000001] juice: power off, status 7\n", ShowCmdline: true, Action: testkernel.Shutdown})
	guest := filepath.Join(t.TempDir(), "guest.elf")
	os.WriteFile(guest, []byte("not a kernel"), 0o644)
	rc, out, errOut := juice("run", "--cpu", "intel", "--juice", k, "--mem", "32M", "--juice-append", "a b", "--selftest",
		"--kernel", guest, "--timeout", "120")
	if rc != 7 {
		t.Errorf("rc = %d, want 7\nstdout: %s\nstderr: %s", rc, out, errOut)
	}
	if !strings.Contains(out, "Booting `juice'") || !strings.Contains(out, "cmdline: [a b "+launch.SelftestArgs+"]") {
		t.Errorf("console or command line missing: %q", out)
	}
	if !strings.Contains(errOut, "juice powered off with status 7") || strings.Contains(errOut, "i[PLUGIN]") {
		t.Errorf("stderr %q", errOut)
	}
}

// The guest flags build the bundle they describe.
func TestGuestFlags(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "My.Guest.elf")
	mod := filepath.Join(dir, "mod.bin")
	os.WriteFile(kernel, []byte("KERNEL"), 0o644)
	os.WriteFile(mod, []byte("MOD"), 0o644)
	fs := newFlagSet("run", io.Discard)
	g := addGuestFlags(fs)
	if err := fs.Parse([]string{"--kernel", kernel, "--append", "a b", "--initrd", mod + " x=1", "--initrd", mod,
		"--vm-mem", "16M", "--vm-cpus", "2"}); err != nil {
		t.Fatal(err)
	}
	if err := g.check(fs); err != nil || !g.any() {
		t.Fatalf("check = %v, any = %v", err, g.any())
	}
	p, err := g.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bu, errs := bundle.Parse(b)
	if len(errs) > 0 || len(bu.VMs) != 1 {
		t.Fatalf("bundle: %v", errs)
	}
	v := bu.VMs[0]
	if v.Name != "my-guest" || string(v.KernelData) != "KERNEL" || v.Cmdline != "a b" || v.MemBytes != 16<<20 || v.VCPUs != 2 ||
		len(v.Modules) != 2 || v.Modules[0].Cmdline != "mod.bin x=1" || v.Modules[1].Cmdline != "mod.bin" || string(v.Modules[1].Data) != "MOD" {
		t.Errorf("VM %+v", v)
	}

	fs = newFlagSet("run", io.Discard)
	g = addGuestFlags(fs)
	fs.Parse(nil)
	if err := g.check(fs); err != nil || g.any() {
		t.Errorf("no guest flags: check = %v, any = %v", err, g.any())
	}
}

func TestImageISO(t *testing.T) {
	if missing := launch.MissingISOTools(); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	t.Parallel()
	kernel := testKernel(t, testkernel.Program{})
	iso := filepath.Join(t.TempDir(), "j.iso")
	rc, out, errOut := juice("image", "iso", "--juice", kernel, "--juice-append", "juice.mode=selftest", "-o", iso)
	if rc != 0 || !strings.Contains(out, "wrote "+iso) {
		t.Fatalf("rc = %d, %q / %q", rc, out, errOut)
	}
	if st, err := os.Stat(iso); err != nil || st.Size() == 0 {
		t.Errorf("no ISO: %v", err)
	}
	rc, _, _ = juice("image", "iso", "--juice", "/no/such/kernel", "-o", iso)
	if rc != 1 {
		t.Errorf("missing kernel: rc = %d", rc)
	}
	// With a guest, the ISO carries the bundle.
	rc, out, errOut = juice("image", "iso", "--juice", kernel, "--kernel", kernel, "--name", "g", "-o", iso)
	if rc != 0 || !strings.Contains(out, "+ "+launch.ISOBundlePath) {
		t.Errorf("with a guest: rc = %d, %q / %q", rc, out, errOut)
	}
}

func TestBench(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	good := testKernel(t, testkernel.Program{Output: "[    0.000001] boot: entry to main 1.500 ms\n" +
		"[    0.000002] selftest: done in 9 ms, 11 passed, 0 failed\n" +
		"[    0.000003] mem: footprint 100 KiB\n" +
		"[    0.000004] juice: power off, status 0\n"})
	rc, out, errOut := juice("bench", "--juice", good, "--runs", "2")
	if rc != 0 {
		t.Fatalf("rc = %d\n%s\n%s", rc, out, errOut)
	}
	for _, want := range []string{"entry to Go main:", "1.500 ms", "entry to end of self-test:", "9.000 ms",
		"memory footprint after boot:", "100.000 KiB", "kernel image size: 4096 bytes", "run 2/2"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}

	// A run without the figures, or with a bad status, fails the bench.
	bad := testKernel(t, testkernel.Program{Output: "[    0.000001] boot: entry to main 1.500 ms\n", Status: 1})
	rc, out, errOut = juice("bench", "--juice", bad, "--runs", "1")
	if rc != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(errOut, "entry to main 1.500 ms") {
		t.Errorf("failing bench: rc = %d\n%s\n%s", rc, out, errOut)
	}
}
