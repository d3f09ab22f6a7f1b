package tests

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// ATA commands as QEMU's ide_exec_cmd trace event names them.
const (
	ataReadDMAExt  = "0x25"
	ataWriteDMAExt = "0x35"
	ataFlushExt    = "0xea"
)

// ataTraceArgs makes QEMU log every ATA command its IDE/AHCI devices
// execute into path.
func ataTraceArgs(path string) []string {
	return []string{"-trace", "enable=ide_exec_cmd", "-D", path}
}

// readATATrace counts the commands in QEMU's ide_exec_cmd log by opcode
// ("0x35"). The firmware's commands (SeaBIOS probes the disks: IDENTIFY,
// SET FEATURES) are counted too; it neither writes nor flushes.
func readATATrace(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("QEMU's trace: %v", err)
	}
	n := map[string]int{}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "ide_exec_cmd" {
			n[f[len(f)-1]]++
		}
	}
	if len(n) == 0 {
		t.Fatalf("QEMU traced no ATA command in %s (does this QEMU have the log trace backend?)", path)
	}
	return n
}

// TestAHCIHostDisk boots juice's self-test on a machine with two SATA
// disks on the q35 AHCI controller (ports 0 and 3) beside a virtio-blk
// disk, and checks that juice takes the HBA over, brings both SATA
// disks up as sda and sdb with their IDENTIFY data (capacity, block
// size, write cache, serial, model) and the data disk's partition
// table, keeps vda as it was, and that the pattern the self-test wrote
// and flushed to the scratch disk (serial juice-scratch) is in its image
// once QEMU has exited, its FLUSH CACHE EXT having reached QEMU's drive;
// the data disk is untouched.
func TestAHCIHostDisk(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	scratch := filepath.Join(dir, "scratch.img")
	virt := filepath.Join(dir, "virtio.img")
	img := make([]byte, 32<<20)
	// An MBR with one Linux partition from sector 2048, 8 MiB long.
	p := img[446:]
	p[4] = 0x83
	binary.LittleEndian.PutUint32(p[8:], 2048)
	binary.LittleEndian.PutUint32(p[12:], 16384)
	img[510], img[511] = 0x55, 0xAA
	copy(img[1<<20:], "data disk contents, not to be written by juice")
	if err := os.WriteFile(data, img, 0o644); err != nil {
		t.Fatal(err)
	}
	dataSum := sha256.Sum256(img)
	for _, f := range []string{scratch, virt} {
		if err := os.WriteFile(f, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trace := filepath.Join(dir, "ata.log")
	extra := append(hostDiskArgs("hd0", virt, 4, ",serial=virtio-disk"), ataTraceArgs(trace)...)
	r := Boot(t, launch.Config{Mem: "64M", Append: launch.SelftestArgs, ExtraArgs: extra, AHCIDisks: []launch.AHCIDisk{
		{Path: data, Port: 0, Serial: "ahci-data"},
		{Path: scratch, Port: 3, Serial: "juice-scratch"},
	}})
	r.Expect("pci: 00:1f.2 8086:2922 ICH9 AHCI ")
	r.Expect(`hostdisk: vda 00:04.0 16384 sectors (8 MiB), block 512, write cache (flush), serial "virtio-disk"`)
	if l := r.Expect("ahci: 00:1f.2 AHCI 1.0, 6 ports (implemented 0x3f), 32 command slots, 64-bit DMA"); !strings.HasSuffix(l, "registers by MMIO") {
		t.Errorf("%q: want the ABAR mapped and reached by MMIO", l)
	}
	r.ExpectNext(`hostdisk: sda 00:1f.2 port 0 65536 sectors (32 MiB), block 512, write cache (flush), serial "ahci-data", model "QEMU HARDDISK"`)
	r.ExpectNext("hostdisk: sda: MBR with 1 partition")
	r.ExpectNext("hostdisk: sda1: sectors 2048-18431 (8 MiB), type 0x83")
	r.ExpectNext(`hostdisk: sdb 00:1f.2 port 3 16384 sectors (8 MiB), block 512, write cache (flush), serial "juice-scratch", model "QEMU HARDDISK"`)
	r.ExpectNext("hostdisk: sdb: no partition table")
	r.ExpectNext("hostdisk: sdb: write, flush, read-back ok (96 KiB at 0x100000)")
	r.Expect("selftest: done in ")
	r.ExpectExit(0)
	for _, l := range r.Texts() {
		if strings.Contains(l, "FAILED") || strings.HasPrefix(l, "ahci: 00:1f.2 port ") {
			t.Errorf("failure line: %q", l)
		}
	}

	got, err := os.ReadFile(scratch)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 96<<10/512; s++ {
		sector := 2048 + s
		line := []byte(fmt.Sprintf("juice hostdisk self-test sector %d\n", sector))
		b := got[sector*512 : (sector+1)*512]
		if !bytes.HasPrefix(b, line) || !bytes.Equal(b[len(line):2*len(line)], line) {
			t.Fatalf("scratch sector %d holds %q", sector, b[:64])
		}
	}
	if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) || !bytes.Equal(got[1<<20+96<<10:], make([]byte, len(got)-(1<<20+96<<10))) {
		t.Error("the scratch disk was written outside the self-test's range")
	}
	if after, err := os.ReadFile(data); err != nil || sha256.Sum256(after) != dataSum {
		t.Errorf("the data disk changed (%v)", err)
	}
	tr := readATATrace(t, trace)
	t.Logf("QEMU's AHCI drives executed: %v", tr)
	// The self-test: 96 KiB written (two 64 KiB commands), one flush.
	if tr[ataWriteDMAExt] != 2 || tr[ataFlushExt] != 1 {
		t.Errorf("WRITE DMA EXT %d times, FLUSH CACHE EXT %d times; want 2 and 1", tr[ataWriteDMAExt], tr[ataFlushExt])
	}
}

// TestAHCIGuestPowerCycle: a guest disk backed by a partition of an AHCI
// host disk keeps what the guest flushed across a power cycle of the
// whole machine. The machine (QEMU) has a 48 MiB raw image on port 0 of
// its AHCI controller with an MBR holding partition 1 (sectors
// 2048-83967, 40 MiB); the JeOS guest's disk is `host: "sda",
// partition: 1`. Boot 1: the guest makes an ext4 file system with
// Debian's mkfs.ext4, writes a file of random bytes and a line of text,
// syncs, unmounts and powers off; juice ends and QEMU exits. The image
// file then holds the file system inside the partition (the ext4
// superblock's magic at the partition's offset + 1080, the text, the
// file's bytes through debugfs when the host has it), the partition
// table and every byte outside the partition are as before, and QEMU's
// drive executed the guest's writes and FLUSH CACHE EXT. Boot 2, a new
// QEMU on the same image: the file reads back with the MD5 it was
// written with. A second VM asking for a range overlapping the
// partition is refused by name.
func TestAHCIGuestPowerCycle(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "sata.img")
	const (
		diskSize  = 48 << 20
		partStart = 2048     // sectors
		partLen   = 40 << 11 // sectors: 40 MiB
		partOff   = partStart * 512
		partEnd   = partOff + partLen*512
		hello     = "juice-ahci-2718"
	)
	orig := make([]byte, diskSize)
	p := orig[446:]
	p[4] = 0x83
	binary.LittleEndian.PutUint32(p[8:], partStart)
	binary.LittleEndian.PutUint32(p[12:], partLen)
	orig[510], orig[511] = 0x55, 0xAA
	for i := partEnd; i < diskSize; i += 512 {
		copy(orig[i:], fmt.Sprintf("outside the partition, sector %d", i/512))
	}
	if err := os.WriteFile(image, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	disks := []launch.AHCIDisk{{Path: image, Port: 0, Serial: "juice-sata"}}
	partDisk := &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: "sda", Partition: new(1)}}}

	// Boot 1: make, write, sync, power off.
	write := "mkfs.ext4 -q /dev/vda && mount -t ext4 /dev/vda /mnt && " +
		"dd if=/dev/urandom of=/mnt/data bs=4096 count=256 2>/dev/null && echo " + hello + " > /mnt/hello && " +
		"echo HD-WRITTEN $(md5sum /mnt/data) && sync && umount /mnt && echo HD-SYNCED"
	vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+write+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	thief := launch.VMSpec{Name: "thief", Kernel: img.Vmlinux, Memory: "16M",
		Devices: &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: "sda", Offset: "8M", Size: "1M"}}}}
	trace1 := filepath.Join(dir, "trace1.log")
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 4 * time.Minute, AHCIDisks: disks, ExtraArgs: ataTraceArgs(trace1)}, vm, thief)
	r.Expect(`hostdisk: sda 00:1f.2 port 0 98304 sectors (48 MiB), block 512, write cache (flush), serial "juice-sata"`)
	r.ExpectNext("hostdisk: sda: MBR with 1 partition")
	r.ExpectNext("hostdisk: sda1: sectors 2048-83967 (40 MiB), type 0x83")
	r.Expect(VMEnd("jeos") + "disk 0 is sda partition 1: sectors 2048-83967 (40 MiB)")
	r.Expect(VMEnd("thief") + "disk 0 (sda bytes 0x800000-0x8fffff) overlaps vm jeos's disk 0 (sda partition 1)")
	r.Expect("[jeos] " + jeos.ReadyMarker)
	line := r.ExpectNext("[jeos] HD-WRITTEN ")
	m := hdMD5RE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("written: %q, want HD-WRITTEN <md5> /mnt/data", line)
	}
	written := m[2]
	if written == zeroMD5 {
		t.Fatalf("the file written is all zeros (%s): /dev/urandom gave nothing", written)
	}
	r.ExpectNext("[jeos] HD-SYNCED")
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	for _, l := range r.Find(VMEnd("thief")) {
		if strings.Contains(l, "starting") {
			t.Errorf("refused VM thief started: %q", l)
		}
	}
	for _, l := range r.Find(VMEnd("jeos")) {
		if strings.Contains(l, "heap allocations") {
			t.Logf("boot 1: %s", l)
		}
	}
	for _, l := range r.Texts() {
		if strings.Contains(l, "EXT4-fs error") || strings.Contains(l, "I/O error") || strings.HasPrefix(l, "ahci: 00:1f.2 port ") {
			t.Errorf("boot 1: error line: %q", l)
		}
	}
	tr := readATATrace(t, trace1)
	t.Logf("boot 1 (%v): QEMU's AHCI drive executed READ DMA EXT %d, WRITE DMA EXT %d, FLUSH CACHE EXT %d times",
		time.Since(start).Round(time.Second), tr[ataReadDMAExt], tr[ataWriteDMAExt], tr[ataFlushExt])
	if tr[ataWriteDMAExt] == 0 || tr[ataFlushExt] == 0 {
		t.Errorf("the guest's writes and flushes did not reach QEMU's AHCI drive: %v", tr)
	}

	// The machine is off: the image file holds the file system inside
	// the partition, and nothing outside it changed.
	got, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != diskSize {
		t.Fatalf("the image is %d bytes", len(got))
	}
	if magic := binary.LittleEndian.Uint16(got[partOff+1080:]); magic != 0xEF53 {
		t.Errorf("no ext4 superblock at the partition's offset: magic %#04x at byte %d", magic, partOff+1080)
	}
	if i := bytes.Index(got, []byte(hello+"\n")); i < partOff || i >= partEnd {
		t.Errorf("the guest's text is at byte %d of the image, want inside the partition [%d, %d)", i, partOff, partEnd)
	}
	if !bytes.Equal(got[:partOff], orig[:partOff]) {
		t.Error("the MBR or the gap before the partition changed")
	}
	if !bytes.Equal(got[partEnd:], orig[partEnd:]) {
		t.Error("bytes past the partition changed")
	}
	if debugfs, err := exec.LookPath("debugfs"); err == nil {
		part := filepath.Join(dir, "part.img")
		out := filepath.Join(dir, "data.out")
		if err := os.WriteFile(part, got[partOff:partEnd], 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(debugfs, "-R", "dump /data "+out, part).CombinedOutput(); err != nil {
			t.Errorf("debugfs: %v: %s", err, msg)
		} else if data, err := os.ReadFile(out); err != nil {
			t.Error(err)
		} else if sum := md5.Sum(data); hex.EncodeToString(sum[:]) != written {
			t.Errorf("the file in the image has MD5 %x, the guest wrote %s", sum, written)
		}
	} else {
		t.Logf("no debugfs on this host: the file's bytes in the image are not checked")
	}

	// Boot 2: power on again from the same image.
	read := "mount -t ext4 -r /dev/vda /mnt && echo HD-READ $(md5sum /mnt/data) && echo HD-HELLO $(cat /mnt/hello) && umount /mnt"
	vm = jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+read+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	start = time.Now()
	r = BootVMs(t, launch.Config{Mem: "512M", Timeout: 4 * time.Minute, AHCIDisks: disks}, vm)
	r.Expect(VMEnd("jeos") + "disk 0 is sda partition 1: ")
	r.Expect("[jeos] " + jeos.ReadyMarker)
	line = r.ExpectNext("[jeos] HD-READ ")
	if m := hdMD5RE.FindStringSubmatch(line); m == nil || m[2] != written {
		t.Errorf("read back after the power cycle: %q, want MD5 %s (as written)", line, written)
	}
	r.ExpectNext("[jeos] HD-HELLO " + hello)
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	t.Logf("boot 2 (%v): file MD5 %s written, read back after the power cycle", time.Since(start).Round(time.Second), written)
	for _, l := range r.Texts() {
		if strings.Contains(l, "EXT4-fs error") || strings.Contains(l, "I/O error") || strings.Contains(l, "ahci: 00:1f.2 port ") {
			t.Errorf("error line: %q", l)
		}
	}
}
