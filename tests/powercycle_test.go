package tests

import (
	"bytes"
	"crypto/md5"
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

// powerCycle describes one host-disk power-cycle test (guestPowerCycle):
// a raw image of diskSize bytes with an MBR whose partition 1 starts at
// sector 2048 and is partLen sectors long, attached to QEMU by machine,
// and given to the JeOS guest as `host: host, partition: 1`.
type powerCycle struct {
	host     string // the host disk's name in juice: "vda", "sda"
	diskSize int
	partLen  int // sectors
	hello    string
	fsck     bool // boot 2 runs e2fsck -fn first and expects status 0
	// machine returns boot's launch configuration (1 or 2): the disk
	// attached at image, QEMU's trace of its commands to trace.
	machine func(boot int, image, trace string) launch.Config
	// others are boot 1's extra VMs (each to be refused); boot1 checks
	// boot 1's driver lines and refusals before the guest's output.
	others []launch.VMSpec
	boot1  func(r *Run)
	// commands checks QEMU's trace of boot's disk commands.
	commands func(t *testing.T, boot int, trace string)
	// errorLine reports a console line that shows a driver or guest
	// error (besides the guest kernel's EXT4 and I/O errors).
	errorLine func(l string) bool
}

// guestPowerCycle: boot 1, the guest makes an ext4 file system on its
// disk (a partition of a host disk) with Debian's mkfs.ext4, writes a
// file of random bytes and a line of text, syncs, unmounts and powers
// off; juice ends and QEMU exits. The image file then holds the file
// system inside the partition (the ext4 superblock's magic at the
// partition's offset + 1080, the text, the file's bytes through debugfs
// when the host has it), and the partition table and every byte outside
// the partition are as before. Boot 2, a new QEMU on the same image: the
// file reads back with the MD5 it was written with (after e2fsck finds
// the file system clean, with fsck).
func guestPowerCycle(t *testing.T, c powerCycle) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	dir := t.TempDir()
	image := filepath.Join(dir, c.host+".img")
	const partStart = 2048 // sectors
	partOff := partStart * 512
	partEnd := partOff + c.partLen*512
	orig := make([]byte, c.diskSize)
	p := orig[446:]
	p[4] = 0x83
	binary.LittleEndian.PutUint32(p[8:], partStart)
	binary.LittleEndian.PutUint32(p[12:], uint32(c.partLen))
	orig[510], orig[511] = 0x55, 0xAA
	// Past the partition: a pattern that must stay.
	for i := partEnd; i < c.diskSize; i += 512 {
		copy(orig[i:], fmt.Sprintf("outside the partition, sector %d", i/512))
	}
	if err := os.WriteFile(image, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	partDisk := &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: c.host, Partition: new(1)}}}
	errorLine := func(l string) bool {
		return strings.Contains(l, "EXT4-fs error") || strings.Contains(l, "I/O error") || (c.errorLine != nil && c.errorLine(l))
	}

	// Boot 1: make, write, sync, power off.
	write := "mkfs.ext4 -q /dev/vda && mount -t ext4 /dev/vda /mnt && " +
		"dd if=/dev/urandom of=/mnt/data bs=4096 count=256 2>/dev/null && echo " + c.hello + " > /mnt/hello && " +
		"echo HD-WRITTEN $(md5sum /mnt/data) && sync && umount /mnt && echo HD-SYNCED"
	vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+write+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	trace1 := filepath.Join(dir, "trace1.log")
	start := time.Now()
	r := BootVMs(t, c.machine(1, image, trace1), append([]launch.VMSpec{vm}, c.others...)...)
	c.boot1(r)
	r.Expect("[jeos] " + jeos.ReadyMarker)
	written := writtenMD5(t, r.ExpectNext("[jeos] HD-WRITTEN "), hdMD5RE, "HD-WRITTEN")
	r.ExpectNext("[jeos] HD-SYNCED")
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	for _, o := range c.others {
		for _, l := range r.Find(VMEnd(o.Name)) {
			if strings.Contains(l, "starting") {
				t.Errorf("refused VM %s started: %q", o.Name, l)
			}
		}
	}
	for _, l := range r.Find(VMEnd("jeos")) {
		if strings.Contains(l, "heap allocations") || strings.Contains(l, "exits by reason") {
			t.Logf("boot 1: %s", l)
		}
	}
	for _, l := range r.Texts() {
		if errorLine(l) {
			t.Errorf("boot 1: error line: %q", l)
		}
	}
	t.Logf("boot 1 took %v", time.Since(start).Round(time.Second))
	c.commands(t, 1, trace1)

	// The machine is off: the image file holds the file system inside
	// the partition, and nothing outside it changed.
	got, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != c.diskSize {
		t.Fatalf("the image is %d bytes", len(got))
	}
	if magic := binary.LittleEndian.Uint16(got[partOff+1080:]); magic != 0xEF53 {
		t.Errorf("no ext4 superblock at the partition's offset: magic %#04x at byte %d", magic, partOff+1080)
	}
	if i := bytes.Index(got, []byte(c.hello+"\n")); i < partOff || i >= partEnd {
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
	read := "mount -t ext4 -r /dev/vda /mnt && echo HD-READ $(md5sum /mnt/data) && echo HD-HELLO $(cat /mnt/hello) && umount /mnt"
	if c.fsck {
		read = "e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1; echo HD-FSCK status=$?; " + read
	}
	vm = jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+read+`" `+jeos.PoweroffArg)
	vm.Devices = partDisk
	trace2 := filepath.Join(dir, "trace2.log")
	start = time.Now()
	r = BootVMs(t, c.machine(2, image, trace2), vm)
	r.Expect(VMEnd("jeos") + "disk 0 is " + c.host + " partition 1: ")
	r.Expect("[jeos] " + jeos.ReadyMarker)
	if c.fsck {
		r.ExpectNext("[jeos] HD-FSCK status=0")
	}
	line := r.ExpectNext("[jeos] HD-READ ")
	if m := hdMD5RE.FindStringSubmatch(line); m == nil || m[2] != written {
		t.Errorf("read back after the power cycle: %q, want MD5 %s (as written)", line, written)
	}
	r.ExpectNext("[jeos] HD-HELLO " + c.hello)
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	t.Logf("boot 2 (%v): file MD5 %s written, read back after the power cycle", time.Since(start).Round(time.Second), written)
	c.commands(t, 2, trace2)
	for _, l := range r.Texts() {
		if errorLine(l) {
			t.Errorf("boot 2: error line: %q", l)
		}
	}
}
