package launch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The PXE tree (BuildPXE) is the root of a TFTP server:
//
//	boot/grub/i386-pc/core.0       GRUB's network image for BIOS PXE
//	boot/grub/x86_64-efi/core.efi  GRUB's network image for UEFI PXE
//	boot/grub/i386-pc/, x86_64-efi/ GRUB's modules (grub-mknetdir)
//	boot/grub/grub.cfg             juice's command line (GRUBConfig)
//	boot/juice.elf                 juice
//	boot/bundle.cpio               the VMs
//	juice.ipxe                     an iPXE script that chain-loads the
//	                               right GRUB image
//
// Both GRUB images find grub.cfg under their $prefix on the TFTP server
// they were loaded from, and grub.cfg loads juice and the bundle from the
// same server by multiboot2, so the tree is the same medium as the ISO.
// iPXE cannot boot juice itself: it loads multiboot v1 kernels only (and
// none under UEFI), and juice is a multiboot2 and PVH kernel, so the
// script hands over to GRUB.

// PXETools are the host programs BuildPXE needs (besides GRUB's platform
// files under GRUBLibDir).
var PXETools = []string{"grub-mknetdir"}

// Paths in the PXE tree, relative to its root: what a DHCP server names as
// the boot file.
const (
	// PXEBIOSImage is GRUB's network image for BIOS clients (DHCP
	// client architecture 0).
	PXEBIOSImage = "boot/grub/i386-pc/core.0"
	// PXEEFIImage is GRUB's network image for x86-64 UEFI clients
	// (client architectures 7 and 9).
	PXEEFIImage = "boot/grub/x86_64-efi/core.efi"
	// PXEScript is the iPXE script, for iPXE clients (DHCP user class
	// "iPXE").
	PXEScript = "juice.ipxe"
)

// PXEScriptText is the iPXE script BuildPXE writes: under UEFI it
// chain-loads PXEEFIImage, under BIOS PXEBIOSImage, both relative to the
// script's own URI (same server, same directory).
const PXEScriptText = `#!ipxe
# juice over the network. iPXE loads multiboot v1 kernels only (and none
# under UEFI); juice boots by multiboot2, so this script chain-loads GRUB's
# network image, which reads ` + "boot/grub/grub.cfg" + ` (juice's command
# line) and loads boot/juice.elf and boot/bundle.cpio by TFTP.
echo juice.ipxe: platform ${platform}, chain-loading GRUB
iseq ${platform} efi && goto efi ||
chain ` + PXEBIOSImage + ` || goto failed
:efi
chain ` + PXEEFIImage + ` || goto failed
:failed
echo juice.ipxe: could not chain-load GRUB
`

// PXEBootFile returns the boot file QEMU's DHCP server names for boot
// path b: GRUB's network image for the firmware (MediumPXE), or the iPXE
// script (MediumIPXE); "" for the other paths.
func PXEBootFile(b Boot) string {
	switch b.Medium() {
	case MediumPXE:
		if b.UEFI() {
			return PXEEFIImage
		}
		return PXEBIOSImage
	case MediumIPXE:
		return PXEScript
	}
	return ""
}

// MissingPXETools returns those of PXETools that are not on $PATH, and
// GRUB's platform directories when they are missing.
func MissingPXETools() []string {
	missing := missingTools(PXETools)
	for _, p := range []string{grubBIOS, grubEFI} {
		if !isFile(filepath.Join(GRUBLibDir, p, "moddep.lst")) {
			missing = append(missing, filepath.Join(GRUBLibDir, p))
		}
	}
	return missing
}

// BuildPXE writes the PXE tree (see above) into dir, creating it if
// needed; files of an earlier tree there are replaced, a bundle from an
// earlier tree is removed when bundle is empty. The tree boots kernel by
// multiboot2 with the command line args and bundle (if not empty) as its
// first module. It returns the paths it wrote, relative to dir.
func BuildPXE(ctx context.Context, kernel, args, bundle, dir string) ([]string, error) {
	if missing := MissingPXETools(); len(missing) > 0 {
		return nil, fmt.Errorf("building the PXE tree needs %s (run `make setup`)", strings.Join(missing, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if bundle == "" {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(ISOBundlePath))); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	if err := stageBoot(dir, kernel, args, bundle); err != nil {
		return nil, err
	}
	for _, p := range []string{grubBIOS, grubEFI} {
		// $prefix is /boot/grub on the TFTP server the image came from.
		if err := runTool(ctx, "grub-mknetdir", "--net-directory="+dir, "--subdir=/boot/grub",
			"-d", filepath.Join(GRUBLibDir, p), "--locales=", "--fonts=", "--themes="); err != nil {
			return nil, err
		}
	}
	// grub-mknetdir leaves empty locale and font directories behind.
	for _, d := range []string{"locale", "fonts"} {
		os.Remove(filepath.Join(dir, "boot", "grub", d))
	}
	if err := os.WriteFile(filepath.Join(dir, PXEScript), []byte(PXEScriptText), 0o644); err != nil {
		return nil, err
	}
	files := []string{PXEBIOSImage, PXEEFIImage, PXEScript, strings.TrimPrefix(GRUBConfigPath, "/"), strings.TrimPrefix(ISOKernelPath, "/")}
	if bundle != "" {
		files = append(files, strings.TrimPrefix(ISOBundlePath, "/"))
	}
	for _, f := range files {
		if !isFile(filepath.Join(dir, filepath.FromSlash(f))) {
			return nil, fmt.Errorf("the PXE tree lacks %s", f)
		}
	}
	return files, nil
}
