//go:build slow

package tests

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// TestEightJeOSVMs: eight JeOS VMs in one bundle boot to user space
// together on juice's one CPU, each prints its own ready marker and
// powers off with status 0, and juice exits with the first one's status.
// (About three minutes under QEMU TCG: make test-slow. At 96 MiB each the
// guests run out of memory unpacking the initramfs and panic, which
// juice reports per VM.)
func TestEightJeOSVMs(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	var vms []launch.VMSpec
	for i := 0; i < 8; i++ {
		vm := jeosVM(img, kernel, "console=ttyS0 "+jeos.PoweroffArg)
		vm.Name, vm.Memory = fmt.Sprintf("vm%d", i), "160M"
		vms = append(vms, vm)
	}
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "1600M", Timeout: 12 * time.Minute}, vms...)
	for _, vm := range vms {
		r.ExpectMatch(vm.Name+"'s ready marker", contains("["+vm.Name+"] "+jeos.ReadyMarker))
	}
	for _, vm := range vms {
		r.Expect(VMEnd(vm.Name) + "exited with status 0: guest powered off (ACPI S5)")
	}
	r.ExpectExit(0)
	t.Logf("eight JeOS VMs booted and powered off in %v", time.Since(start).Round(time.Second))
}

// The many-VM target of issue 7 with the tiny JeOS image (`juice jeos
// --tiny`: Debian's kernel with jeosinit alone as its initramfs).
// Debian's kernel cannot run in 32 MiB: its image spans guest-physical
// 16 to 74 MiB (juice's loader refuses it), and at 82 MiB it runs out of
// memory unpacking even this initramfs. 84 MiB boots alone, but 2 of 32
// VMs of 84 MiB taking turns on one CPU ran out of memory; 88 MiB booted
// all 128 of 4 such runs.
const (
	manyVMs   = 32
	manyVMMem = 88 // MiB
	// manyMachine is juice's machine: the VMs' RAM and 256 MiB for
	// juice and the bundle (the 63 MiB vmlinux, once), in MiB.
	manyMachine = manyVMs*manyVMMem + 256
)

// tinyImage is the tiny JeOS image.
var tinyImage cachedImage

// TinyJeOS returns the tiny JeOS image (jeos.BuildTiny).
func TinyJeOS(t testing.TB) jeos.Image {
	t.Helper()
	img := tinyImage.get(t, "tiny JeOS image", jeos.BuildTiny)
	if img.Vmlinux == "" {
		t.Fatalf("the JeOS image has no PVH vmlinux: %v", img.Notes)
	}
	return img
}

// guestPrefixRE is a VM's line prefix on juice's console.
var guestPrefixRE = regexp.MustCompile(`^\[([a-z0-9-]+)\] `)

// memReportLineRE is juice's memory report (cmd/juice-kernel/memreport.go).
var memReportLineRE = regexp.MustCompile(`^juice: memory: ([0-9]+) VMs, guest RAM ([0-9]+) KiB; in use before the VMs ([0-9]+) KiB \(runtime [0-9]+ KiB\), at the peak ([0-9]+) KiB `)

// TestManyTinyJeOSVMs: 32 tiny JeOS VMs of 88 MiB in one bundle start
// together on juice's one CPU; each prints its own ready marker and
// powers off with status 0, juice exits with status 0, and its memory
// report shows its own memory per VM, beyond the guests' RAM, under
// 1 MiB (peak footprint less the footprint before the VMs less the
// guests' RAM, over 32). (About ten minutes under QEMU TCG on an idle
// two-core machine: make test-slow.)
func TestManyTinyJeOSVMs(t *testing.T) {
	img := TinyJeOS(t)
	var vms []launch.VMSpec
	for i := 0; i < manyVMs; i++ {
		vms = append(vms, launch.VMSpec{
			Name:    fmt.Sprintf("t%d", i),
			Kernel:  img.Vmlinux,
			Cmdline: "console=ttyS0 quiet " + jeos.PoweroffArg,
			Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}},
			Memory:  fmt.Sprintf("%dM", manyVMMem),
		})
	}
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: fmt.Sprintf("%dM", manyMachine), Timeout: 30 * time.Minute}, vms...)
	for _, vm := range vms {
		r.Expect(VMEnd(vm.Name) + "exited with status 0: guest powered off (ACPI S5)")
	}
	r.ExpectExit(0)
	t.Logf("%d VMs booted and powered off in %v", manyVMs, time.Since(start).Round(time.Second))
	// Each VM's output, its lines' pieces run together: with 32 VMs
	// taking turns, juice's console shows a starved guest's partial
	// line after 30 ms of quiet and puts the rest on a line of its own
	// when another VM writes in between ("[t4] JEOS-RE" ... "[t4] ADY
	// uptime=...").
	out := map[string]string{}
	for _, l := range r.Texts() {
		if g := guestPrefixRE.FindStringSubmatch(l); g != nil {
			out[g[1]] += l[len(g[0]):]
		}
	}
	for _, vm := range vms {
		if n := strings.Count(out[vm.Name], jeos.ReadyMarker+" uptime="); n != 1 {
			t.Errorf("%s printed its ready marker %d times, want once", vm.Name, n)
		}
	}

	l := r.Find("juice: memory: ")
	if len(l) != 1 {
		t.Fatalf("juice's memory report: %q, want one line", l)
	}
	m := memReportLineRE.FindStringSubmatch(l[0])
	if m == nil {
		t.Fatalf("juice's memory report %q does not parse", l[0])
	}
	var v [4]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	n, guest, before, peak := v[0], v[1], v[2], v[3]
	if n != manyVMs || guest != manyVMs*manyVMMem<<10 {
		t.Fatalf("the report counts %d VMs with %d KiB of RAM, want %d with %d", n, guest, manyVMs, manyVMs*manyVMMem<<10)
	}
	perVM := (peak - before - guest) / n
	t.Logf("juice's memory: %d KiB before the VMs, %d KiB at the peak: %d KiB per VM beyond guest RAM", before, peak, perVM)
	if perVM < 0 || perVM >= 1024 {
		t.Errorf("juice's own memory per VM is %d KiB, want under 1024: %s", perVM, l[0])
	}
}
