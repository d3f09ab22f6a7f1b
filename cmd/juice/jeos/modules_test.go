package jeos

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

const rel = "6.1.0-99-amd64"

// kernelTree is a fake unpacked kernel package with the virtio and ext4
// modules (dependencies as in Debian's 6.1 kernel) plus extra files.
func kernelTree(t *testing.T, drop ...string) fstest.MapFS {
	t.Helper()
	k := "lib/modules/" + rel + "/kernel/"
	mods := map[string][]string{
		"drivers/virtio/virtio_ring.ko":           nil,
		"drivers/virtio/virtio.ko":                nil,
		"drivers/virtio/virtio_pci_modern_dev.ko": nil,
		"drivers/virtio/virtio_pci_legacy_dev.ko": nil,
		"drivers/virtio/virtio_pci.ko":            {"virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci_legacy_dev"},
		"drivers/virtio/virtio_mmio.ko":           {"virtio_ring", "virtio"},
		"drivers/block/virtio_blk.ko":             {"virtio", "virtio_ring"},
		"net/core/failover.ko":                    nil,
		"drivers/net/net_failover.ko":             {"failover"},
		"drivers/net/virtio_net.ko":               {"net_failover", "virtio_ring", "virtio"},
		"drivers/char/virtio_console.ko":          {"virtio_ring", "virtio"},
		"drivers/char/hw_random/virtio-rng.ko":    {"virtio_ring", "virtio"},
		"drivers/misc/pvpanic/pvpanic.ko":         nil,
		"drivers/misc/pvpanic/pvpanic-mmio.ko":    {"pvpanic"},
		"drivers/misc/pvpanic/pvpanic-pci.ko":     {"pvpanic"},
		"drivers/net/e1000.ko":                    nil,
		"fs/ext4/ext4.ko":                         {"jbd2", "mbcache", "crc16"},
		"fs/jbd2/jbd2.ko":                         nil,
		"fs/mbcache.ko":                           nil,
		"lib/crc16.ko":                            nil,
		"crypto/crc32c_generic.ko":                nil,
	}
	fsys := fstest.MapFS{
		"boot/vmlinuz-" + rel:                     {Data: []byte("kernel")},
		"boot/config-" + rel:                      {Data: []byte("CONFIG_PVH=y\n")},
		"lib/modules/" + rel + "/modules.builtin": {Data: []byte("kernel/x.ko\n")},
	}
	for p, deps := range mods {
		fsys[k+p] = &fstest.MapFile{Data: fakeKo(modName(p), deps...)}
	}
	for _, d := range drop {
		delete(fsys, k+d)
	}
	return fsys
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"virtio-rng.ko": "virtio_rng", "virtio_rng": "virtio_rng", "a/b/pvpanic-mmio.ko": "pvpanic_mmio", "virtio": "virtio",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModuleTreePath(t *testing.T) {
	for _, c := range []struct {
		p, rel, name string
		ok           bool
	}{
		{"lib/modules/6.1.0-9-amd64/kernel/drivers/char/hw_random/virtio-rng.ko", "6.1.0-9-amd64", "virtio_rng", true},
		{"lib/modules/6.1.0-9-amd64/kernel/x.ko", "6.1.0-9-amd64", "x", true},
		{"lib/modules/6.1.0-9-amd64/extra/x.ko", "", "", false},
		{"lib/modules/6.1.0-9-amd64/kernel/x.ko.xz", "", "", false},
		{"usr/lib/modules/6.1/kernel/x.ko", "", "", false},
		{"lib/modules//kernel/x.ko", "", "", false},
	} {
		r, n, ok := moduleTreePath(c.p)
		if r != c.rel || n != c.name || ok != c.ok {
			t.Errorf("moduleTreePath(%q) = %q, %q, %v", c.p, r, n, ok)
		}
	}
}

func TestModinfoDepends(t *testing.T) {
	deps, err := modinfoDepends(fakeKo("virtio_net", "net_failover", "virtio_ring", "virtio"))
	if err != nil || !reflect.DeepEqual(deps, []string{"net_failover", "virtio_ring", "virtio"}) {
		t.Errorf("modinfoDepends = %q, %v", deps, err)
	}
	if deps, err := modinfoDepends(fakeKo("virtio")); err != nil || len(deps) != 0 {
		t.Errorf("no dependencies: %q, %v", deps, err)
	}
	if _, err := modinfoDepends([]byte("not an ELF")); err == nil {
		t.Error("modinfoDepends accepted a non-ELF")
	}
	if _, err := modinfoDepends(fakeVmlinux(nil, 10)); err == nil || !strings.Contains(err.Error(), ".modinfo") {
		t.Errorf("ELF without .modinfo: %v", err)
	}
}

func TestIndexModules(t *testing.T) {
	idx, err := indexModules(kernelTree(t))
	if err != nil {
		t.Fatal(err)
	}
	if idx.release != rel || len(idx.paths) != 21 {
		t.Errorf("release %q, %d modules", idx.release, len(idx.paths))
	}
	if p := idx.paths["virtio_rng"]; p != "lib/modules/"+rel+"/kernel/drivers/char/hw_random/virtio-rng.ko" {
		t.Errorf("virtio_rng at %q", p)
	}

	two := kernelTree(t)
	two["lib/modules/6.1.0-100-amd64/kernel/a.ko"] = &fstest.MapFile{Data: fakeKo("a")}
	if _, err := indexModules(two); err == nil || !strings.Contains(err.Error(), "two kernel releases") {
		t.Errorf("two releases: %v", err)
	}
	if _, err := indexModules(fstest.MapFS{"lib/modules/x/modules.dep": {}}); err == nil {
		t.Error("no modules: no error")
	}
	if _, err := indexModules(fstest.MapFS{"boot/vmlinuz-x": {}}); err == nil {
		t.Error("no lib/modules: no error")
	}
}

func TestOrderModules(t *testing.T) {
	fsys := kernelTree(t)
	idx, err := indexModules(fsys)
	if err != nil {
		t.Fatal(err)
	}
	o, err := orderModules(fsys, idx, VirtioModules, OptionalModules)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range o.paths {
		got = append(got, strings.TrimSuffix(p[strings.LastIndex(p, "/")+1:], ".ko"))
	}
	// Listed in dependency order already: the order is kept.
	want := append(append([]string(nil), VirtioModules...), OptionalModules...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %q\nwant  %q", got, want)
	}

	// The image's list: ext4's dependencies (from .modinfo) come before
	// it, crc32c_generic (a soft dependency, listed) before them.
	o, err = orderModules(fsys, idx, RequiredModules(), OptionalModules)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, p := range o.paths {
		got = append(got, strings.TrimSuffix(p[strings.LastIndex(p, "/")+1:], ".ko"))
	}
	want = append(append(append([]string(nil), VirtioModules...), "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"), OptionalModules...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %q\nwant  %q", got, want)
	}
	if len(o.paths) != 19 {
		t.Errorf("%d modules, want 19", len(o.paths))
	}
	if len(o.skipped) != 0 || len(o.need) != 0 {
		t.Errorf("skipped %q, need %v", o.skipped, o.need)
	}

	// Dependencies move ahead of the module that needs them; a module
	// listed twice (or also a dependency) appears once.
	o, err = orderModules(fsys, idx, []string{"virtio-rng", "virtio_net", "virtio"}, []string{"pvpanic-mmio"})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, p := range o.paths {
		got = append(got, modName(p))
	}
	want = []string{"virtio_ring", "virtio", "virtio_rng", "failover", "net_failover", "virtio_net", "pvpanic", "pvpanic_mmio"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %q\nwant  %q", got, want)
	}
}

func TestOrderModulesMissing(t *testing.T) {
	// An optional module the package lacks is skipped.
	fsys := kernelTree(t, "drivers/misc/pvpanic/pvpanic-mmio.ko")
	idx, _ := indexModules(fsys)
	o, err := orderModules(fsys, idx, VirtioModules, OptionalModules)
	if err != nil || !reflect.DeepEqual(o.skipped, []string{"pvpanic-mmio"}) || len(o.paths) != 13 {
		t.Errorf("skipped %q, %d modules, %v", o.skipped, len(o.paths), err)
	}

	// A required one is an error that names it.
	fsys = kernelTree(t, "drivers/block/virtio_blk.ko")
	idx, _ = indexModules(fsys)
	if _, err := orderModules(fsys, idx, VirtioModules, OptionalModules); err == nil || !strings.Contains(err.Error(), "virtio_blk not found") {
		t.Errorf("missing virtio_blk: %v", err)
	}

	// A dependency not unpacked is reported with a module that needs it.
	fsys = kernelTree(t, "net/core/failover.ko")
	idx, _ = indexModules(fsys)
	o, err = orderModules(fsys, idx, []string{"virtio_net"}, nil)
	if err != nil || !reflect.DeepEqual(o.need, map[string]string{"failover": "net_failover"}) {
		t.Errorf("need %v, %v", o.need, err)
	}

	// Cycles and unreadable modules are errors.
	fsys = kernelTree(t)
	fsys["lib/modules/"+rel+"/kernel/drivers/virtio/virtio.ko"].Data = fakeKo("virtio", "virtio_blk")
	idx, _ = indexModules(fsys)
	if _, err := orderModules(fsys, idx, VirtioModules, nil); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	fsys = kernelTree(t)
	fsys["lib/modules/"+rel+"/kernel/drivers/virtio/virtio.ko"].Data = []byte("garbage")
	idx, _ = indexModules(fsys)
	if _, err := orderModules(fsys, idx, VirtioModules, nil); err == nil || !strings.Contains(err.Error(), "virtio.ko") {
		t.Errorf("bad module: %v", err)
	}
}
