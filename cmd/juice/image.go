package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"juice/cmd/juice/launch"
)

// imageKinds are the media `juice image` builds.
const imageKinds = "iso, usb or pxe"

// cmdImage implements `juice image iso|usb|pxe`: boot media holding juice,
// its command line (in GRUB's grub.cfg) and the bundle of VMs (a file of
// its own), so that both can be changed on the medium without rebuilding
// juice.
func cmdImage(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "juice image: want %s\n", imageKinds)
		return 2
	}
	kind := args[0]
	switch kind {
	case "iso", "usb", "pxe":
	default:
		fmt.Fprintf(stderr, "juice image: unknown image %q (want %s)\n", kind, imageKinds)
		return 2
	}
	name := "image " + kind
	fs := newFlagSet(name, stderr)
	guests := addGuestFlags(fs)
	kernel := fs.String("juice", defaultKernel, "juice's image")
	juiceArgs := fs.String("juice-append", "", "juice's command line")
	what := "output file"
	if kind == "pxe" {
		what = "output directory (the TFTP root)"
	}
	out := fs.String("o", "", what+" (required)")
	var size *string
	if kind == "usb" {
		size = fs.String("size", "", "the image's size (e.g. 512M, 2G; default: the files plus 32 MiB, at least 64M)")
	}
	if rc := parseFlags(fs, args[1:]); rc != 0 {
		return max(rc, 0)
	}
	if *out == "" {
		if kind == "pxe" {
			fmt.Fprintf(stderr, "juice %s: -o DIR is required\n", name)
		} else {
			fmt.Fprintf(stderr, "juice %s: -o FILE is required\n", name)
		}
		return 2
	}
	var bytes int64
	if size != nil && *size != "" {
		n, err := parseImageSize(*size)
		if err != nil {
			fmt.Fprintf(stderr, "juice %s: --size: %v\n", name, err)
			return 2
		}
		bytes = n
	}
	if err := guests.check(fs); err != nil {
		fmt.Fprintf(stderr, "juice %s: %v\n", name, err)
		return 2
	}
	if _, err := os.Stat(*kernel); err != nil {
		fmt.Fprintf(stderr, "juice %s: %v\n", name, err)
		return 1
	}
	bundlePath := ""
	if guests.any() {
		dir, err := os.MkdirTemp("", "juice-image-")
		if err != nil {
			fmt.Fprintf(stderr, "juice %s: %v\n", name, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if bundlePath, err = guests.write(dir); err != nil {
			fmt.Fprintf(stderr, "juice %s: %v\n", name, err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch kind {
	case "iso":
		err = launch.BuildISO(ctx, *kernel, *juiceArgs, bundlePath, *out)
	case "usb":
		err = launch.BuildUSB(ctx, *kernel, *juiceArgs, bundlePath, *out, bytes)
	case "pxe":
		_, err = launch.BuildPXE(ctx, *kernel, *juiceArgs, bundlePath, *out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "juice %s: %v\n", name, err)
		return 1
	}
	loads := ""
	if bundlePath != "" {
		loads = " + " + launch.ISOBundlePath
	}
	fmt.Fprintf(stdout, "juice %s: wrote %s (GRUB, multiboot2 %s%s)\n", name, *out,
		strings.TrimSpace(filepath.Base(*kernel)+" "+*juiceArgs), loads)
	imageHelp(stdout, kind, *out)
	return 0
}

// imageHelp prints how to use and edit the medium kind written to out.
func imageHelp(w io.Writer, kind, out string) {
	cfg, bundle := launch.GRUBConfigPath, launch.ISOBundlePath
	switch kind {
	case "iso":
		fmt.Fprintf(w, `  a hybrid ISO: boots as a CD and, written raw to a USB stick or disk
  (dd if=%[1]s of=/dev/sdX bs=4M), as a disk, under BIOS and UEFI.
  On it: juice's command line in %[2]s, the VMs in
  %[3]s. ISO 9660 is read-only: to change them, run juice image
  iso again with other flags (juice.elf is copied, not rebuilt); for a medium
  to edit in place, use juice image usb (a FAT32 stick) or juice image pxe.
`, out, cfg, bundle)
	case "usb":
		fmt.Fprintf(w, `  a disk image for a USB stick: dd if=%[1]s of=/dev/sdX bs=4M; boots under
  BIOS (GRUB in the MBR) and UEFI (/EFI/BOOT/BOOTX64.EFI). Its partition 1 is
  FAT32 (label JUICE): mount it to edit juice's command line in %[2]s
  or to replace the VMs in %[3]s; on the image file, with mtools:
    mcopy -o -i %[1]s@@1M bundle.cpio ::%[3]s
`, out, cfg, bundle)
	case "pxe":
		fmt.Fprintf(w, `  a TFTP root: serve %[1]s and have DHCP name the boot file
    BIOS clients (architecture 0):            %[2]s
    UEFI x86-64 clients (architectures 7, 9): %[3]s
    iPXE clients (DHCP option 175):           %[4]s (chain-loads the GRUB image)
  for example with dnsmasq:
    enable-tftp
    tftp-root=%[1]s
    dhcp-match=set:efi64,option:client-arch,7
    dhcp-match=set:efi64,option:client-arch,9
    dhcp-match=set:ipxe,175
    dhcp-boot=tag:ipxe,%[4]s
    dhcp-boot=tag:!ipxe,tag:efi64,%[3]s
    dhcp-boot=tag:!ipxe,tag:!efi64,%[2]s
  Edit juice's command line in %[5]s
  and replace the VMs in %[6]s in place: the next boot loads them.
`, out, launch.PXEBIOSImage, launch.PXEEFIImage, launch.PXEScript,
			filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(cfg, "/"))),
			filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(bundle, "/"))))
	}
}

// parseImageSize parses a size: a number of bytes with an optional K, M
// or G suffix (binary units).
func parseImageSize(s string) (int64, error) {
	shift := 0
	num := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	if num != "" {
		switch num[len(num)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift != 0 {
			num = num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<41)>>shift {
		return 0, fmt.Errorf("bad size %q (want e.g. 512M or 2G)", s)
	}
	return n << shift, nil
}
