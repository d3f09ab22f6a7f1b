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
	"regexp"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// hostDiskArgs returns the QEMU arguments attaching image as a virtio-blk
// disk at PCI slot addr (extra: more -device properties).
func hostDiskArgs(id, image string, addr int, extra string) []string {
	return []string{
		"-drive", fmt.Sprintf("file=%s,if=none,id=%s,format=raw", image, id),
		"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,addr=%d%s", id, addr, extra),
	}
}

// TestHostDisk boots juice on a machine with two virtio-blk disks, a
// modern-only one holding an MBR and a transitional one marked as the
// self-test's scratch disk, and checks that juice enumerates PCI, brings
// both disks up with the right capacities, reads the partition table,
// and that the pattern the self-test wrote and flushed to the scratch
// disk is in the image file once QEMU has exited (the data disk is left
// untouched).
func TestHostDisk(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	scratch := filepath.Join(dir, "scratch.img")
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
	if err := os.WriteFile(scratch, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var extra []string
	extra = append(extra, hostDiskArgs("hd0", data, 4, ",disable-legacy=on,serial=data-disk")...)
	extra = append(extra, hostDiskArgs("hd1", scratch, 5, ",serial=juice-scratch")...)
	// 64 MiB like the other self-test boots: at 256 MiB the self-test's GC
	// check (4x RAM allocated) sometimes runs juice out of memory (an open
	// problem of the kernel's memory accounting, not of the host disks).
	r := Boot(t, launch.Config{Mem: "64M", Append: launch.SelftestArgs, ExtraArgs: extra})
	r.Expect("pci: ")
	if l := r.Expect("pci: 00:00.0 "); l != "pci: 00:00.0 8086:29c0 q35 host bridge" {
		t.Errorf("host bridge line %q", l)
	}
	vda := r.Expect("pci: 00:04.0 1af4:1042 virtio-blk (modern) ")
	r.Expect("pci: 00:05.0 1af4:1001 virtio-blk (transitional) ")
	if !strings.Contains(vda, " mem64 pref ") || !strings.Contains(vda, " msix 2") {
		t.Errorf("virtio-blk line %q lacks its 64-bit BAR or MSI-X", vda)
	}
	if l := r.Expect(`hostdisk: vda 00:04.0 65536 sectors (32 MiB), block 512, write cache (flush), serial "data-disk"`); !strings.HasSuffix(l, "registers by MMIO") {
		t.Errorf("%q: want the registers mapped and reached by MMIO (kernel.MapDevice)", l)
	}
	r.Expect("hostdisk: vda: MBR with 1 partition")
	r.Expect(`hostdisk: vdb 00:05.0 16384 sectors (8 MiB), block 512, write cache (flush), serial "juice-scratch"`)
	r.Expect("hostdisk: vdb: no partition table")
	r.Expect("hostdisk: vdb: write, flush, read-back ok (96 KiB at 0x100000)")
	r.Expect("selftest: done in ")
	r.ExpectExit(0)
	for _, l := range r.Texts() {
		if strings.Contains(l, "FAILED") {
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
	after, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(after) != dataSum {
		t.Error("the data disk changed")
	}
}

// hdMD5RE is the guest's `md5sum /mnt/data` after a label.
var hdMD5RE = regexp.MustCompile(`^\[jeos\] (HD-WRITTEN|HD-READ) ([0-9a-f]{32}) /mnt/data\s*$`)

// virtio-blk request counts from QEMU's trace of one drive's device
// (events virtio_blk_handle_read, _handle_write, _req_complete).
type blkTrace struct{ reads, writes, completes int }

// flushes is the requests that were neither reads nor writes, less the
// one GET_ID juice's driver sends at boot: the FLUSHes (juice's driver
// sends nothing else).
func (b blkTrace) flushes() int { return b.completes - b.reads - b.writes - 1 }

func readBlkTrace(t *testing.T, path string) blkTrace {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("QEMU's trace: %v", err)
	}
	var b blkTrace
	for _, l := range strings.Split(string(data), "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 0:
		case f[0] == "virtio_blk_handle_read":
			b.reads++
		case f[0] == "virtio_blk_handle_write":
			b.writes++
		case f[0] == "virtio_blk_req_complete":
			b.completes++
		}
	}
	if b.completes == 0 {
		t.Fatalf("QEMU traced no virtio-blk request in %s (does this QEMU have the log trace backend?)", path)
	}
	return b
}

// TestHostDiskGuestPowerCycle: a guest disk backed by a partition of a
// host disk keeps what the guest flushed across a power cycle of the
// whole machine. The machine (QEMU) has a 64 MiB raw disk image with an
// MBR holding partition 1 (sectors 2048-116735, 56 MiB); the JeOS guest's
// disk is `host: "vda", partition: 1`. Boot 1: the guest makes an ext4
// file system with Debian's mkfs.ext4, writes a file of random bytes and
// a line of text, syncs, unmounts and powers off; juice ends and QEMU
// exits. The image file then holds the file system inside the partition
// (the ext4 superblock's magic at the partition's offset + 1080, the
// text in its data), the partition table and every byte outside the
// partition are as before, and QEMU saw the guest's flushes reach its
// drive. Boot 2, a new QEMU on the same image file: e2fsck finds the file
// system clean and the file reads back with the MD5 it was written with.
// Boot 1 also carries three VMs whose host-disk entries cannot be had (a
// disk the machine lacks, a partition its table lacks, a range overlapping
// the first VM's partition): each is refused with a message naming it,
// and the JeOS guest runs regardless.
func TestHostDiskGuestPowerCycle(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "host.img")
	const (
		diskSize  = 64 << 20
		partStart = 2048     // sectors
		partLen   = 56 << 11 // sectors: 56 MiB
		partOff   = partStart * 512
		partEnd   = partOff + partLen*512
		hello     = "juice-hostdisk-4711"
	)
	orig := make([]byte, diskSize)
	p := orig[446:]
	p[4] = 0x83
	binary.LittleEndian.PutUint32(p[8:], partStart)
	binary.LittleEndian.PutUint32(p[12:], partLen)
	orig[510], orig[511] = 0x55, 0xAA
	// Past the partition: a pattern that must stay.
	for i := partEnd; i < diskSize; i += 512 {
		copy(orig[i:], fmt.Sprintf("outside the partition, sector %d", i/512))
	}
	if err := os.WriteFile(image, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	drive := func(trace string) []string {
		return append(hostDiskArgs("hd0", image, 4, ",serial=juice-data"),
			"-trace", "enable=virtio_blk_handle_read", "-trace", "enable=virtio_blk_handle_write",
			"-trace", "enable=virtio_blk_req_complete", "-D", trace)
	}
	partDisk := &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: "vda", Partition: new(1)}}}

	// Boot 1: make, write, sync, power off.
	write := "mkfs.ext4 -q /dev/vda && mount -t ext4 /dev/vda /mnt && " +
		"dd if=/dev/urandom of=/mnt/data bs=4096 count=256 2>/dev/null && echo " + hello + " > /mnt/hello && " +
		"echo HD-WRITTEN $(md5sum /mnt/data) && sync && umount /mnt && echo HD-SYNCED"
	vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+write+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	refused := func(name string, d bundle.ManifestDisk) launch.VMSpec {
		return launch.VMSpec{Name: name, Kernel: img.Vmlinux, Memory: "16M", Devices: &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{d}}}
	}
	trace1 := filepath.Join(dir, "trace1.log")
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 8 * time.Minute, ExtraArgs: drive(trace1)}, vm,
		refused("ghost", bundle.ManifestDisk{Host: "vdz"}),
		refused("nopart", bundle.ManifestDisk{Host: "vda", Partition: new(2)}),
		refused("thief", bundle.ManifestDisk{Host: "vda", Offset: "32M", Size: "1M"}))
	r.Expect(`hostdisk: vda 00:04.0 131072 sectors (64 MiB), block 512, write cache (flush), serial "juice-data"`)
	r.ExpectNext("hostdisk: vda: MBR with 1 partition")
	r.ExpectNext("hostdisk: vda1: sectors 2048-116735 (56 MiB), type 0x83")
	r.Expect(VMEnd("jeos") + "disk 0 is vda partition 1: sectors 2048-116735 (56 MiB)")
	r.Expect(VMEnd("ghost") + "disk 0: no host disk vdz (host disks: vda)")
	r.Expect(VMEnd("nopart") + "disk 0: host disk vda has no partition 2 (its MBR has partitions 1)")
	r.Expect(VMEnd("thief") + "disk 0 (vda bytes 0x2000000-0x20fffff) overlaps vm jeos's disk 0 (vda partition 1)")
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
	for _, name := range []string{"ghost", "nopart", "thief"} {
		for _, l := range r.Find(VMEnd(name)) {
			if strings.Contains(l, "starting") {
				t.Errorf("refused VM %s started: %q", name, l)
			}
		}
	}
	for _, l := range r.Find(VMEnd("jeos")) {
		if strings.Contains(l, "heap allocations") || strings.Contains(l, "exits by reason") {
			t.Logf("boot 1: %s", l)
		}
	}
	tr := readBlkTrace(t, trace1)
	t.Logf("boot 1: QEMU's drive served %d reads, %d writes, %d flushes", tr.reads, tr.writes, tr.flushes())
	if tr.writes == 0 || tr.flushes() < 1 {
		t.Errorf("the guest's writes and flushes did not reach QEMU's drive: %+v", tr)
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
	// With e2fsprogs on the host, the file itself, read from the image.
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
	read := "e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1; echo HD-FSCK status=$?; " +
		"mount -t ext4 -r /dev/vda /mnt && echo HD-READ $(md5sum /mnt/data) && echo HD-HELLO $(cat /mnt/hello) && umount /mnt"
	vm = jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+read+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	trace2 := filepath.Join(dir, "trace2.log")
	r = BootVMs(t, launch.Config{Mem: "512M", Timeout: 8 * time.Minute, ExtraArgs: drive(trace2)}, vm)
	r.Expect(VMEnd("jeos") + "disk 0 is vda partition 1: ")
	r.Expect("[jeos] " + jeos.ReadyMarker)
	r.ExpectNext("[jeos] HD-FSCK status=0")
	line = r.ExpectNext("[jeos] HD-READ ")
	if m := hdMD5RE.FindStringSubmatch(line); m == nil || m[2] != written {
		t.Errorf("read back after the power cycle: %q, want MD5 %s (as written)", line, written)
	}
	r.ExpectNext("[jeos] HD-HELLO " + hello)
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	tr = readBlkTrace(t, trace2)
	t.Logf("boot 2: QEMU's drive served %d reads, %d writes, %d flushes; file MD5 %s written, read back after the power cycle", tr.reads, tr.writes, tr.flushes(), written)
	for _, l := range r.Texts() {
		if strings.Contains(l, "EXT4-fs error") || strings.Contains(l, "I/O error") {
			t.Errorf("the guest kernel reported an error: %q", l)
		}
	}
}
