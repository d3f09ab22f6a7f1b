package launch

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireUSBTools skips (or fails, under JUICE_REQUIRE_EMULATORS=1)
// without what BuildUSB needs.
func requireUSBTools(t *testing.T) {
	t.Helper()
	if missing := MissingUSBTools(); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
}

// TestBuildUSB parses the USB image back: the boot sector and core.img
// GRUB's BIOS boot code chains through, the partition, and the files on
// its FAT32 file system; then replaces the bundle in place as the
// documentation says and reads the new one back.
func TestBuildUSB(t *testing.T) {
	requireUSBTools(t)
	dir := t.TempDir()
	kernel := writeFile(t, "juice.elf", "not really a kernel\n")
	bundleData := strings.Repeat("070701 a bundle ", 70000) // > 1 MiB: several clusters
	bundle := writeFile(t, "b.cpio", bundleData)
	img := filepath.Join(dir, "usb.img")
	args := "juice.mode=selftest $x"
	if err := BuildUSB(context.Background(), kernel, args, bundle, img, 0); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != USBMinSize {
		t.Errorf("image is %d bytes, want the minimum %d", len(disk), USBMinSize)
	}

	// The MBR: GRUB's boot code pointing at LBA 1, the drive check
	// disabled, one active FAT32 partition at 1 MiB to the end.
	bootImg, err := os.ReadFile(filepath.Join(GRUBLibDir, grubBIOS, "boot.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[:bootKernelSector], bootImg[:bootKernelSector]) ||
		!bytes.Equal(disk[bootDriveCheck+2:mbrDiskSignature], bootImg[bootDriveCheck+2:mbrDiskSignature]) {
		t.Error("the MBR's code is not GRUB's boot.img")
	}
	if got := binary.LittleEndian.Uint64(disk[bootKernelSector:]); got != 1 {
		t.Errorf("boot.img loads core.img from LBA %d, want 1", got)
	}
	if disk[bootDriveCheck] != 0x90 || disk[bootDriveCheck+1] != 0x90 {
		t.Errorf("drive check % x, want NOPs", disk[bootDriveCheck:bootDriveCheck+2])
	}
	parts, err := readMBR(disk)
	if err != nil {
		t.Fatal(err)
	}
	want := mbrPartition{status: 0x80, typ: 0x0c, start: usbPartStart, sectors: uint32(len(disk)/512 - usbPartStart)}
	if parts[0] != want || parts[1] != (mbrPartition{}) || parts[2] != (mbrPartition{}) || parts[3] != (mbrPartition{}) {
		t.Errorf("partitions %+v, want only %+v", parts, want)
	}
	if binary.LittleEndian.Uint32(disk[mbrDiskSignature:]) == 0 {
		t.Error("no disk signature")
	}

	// core.img at LBA 1: diskboot.img's blocklist loads the rest from LBA
	// 2, and it all lies before the partition.
	diskboot, err := os.ReadFile(filepath.Join(GRUBLibDir, grubBIOS, "diskboot.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[512:512+diskbootBlocklist], diskboot[:diskbootBlocklist]) {
		t.Error("LBA 1 is not GRUB's diskboot.img")
	}
	bl := disk[512+diskbootBlocklist : 1024]
	start, n := binary.LittleEndian.Uint64(bl), binary.LittleEndian.Uint16(bl[8:])
	if start != 2 || n == 0 || start+uint64(n) > usbPartStart || binary.LittleEndian.Uint16(bl[10:]) != 0x820 {
		t.Errorf("blocklist start %d, %d sectors, segment %#x", start, n, binary.LittleEndian.Uint16(bl[10:]))
	}
	if bytes.Equal(disk[512*(start+uint64(n)-1):512*(start+uint64(n))], make([]byte, 512)) {
		t.Error("core.img's last sector is empty")
	}

	// The FAT32 partition's files.
	fs, err := openFAT(disk[USBPartitionOffset:])
	if err != nil {
		t.Fatal(err)
	}
	if fs.bits != 32 {
		t.Errorf("FAT%d, want FAT32", fs.bits)
	}
	if label := string(disk[USBPartitionOffset+71 : USBPartitionOffset+82]); label != "JUICE      " {
		t.Errorf("volume label %q", label)
	}
	files := map[string]string{
		GRUBConfigPath: GRUBConfig(ISOKernelPath, args, ISOBundlePath),
		ISOKernelPath:  "not really a kernel\n",
		ISOBundlePath:  bundleData,
	}
	for p, want := range files {
		got, name, err := fs.readFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s on the stick: %d bytes, %v; want %d bytes", p, len(got), err, len(want))
		}
		if name != filepath.Base(p) {
			t.Errorf("%s stored as %q", p, name)
		}
	}
	checkESP(t, disk[USBPartitionOffset:])
	for _, p := range []string{"/boot/grub/i386-pc/normal.mod", "/boot/grub/i386-pc/multiboot2.mod",
		"/boot/grub/x86_64-efi/normal.mod", "/boot/grub/x86_64-efi/command.lst"} {
		if b, _, err := fs.readFile(p); err != nil || len(b) == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}

	// Replacing the bundle in place, the documented way.
	next := writeFile(t, "next.cpio", "070701 the next bundle\n")
	cmd := exec.Command("mcopy", "-o", "-i", img+"@@1M", next, "::"+ISOBundlePath)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	if disk, err = os.ReadFile(img); err != nil {
		t.Fatal(err)
	}
	if fs, err = openFAT(disk[USBPartitionOffset:]); err != nil {
		t.Fatal(err)
	}
	if got, _, err := fs.readFile(ISOBundlePath); err != nil || string(got) != "070701 the next bundle\n" {
		t.Errorf("replaced bundle = %q, %v", got, err)
	}
}

// TestBuildUSBSize: without a bundle the grub.cfg shows where one would
// go; an explicit size is honoured (rounded up to MiB); too small a size
// and missing inputs are refused.
func TestBuildUSBSize(t *testing.T) {
	requireUSBTools(t)
	dir := t.TempDir()
	kernel := writeFile(t, "juice.elf", "k")
	img := filepath.Join(dir, "u.img")
	if err := BuildUSB(context.Background(), kernel, "", "", img, 100<<20+1); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != 101<<20 {
		t.Errorf("image is %d bytes, want %d", len(disk), 101<<20)
	}
	fs, err := openFAT(disk[USBPartitionOffset:])
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _, err := fs.readFile(GRUBConfigPath); err != nil || !strings.Contains(string(cfg), "\t# module2 "+ISOBundlePath+"\n") {
		t.Errorf("grub.cfg without a bundle: %q, %v", cfg, err)
	}
	if _, _, err := fs.readFile(ISOBundlePath); err == nil {
		t.Error("a bundle on the stick although none was given")
	}

	for _, c := range []struct {
		kernel, bundle string
		size           int64
	}{
		{kernel, "", 1 << 20},
		{kernel, "", USBMinSize - 1},
		{filepath.Join(dir, "missing"), "", 0},
		{kernel, filepath.Join(dir, "missing.cpio"), 0},
	} {
		if err := BuildUSB(context.Background(), c.kernel, "", c.bundle, filepath.Join(dir, "bad.img"), c.size); err == nil {
			t.Errorf("BuildUSB(%q, %q, size %d) accepted", c.kernel, c.bundle, c.size)
		}
	}
	// A bundle bigger than the size asked for.
	big := filepath.Join(dir, "big.cpio")
	if err := os.WriteFile(big, make([]byte, 70<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := BuildUSB(context.Background(), kernel, "", big, filepath.Join(dir, "bad.img"), USBMinSize); err == nil ||
		!strings.Contains(err.Error(), "too small") {
		t.Errorf("a 70 MiB bundle in a 64 MiB image: %v", err)
	}
}

func TestUSBMBR(t *testing.T) {
	boot := make([]byte, 512)
	for i := range boot {
		boot[i] = byte(i)
	}
	boot[bootDriveCheck], boot[510], boot[511] = 0xeb, 0x55, 0xaa
	mbr, err := usbMBR(boot, 0x12345678, 2048, 129024)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mbr[:bootKernelSector], boot[:bootKernelSector]) || mbr[510] != 0x55 || mbr[511] != 0xaa {
		t.Error("boot code or signature not kept")
	}
	want := []byte{0x80, 0x20, 0x21, 0x00, 0x0c, 0xfe, 0xff, 0xff, 0x00, 0x08, 0, 0, 0x00, 0xf8, 0x01, 0}
	// LBA 131071 = C 8, H 40, S 32 in 255/63 geometry.
	want[5], want[6], want[7] = 40, 32, 8
	if got := mbr[mbrPartitionTable : mbrPartitionTable+16]; !bytes.Equal(got, want) {
		t.Errorf("partition entry % x, want % x", got, want)
	}
	if !bytes.Equal(mbr[mbrPartitionTable+16:510], make([]byte, 510-mbrPartitionTable-16)) {
		t.Error("more than one partition")
	}
	if binary.LittleEndian.Uint32(mbr[mbrDiskSignature:]) != 0x12345678 || mbr[0x1bc] != 0 || mbr[0x1bd] != 0 {
		t.Errorf("disk signature % x", mbr[mbrDiskSignature:mbrPartitionTable])
	}
	bad := append([]byte(nil), boot...)
	bad[511] = 0
	if _, err := usbMBR(bad, 1, 2048, 1); err == nil {
		t.Error("boot.img without its signature accepted")
	}
	bad = append([]byte(nil), boot...)
	bad[bootDriveCheck] = 0x90
	if _, err := usbMBR(bad, 1, 2048, 1); err == nil {
		t.Error("boot.img of an unknown layout accepted")
	}
	if _, err := usbMBR(boot[:511], 1, 2048, 1); err == nil {
		t.Error("short boot.img accepted")
	}
}

func TestCHS(t *testing.T) {
	cases := map[uint32][]byte{
		0:           {0, 1, 0},
		62:          {0, 63, 0},
		63:          {1, 1, 0},
		2048:        {32, 33, 0},
		16064:       {254, 63, 0},      // C 0, last head and sector
		16065:       {0, 1, 1},         // C 1
		16065 * 256: {0, 1 | 0x40, 0},  // C 256: bit 8 in the sector byte
		1 << 30:     {254, 0xff, 0xff}, // past C 1023: saturated
	}
	for lba, want := range cases {
		if got := chs(lba); !bytes.Equal(got, want) {
			t.Errorf("chs(%d) = % x, want % x", lba, got, want)
		}
	}
}

func TestPatchCore(t *testing.T) {
	core := make([]byte, 3*512+100) // 4 sectors: diskboot + 3
	binary.LittleEndian.PutUint16(core[diskbootBlocklist+8:], 3)
	if err := patchCore(core, 1, 2048); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(core[diskbootBlocklist:]); got != 2 {
		t.Errorf("blocklist start %d, want 2", got)
	}
	if err := patchCore(core, 2045, 2048); err == nil {
		t.Error("core.img overlapping the partition accepted")
	}
	binary.LittleEndian.PutUint16(core[diskbootBlocklist+8:], 7)
	if err := patchCore(core, 1, 2048); err == nil {
		t.Error("a blocklist length that does not match the image accepted")
	}
	if err := patchCore(core[:600], 1, 2048); err == nil {
		t.Error("a one-sector core.img accepted")
	}
}
