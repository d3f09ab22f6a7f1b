package launch

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// requirePXETools skips (or fails, under JUICE_REQUIRE_EMULATORS=1)
// without what BuildPXE needs.
func requirePXETools(t *testing.T) {
	t.Helper()
	if missing := MissingPXETools(); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
}

// TestBuildPXE reads the PXE tree back: GRUB's two network images, the
// grub.cfg, juice and the bundle where grub.cfg loads them from, and an
// iPXE script whose chain targets are in the tree. A second build into
// the same directory without a bundle removes the old one.
func TestBuildPXE(t *testing.T) {
	requirePXETools(t)
	dir := filepath.Join(t.TempDir(), "tftp")
	kernel := writeFile(t, "juice.elf", "not really a kernel\n")
	bundle := writeFile(t, "b.cpio", "070701 a bundle\n")
	args := "juice.mode=selftest it's"
	files, err := BuildPXE(context.Background(), kernel, args, bundle, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{PXEBIOSImage, PXEEFIImage, PXEScript, "boot/grub/grub.cfg", "boot/juice.elf", "boot/bundle.cpio"} {
		if !slices.Contains(files, f) {
			t.Errorf("BuildPXE reported %q, not %s", files, f)
		}
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// grub.cfg and what it loads, at the paths it names (GRUB's root is
	// the TFTP server, so the tree's root is /).
	cfg := read(strings.TrimPrefix(GRUBConfigPath, "/"))
	if cfg != GRUBConfig(ISOKernelPath, args, ISOBundlePath) {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	loads := regexp.MustCompile(`(?m)^\t(?:multiboot2|module2) (/\S+)`).FindAllStringSubmatch(cfg, -1)
	if len(loads) != 2 {
		t.Fatalf("grub.cfg loads %q", loads)
	}
	if got := read(loads[0][1]); got != "not really a kernel\n" {
		t.Errorf("%s = %q", loads[0][1], got)
	}
	if got := read(loads[1][1]); got != "070701 a bundle\n" {
		t.Errorf("%s = %q", loads[1][1], got)
	}

	// GRUB's BIOS network image is a PXE NBP: it must fit below the
	// 640 KiB line from 0x7c00. The UEFI one is an x86-64 EFI
	// application. Each platform's modules are next to it.
	if n := len(read(PXEBIOSImage)); n == 0 || n > 0xa0000-0x7c00 {
		t.Errorf("%s is %d bytes", PXEBIOSImage, n)
	}
	if !isPE64([]byte(read(PXEEFIImage))) {
		t.Errorf("%s is not an x86-64 PE image", PXEEFIImage)
	}
	for _, p := range []string{"boot/grub/i386-pc/multiboot2.mod", "boot/grub/x86_64-efi/multiboot2.mod",
		"boot/grub/i386-pc/tftp.mod", "boot/grub/x86_64-efi/normal.mod"} {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, d := range []string{"locale", "fonts"} {
		if _, err := os.Stat(filepath.Join(dir, "boot", "grub", d)); err == nil {
			t.Errorf("empty directory boot/grub/%s left behind", d)
		}
	}

	// The iPXE script chain-loads GRUB for each platform.
	script := read(PXEScript)
	if script != PXEScriptText || !strings.HasPrefix(script, "#!ipxe\n") {
		t.Errorf("%s:\n%s", PXEScript, script)
	}
	chains := regexp.MustCompile(`(?m)^chain (\S+)`).FindAllStringSubmatch(script, -1)
	if len(chains) != 2 || chains[0][1] != PXEBIOSImage || chains[1][1] != PXEEFIImage {
		t.Errorf("the script chains %q", chains)
	}
	for _, c := range chains {
		if _, err := os.Stat(filepath.Join(dir, c[1])); err != nil {
			t.Errorf("the script's target: %v", err)
		}
	}

	// Rebuilt without a bundle: none is left, and grub.cfg loads none.
	if _, err := BuildPXE(context.Background(), kernel, "", "", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "boot", "bundle.cpio")); err == nil {
		t.Error("the old bundle is still in the tree")
	}
	if cfg := read("boot/grub/grub.cfg"); strings.Contains(cfg, "\tmodule2 ") {
		t.Errorf("grub.cfg without a bundle:\n%s", cfg)
	}
}

func TestBuildPXEErrors(t *testing.T) {
	requirePXETools(t)
	dir := t.TempDir()
	kernel := writeFile(t, "k", "k")
	if _, err := BuildPXE(context.Background(), filepath.Join(dir, "missing"), "", "", filepath.Join(dir, "a")); err == nil {
		t.Error("BuildPXE accepted a missing kernel")
	}
	if _, err := BuildPXE(context.Background(), kernel, "", filepath.Join(dir, "missing.cpio"), filepath.Join(dir, "b")); err == nil {
		t.Error("BuildPXE accepted a missing bundle")
	}
	file := writeFile(t, "f", "x")
	if _, err := BuildPXE(context.Background(), kernel, "", "", file); err == nil {
		t.Error("BuildPXE accepted a file as its directory")
	}
}

// TestPXEBootFiles: the DHCP boot files are in the tree's layout.
func TestPXEBootFiles(t *testing.T) {
	if PXEBootFile(BootPXEBIOS) != PXEBIOSImage || PXEBootFile(BootPXEEFI) != PXEEFIImage ||
		PXEBootFile(BootIPXEBIOS) != PXEScript || PXEBootFile(BootIPXEEFI) != PXEScript ||
		PXEBootFile(BootISOBIOS) != "" || PXEBootFile(BootPVH) != "" {
		t.Error("wrong boot files")
	}
	// The script's chain targets never need quoting for iPXE.
	for _, p := range []string{PXEBIOSImage, PXEEFIImage} {
		if strings.ContainsAny(p, " \t$#") {
			t.Errorf("%q", p)
		}
	}
}
