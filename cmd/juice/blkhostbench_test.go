package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// TestBlkHostBenchDisks: the host-disk runs of `juice bench --blk` give
// the guest the host disk juice names for each back-end: vda on a
// virtio-blk-pci disk, sda on the AHCI controller's port 0, both over
// the same-sized raw file.
func TestBlkHostBenchDisks(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := launch.VMSpec{Name: "jeos", Kernel: kernel, Memory: "64M"}
	c := jeosBenchConfig{juice: "juice.elf", mem: "512M"}
	for _, want := range []struct {
		ahci       bool
		host, args string
	}{
		{false, "vda", "virtio-blk-pci,drive=hd0"},
		{true, "sda", "ide-hd,drive=ahci0,bus=ide.0"},
	} {
		newBench := newBlkHostBench
		if want.ahci {
			newBench = newBlkAHCIBench
		}
		h, err := newBench(dir, vm, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(h.raw); err != nil || st.Size() != 1<<20 {
			t.Errorf("%s: image %v", want.host, err)
		}
		arc, err := os.ReadFile(h.bundle)
		if err != nil {
			t.Fatal(err)
		}
		b, errs := bundle.Parse(arc)
		if len(errs) != 0 || len(b.VMs) != 1 || len(b.VMs[0].Devices.Disks) != 1 || b.VMs[0].Devices.Disks[0].Host != want.host {
			t.Errorf("%s: bundle %+v, %v", want.host, b, errs)
		}
		args, err := launch.QEMUArgs(h.config(c), launch.Media{})
		if err != nil {
			t.Fatal(err)
		}
		if line := strings.Join(args, " "); !strings.Contains(line, want.args) || !strings.Contains(line, h.raw) {
			t.Errorf("%s: QEMU args %s", want.host, line)
		}
	}
	if s := blkAHCISummary(20, 16, 18, 10, 8, 9); s != "  juice's back-ends: read 18.0 MB/s on the AHCI host disk vs 20.0 on the RAM disk (0.90x), write 9.0 vs 10.0 MB/s (0.90x); against the virtio host disk: read 1.12x, write 1.12x (guest-timed medians)" {
		t.Errorf("summary %q", s)
	}
}
