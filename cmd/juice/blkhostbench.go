package main

import (
	"fmt"
	"os"
	"path/filepath"

	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// blkHostBench is the host-disk variant of `juice bench --blk`: the same
// JeOS guest and command, but its disk is juice's host-disk back-end
// (the manifest's `host: "vda"`): a raw file that QEMU gives juice as a
// virtio-blk-pci disk, which juice drives and maps the guest's disk
// onto. Set beside the RAM-disk run, it prices the host-disk path: every
// guest request waits for QEMU's disk through juice's polled driver.
// With ahci set the raw file is a SATA disk on the q35 machine's AHCI
// controller instead (`host: "sda"`, juice's AHCI driver).
type blkHostBench struct {
	raw    string // the host disk's image
	bundle string // the bundle whose guest's disk is the host disk
	ahci   bool
}

// newBlkHostBench writes the host disk's image (size bytes) and the
// bundle for vm (whose Devices it replaces) under dir.
func newBlkHostBench(dir string, vm launch.VMSpec, size int) (*blkHostBench, error) {
	return newHostBench(filepath.Join(dir, "hostdisk"), vm, size, false)
}

// newBlkAHCIBench is newBlkHostBench with the host disk on the AHCI
// controller.
func newBlkAHCIBench(dir string, vm launch.VMSpec, size int) (*blkHostBench, error) {
	return newHostBench(filepath.Join(dir, "ahcidisk"), vm, size, true)
}

// newHostBench writes the image and the bundle under sub.
func newHostBench(sub string, vm launch.VMSpec, size int, ahci bool) (*blkHostBench, error) {
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	h := &blkHostBench{raw: filepath.Join(sub, "host.raw"), ahci: ahci}
	if err := os.WriteFile(h.raw, make([]byte, size), 0o644); err != nil {
		return nil, err
	}
	host := "vda"
	if ahci {
		host = "sda"
	}
	vm.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: host}}}
	b, err := launch.BuildBundle([]launch.VMSpec{vm})
	if err != nil {
		return nil, err
	}
	if h.bundle, err = launch.WriteBundle(sub, b); err != nil {
		return nil, err
	}
	return h, nil
}

// config is juice's run with the host disk attached.
func (h *blkHostBench) config(c jeosBenchConfig) launch.Config {
	if h.ahci {
		return launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: h.bundle, Timeout: c.timeout,
			AHCIDisks: []launch.AHCIDisk{{Path: h.raw, Port: 0}}}
	}
	return launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: h.bundle, Timeout: c.timeout,
		ExtraArgs: []string{"-drive", "if=none,id=hd0,format=raw,file=" + h.raw, "-device", "virtio-blk-pci,drive=hd0"}}
}

// blkHostSummary is the medians line comparing the two back-ends.
func blkHostSummary(ramRead, hostRead, ramWrite, hostWrite float64) string {
	return fmt.Sprintf("  juice's back-ends: read %.1f MB/s on the virtio host disk vs %.1f on the RAM disk (%.2fx), write %.1f vs %.1f MB/s (%.2fx) (guest-timed medians)",
		hostRead, ramRead, hostRead/ramRead, hostWrite, ramWrite, hostWrite/ramWrite)
}

// blkAHCISummary is the medians line of the AHCI host disk against the
// RAM disk and the virtio host disk (0 when that run failed).
func blkAHCISummary(ramRead, virtRead, ahciRead, ramWrite, virtWrite, ahciWrite float64) string {
	line := fmt.Sprintf("  juice's back-ends: read %.1f MB/s on the AHCI host disk vs %.1f on the RAM disk (%.2fx), write %.1f vs %.1f MB/s (%.2fx)",
		ahciRead, ramRead, ahciRead/ramRead, ahciWrite, ramWrite, ahciWrite/ramWrite)
	if virtRead > 0 && virtWrite > 0 {
		line += fmt.Sprintf("; against the virtio host disk: read %.2fx, write %.2fx", ahciRead/virtRead, ahciWrite/virtWrite)
	}
	return line + " (guest-timed medians)"
}
