package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGRUBConfig(t *testing.T) {
	got := GRUBConfig("/boot/juice.elf", "  juice.mode=selftest   juice.panic=poweroff ")
	want := `serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "juice" {
	multiboot2 /boot/juice.elf juice.mode=selftest juice.panic=poweroff
	boot
}
`
	if got != want {
		t.Fatalf("GRUBConfig =\n%s\nwant\n%s", got, want)
	}
	if got := GRUBConfig("/boot/juice.elf", ""); !strings.Contains(got, "\tmultiboot2 /boot/juice.elf\n") {
		t.Errorf("empty args: %s", got)
	}
	got = GRUBConfig("/boot/juice.elf", "a", "/boot/bundle.cpio", "/boot/x y")
	if !strings.Contains(got, "\tmultiboot2 /boot/juice.elf a\n\tmodule2 /boot/bundle.cpio\n\tmodule2 '/boot/x y'\n\tboot\n") {
		t.Errorf("modules: %s", got)
	}
}

func TestGRUBQuote(t *testing.T) {
	cases := map[string]string{
		"juice.mode=selftest": "juice.mode=selftest",
		"a,b:c/d+e@f%g-h_i":   "a,b:c/d+e@f%g-h_i",
		"$HOME":               "'$HOME'",
		"it's":                `'it'\''s'`,
		`a\b`:                 `'a\b'`,
		";x":                  "';x'",
		"é":                   "'é'",
		"\xff":                "'\xff'",
		"{y}":                 "'{y}'",
		"":                    "''",
	}
	for in, want := range cases {
		if got := grubQuote(in); got != want {
			t.Errorf("grubQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildISO(t *testing.T) {
	requireISOTools(t)
	dir := t.TempDir()
	kernel := filepath.Join(dir, "fake.elf")
	content := []byte("not really a kernel\n")
	if err := os.WriteFile(kernel, content, 0o644); err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(dir, "b.cpio")
	bundleData := []byte("070701 a bundle\n")
	if err := os.WriteFile(bundleFile, bundleData, 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "out.iso")
	if err := BuildISO(context.Background(), kernel, "juice.mode=selftest $x", bundleFile, iso); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(iso)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < 1<<20 {
		t.Errorf("ISO only %d bytes", st.Size())
	}
	// Read the files back with xorriso.
	out := filepath.Join(dir, "x")
	cmd := exec.Command("xorriso", "-osirrox", "on", "-indev", iso,
		"-extract", "/boot/grub/grub.cfg", filepath.Join(out, "grub.cfg"),
		"-extract", ISOKernelPath, filepath.Join(out, "juice.elf"),
		"-extract", ISOBundlePath, filepath.Join(out, "bundle.cpio"),
		"-extract", "/efi.img", filepath.Join(out, "efi.img"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	cfg, err := os.ReadFile(filepath.Join(out, "grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg) != GRUBConfig(ISOKernelPath, "juice.mode=selftest $x", ISOBundlePath) ||
		!strings.Contains(string(cfg), "\tmodule2 "+ISOBundlePath+"\n") {
		t.Errorf("grub.cfg in the ISO:\n%s", cfg)
	}
	if b, err := os.ReadFile(filepath.Join(out, "bundle.cpio")); err != nil || string(b) != string(bundleData) {
		t.Errorf("bundle in the ISO = %q, %v", b, err)
	}
	k, err := os.ReadFile(filepath.Join(out, "juice.elf"))
	if err != nil || string(k) != string(content) {
		t.Errorf("kernel in the ISO = %q, %v", k, err)
	}
	// The UEFI boot image is there (the BIOS side is checked by booting,
	// in TestBootPaths).
	if st, err := os.Stat(filepath.Join(out, "efi.img")); err != nil || st.Size() == 0 {
		t.Errorf("no EFI boot image: %v", err)
	}
}

func TestBuildISOErrors(t *testing.T) {
	requireISOTools(t)
	dir := t.TempDir()
	if err := BuildISO(context.Background(), filepath.Join(dir, "missing"), "", "", filepath.Join(dir, "o.iso")); err == nil {
		t.Error("BuildISO accepted a missing kernel")
	}
	kernel := filepath.Join(dir, "k")
	os.WriteFile(kernel, []byte("k"), 0o644)
	if err := BuildISO(context.Background(), kernel, "", "", filepath.Join(dir, "no", "such", "dir", "o.iso")); err == nil {
		t.Error("BuildISO accepted an unwritable output path")
	}
	if err := BuildISO(context.Background(), kernel, "", filepath.Join(dir, "missing.cpio"), filepath.Join(dir, "o.iso")); err == nil {
		t.Error("BuildISO accepted a missing bundle")
	}
}

func TestFindFirmware(t *testing.T) {
	fw, err := FindFirmware()
	if err != nil {
		if !errors.Is(err, ErrNoFirmware) {
			t.Fatal(err)
		}
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if !isFile(fw.Code) || (fw.Vars != "" && !isFile(fw.Vars)) {
		t.Errorf("FindFirmware = %+v: files missing", fw)
	}
}
