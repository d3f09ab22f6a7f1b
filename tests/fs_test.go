package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// fsMD5RE is the guest's `md5sum /mnt/data` after a label: the label and
// the file's MD5.
var fsMD5RE = regexp.MustCompile(`^\[jeos\] (FS-WRITTEN|FS-READ) ([0-9a-f]{32}) /mnt/data\s*$`)

// zeroMD5 is the MD5 of the file's size in zeros: what a file whose data
// never reached the disk would read back as.
const zeroMD5 = "b6d81b360a5672d80c27430f39153e2c" // 1 MiB of zeros

// writtenMD5 returns the MD5 a guest reported for the file it wrote, from
// line (re's second group, after label), failing the test if the line is
// not that or the file is all zeros.
func writtenMD5(t *testing.T, line string, re *regexp.Regexp, label string) string {
	t.Helper()
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("written: %q, want %s <md5> /mnt/data", line, label)
	}
	if m[2] == zeroMD5 {
		t.Fatalf("the file written is all zeros (%s): /dev/urandom gave nothing", m[2])
	}
	return m[2]
}

// TestVirtioFilesystemSurvivesReboot: an ext4 file system that the
// guest makes on its RAM-backed disk with Debian's mkfs.ext4, mounts,
// fills with a file of random bytes and a line of text, syncs and
// unmounts, is still there after the guest reboots: Debian's e2fsck
// finds it clean, it mounts, and the file reads back with the MD5 it had
// when written. The boot command goes by e2fsck's exit status: 8 (no
// file system) on the first boot, which makes one and reboots; 0 (clean)
// on the second, which reads it back and powers off.
func TestVirtioFilesystemSurvivesReboot(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	const hello = "juice-fs-4711"
	// No double quotes inside: the kernel's command-line quoting takes
	// them.
	write := "mkfs.ext4 -q /dev/vda && mount -t ext4 /dev/vda /mnt && " +
		"dd if=/dev/urandom of=/mnt/data bs=4096 count=256 2>/dev/null && echo " + hello + " > /mnt/hello && " +
		"echo FS-WRITTEN $(md5sum /mnt/data) && sync && umount /mnt && echo FS-SYNCED && reboot"
	read := "mount -t ext4 -r /dev/vda /mnt && echo FS-READ $(md5sum /mnt/data) && echo FS-HELLO $(cat /mnt/hello) && umount /mnt"
	exec := "e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1; s=$?; echo FS-FSCK status=$s; " +
		"if [ $s = 8 ]; then " + write + "; elif [ $s = 0 ]; then " + read + "; else cat /tmp/fsck.log; fi"
	vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+exec+`" `+jeos.PoweroffArg)
	vm.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Size: "32M"}}}
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 8 * time.Minute}, vm)

	// Boot 1: every module loaded (ext4 among them); no file system yet:
	// make one, write, sync, unmount.
	ready := r.Expect("[jeos] " + jeos.ReadyMarker)
	if n := len(img.Modules); !strings.Contains(ready, fmt.Sprintf(" modules=%d/%d ", n, n)) {
		t.Errorf("ready marker %q: want all %d modules loaded", ready, n)
	}
	r.ExpectNext("[jeos] FS-FSCK status=8")
	written := writtenMD5(t, r.ExpectNext("[jeos] FS-WRITTEN "), fsMD5RE, "FS-WRITTEN")
	r.ExpectNext("[jeos] FS-SYNCED")
	r.ExpectNext("juice: vm jeos: restarting (boot 2)")

	// Boot 2: e2fsck finds it clean; the file reads back the same.
	r.ExpectNext("[jeos] " + jeos.ReadyMarker)
	r.ExpectNext("[jeos] FS-FSCK status=0")
	line := r.ExpectNext("[jeos] FS-READ ")
	if m := fsMD5RE.FindStringSubmatch(line); m == nil || m[2] != written {
		t.Errorf("read back: %q, want MD5 %s (as written)", line, written)
	}
	r.ExpectNext("[jeos] FS-HELLO " + hello)
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.ExpectNext("juice: vm jeos: exited with status 0")
	r.ExpectExit(0)
	t.Logf("%s; file MD5 %s written, read back after the reboot", ready, written)
	for _, l := range r.Texts() {
		if strings.Contains(l, "EXT4-fs error") || strings.Contains(l, "JBD2: ") && strings.Contains(l, "error") {
			t.Errorf("the kernel reported a file-system error: %q", l)
		}
	}
}
