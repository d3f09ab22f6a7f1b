package launch

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/vmm/bundle"
)

func TestVMName(t *testing.T) {
	cases := map[string]string{
		"build/guests/hello.elf":       "hello",
		"/x/My_Guest.v2.bin":           "my-guest-v2",
		"kernel":                       "kernel",
		"--x.elf":                      "x",
		"___":                          "guest",
		".elf":                         "guest",
		"/":                            "guest",
		"Ünïcode.elf":                  "n-code",
		strings.Repeat("a", 40):        strings.Repeat("a", 32),
		strings.Repeat("a", 31) + "_b": strings.Repeat("a", 31),
	}
	for in, want := range cases {
		got := VMName(in)
		if got != want {
			t.Errorf("VMName(%q) = %q, want %q", in, got, want)
		}
		if _, err := bundle.Build(bundle.Manifest{VMs: []bundle.ManifestVM{{Name: got, Kernel: "k", Memory: "1M"}}},
			map[string][]byte{"k": {1}}); err != nil {
			t.Errorf("VMName(%q) = %q is not a valid name: %v", in, got, err)
		}
	}
}

func TestParseModule(t *testing.T) {
	cases := map[string]ModuleSpec{
		"/a/b/initrd.img":          {Path: "/a/b/initrd.img", Cmdline: "initrd.img"},
		"x.bin root=/dev/sda  q=1": {Path: "x.bin", Cmdline: "x.bin root=/dev/sda  q=1"},
		"m ":                       {Path: "m", Cmdline: "m"},
	}
	for in, want := range cases {
		if got := ParseModule(in); got != want {
			t.Errorf("ParseModule(%q) = %+v, want %+v", in, got, want)
		}
	}
}

// writeFiles writes name -> content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parse parses a bundle and fails on any error.
func parse(t *testing.T, b []byte) *bundle.Bundle {
	t.Helper()
	bu, errs := bundle.Parse(b)
	if len(errs) > 0 {
		t.Fatalf("bundle.Parse: %v", errs)
	}
	return bu
}

func TestBuildBundle(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"hello.elf": "KERNEL", "a/initrd": "MOD-A", "b/initrd": "MOD-B", "spin.elf": "SPIN"})
	p := func(n string) string { return filepath.Join(dir, n) }
	b, err := BuildBundle([]VMSpec{
		{Kernel: p("hello.elf"), Cmdline: "a b", Modules: []ModuleSpec{
			{Path: p("a/initrd"), Cmdline: "initrd x=1"}, {Path: p("b/initrd"), Cmdline: "second"}, {Path: p("a/initrd"), Cmdline: "again"},
		}},
		{Name: "two", Kernel: p("spin.elf"), Memory: "16M", VCPUs: 2},
		{Name: "three", Kernel: p("hello.elf")},
	})
	if err != nil {
		t.Fatal(err)
	}
	bu := parse(t, b)
	if len(bu.VMs) != 3 {
		t.Fatalf("%d VMs", len(bu.VMs))
	}
	v := bu.VMs[0]
	if v.Name != "hello" || string(v.KernelData) != "KERNEL" || v.Cmdline != "a b" || v.MemBytes != 32<<20 || v.VCPUs != 1 {
		t.Errorf("vm 0: %+v", v)
	}
	if len(v.Modules) != 3 || string(v.Modules[0].Data) != "MOD-A" || v.Modules[0].Cmdline != "initrd x=1" ||
		string(v.Modules[1].Data) != "MOD-B" || v.Modules[1].Cmdline != "second" ||
		string(v.Modules[2].Data) != "MOD-A" || v.Modules[2].File != v.Modules[0].File {
		t.Errorf("vm 0 modules: %+v", v.Modules)
	}
	if v.Modules[0].File == v.Modules[1].File {
		t.Errorf("two files with one base name share member %q", v.Modules[0].File)
	}
	if w := bu.VMs[1]; w.Name != "two" || string(w.KernelData) != "SPIN" || w.MemBytes != 16<<20 || w.VCPUs != 2 {
		t.Errorf("vm 1: %+v", w)
	}
	if w := bu.VMs[2]; w.Kernel != v.Kernel || string(w.KernelData) != "KERNEL" {
		t.Errorf("vm 2 does not share vm 0's kernel member: %q vs %q", w.Kernel, v.Kernel)
	}

	for _, bad := range []struct {
		vms  []VMSpec
		want string
	}{
		{nil, "no VMs"},
		{[]VMSpec{{Kernel: p("missing.elf")}}, "missing.elf"},
		{[]VMSpec{{Kernel: p("hello.elf"), Memory: "lots"}}, "lots"},
		{[]VMSpec{{Kernel: p("hello.elf"), Memory: "512K"}}, "less than 1 MiB"},
		{[]VMSpec{{Kernel: p("hello.elf"), Modules: []ModuleSpec{{Path: p("nope")}}}}, "module 0"},
		{[]VMSpec{{Kernel: p("hello.elf")}, {Kernel: p("hello.elf")}}, "earlier VM"},
		{[]VMSpec{{Name: "Bad Name", Kernel: p("hello.elf")}}, "name"},
		{[]VMSpec{{Name: "x"}}, "no kernel"},
	} {
		if _, err := BuildBundle(bad.vms); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("BuildBundle(%+v) = %v, want an error with %q", bad.vms, err, bad.want)
		}
	}
}

func TestLoadBundle(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"m/g/spin.elf": "SPIN",
		"m/g/tf.elf":   "TF",
		"m/mod":        "MOD",
		"abs.elf":      "ABS",
		"m/manifest.json": `{"vms": [
			{"name": "spin", "kernel": "g/spin.elf", "cmdline": "x", "memory": "16M",
			 "modules": [{"file": "mod", "cmdline": "mod y"}]},
			{"name": "tf", "kernel": "g/tf.elf", "memory": 16777216, "vcpus": 1},
			{"name": "abs", "kernel": "` + filepath.Join(dir, "abs.elf") + `"}
		]}`,
		"unknown.json":  `{"vms": [{"name": "a", "kernel": "abs.elf", "colour": "red"}]}`,
		"trailing.json": `{"vms": [{"name": "a", "kernel": "abs.elf"}]} {}`,
		"missing.json":  `{"vms": [{"name": "a", "kernel": "nope.elf"}]}`,
		"noname.json":   `{"vms": [{"kernel": "abs.elf"}]}`,
	})
	b, err := LoadBundle(filepath.Join(dir, "m", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	bu := parse(t, b)
	if len(bu.VMs) != 3 {
		t.Fatalf("%d VMs", len(bu.VMs))
	}
	s, tf, abs := bu.VMs[0], bu.VMs[1], bu.VMs[2]
	if s.Name != "spin" || string(s.KernelData) != "SPIN" || s.Cmdline != "x" || s.MemBytes != 16<<20 ||
		len(s.Modules) != 1 || string(s.Modules[0].Data) != "MOD" || s.Modules[0].Cmdline != "mod y" {
		t.Errorf("spin: %+v", s)
	}
	if tf.Name != "tf" || string(tf.KernelData) != "TF" || tf.MemBytes != 16<<20 {
		t.Errorf("tf: %+v", tf)
	}
	if abs.Name != "abs" || string(abs.KernelData) != "ABS" || abs.MemBytes != 32<<20 {
		t.Errorf("abs (default memory): %+v", abs)
	}

	// A ready archive passes through unchanged.
	cpio := filepath.Join(dir, "ready.cpio")
	if err := os.WriteFile(cpio, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := LoadBundle(cpio); err != nil || string(again) != string(b) {
		t.Errorf("archive not passed through: %v", err)
	}

	for name, want := range map[string]string{
		"unknown.json":  "colour",
		"trailing.json": "after the JSON",
		"missing.json":  "nope.elf",
		"noname.json":   "no name",
		"absent.json":   "no such file",
	} {
		if _, err := LoadBundle(filepath.Join(dir, name)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadBundle(%s) = %v, want an error with %q", name, err, want)
		}
	}

	p, err := WriteBundle(dir, b)
	if err != nil || filepath.Dir(p) != dir {
		t.Fatalf("WriteBundle = %q, %v", p, err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != string(b) {
		t.Errorf("WriteBundle wrote something else: %v", err)
	}
}

func TestBuildBundleDevices(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "k.elf")
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(k, []byte("kernel"), 0o644)
	os.WriteFile(img, bytes.Repeat([]byte{9}, 1024), 0o644)
	man := filepath.Join(dir, "manifest.json")
	os.WriteFile(man, []byte(`{"vms":[{"name":"a","kernel":"k.elf","memory":"16M","devices":{"disks":[{"file":"disk.img"},{"size":"1M"}],"rng":true}}]}`), 0o644)
	arc, err := LoadBundle(man)
	if err != nil {
		t.Fatal(err)
	}
	b, errs := bundle.Parse(arc)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	d := b.VMs[0].Devices
	if d == nil || !d.RNG || len(d.Disks) != 2 || !bytes.Equal(d.Disks[0].Image, bytes.Repeat([]byte{9}, 1024)) || d.Disks[1].Size != 1<<20 {
		t.Fatalf("devices %+v", d)
	}
}

// A manifest's "manage" section (juice's console over the network) goes
// into the bundle juice gets; dropping it would boot without the console
// and without a word.
func TestLoadBundleKeepsManage(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"k.elf": "K",
		"manifest.json": `{"vms": [{"name": "a", "kernel": "k.elf", "memory": "16M",
			"devices": {"nets": [{"network": "lan"}]}}],
		  "manage": {"network": "lan", "address": "10.0.2.15/24", "port": 2323, "token": "0123456789abcdef0123"}}`,
	})
	b, err := LoadBundle(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	bu := parse(t, b)
	if bu.Manage == nil || bu.Manage.Port != 2323 {
		t.Fatalf("manage section lost: %+v", bu.Manage)
	}
}
