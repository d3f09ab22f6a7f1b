package jeos

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// VirtioModules are the kernel modules the JeOS guest loads, in load
// order: the virtio transports (PCI and MMIO) and the block, network,
// console and entropy drivers. Debian builds them all as modules.
var VirtioModules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_mmio", "virtio_blk", "failover", "net_failover",
	"virtio_net", "virtio_console", "virtio-rng",
}

// FilesystemModules are loaded after VirtioModules, each after the
// modules its .modinfo says it depends on (ext4 needs jbd2, mbcache and
// crc16): ext4 for the guest's disks. crc32c_generic is ext4's and
// jbd2's checksum; they ask the crypto API for "crc32c" at mount time
// (a soft dependency, which the module list has to name), and the
// generic one loads on any CPU.
var FilesystemModules = []string{"crc32c_generic", "ext4"}

// RequiredModules are VirtioModules and FilesystemModules: a kernel
// package without one of them (or what it depends on) is refused.
func RequiredModules() []string {
	return append(append([]string(nil), VirtioModules...), FilesystemModules...)
}

// OptionalModules are loaded after the required ones when the kernel package
// has them (pvpanic lets a guest report a panic to the hypervisor).
var OptionalModules = []string{"pvpanic", "pvpanic-mmio"}

// modName normalises a module name or file name the way the kernel
// compares them: without ".ko" and with '-' as '_'.
func modName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(s), ".ko"), "-", "_")
}

// moduleTreePath splits a package path lib/modules/RELEASE/kernel/.../X.ko
// into the release and the module's name; ok is false for other paths.
func moduleTreePath(p string) (release, name string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) < 5 || parts[0] != "lib" || parts[1] != "modules" || parts[3] != "kernel" || !strings.HasSuffix(p, ".ko") || parts[2] == "" {
		return "", "", false
	}
	return parts[2], modName(p), true
}

// moduleIndex is the modules found in an unpacked kernel package.
type moduleIndex struct {
	release string            // the one lib/modules/RELEASE
	paths   map[string]string // normalised name -> path in the tree
}

// indexModules finds the modules under lib/modules/*/kernel in fsys (an
// unpacked kernel package). It fails when there are none, or modules of
// more than one kernel release.
func indexModules(fsys fs.FS) (moduleIndex, error) {
	idx := moduleIndex{paths: map[string]string{}}
	err := fs.WalkDir(fsys, "lib/modules", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, name, ok := moduleTreePath(p)
		if !ok {
			return nil
		}
		if idx.release != "" && rel != idx.release {
			return fmt.Errorf("modules of two kernel releases, %s and %s", idx.release, rel)
		}
		idx.release = rel
		if prev, dup := idx.paths[name]; dup {
			return fmt.Errorf("module %s twice: %s and %s", name, prev, p)
		}
		idx.paths[name] = p
		return nil
	})
	if err != nil {
		return idx, err
	}
	if idx.release == "" {
		return idx, errors.New("no modules under lib/modules/*/kernel")
	}
	return idx, nil
}

// modinfoDepends returns the modules a .ko depends on, from the
// "depends=" entry of its .modinfo section.
func modinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	var deps []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, modName(d))
			}
		}
	}
	return deps, nil
}

// moduleOrder is the outcome of ordering a module list.
type moduleOrder struct {
	paths   []string          // tree paths, in load order
	skipped []string          // optional modules the package lacks
	need    map[string]string // dependencies not in the tree -> a module that needs it
}

// orderModules puts the required modules, then the optional ones the tree
// has, in load order, each after the modules it depends on (from
// .modinfo). A required module missing from the tree is an error; a
// missing dependency is reported in need (the caller unpacks it and
// tries again).
func orderModules(fsys fs.FS, idx moduleIndex, required, optional []string) (moduleOrder, error) {
	var o moduleOrder
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("module dependency cycle at %s", name)
		}
		p, ok := idx.paths[name]
		if !ok {
			if o.need == nil {
				o.need = map[string]string{}
			}
			o.need[name] = from
			return nil
		}
		state[name] = visiting
		ko, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		deps, err := modinfoDepends(ko)
		if err != nil {
			return fmt.Errorf("module %s: %w", p, err)
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = done
		o.paths = append(o.paths, p)
		return nil
	}
	for _, m := range required {
		n := modName(m)
		if _, ok := idx.paths[n]; !ok {
			return o, fmt.Errorf("module %s not found under lib/modules/%s/kernel", m, idx.release)
		}
		if err := visit(n, ""); err != nil {
			return o, err
		}
	}
	for _, m := range optional {
		n := modName(m)
		if _, ok := idx.paths[n]; !ok {
			o.skipped = append(o.skipped, m)
			continue
		}
		if err := visit(n, ""); err != nil {
			return o, err
		}
	}
	return o, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
