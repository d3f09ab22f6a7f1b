package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/cmd/juice/launch"
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
	r := Boot(t, launch.Config{Append: launch.SelftestArgs, ExtraArgs: extra})
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
