//go:build slow

package tests

import (
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// TestJeOSBochs: Debian's kernel (the PVH vmlinux: Bochs would spend
// minutes in the bzImage's XZ decompression) with the JeOS initramfs
// reaches user space under juice on VT-x with EPT (Bochs), and its
// poweroff ends the VM with status 0. Bochs's serial port is output-only
// here, so the guest powers itself off after its marker (jeos.poweroff).
// About 2 minutes; run by `make test-slow`.
func TestJeOSBochs(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skipf("no vmlinux in the JeOS image: %v", img.Notes)
	}
	vm := jeosVM(img, img.Vmlinux, "console=ttyS0 "+jeos.PoweroffArg)
	r := BootVMs(t, launch.Config{Emulator: launch.EmulatorBochs, Mem: "768M", Timeout: 20 * time.Minute}, vm)
	r.Expect("juice: vm jeos: starting")
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	r.ExpectNext("juice: vm jeos: exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)
}
