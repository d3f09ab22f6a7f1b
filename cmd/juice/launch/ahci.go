package launch

import (
	"fmt"
	"strconv"
	"strings"
)

// AHCIPorts is how many ports the q35 machine's AHCI controller has
// (QEMU's buses ide.0 to ide.5).
const AHCIPorts = 6

// cdPort is the AHCI port QEMU puts -cdrom on (drive index 2).
const cdPort = 2

// AHCIDisk is a raw disk image on a port of the q35 machine's AHCI
// controller: QEMU's `-drive if=none,...,format=raw` and `-device
// ide-hd,bus=ide.PORT`, a SATA disk that juice drives with its AHCI
// driver.
type AHCIDisk struct {
	// Path is the image file, raw.
	Path string
	// Port is the controller port, 0 to 5 (port 2 is the CD's on the
	// ISO boot paths).
	Port int
	// Serial is the serial number IDENTIFY DEVICE reports (at most 20
	// characters); empty means QEMU's default (QM0000N).
	Serial string
	// ReadOnly opens the image read-only.
	ReadOnly bool
}

// ahciArgs returns the QEMU options attaching disks, checked: a port
// each, in range, not the CD's when b boots from one.
func ahciArgs(disks []AHCIDisk, b Boot) ([]string, error) {
	var used [AHCIPorts]bool
	var args []string
	for _, d := range disks {
		switch {
		case d.Path == "":
			return nil, fmt.Errorf("AHCI disk on port %d: no image", d.Port)
		case d.Port < 0 || d.Port >= AHCIPorts:
			return nil, fmt.Errorf("AHCI disk %s: port %d is not 0 to %d", d.Path, d.Port, AHCIPorts-1)
		case used[d.Port]:
			return nil, fmt.Errorf("AHCI disk %s: port %d has another disk", d.Path, d.Port)
		case d.Port == cdPort && b.Medium() == MediumCD:
			return nil, fmt.Errorf("AHCI disk %s: port %d holds the boot CD (--boot %s)", d.Path, d.Port, b)
		case len(d.Serial) > 20 || strings.ContainsAny(d.Serial, ",="):
			return nil, fmt.Errorf("AHCI disk %s: bad serial %q (at most 20 characters, no ',' or '=')", d.Path, d.Serial)
		}
		used[d.Port] = true
		id := "ahci" + strconv.Itoa(d.Port)
		drive := "if=none,id=" + id + ",format=raw,file=" + qemuOptEscape(d.Path)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		dev := "ide-hd,drive=" + id + ",bus=ide." + strconv.Itoa(d.Port)
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		args = append(args, "-drive", drive, "-device", dev)
	}
	return args, nil
}
