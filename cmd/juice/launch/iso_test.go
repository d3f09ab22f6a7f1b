package launch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGRUBConfig(t *testing.T) {
	got := GRUBConfig("/boot/juice.elf", "  juice.mode=selftest   juice.panic=poweroff ")
	want := grubConfigHeader + `serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "juice" {
	multiboot2 /boot/juice.elf juice.mode=selftest juice.panic=poweroff
	# module2 /boot/bundle.cpio
	boot
}
`
	if got != want {
		t.Fatalf("GRUBConfig =\n%s\nwant\n%s", got, want)
	}
	if !strings.HasPrefix(got, "# ") || strings.Count(grubConfigHeader, "\n") != strings.Count(grubConfigHeader, "\n# ")+1 {
		t.Errorf("the header is not all comment lines:\n%s", grubConfigHeader)
	}
	if got := GRUBConfig("/boot/juice.elf", ""); !strings.Contains(got, "\tmultiboot2 /boot/juice.elf\n") {
		t.Errorf("empty args: %s", got)
	}
	got = GRUBConfig("/boot/juice.elf", "a", "/boot/bundle.cpio", "/boot/x y")
	if !strings.Contains(got, "\tmultiboot2 /boot/juice.elf a\n\tmodule2 /boot/bundle.cpio\n\tmodule2 '/boot/x y'\n\tboot\n") || strings.Contains(got, "# module2") {
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

// TestBuildISO parses the ISO back: its files, the El Torito entries for
// BIOS and UEFI, and the hybrid MBR and GPT that make it boot as a disk.
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
	path := filepath.Join(dir, "out.iso")
	if err := BuildISO(context.Background(), kernel, "juice.mode=selftest $x", bundleFile, path); err != nil {
		t.Fatal(err)
	}
	iso, err := openISO(path)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		GRUBConfigPath: GRUBConfig(ISOKernelPath, "juice.mode=selftest $x", ISOBundlePath),
		ISOKernelPath:  string(content),
		ISOBundlePath:  string(bundleData),
	}
	for p, want := range files {
		if got, err := iso.readFile(p); err != nil || string(got) != want {
			t.Errorf("%s in the ISO = %q, %v; want %q", p, got, err, want)
		}
	}
	if cfg, _ := iso.readFile(GRUBConfigPath); !strings.Contains(string(cfg), "\tmodule2 "+ISOBundlePath+"\n") {
		t.Errorf("grub.cfg does not load the bundle:\n%s", cfg)
	}

	// El Torito: a BIOS entry loading GRUB's eltorito.img and a UEFI
	// entry for the FAT image holding BOOTX64.EFI.
	entries, err := iso.elTorito()
	if err != nil {
		t.Fatal(err)
	}
	biosImg, err := iso.lookup("/boot/grub/i386-pc/eltorito.img")
	if err != nil {
		t.Fatal(err)
	}
	efiImg, err := iso.lookup("/efi.img")
	if err != nil {
		t.Fatal(err)
	}
	var bios, uefi bool
	for _, e := range entries {
		switch {
		case e.platform == 0 && e.lba == biosImg.extent:
			bios = true
		case e.platform == 0xef && e.lba == efiImg.extent:
			uefi = true
		}
	}
	if !bios || !uefi {
		t.Errorf("El Torito entries %+v: BIOS entry for eltorito.img (block %d) %v, UEFI entry for efi.img (block %d) %v",
			entries, biosImg.extent, bios, efiImg.extent, uefi)
	}
	esp, err := iso.block(efiImg.extent, efiImg.size)
	if err != nil {
		t.Fatal(err)
	}
	checkESP(t, esp)

	// As a disk: boot code and a partition table in the MBR, a GPT whose
	// EFI system partition is that same FAT image.
	mbr, err := readMBR(iso.data)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(iso.data[:0x1b8], make([]byte, 0x1b8)) {
		t.Error("the MBR has no boot code")
	}
	if mbr[0].typ == 0 {
		t.Errorf("the MBR has no partition: %+v", mbr)
	}
	gpt, err := readGPT(iso.data)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range gpt {
		if p.typeGUID == espGUID && p.first*512 == uint64(efiImg.extent)*isoBlock {
			found = true
		}
	}
	if !found {
		t.Errorf("no EFI system partition at efi.img (block %d) in the GPT %+v", efiImg.extent, gpt)
	}
}

// checkESP checks that esp is a FAT file system holding a UEFI boot
// loader for x86-64 at the removable-media path.
func checkESP(t *testing.T, esp []byte) {
	t.Helper()
	fs, err := openFAT(esp)
	if err != nil {
		t.Fatalf("EFI system partition: %v", err)
	}
	efi, _, err := fs.readFile(USBEFIPath)
	if err != nil {
		t.Fatalf("EFI system partition: %v", err)
	}
	if !isPE64(efi) {
		t.Errorf("%s is not an x86-64 PE image", USBEFIPath)
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
