package launch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ISOKernelPath is where every boot medium (the ISO, the USB image, the
// PXE tree) holds juice's image.
const ISOKernelPath = "/boot/juice.elf"

// ISOBundlePath is where every boot medium holds the bundle of VMs,
// juice's first boot module.
const ISOBundlePath = "/boot/bundle.cpio"

// GRUBConfigPath is where every boot medium holds GRUB's configuration,
// with juice's command line on its multiboot2 line.
const GRUBConfigPath = "/boot/grub/grub.cfg"

// GRUBEntry is the title of the GRUB menu entry that boots juice: GRUB
// prints "Booting `juice'" on the serial console when it starts it.
const GRUBEntry = "juice"

// grubConfigHeader opens every grub.cfg GRUBConfig writes: it tells a
// user of the medium what to edit.
const grubConfigHeader = `# juice's boot configuration, written by ` + "`juice image`" + `.
# juice's command line is the rest of the multiboot2 line; the VMs are the
# bundle loaded by module2 (a newc cpio with manifest.json, see
# ` + "`juice run --bundle`" + `). Edit this file or replace the bundle: juice
# itself needs no rebuilding.
`

// GRUBConfig returns the grub.cfg of juice's boot media: serial console
// on COM1 at 115200 baud, no menu delay, and one entry that loads kernel
// (a path on the medium) by multiboot2 with the command line args, then
// each of modules (paths on the medium) with module2, in order; without
// modules a commented-out module2 line for ISOBundlePath shows where a
// bundle would go. Words of args that GRUB's script parser would alter
// (quotes, $, \, ;, non-ASCII …) are single-quoted, so GRUB passes every
// word through unchanged; runs of blanks between words become one space.
func GRUBConfig(kernel, args string, modules ...string) string {
	var b strings.Builder
	b.WriteString(grubConfigHeader)
	b.WriteString("serial --unit=0 --speed=115200\n")
	b.WriteString("terminal_input serial console\n")
	b.WriteString("terminal_output serial console\n")
	b.WriteString("set timeout=0\n")
	b.WriteString("set default=0\n")
	b.WriteString("menuentry \"" + GRUBEntry + "\" {\n")
	b.WriteString("\tmultiboot2 " + grubQuote(kernel))
	for _, w := range strings.Fields(args) {
		b.WriteString(" " + grubQuote(w))
	}
	b.WriteString("\n")
	for _, m := range modules {
		b.WriteString("\tmodule2 " + grubQuote(m) + "\n")
	}
	if len(modules) == 0 {
		b.WriteString("\t# module2 " + ISOBundlePath + "\n")
	}
	b.WriteString("\tboot\n}\n")
	return b.String()
}

// grubQuote quotes w for GRUB's script parser when it holds anything but
// plain word characters. Inside single quotes GRUB takes every byte
// literally; a single quote itself is written as '\”.
func grubQuote(w string) string {
	plain := w != ""
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("._-=,:/+@%", c) >= 0) {
			plain = false
			break
		}
	}
	if plain {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// ISOTools are the host programs BuildISO needs.
var ISOTools = []string{"grub-mkrescue", "xorriso", "mformat"}

// MissingISOTools returns those of ISOTools that are not on $PATH.
func MissingISOTools() []string { return missingTools(ISOTools) }

// missingTools returns those of tools that are not on $PATH.
func missingTools(tools []string) []string {
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// stageBoot puts what every boot medium holds under root: kernel as
// ISOKernelPath, a non-empty bundle as ISOBundlePath, and the grub.cfg
// that loads them (GRUBConfigPath) with juice's command line args.
func stageBoot(root, kernel, args, bundle string) error {
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		return err
	}
	if err := copyFile(kernel, filepath.Join(root, filepath.FromSlash(ISOKernelPath))); err != nil {
		return err
	}
	var modules []string
	if bundle != "" {
		if err := copyFile(bundle, filepath.Join(root, filepath.FromSlash(ISOBundlePath))); err != nil {
			return err
		}
		modules = append(modules, ISOBundlePath)
	}
	cfg := GRUBConfig(ISOKernelPath, args, modules...)
	return os.WriteFile(filepath.Join(root, filepath.FromSlash(GRUBConfigPath)), []byte(cfg), 0o644)
}

// BuildISO writes to out a hybrid GRUB ISO that boots kernel by
// multiboot2 with the command line args: as a CD under BIOS (El Torito
// entry 1, GRUB's i386-pc eltorito.img) and UEFI (El Torito entry 2, a
// FAT image with GRUB's x86_64-efi BOOTX64.EFI), and written raw to a
// USB stick or disk under BIOS (GRUB's hybrid boot code in the MBR) and
// UEFI (that FAT image is an EFI system partition in the GPT). A
// non-empty bundle (a host file) goes on the ISO as ISOBundlePath and is
// juice's first boot module. It needs grub-mkrescue with the i386-pc and
// x86_64-efi platforms, xorriso and mtools.
func BuildISO(ctx context.Context, kernel, args, bundle, out string) error {
	if missing := MissingISOTools(); len(missing) > 0 {
		return fmt.Errorf("building the GRUB ISO needs %s (run `make setup`)", strings.Join(missing, ", "))
	}
	root, err := os.MkdirTemp("", "juice-iso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := stageBoot(root, kernel, args, bundle); err != nil {
		return err
	}
	// No locales, fonts or themes: the console is serial. The full module
	// set stays (a trimmed one makes GRUB print "file not found" errors).
	return runTool(ctx, "grub-mkrescue", "-o", out, "--locales=", "--fonts=", "--themes=", root)
}

// runTool runs a host program and returns its output in the error when
// it fails.
func runTool(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, strings.TrimSpace(log.String()))
	}
	return nil
}

// copyFile copies src to dst (created or truncated).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	outF, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(outF, in); err != nil {
		outF.Close()
		return err
	}
	return outF.Close()
}

// prepareMedia builds in dir what booting cfg needs: the firmware's
// variable store for a UEFI boot, and the boot medium (ISO, USB image or
// PXE tree).
func prepareMedia(ctx context.Context, cfg Config, dir string) (Media, error) {
	var m Media
	if cfg.Boot.UEFI() {
		fw, err := FindFirmware()
		if err != nil {
			return m, err
		}
		m.Firmware = fw
		if fw.Vars != "" {
			m.Vars = filepath.Join(dir, "efivars.fd")
			if err := copyFile(fw.Vars, m.Vars); err != nil {
				return m, err
			}
		}
	}
	switch cfg.Boot.Medium() {
	case MediumCD, MediumISOStick:
		m.ISO = filepath.Join(dir, "juice.iso")
		return m, BuildISO(ctx, cfg.Kernel, cfg.Append, cfg.Initrd, m.ISO)
	case MediumUSB:
		m.Disk = filepath.Join(dir, "juice-usb.img")
		return m, BuildUSB(ctx, cfg.Kernel, cfg.Append, cfg.Initrd, m.Disk, 0)
	case MediumPXE, MediumIPXE:
		m.TFTP = filepath.Join(dir, "tftp")
		if err := os.RemoveAll(m.TFTP); err != nil {
			return m, err
		}
		_, err := BuildPXE(ctx, cfg.Kernel, cfg.Append, cfg.Initrd, m.TFTP)
		return m, err
	}
	return m, nil
}
