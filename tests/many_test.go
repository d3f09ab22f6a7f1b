//go:build slow

package tests

import (
	"fmt"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// TestEightJeOSVMs: eight JeOS VMs in one bundle boot to user space
// together on juice's one CPU, each prints its own ready marker and
// powers off with status 0, and juice exits with the first one's status.
// (About three minutes under QEMU TCG: make test-slow. At 96 MiB each the
// guests run out of memory unpacking the initramfs and panic, which
// juice reports per VM.)
func TestEightJeOSVMs(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	var vms []launch.VMSpec
	for i := 0; i < 8; i++ {
		vm := jeosVM(img, kernel, "console=ttyS0 "+jeos.PoweroffArg)
		vm.Name, vm.Memory = fmt.Sprintf("vm%d", i), "160M"
		vms = append(vms, vm)
	}
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "1600M", Timeout: 12 * time.Minute}, vms...)
	for _, vm := range vms {
		r.ExpectMatch(vm.Name+"'s ready marker", contains("["+vm.Name+"] "+jeos.ReadyMarker))
	}
	for _, vm := range vms {
		r.Expect(VMEnd(vm.Name) + "exited with status 0: guest powered off (ACPI S5)")
	}
	r.ExpectExit(0)
	t.Logf("eight JeOS VMs booted and powered off in %v", time.Since(start).Round(time.Second))
}
