package tests

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// The boot-media tests boot juice with the JeOS guest (Debian's bzImage,
// the u-root initramfs) from each medium `juice image` builds, under
// SeaBIOS and under OVMF: the hybrid ISO as a CD and as a USB stick, the
// USB disk image, and the PXE tree over QEMU's built-in DHCP and TFTP
// server, both with DHCP naming GRUB's network image and naming the iPXE
// script. Each boot must reach the guest's user-space marker, and juice
// must end with the guest's status 0 when it powers off.

// mediaBootTimeout bounds one boot: OVMF and PXE add seconds, and the
// bzImage decompresses itself nested under TCG.
const mediaBootTimeout = 6 * time.Minute

// requireMedia skips (or fails, see RequireEmulatorsEnv) a boot from b
// when QEMU, the tools that build b's medium or OVMF are missing.
func requireMedia(t *testing.T, b launch.Boot) {
	t.Helper()
	if _, err := exec.LookPath(launch.DefaultQEMU); err != nil {
		missingTool(t, launch.DefaultQEMU+" not found")
	}
	if missing := b.MissingTools(); len(missing) > 0 {
		missingTool(t, strings.Join(missing, ", ")+" not found")
	}
	if b.UEFI() {
		if _, err := launch.FindFirmware(); err != nil {
			missingTool(t, err.Error())
		}
	}
}

// mediaCPUs is the machine's CPU count. One: the boot paths are what is
// tested here (the SMP tests cover several CPUs), and QEMU's TCG on a
// second busy CPU would only slow the runs down. juice reads the count
// from the MADT, and the absence of "acpi: " complaints shows it found
// the ACPI tables through the RSDP the loader passed.
const mediaCPUs = 1

// mediaBoot boots the JeOS guest under juice from boot path b and checks
// that the guest reaches user space and that juice exits with its status.
// juice must also have found the ACPI tables through the RSDP the loader
// passed on: under OVMF they are not in the BIOS area, so the multiboot2
// RSDP tag is the only way to them.
func mediaBoot(t *testing.T, b launch.Boot) {
	requireMedia(t, b)
	t.Parallel()
	img := JeOS(t)
	r := BootVMs(t, launch.Config{Boot: b, Mem: "512M", CPUs: mediaCPUs, Timeout: mediaBootTimeout},
		jeosVM(img, img.Kernel, "console=ttyS0 "+jeos.PoweroffArg))
	if b.Medium() == launch.MediumIPXE {
		// The script ran and chose GRUB's image for this firmware.
		platform := "pcbios"
		if b.UEFI() {
			platform = "efi"
		}
		r.ExpectMatch("the iPXE script's line", contains("juice.ipxe: platform "+platform+", chain-loading GRUB"))
	}
	r.ExpectMatch("GRUB starting juice's entry", contains("Booting `"+launch.GRUBEntry+"'"))
	r.Expect("juice: booted by multiboot2")
	mem := r.Expect("memory: ")
	if want := fmt.Sprintf("(of %d in the MADT)", mediaCPUs); !strings.Contains(mem, want) {
		t.Errorf("juice did not read the MADT: %q lacks %q", mem, want)
	}
	r.ExpectMatch("the guest's ready marker", contains("[jeos] "+jeos.ReadyMarker))
	r.Expect("juice: vm jeos: exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)
	for _, l := range r.Texts() {
		if strings.HasPrefix(l, "acpi: ") {
			t.Errorf("juice's ACPI set-up complained: %q", l)
		}
	}
}

// The default suite boots each medium under each firmware; the ISO as a
// USB stick and the iPXE script are in media_slow_test.go (-tags slow).
// The launch package's TestMediaBootPaths boots all of them with a test
// kernel in seconds.

func TestMediaISOBIOS(t *testing.T) { mediaBoot(t, launch.BootISOBIOS) }
func TestMediaISOEFI(t *testing.T)  { mediaBoot(t, launch.BootISOEFI) }
func TestMediaUSBBIOS(t *testing.T) { mediaBoot(t, launch.BootUSBBIOS) }
func TestMediaUSBEFI(t *testing.T)  { mediaBoot(t, launch.BootUSBEFI) }
func TestMediaPXEBIOS(t *testing.T) { mediaBoot(t, launch.BootPXEBIOS) }
func TestMediaPXEEFI(t *testing.T)  { mediaBoot(t, launch.BootPXEEFI) }
