package tests

import (
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
// long as juice, not as long as one boot of the VM). The guest's boot
// command decides by the disk's first bytes: on the first boot it writes
// the marker, syncs and reboots; on the second it prints what it found
// and powers off.
func TestVirtioDiskSurvivesReboot(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, []byte(strings.Repeat("juice-original-\n", 256)), 0o644); err != nil {
		t.Fatal(err)
	}
	const mark = "juice-persist-4711"
	read := "dd if=/dev/vda bs=18 count=1 2>/dev/null"
	// No double quotes inside: the kernel's command-line quoting takes
	// them. Unquoted, the first boot's bytes ("juice-original-\nj") split
	// into two words and the test is false.
	exec := "if [ $(" + read + ") = " + mark + " ]; then echo FOUND-$(" + read + "); else echo " + mark + " > /dev/vda; sync; echo WROTE; reboot; fi"
	vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.exec="`+exec+`" `+jeos.PoweroffArg)
	vm.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{File: disk}}}
	r := BootVMs(t, launch.Config{Mem: "512M", Timeout: 6 * time.Minute}, vm)
	r.Expect("[jeos] WROTE")
	r.ExpectNext("juice: vm jeos: restarting (boot 2)")
	r.ExpectNext("[jeos] FOUND-" + mark)
	r.ExpectNext("juice: vm jeos: exited with status 0")
	r.ExpectExit(0)
}
