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

// ISOKernelPath is where the GRUB ISO holds juice's image.
const ISOKernelPath = "/boot/juice.elf"

// ISOBundlePath is where the GRUB ISO holds the bundle of VMs, juice's
// first boot module.
const ISOBundlePath = "/boot/bundle.cpio"

// GRUBEntry is the title of the GRUB menu entry that boots juice: GRUB
// prints "Booting `juice'" on the serial console when it starts it.
const GRUBEntry = "juice"

// GRUBConfig returns the grub.cfg of juice's ISO: serial console on COM1
// at 115200 baud, no menu delay, and one entry that loads kernel (a path
// inside the ISO) by multiboot2 with the command line args, then each of
// modules (paths inside the ISO) with module2, in order. Words of args
// that GRUB's script parser would alter (quotes, $, \, ;, non-ASCII …) are
// single-quoted, so GRUB passes every word through unchanged; runs of
// blanks between words become one space.
func GRUBConfig(kernel, args string, modules ...string) string {
	var b strings.Builder
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
func MissingISOTools() []string {
	var missing []string
	for _, t := range ISOTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// BuildISO writes to out a GRUB rescue ISO that boots kernel by multiboot2
// with the command line args, under BIOS (El Torito, also as a hybrid
// disk) and UEFI (an EFI system partition image). A non-empty bundle (a
// host file) goes on the ISO as ISOBundlePath and is juice's first boot
// module. It needs grub-mkrescue with the i386-pc and x86_64-efi
// platforms, xorriso and mtools.
func BuildISO(ctx context.Context, kernel, args, bundle, out string) error {
	if missing := MissingISOTools(); len(missing) > 0 {
		return fmt.Errorf("building the GRUB ISO needs %s (run `make setup`)", strings.Join(missing, ", "))
	}
	root, err := os.MkdirTemp("", "juice-iso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
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
	if err := os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(cfg), 0o644); err != nil {
		return err
	}
	// No locales, fonts or themes: the console is serial. The full module
	// set stays (a trimmed one makes GRUB print "file not found" errors).
	cmd := exec.CommandContext(ctx, "grub-mkrescue", "-o", out, "--locales=", "--fonts=", "--themes=", root)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("grub-mkrescue: %v\n%s", err, strings.TrimSpace(log.String()))
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

// prepareMedia builds what a GRUB boot of cfg needs inside dir.
func prepareMedia(ctx context.Context, cfg Config, dir string) (Media, error) {
	var m Media
	if cfg.Boot == BootGRUBEFI {
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
	m.ISO = filepath.Join(dir, "juice.iso")
	if err := BuildISO(ctx, cfg.Kernel, cfg.Append, cfg.Initrd, m.ISO); err != nil {
		return m, err
	}
	return m, nil
}
