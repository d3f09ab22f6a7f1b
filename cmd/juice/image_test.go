package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"juice/cmd/juice/launch"
	"juice/cmd/juice/launch/testkernel"
)

// needTools skips (or fails, under JUICE_REQUIRE_EMULATORS=1) when
// missing is not empty.
func needTools(t *testing.T, missing []string) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
		t.Fatal(missing)
	}
	t.Skip(missing)
}

// TestImageUSB: `juice image usb` writes a disk image of the size asked
// for, whose FAT partition holds the grub.cfg with juice's command line
// and the bundle of the guest given; it says how to edit them.
func TestImageUSB(t *testing.T) {
	needTools(t, launch.MissingUSBTools())
	t.Parallel()
	kernel := testKernel(t, testkernel.Program{})
	img := filepath.Join(t.TempDir(), "j.img")
	rc, out, errOut := juice("image", "usb", "--juice", kernel, "--juice-append", "juice.mode=selftest",
		"--kernel", kernel, "--name", "g", "--size", "80M", "-o", img)
	if rc != 0 || !strings.Contains(out, "wrote "+img) || !strings.Contains(out, "+ "+launch.ISOBundlePath) ||
		!strings.Contains(out, "mcopy -o -i "+img+"@@1M bundle.cpio ::"+launch.ISOBundlePath) {
		t.Fatalf("rc = %d, %q / %q", rc, out, errOut)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 80<<20 {
		t.Fatalf("image: %v, %v", st, err)
	}
	mtype := func(p string) string {
		t.Helper()
		cmd := exec.Command("mtype", "-i", img+"@@1M", "::"+p)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", p, err)
		}
		return string(b)
	}
	if cfg := mtype(launch.GRUBConfigPath); !strings.Contains(cfg, "\tmultiboot2 "+launch.ISOKernelPath+" juice.mode=selftest\n") ||
		!strings.Contains(cfg, "\tmodule2 "+launch.ISOBundlePath+"\n") {
		t.Errorf("grub.cfg on the stick:\n%s", cfg)
	}
	if b := mtype(launch.ISOBundlePath); !strings.HasPrefix(b, "070701") || !strings.Contains(b, "manifest.json") {
		t.Errorf("the bundle on the stick is not a cpio with a manifest: %.40q", b)
	}
	// Too small a size for the files, and a missing juice, fail.
	if rc, _, errOut := juice("image", "usb", "--juice", kernel, "--size", "1M", "-o", img); rc != 1 || !strings.Contains(errOut, "too small") {
		t.Errorf("--size 1M: rc = %d, %q", rc, errOut)
	}
	if rc, _, _ := juice("image", "usb", "--juice", "/no/such/kernel", "-o", img); rc != 1 {
		t.Errorf("missing kernel: rc = %d", rc)
	}
}

// TestImagePXE: `juice image pxe` writes the TFTP tree and prints the
// DHCP boot files, which are in it.
func TestImagePXE(t *testing.T) {
	needTools(t, launch.MissingPXETools())
	t.Parallel()
	kernel := testKernel(t, testkernel.Program{})
	dir := filepath.Join(t.TempDir(), "tftp")
	rc, out, errOut := juice("image", "pxe", "--juice", kernel, "--juice-append", "a b", "--kernel", kernel, "-o", dir)
	if rc != 0 || !strings.Contains(out, "wrote "+dir) {
		t.Fatalf("rc = %d, %q / %q", rc, out, errOut)
	}
	for _, f := range []string{launch.PXEBIOSImage, launch.PXEEFIImage, launch.PXEScript} {
		if !strings.Contains(out, f) {
			t.Errorf("the output does not name %s:\n%s", f, out)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "boot", "grub", "grub.cfg"))
	if err != nil || !strings.Contains(string(cfg), "multiboot2 "+launch.ISOKernelPath+" a b\n") {
		t.Errorf("grub.cfg: %q, %v", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "boot", "bundle.cpio")); err != nil {
		t.Error(err)
	}
}

func TestParseImageSize(t *testing.T) {
	good := map[string]int64{"512": 512, "64M": 64 << 20, "2G": 2 << 30, "1k": 1024, "100MiB": 100 << 20, "3GB": 3 << 30}
	for in, want := range good {
		if got, err := parseImageSize(in); err != nil || got != want {
			t.Errorf("parseImageSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1M", "0", "lots", "1T", "99999999G", "1.5G"} {
		if got, err := parseImageSize(in); err == nil {
			t.Errorf("parseImageSize(%q) = %d, accepted", in, got)
		}
	}
}

// TestRunUSB: `juice run --boot usb-bios` boots juice from the USB image
// (here a test kernel standing in for juice), status passed through.
func TestRunUSB(t *testing.T) {
	needQEMU(t)
	needTools(t, launch.MissingUSBTools())
	t.Parallel()
	k := testKernel(t, testkernel.Program{Output: "[    0.000001] juice: power off, status 6\n", ShowCmdline: true, Status: 6})
	rc, out, errOut := juice("run", "--boot", "usb-bios", "--juice", k, "--mem", "64M", "--juice-append", "x y", "--timeout", "120")
	if rc != 6 || !strings.Contains(out, "cmdline: [x y]") {
		t.Errorf("rc = %d\n%s\n%s", rc, out, errOut)
	}
}
