package launch

import (
	"errors"
	"os"
	"strings"
)

// Firmware is a UEFI firmware build for QEMU (OVMF).
type Firmware struct {
	// Code is the firmware image: a pflash code volume when Vars is set,
	// otherwise a combined image passed with -bios.
	Code string
	// Vars is the template of the variable store; each run uses a copy.
	Vars string
}

// FirmwareCandidates lists the OVMF builds FindFirmware looks for, best
// first (Debian 12's ovmf package paths). The 4 MiB split build boots the
// GRUB ISO under q35 and TCG without SMM.
var FirmwareCandidates = []Firmware{
	{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{Code: "/usr/share/OVMF/OVMF_CODE.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd"},
	{Code: "/usr/share/ovmf/OVMF.fd"},
	{Code: "/usr/share/qemu/OVMF.fd"},
}

// ErrNoFirmware is returned by FindFirmware when no OVMF build is
// installed.
var ErrNoFirmware = errors.New("no UEFI firmware (OVMF) found: install the ovmf package (`make setup`)")

// FindFirmware returns the first of FirmwareCandidates whose files exist.
func FindFirmware() (Firmware, error) {
	for _, f := range FirmwareCandidates {
		if !isFile(f.Code) || (f.Vars != "" && !isFile(f.Vars)) {
			continue
		}
		return f, nil
	}
	return Firmware{}, ErrNoFirmware
}

// isFile reports whether path names an existing regular file.
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// args returns the QEMU options that load f, with vars the writable copy
// of its variable store.
func (f Firmware) args(vars string) ([]string, error) {
	if f.Code == "" {
		return nil, ErrNoFirmware
	}
	if f.Vars == "" {
		return []string{"-bios", f.Code}, nil
	}
	if vars == "" {
		return nil, errors.New("split UEFI firmware needs a copy of its variable store")
	}
	return []string{
		"-drive", "if=pflash,format=raw,readonly=on,file=" + qemuOptEscape(f.Code),
		"-drive", "if=pflash,format=raw,file=" + qemuOptEscape(vars),
	}, nil
}

// qemuOptEscape escapes a value inside a QEMU option list, where a comma
// is written as two commas.
func qemuOptEscape(v string) string { return strings.ReplaceAll(v, ",", ",,") }
