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
type blkHostBench struct {
	raw    string // the host disk's image
	bundle string // the bundle whose guest's disk is vda
}

// newBlkHostBench writes the host disk's image (size bytes) and the
// bundle for vm (whose Devices it replaces) under dir.
func newBlkHostBench(dir string, vm launch.VMSpec, size int) (*blkHostBench, error) {
	sub := filepath.Join(dir, "hostdisk")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	h := &blkHostBench{raw: filepath.Join(sub, "host.raw")}
	if err := os.WriteFile(h.raw, make([]byte, size), 0o644); err != nil {
		return nil, err
	}
	vm.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Host: "vda"}}}
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
	return launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: h.bundle, Timeout: c.timeout,
		ExtraArgs: []string{"-drive", "if=none,id=hd0,format=raw,file=" + h.raw, "-device", "virtio-blk-pci,drive=hd0"}}
}

// blkHostSummary is the medians line comparing the two back-ends.
func blkHostSummary(ramRead, hostRead, ramWrite, hostWrite float64) string {
	return fmt.Sprintf("  juice's back-ends: read %.1f MB/s on the host disk vs %.1f on the RAM disk (%.2fx), write %.1f vs %.1f MB/s (%.2fx) (guest-timed medians)",
		hostRead, ramRead, hostRead/ramRead, hostWrite, ramWrite, hostWrite/ramWrite)
}
