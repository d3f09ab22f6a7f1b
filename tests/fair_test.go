package tests

import (
	"io"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// TestSpinningVMDoesNotStarve: a VM whose vCPU computes forever with
// interrupts off (the hog guest: it never exits by itself) shares juice's
// CPU with a JeOS VM, which still boots to user space and powers off;
// juice's command line then stops the hog, and juice exits with the JeOS
// VM's status 0.
func TestSpinningVMDoesNotStarve(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	vm := jeosVM(img, kernel, "console=ttyS0 "+jeos.PoweroffArg)
	vm.Memory = "192M"
	r := BootVMs(t, launch.Config{Mem: "320M", Stdin: pr, Timeout: 5 * time.Minute},
		vm, launch.VMSpec{Name: "hog", Kernel: Guest(t, "hog")})
	r.Expect(GuestLine("hog", "hog start"))
	r.ExpectMatch("the JeOS guest's ready marker beside the hog", contains("[jeos] "+jeos.ReadyMarker))
	r.Expect(VMEnd("jeos") + "exited with status 0: guest powered off (ACPI S5)")
	if _, err := io.WriteString(pw, "\x1c:stop hog\r"); err != nil {
		t.Fatal(err)
	}
	r.Expect(VMEnd("hog") + "stopped (killed): stopped from juice's console")
	r.ExpectExit(0)
}
