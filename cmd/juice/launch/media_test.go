package launch

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch/testkernel"
)

// requireMediaTools skips (or fails, under JUICE_REQUIRE_EMULATORS=1) a
// test of boot path b when its medium's tools or OVMF are missing.
func requireMediaTools(t *testing.T, b Boot) {
	t.Helper()
	missing := b.MissingTools()
	if b.UEFI() {
		if _, err := FindFirmware(); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
		t.Fatalf("%v missing and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
	}
	t.Skipf("%v missing", missing)
}

func TestBootPathTable(t *testing.T) {
	want := map[Boot]struct {
		m    Medium
		uefi bool
		file string
	}{
		BootPVH:          {MediumKernel, false, ""},
		BootGRUBBIOS:     {MediumCD, false, ""},
		BootGRUBEFI:      {MediumCD, true, ""},
		BootISOBIOS:      {MediumCD, false, ""},
		BootISOEFI:       {MediumCD, true, ""},
		BootISOStickBIOS: {MediumISOStick, false, ""},
		BootISOStickEFI:  {MediumISOStick, true, ""},
		BootUSBBIOS:      {MediumUSB, false, ""},
		BootUSBEFI:       {MediumUSB, true, ""},
		BootPXEBIOS:      {MediumPXE, false, "boot/grub/i386-pc/core.0"},
		BootPXEEFI:       {MediumPXE, true, "boot/grub/x86_64-efi/core.efi"},
		BootIPXEBIOS:     {MediumIPXE, false, "juice.ipxe"},
		BootIPXEEFI:      {MediumIPXE, true, "juice.ipxe"},
	}
	paths := BootPaths()
	if len(paths) != len(want) {
		t.Errorf("BootPaths() = %v, want %d paths", paths, len(want))
	}
	for _, b := range paths {
		w, ok := want[b]
		if !ok {
			t.Errorf("unexpected boot path %q", b)
			continue
		}
		if p, err := ParseBoot(string(b)); err != nil || p != b {
			t.Errorf("ParseBoot(%q) = %q, %v", b, p, err)
		}
		if b.Medium() != w.m || b.UEFI() != w.uefi || PXEBootFile(b) != w.file {
			t.Errorf("%s: medium %q uefi %v boot file %q, want %q %v %q", b, b.Medium(), b.UEFI(), PXEBootFile(b), w.m, w.uefi, w.file)
		}
		if (b.Medium() == MediumKernel) != (b.Tools() == nil) {
			t.Errorf("%s: tools %v", b, b.Tools())
		}
	}
	for _, bad := range []string{"pxe", "usb", "", "ISO-BIOS", "iso-bios "} {
		if _, err := ParseBoot(bad); err == nil {
			t.Errorf("ParseBoot(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "pxe-efi") {
			t.Errorf("ParseBoot(%q): %v does not list the paths", bad, err)
		}
	}
	if Boot("nope").Medium() != "" || Boot("nope").UEFI() {
		t.Error("an unknown boot path has a medium")
	}
}

func TestQEMUArgsMedia(t *testing.T) {
	fw := Firmware{Code: "/fw/CODE.fd", Vars: "/fw/VARS.fd"}
	cases := []struct {
		b     Boot
		media Media
		want  []string // consecutive arguments
	}{
		{BootISOBIOS, Media{ISO: "/w/j.iso"}, []string{"-cdrom", "/w/j.iso", "-boot", "d"}},
		{BootISOEFI, Media{ISO: "/w/j.iso", Firmware: fw, Vars: "/w/v.fd"}, []string{"-cdrom", "/w/j.iso"}},
		{BootISOStickBIOS, Media{ISO: "/w,x/j.iso"}, []string{"-drive", "if=none,id=stick,format=raw,file=/w,,x/j.iso",
			"-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"}},
		{BootUSBEFI, Media{Disk: "/w/u.img", Firmware: fw, Vars: "/w/v.fd"}, []string{"-drive", "if=none,id=stick,format=raw,file=/w/u.img"}},
		{BootPXEBIOS, Media{TFTP: "/w/t"}, []string{"-netdev", "user,id=pxe,tftp=/w/t,bootfile=boot/grub/i386-pc/core.0",
			"-device", "virtio-net-pci,netdev=pxe,bootindex=0"}},
		{BootPXEEFI, Media{TFTP: "/w/t", Firmware: fw, Vars: "/w/v.fd"}, []string{"-netdev", "user,id=pxe,tftp=/w/t,bootfile=boot/grub/x86_64-efi/core.efi"}},
		{BootIPXEEFI, Media{TFTP: "/w/t", Firmware: fw, Vars: "/w/v.fd"}, []string{"-netdev", "user,id=pxe,tftp=/w/t,bootfile=juice.ipxe"}},
	}
	for _, c := range cases {
		args, err := QEMUArgs(Config{Kernel: "k.elf", Boot: c.b, Initrd: "b.cpio", Append: "x"}, c.media)
		if err != nil {
			t.Errorf("%s: %v", c.b, err)
			continue
		}
		line := strings.Join(args, "\x00")
		if !strings.Contains(line, strings.Join(c.want, "\x00")) {
			t.Errorf("%s: args %q lack %q", c.b, args, c.want)
		}
		if slices.Contains(args, "-kernel") || slices.Contains(args, "-initrd") || slices.Contains(args, "-append") {
			t.Errorf("%s: PVH options in %q", c.b, args)
		}
		if hasFW := strings.Contains(line, "if=pflash"); hasFW != c.b.UEFI() {
			t.Errorf("%s: firmware options %v in %q", c.b, hasFW, args)
		}
		// The machine has no network card unless it boots from one.
		if i := slices.Index(args, "-nic"); i < 0 || args[i+1] != "none" {
			t.Errorf("%s: no -nic none in %q", c.b, args)
		}
	}
	// Each medium needs its file.
	for _, b := range []Boot{BootISOStickBIOS, BootUSBBIOS, BootPXEBIOS, BootIPXEBIOS} {
		if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: b}, Media{}); err == nil {
			t.Errorf("%s without its medium accepted", b)
		}
	}
	if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootUSBEFI}, Media{Disk: "u.img"}); err == nil {
		t.Error("usb-efi without firmware accepted")
	}
}

// TestMediaBootPaths boots the test kernel from every boot medium under
// SeaBIOS and OVMF: its output and status come back and the command line
// arrives as GRUB passes it.
func TestMediaBootPaths(t *testing.T) {
	requireQEMU(t)
	cmdline := `juice.mode=selftest it's $HOME`
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] hello\n", ShowCmdline: true, Status: 5})
	bundle := writeFile(t, "bundle.cpio", "070701 not really a bundle\n")
	for _, b := range []Boot{BootISOStickBIOS, BootISOStickEFI, BootUSBBIOS, BootUSBEFI,
		BootPXEBIOS, BootPXEEFI, BootIPXEBIOS, BootIPXEEFI} {
		t.Run(string(b), func(t *testing.T) {
			requireMediaTools(t, b)
			t.Parallel()
			m := boot(t, Config{Kernel: kernel, Boot: b, Mem: "64M", Append: cmdline, Initrd: bundle, Timeout: 3 * time.Minute})
			r := m.Wait()
			if r.Outcome != DebugExit || r.Status != 5 {
				t.Errorf("result %+v, want debug-exit status 5", r)
			}
			texts := m.Console.Texts()
			if !slices.Contains(texts, "hello") {
				t.Errorf("no hello line in %q", texts)
			}
			if want := `cmdline: [juice.mode=selftest it\'s $HOME]`; !slices.Contains(texts, want) {
				t.Errorf("command line not passed through: want %q in %q", want, texts)
			}
		})
	}
}

// writeFile writes a file with content into a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
