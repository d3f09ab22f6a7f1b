package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"juice/vmm/bundle"
)

// Guests reach juice as a bundle (package juice/vmm/bundle): a newc cpio
// archive holding manifest.json and the VMs' files, which QEMU hands to
// juice as its first boot module (Config.Initrd). This file builds bundles
// from host files.

// DefaultVMMemory is a VM's RAM when the command line does not say.
const DefaultVMMemory = "32M"

// VMSpec describes one VM of a bundle in terms of host files.
type VMSpec struct {
	// Name is the VM's name (see bundle.ManifestVM); empty means
	// VMName(Kernel).
	Name string
	// Kernel is the host path of the guest kernel.
	Kernel string
	// Cmdline is the guest's command line.
	Cmdline string
	// Modules are the guest's boot modules, in order.
	Modules []ModuleSpec
	// Memory is the VM's RAM ("32M"); empty means DefaultVMMemory.
	Memory string
	// VCPUs is the number of vCPUs; 0 means 1.
	VCPUs int
	// Pin binds the vCPUs to juice's host CPUs (the manifest's "pin").
	Pin []int
	// Devices are the VM's virtio devices as in the manifest, except that
	// a disk's File is a host path; nil means none. A disk on one of the
	// machine's disks (Host, Partition, Offset, Size) names what juice
	// sees inside the machine (vda, ...) and passes through unchanged.
	Devices *bundle.ManifestDevices
}

// ModuleSpec is one boot module: a host file and the command line the
// guest sees for it.
type ModuleSpec struct {
	// Path is the host path of the module.
	Path string
	// Cmdline is the module's command line (multiboot's module string).
	Cmdline string
}

// ParseModule parses an --initrd value, "FILE" or "FILE ARGS" (split at
// the first space): the module's command line is the file's base name,
// followed by ARGS if given, as GRUB's `module /path ARGS` gives the
// guest "/path ARGS".
func ParseModule(v string) ModuleSpec {
	file, args, _ := strings.Cut(v, " ")
	m := ModuleSpec{Path: file, Cmdline: filepath.Base(file)}
	if args = strings.TrimSpace(args); args != "" {
		m.Cmdline += " " + args
	}
	return m
}

// VMName derives a valid VM name from a kernel's path: its base name
// without the extension, lower-cased, every character outside [a-z0-9-]
// replaced by '-', leading '-' removed, at most bundle.MaxNameLen long;
// "guest" if nothing is left.
func VMName(kernel string) string {
	base := filepath.Base(kernel)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var b strings.Builder
	for _, c := range strings.ToLower(base) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "-")
	if len(name) > bundle.MaxNameLen {
		name = strings.TrimRight(name[:bundle.MaxNameLen], "-")
	}
	if name == "" || strings.Trim(name, "-") == "" {
		return "guest"
	}
	return name
}

// BuildBundle reads the VMs' files and returns the bundle archive. Each
// host file is stored once (under VMNAME/BASENAME, made unique), however
// many VMs or modules name it.
func BuildBundle(vms []VMSpec) ([]byte, error) { return buildBundle(vms, nil) }

// BuildManagedBundle is BuildBundle with the manifest's "manage" section
// (juice's console over the network; nil: none).
func BuildManagedBundle(vms []VMSpec, manage *bundle.ManifestManage) ([]byte, error) {
	return buildBundle(vms, manage)
}

func buildBundle(vms []VMSpec, manage *bundle.ManifestManage) ([]byte, error) {
	if len(vms) == 0 {
		return nil, errors.New("bundle: no VMs")
	}
	files := map[string][]byte{}
	member := map[string]string{} // absolute host path -> member name
	add := func(vm, path string) (string, error) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		if m, ok := member[abs]; ok {
			return m, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		base := strings.Map(func(r rune) rune {
			if r == '/' || r == 0 {
				return '_'
			}
			return r
		}, filepath.Base(path))
		if base == "." || base == ".." {
			base = "file"
		}
		name := vm + "/" + base
		for i := 2; files[name] != nil || name == bundle.ManifestName; i++ {
			name = fmt.Sprintf("%s/%d-%s", vm, i, base)
		}
		files[name] = data
		member[abs] = name
		return name, nil
	}
	var man bundle.Manifest
	for _, v := range vms {
		name := v.Name
		if name == "" {
			name = VMName(v.Kernel)
		}
		mem := v.Memory
		if mem == "" {
			mem = DefaultVMMemory
		}
		if _, err := bundle.Memory(mem).Bytes(); err != nil {
			return nil, fmt.Errorf("vm %s: %w", name, err)
		}
		if v.Kernel == "" {
			return nil, fmt.Errorf("vm %s: no kernel", name)
		}
		k, err := add(name, v.Kernel)
		if err != nil {
			return nil, fmt.Errorf("vm %s: kernel: %w", name, err)
		}
		mv := bundle.ManifestVM{Name: name, Kernel: k, Cmdline: v.Cmdline, Memory: bundle.Memory(mem), VCPUs: v.VCPUs, Pin: v.Pin}
		for i, m := range v.Modules {
			f, err := add(name, m.Path)
			if err != nil {
				return nil, fmt.Errorf("vm %s: module %d: %w", name, i, err)
			}
			mv.Modules = append(mv.Modules, bundle.ManifestModule{File: f, Cmdline: m.Cmdline})
		}
		if v.Devices != nil {
			d := *v.Devices
			d.Disks = append([]bundle.ManifestDisk(nil), v.Devices.Disks...)
			for i := range d.Disks {
				if d.Disks[i].File == "" {
					continue
				}
				if d.Disks[i].File, err = add(name, d.Disks[i].File); err != nil {
					return nil, fmt.Errorf("vm %s: disk %d: %w", name, i, err)
				}
			}
			mv.Devices = &d
		}
		man.VMs = append(man.VMs, mv)
	}
	man.Manage = manage
	return bundle.Build(man, files)
}

// cpioMagic starts every newc cpio archive.
const cpioMagic = "070701"

// LoadBundle returns the bundle that path names: either a ready bundle
// archive (a newc cpio, passed through unchanged) or a manifest.json in
// bundle.Manifest's format whose file names are host paths, relative to
// the manifest's directory unless absolute. Unknown manifest fields are
// errors.
func LoadBundle(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(b, []byte(cpioMagic)) {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m bundle.Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the JSON object", path)
	}
	dir := filepath.Dir(path)
	resolve := func(f string) string {
		if f == "" || filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(dir, filepath.FromSlash(f))
	}
	var vms []VMSpec
	for i, mv := range m.VMs {
		if mv.Name == "" {
			return nil, fmt.Errorf("%s: vm #%d has no name", path, i)
		}
		if mv.Kernel == "" {
			return nil, fmt.Errorf("%s: vm %s has no kernel", path, mv.Name)
		}
		v := VMSpec{Name: mv.Name, Kernel: resolve(mv.Kernel), Cmdline: mv.Cmdline, Memory: string(mv.Memory), VCPUs: mv.VCPUs, Pin: mv.Pin}
		for _, mm := range mv.Modules {
			v.Modules = append(v.Modules, ModuleSpec{Path: resolve(mm.File), Cmdline: mm.Cmdline})
		}
		if mv.Devices != nil {
			d := *mv.Devices
			d.Disks = append([]bundle.ManifestDisk(nil), mv.Devices.Disks...)
			for i := range d.Disks {
				d.Disks[i].File = resolve(d.Disks[i].File)
			}
			v.Devices = &d
		}
		vms = append(vms, v)
	}
	out, err := buildBundle(vms, m.Manage)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// WriteBundle writes a bundle to dir/bundle.cpio and returns the path.
func WriteBundle(dir string, b []byte) (string, error) {
	p := filepath.Join(dir, "bundle.cpio")
	return p, os.WriteFile(p, b, 0o644)
}
