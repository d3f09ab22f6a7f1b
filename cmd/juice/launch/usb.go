package launch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The USB disk image (BuildUSB) is an MBR disk with one FAT32 partition
// that both BIOS and UEFI boot from and that any computer can mount and
// edit:
//
//	LBA 0        GRUB's boot.img (i386-pc) and the partition table
//	LBA 1..      GRUB's core.img (i386-pc): diskboot.img, then the
//	             compressed kernel with biosdisk, part_msdos and fat; it
//	             loads the rest from $prefix = (boot disk,msdos1)/boot/grub
//	LBA 2048..   partition 1, active, type 0x0c (FAT32 LBA), label JUICE:
//	               /EFI/BOOT/BOOTX64.EFI   GRUB for x86_64-efi (prefix
//	                                       /boot/grub on the same partition)
//	               /boot/grub/grub.cfg     juice's command line
//	               /boot/grub/i386-pc/, /boot/grub/x86_64-efi/
//	                                       GRUB's modules
//	               /boot/juice.elf         juice
//	               /boot/bundle.cpio       the VMs
//
// UEFI firmware boots a removable disk's \EFI\BOOT\BOOTX64.EFI from a FAT
// partition whatever its MBR type; the FAT32 type keeps the partition
// mountable everywhere, so the command line and the bundle can be edited
// without tools (or with mtools: see USBPartitionOffset).

// USBTools are the host programs BuildUSB needs (besides GRUB's i386-pc
// and x86_64-efi platform files under GRUBLibDir).
var USBTools = []string{"grub-mkimage", "mformat", "mcopy"}

// GRUBLibDir holds GRUB's platform directories (i386-pc from Debian's
// grub-pc-bin, x86_64-efi from grub-efi-amd64-bin).
var GRUBLibDir = "/usr/lib/grub"

// The GRUB platforms juice's media carry.
const (
	grubBIOS = "i386-pc"
	grubEFI  = "x86_64-efi"
)

const (
	sectorSize = 512
	// usbPartStart is the first LBA of the FAT partition (1 MiB, the
	// usual alignment); core.img lives in the sectors before it.
	usbPartStart = 2048
	// USBPartitionOffset is the byte offset of the FAT partition in the
	// USB image: `mcopy -o -i juice-usb.img@@1M bundle.cpio
	// ::/boot/bundle.cpio` replaces the bundle in place.
	USBPartitionOffset = usbPartStart * sectorSize
	// USBMinSize is the smallest USB image BuildUSB writes: FAT32 wants
	// at least 65525 clusters.
	USBMinSize = 64 << 20
	// usbSlack is the free space BuildUSB leaves on the partition by
	// default, for a larger bundle later.
	usbSlack = 32 << 20
	// usbLabel is the FAT volume label.
	usbLabel = "JUICE"
	// usbPartType is the partition's MBR type: FAT32 with LBA.
	usbPartType = 0x0c
	// usbBIOSPrefix is core.img's $prefix: partition 1 of the disk the
	// BIOS booted from.
	usbBIOSPrefix = "(,msdos1)/boot/grub"
	// grubEFIPrefix is BOOTX64.EFI's $prefix: a path on the partition it
	// was loaded from.
	grubEFIPrefix = "/boot/grub"
	// USBEFIPath is where the USB image holds GRUB for UEFI, the path
	// UEFI firmware boots from removable media.
	USBEFIPath = "/EFI/BOOT/BOOTX64.EFI"
)

// Offsets in GRUB's i386-pc boot sectors (GRUB's boot.S and diskboot.S,
// the same values grub-bios-setup patches).
const (
	// bootKernelSector: boot.img's 64-bit LBA of core.img's first sector.
	bootKernelSector = 0x5c
	// bootDriveCheck: boot.img's 2-byte short jump over the code that
	// forces DL to 0x80 when a BIOS passes a bogus boot drive; a disk
	// install replaces it with NOPs, so the fix-up runs.
	bootDriveCheck = 0x66
	// mbrDiskSignature, mbrPartitionTable: the MBR fields after the boot
	// code.
	mbrDiskSignature  = 0x1b8
	mbrPartitionTable = 0x1be
	// diskbootBlocklist: diskboot.img's first (and here only) blocklist
	// entry, at the end of core.img's first sector: the 64-bit LBA of
	// the rest of core.img, its 16-bit length in sectors, the 16-bit load
	// segment.
	diskbootBlocklist = sectorSize - 12
)

// MissingUSBTools returns those of USBTools that are not on $PATH, and
// GRUB's platform directories when they are missing.
func MissingUSBTools() []string {
	missing := missingTools(USBTools)
	for _, p := range []string{grubBIOS, grubEFI} {
		if !isFile(filepath.Join(GRUBLibDir, p, "moddep.lst")) {
			missing = append(missing, filepath.Join(GRUBLibDir, p))
		}
	}
	return missing
}

// BuildUSB writes to out a USB disk image (see the layout above) that
// boots kernel by multiboot2 with the command line args under BIOS and
// UEFI; a non-empty bundle goes on it as ISOBundlePath. size is the
// image's size in bytes; 0 picks the content plus 32 MiB, at least
// USBMinSize. Write the image to a stick with dd; its partition is an
// ordinary FAT32 file system.
func BuildUSB(ctx context.Context, kernel, args, bundle, out string, size int64) error {
	if missing := MissingUSBTools(); len(missing) > 0 {
		return fmt.Errorf("building the USB image needs %s (run `make setup`)", strings.Join(missing, ", "))
	}
	tmp, err := os.MkdirTemp("", "juice-usb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := stageBoot(root, kernel, args, bundle); err != nil {
		return err
	}
	for _, p := range []string{grubBIOS, grubEFI} {
		if err := copyGRUBModules(p, filepath.Join(root, "boot", "grub", p)); err != nil {
			return err
		}
	}
	efi := filepath.Join(root, filepath.FromSlash(USBEFIPath))
	if err := os.MkdirAll(filepath.Dir(efi), 0o755); err != nil {
		return err
	}
	if err := grubMkimage(ctx, grubEFI, grubEFIPrefix, efi, "part_msdos", "part_gpt", "fat"); err != nil {
		return err
	}
	coreFile := filepath.Join(tmp, "core.img")
	if err := grubMkimage(ctx, grubBIOS, usbBIOSPrefix, coreFile, "biosdisk", "part_msdos", "fat"); err != nil {
		return err
	}
	core, err := os.ReadFile(coreFile)
	if err != nil {
		return err
	}
	bootImg, err := os.ReadFile(filepath.Join(GRUBLibDir, grubBIOS, "boot.img"))
	if err != nil {
		return err
	}

	content, err := treeSize(root)
	if err != nil {
		return err
	}
	// Room for the FAT itself and directories, then the slack.
	need := USBPartitionOffset + content + content/16 + 4<<20
	switch {
	case size == 0:
		size = max(USBMinSize, need+usbSlack)
	case size < USBMinSize:
		return fmt.Errorf("USB image size %d too small: at least %d bytes (FAT32)", size, USBMinSize)
	case size < need:
		return fmt.Errorf("USB image size %d too small for its %d bytes of files: at least %d", size, content, need)
	}
	size = (size + (1<<20 - 1)) &^ (1<<20 - 1)
	partSectors := (size - USBPartitionOffset) / sectorSize
	if size/sectorSize > 1<<32-1 {
		return fmt.Errorf("USB image size %d too large for an MBR disk", size)
	}
	serial, err := mediaSerial(kernel, args, bundle)
	if err != nil {
		return err
	}

	fat := filepath.Join(tmp, "fat.img")
	if err := runMtools(ctx, "mformat", "-i", fat, "-C", "-T", strconv.FormatInt(partSectors, 10),
		"-h", "64", "-s", "32", "-H", strconv.Itoa(usbPartStart), "-F",
		"-N", fmt.Sprintf("%08x", serial), "-v", usbLabel, "::"); err != nil {
		return err
	}
	if err := runMtools(ctx, "mcopy", "-s", "-Q", "-i", fat,
		filepath.Join(root, "EFI"), filepath.Join(root, "boot"), "::/"); err != nil {
		return err
	}

	mbr, err := usbMBR(bootImg, serial, usbPartStart, uint32(partSectors))
	if err != nil {
		return err
	}
	if err := patchCore(core, 1, usbPartStart); err != nil {
		return err
	}
	return writeDisk(out, size, mbr, core, fat)
}

// grubMkimage builds GRUB's core image for platform (a directory under
// GRUBLibDir, also the image format's name) into out with the given $prefix and built-in modules.
func grubMkimage(ctx context.Context, platform, prefix, out string, modules ...string) error {
	args := append([]string{"-O", platform, "-d", filepath.Join(GRUBLibDir, platform), "-p", prefix, "-o", out}, modules...)
	return runTool(ctx, "grub-mkimage", args...)
}

// copyGRUBModules copies GRUB's modules and their lists for platform
// into dir, as grub-install does: GRUB's normal mode loads what it needs
// from $prefix/PLATFORM.
func copyGRUBModules(platform, dir string) error {
	src := filepath.Join(GRUBLibDir, platform)
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(name, ".mod") || strings.HasSuffix(name, ".lst")) {
			continue
		}
		if err := copyFile(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no GRUB modules in %s", src)
	}
	return nil
}

// treeSize returns the bytes of the regular files under root, each
// rounded up to a 4 KiB cluster.
func treeSize(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += (info.Size() + 4095) &^ 4095
		} else if d.IsDir() {
			total += 4096
		}
		return nil
	})
	return total, err
}

// mediaSerial derives a 32-bit volume serial and disk signature from what
// goes on the medium, so that the same inputs give the same image.
func mediaSerial(kernel, args, bundle string) (uint32, error) {
	h := crc32.NewIEEE()
	io.WriteString(h, args)
	for _, f := range []string{kernel, bundle} {
		if f == "" {
			continue
		}
		in, err := os.Open(f)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(h, in)
		in.Close()
		if err != nil {
			return 0, err
		}
	}
	if s := h.Sum32(); s != 0 {
		return s, nil
	}
	return 1, nil
}

// runMtools runs an mtools command without its check of the image's
// geometry against its size (a partition image has none).
func runMtools(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// usbMBR returns the USB image's first sector: GRUB's boot.img (which
// loads core.img from LBA 1, its default) with the hard-disk drive fix-up
// enabled, the disk signature sig and one active partition of type
// usbPartType at LBA start, sectors long.
func usbMBR(bootImg []byte, sig uint32, start, sectors uint32) ([]byte, error) {
	if len(bootImg) != sectorSize || bootImg[510] != 0x55 || bootImg[511] != 0xaa {
		return nil, errors.New("GRUB's boot.img is not a 512-byte boot sector")
	}
	if bootImg[bootDriveCheck] != 0xeb {
		return nil, fmt.Errorf("GRUB's boot.img has %#x at its drive check, not a short jump: unknown GRUB version", bootImg[bootDriveCheck])
	}
	mbr := make([]byte, sectorSize)
	copy(mbr, bootImg[:mbrDiskSignature])
	binary.LittleEndian.PutUint64(mbr[bootKernelSector:], 1)
	mbr[bootDriveCheck], mbr[bootDriveCheck+1] = 0x90, 0x90
	binary.LittleEndian.PutUint32(mbr[mbrDiskSignature:], sig)
	e := mbr[mbrPartitionTable : mbrPartitionTable+16]
	e[0] = 0x80
	copy(e[1:4], chs(start))
	e[4] = usbPartType
	copy(e[5:8], chs(start+sectors-1))
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	mbr[510], mbr[511] = 0x55, 0xaa
	return mbr, nil
}

// chs encodes lba as a partition entry's cylinder/head/sector triple in
// the usual 255-head, 63-sector geometry, saturated at its limit.
func chs(lba uint32) []byte {
	const heads, spt = 255, 63
	c, h, s := lba/(heads*spt), (lba/spt)%heads, lba%spt+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return []byte{byte(h), byte(s) | byte(c>>2)&0xc0, byte(c)}
}

// patchCore points core.img's diskboot blocklist at the sectors after
// its first, which is at LBA at, and checks that the image fits before
// LBA limit.
func patchCore(core []byte, at, limit uint64) error {
	if len(core) < 2*sectorSize {
		return fmt.Errorf("GRUB's core.img is only %d bytes", len(core))
	}
	sectors := uint64(len(core)+sectorSize-1) / sectorSize
	if at+sectors > limit {
		return fmt.Errorf("GRUB's core.img (%d sectors) does not fit before LBA %d", sectors, limit)
	}
	b := core[diskbootBlocklist:]
	if n := uint64(binary.LittleEndian.Uint16(b[8:])); n != sectors-1 {
		return fmt.Errorf("GRUB's core.img blocklist says %d sectors, the image has %d more: unknown GRUB version", n, sectors-1)
	}
	binary.LittleEndian.PutUint64(b, at+1)
	return nil
}

// writeDisk writes the USB image: mbr, core from LBA 1, the partition
// image fat at USBPartitionOffset, size bytes in all.
func writeDisk(out string, size int64, mbr, core []byte, fat string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(out)
		return err
	}
	if _, err := f.Write(mbr); err != nil {
		return fail(err)
	}
	if _, err := f.Write(core); err != nil {
		return fail(err)
	}
	in, err := os.Open(fat)
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	if _, err := f.Seek(USBPartitionOffset, io.SeekStart); err != nil {
		return fail(err)
	}
	if n, err := io.Copy(f, in); err != nil {
		return fail(err)
	} else if n != size-USBPartitionOffset {
		return fail(fmt.Errorf("the FAT partition image is %d bytes, want %d", n, size-USBPartitionOffset))
	}
	return f.Close()
}
