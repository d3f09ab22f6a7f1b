package tests

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The virtio tests boot the JeOS guest with paravirtual devices: its init
// loads Debian's virtio modules and names, in its marker, the devices the
// drivers made of what juice offers.

// jeosDevices is the JeOS VM with every kind of device: a disk image
// from the bundle, a RAM disk, a network interface, an entropy source and
// a console, over transport ("pci" or "mmio").
func jeosDevices(t *testing.T, img jeos.Image, transport string) launch.VMSpec {
	disk := filepath.Join(t.TempDir(), "disk.img")
	data := make([]byte, 1<<20)
	copy(data, "juice disk image\n")
	if err := os.WriteFile(disk, data, 0o644); err != nil {
		t.Fatal(err)
	}
	vm := jeosVM(img, img.Vmlinux, "console=ttyS0 "+jeos.PoweroffArg)
	vm.Devices = &bundle.ManifestDevices{
		Transport: transport,
		Disks:     []bundle.ManifestDisk{{File: disk}, {Size: "16M"}},
		Nets:      []bundle.ManifestNet{{Network: "lan"}},
		RNG:       true,
		Console:   true,
	}
	return vm
}

func testDevices(t *testing.T, transport string, want []string) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	vm := jeosDevices(t, img, transport)
	if transport == "mmio" {
		vm.Devices.Console = false // four virtio-mmio devices at most
	}
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 6 * time.Minute}, vm)
	line := r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	_, devs, _ := strings.Cut(line, " devices=")
	got := strings.Split(strings.TrimSpace(devs), ",")
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w || strings.HasSuffix(w, "*") && strings.HasPrefix(g, strings.TrimSuffix(w, "*"))
		}
		if !found {
			t.Errorf("device %s missing: the guest found %q", w, devs)
		}
	}
	r.ExpectNext("juice: vm jeos: exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)
}

// TestVirtioPCI: Debian's stock kernel finds two disks, a network
// interface, a console port and the entropy source on juice's PCI bus
// (virtio-pci with MSI-X).
func TestVirtioPCI(t *testing.T) {
	testDevices(t, "pci", []string{"vda", "vdb", "eth0", "vport*", "hwrng:virtio_rng.0"})
}

// TestVirtioMMIO: the same devices (without the console: four virtio-mmio
// slots) found through the DSDT's virtio-mmio nodes.
func TestVirtioMMIO(t *testing.T) {
	testDevices(t, "mmio", []string{"vda", "vdb", "eth0", "hwrng:virtio_rng.0"})
}

// TestVirtioDiskSurvivesReboot: what the guest writes to its disk and
// syncs is still there after it reboots (the disk's back-end lives as
// long as juice, not as long as one boot of the VM).
func TestVirtioDiskSurvivesReboot(t *testing.T) {
	img := JeOS(t)
	// A 4 KiB disk image of printable lines (so that `cat /dev/vda` prints
	// text, not NULs): the guest's writes go to its copy-on-write layer.
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, []byte(strings.Repeat("juice-original-\n", 256)), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := jeosVM(img, img.Kernel, "console=ttyS0")
	vm.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{File: disk}}}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	r := BootVMs(t, launch.Config{Mem: "512M", Stdin: pr, Timeout: 6 * time.Minute}, vm)
	in := console{t: t, w: pw}
	r.ExpectMatch("the guest's ready marker with its disk", contains("devices=vda"))
	shellCommand(t, r, in)
	shellRun(t, r, in, "echo juice-persist-4711 > /dev/vda; sync; ", 90*time.Second, 10*time.Second)
	shellExpect(t, r, in, "reboot", "juice: vm jeos: restarting (boot 2)", 90*time.Second, 15*time.Second)
	l, err := r.M.Console.Wait(r.ctx, r.next, contains("devices=vda"))
	if err != nil {
		r.fail("the ready marker after the reboot", err)
	}
	r.next = l.Index + 1
	shellCommand(t, r, in)
	shellExpect(t, r, in, "cat /dev/vda", "[jeos] juice-persist-4711", 90*time.Second, 15*time.Second)
	shellExpect(t, r, in, "poweroff", "juice: vm jeos: exited with status 0", 90*time.Second, 15*time.Second)
}
