//go:build slow

package tests

import (
	"testing"

	"juice/cmd/juice/launch"
)

// The rest of the boot-media tests (see media_test.go): the hybrid ISO
// written to a USB stick, and DHCP naming the iPXE script, which
// chain-loads GRUB's network image.

func TestMediaISOStickBIOS(t *testing.T) { mediaBoot(t, launch.BootISOStickBIOS) }
func TestMediaISOStickEFI(t *testing.T)  { mediaBoot(t, launch.BootISOStickEFI) }
func TestMediaIPXEBIOS(t *testing.T)     { mediaBoot(t, launch.BootIPXEBIOS) }
func TestMediaIPXEEFI(t *testing.T)      { mediaBoot(t, launch.BootIPXEEFI) }
