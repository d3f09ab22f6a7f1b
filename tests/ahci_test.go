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
	"time"

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
	disks := []launch.AHCIDisk{{Port: 0, Serial: "juice-sata"}}
	guestPowerCycle(t, powerCycle{
		host: "sda", diskSize: 48 << 20, partLen: 40 << 11, hello: "juice-ahci-2718",
		machine: func(boot int, image, trace string) launch.Config {
			disks[0].Path = image
			return launch.Config{Mem: "512M", Timeout: 4 * time.Minute, AHCIDisks: disks, ExtraArgs: ataTraceArgs(trace)}
		},
		others: []launch.VMSpec{{Name: "thief", Kernel: JeOS(t).Vmlinux, Memory: "16M",
			Devices: &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: "sda", Offset: "8M", Size: "1M"}}}}},
		boot1: func(r *Run) {
			r.Expect(`hostdisk: sda 00:1f.2 port 0 98304 sectors (48 MiB), block 512, write cache (flush), serial "juice-sata"`)
			r.ExpectNext("hostdisk: sda: MBR with 1 partition")
			r.ExpectNext("hostdisk: sda1: sectors 2048-83967 (40 MiB), type 0x83")
			r.Expect(VMEnd("jeos") + "disk 0 is sda partition 1: sectors 2048-83967 (40 MiB)")
			r.Expect(VMEnd("thief") + "disk 0 (sda bytes 0x800000-0x8fffff) overlaps vm jeos's disk 0 (sda partition 1)")
		},
		commands: func(t *testing.T, boot int, trace string) {
			tr := readATATrace(t, trace)
			t.Logf("boot %d: QEMU's AHCI drive executed READ DMA EXT %d, WRITE DMA EXT %d, FLUSH CACHE EXT %d times",
				boot, tr[ataReadDMAExt], tr[ataWriteDMAExt], tr[ataFlushExt])
			if boot == 1 && (tr[ataWriteDMAExt] == 0 || tr[ataFlushExt] == 0) {
				t.Errorf("the guest's writes and flushes did not reach QEMU's AHCI drive: %v", tr)
			}
		},
		errorLine: func(l string) bool { return strings.Contains(l, "ahci: 00:1f.2 port ") },
	})
}
