package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/cmd/juice/jeos"
	"juice/vmm/bundle"
)

// TestManyMachineMem: juice's machine holds the VMs' RAM plus 256 MiB,
// rounded up to 64 MiB; a bad size is an error.
func TestManyMachineMem(t *testing.T) {
	for _, c := range []struct {
		n    int
		mem  string
		want string
	}{{32, "88M", "3072M"}, {1, "88M", "384M"}, {32, "32M", "1280M"}, {3, "100M", "576M"}} {
		got, err := manyMachineMem(c.n, c.mem)
		if err != nil || got != c.want {
			t.Errorf("manyMachineMem(%d, %s) = %q, %v; want %q", c.n, c.mem, got, err, c.want)
		}
	}
	if _, err := manyMachineMem(2, "lots"); err == nil {
		t.Error("a bad size was accepted")
	}
}

// TestManyBundle: the bundle has N VMs named vm0.. with the tiny image,
// the command line and the size given, and stores the kernel and the
// initramfs once.
func TestManyBundle(t *testing.T) {
	dir := t.TempDir()
	img := jeos.Image{Vmlinux: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, jeos.TinyInitrdFile)}
	os.WriteFile(img.Vmlinux, []byte(strings.Repeat("k", 4096)), 0o644)
	os.WriteFile(img.Initrd, []byte(strings.Repeat("i", 4096)), 0o644)
	p, err := manyBundle(filepath.Join(dir, "b"), img, 5, "88M")
	if err != nil {
		t.Fatal(err)
	}
	arc, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b, errs := bundle.Parse(arc)
	if len(errs) != 0 || len(b.VMs) != 5 {
		t.Fatalf("bundle: %v, %d VMs", errs, len(b.VMs))
	}
	for i, v := range b.VMs {
		if v.Name != manyVMName(i) || v.MemBytes != 88<<20 || v.Cmdline != manyBenchCmdline || len(v.Modules) != 1 ||
			v.Kernel != b.VMs[0].Kernel || v.Modules[0].File != b.VMs[0].Modules[0].File {
			t.Errorf("vm %d: %+v", i, v)
		}
	}
	if len(arc) > 3*4096+4096 {
		t.Errorf("the bundle is %d bytes: the images are stored more than once", len(arc))
	}
}

// TestParseJuiceMem: juice's memory report gives the per-VM figures
// (peak less before less guest RAM, over N) and their parts.
func TestParseJuiceMem(t *testing.T) {
	texts := []string{
		"juice: vm vm3: exited with status 0: guest powered off (ACPI S5)",
		"juice: memory: 4 VMs, guest RAM 393216 KiB; in use before the VMs 73420 KiB (runtime 712 KiB), at the peak 468444 KiB (runtime 1576 KiB); juice's own beyond guest RAM 452 KiB per VM (runtime 216, other frames 236)",
		"juice: memory at the peak: runtime heap objects 421 KiB, heap free and unused 442 KiB, goroutine stacks 384 KiB",
	}
	m := parseJuiceMem(texts)
	if !m.parsed || !m.haveRuntimeAccount || m.vms != 4 || m.heapObjects != 421 || m.heapSlack != 442 || m.stacks != 384 {
		t.Fatalf("parsed %+v", m)
	}
	own, rt, other := m.perVM()
	if own != 452 || rt != 216 || other != 236 {
		t.Errorf("per VM %v (runtime %v, other %v), want 452 (216, 236)", own, rt, other)
	}
	if m := parseJuiceMem(texts[:1]); m.parsed {
		t.Error("a report found where there is none")
	}
}

// TestManyTable: the table has a column per run kind and the ratio of
// the N-VM figure to the one-VM figure where asked for.
func TestManyTable(t *testing.T) {
	one := manySummary{toLast: 5, perMin: 12, own: 400, mem: true}
	many := manySummary{toLast: 160, perMin: 12, own: 300, mem: true}
	out := manyTable(32, manyRows(one, many))
	for _, want := range []string{"1 VM", "32 VMs", "ratio",
		"juice starting the first VM to the last marker (s)", "5.00", "160.00", "32.00x",
		"VMs booted per minute", "1.00x",
		"juice's own memory per VM beyond guest RAM (KiB)", "400", "300", "0.75x"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if out := manyTable(32, manyRows(one, manySummary{toLast: 1})); strings.Contains(out, "memory") {
		t.Errorf("memory rows without a memory report:\n%s", out)
	}
}

// TestMarkerJoiner: markers that juice's console broke into pieces
// (lines as seen with 32 VMs on one CPU) are found whole, once, with
// their uptime; juice's own lines and other VMs' pieces in between do
// not disturb them.
func TestMarkerJoiner(t *testing.T) {
	lines := []string{
		"juice: vm vm0: starting (88 MiB, 1 vCPU)",
		"[vm2] JEOS-READY uptime=252.61 modules=0/0 devices=none",
		"[vm4] JEOS-RE",
		"[vm13] JEOS-READY uptime=254.36 modules=0/0 ",
		"juice: vm vm0: exits by reason (count, time handling them; HLT's is idle time): io=34208",
		"[vm3] J",
		"[vm13] devices=none",
		"[vm4] ADY uptime=256.18 modules=0/0 devices=none",
		"[vm3] EOS-READY uptime=25",
		"[vm4] ",
		"[vm3] 2.74 modules=",
		"[vm3] 0/0 devices=none",
		"[vm5] [  258.153591] reboot: Power down",
	}
	want := map[string]float64{"vm2": 252.61, "vm13": 254.36, "vm4": 256.18, "vm3": 252.74}
	got := map[string]float64{}
	j := newMarkerJoiner()
	for _, l := range lines {
		if name, up, ok := j.add(l); ok {
			if _, dup := got[name]; dup {
				t.Errorf("%s's marker found twice", name)
			}
			got[name] = up
		}
	}
	if len(got) != len(want) {
		t.Errorf("markers %v, want %v", got, want)
	}
	for name, up := range want {
		if got[name] != up {
			t.Errorf("%s: uptime %v, want %v", name, got[name], up)
		}
	}
}
