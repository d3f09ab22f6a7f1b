package main

import (
	"crypto/md5"
	"fmt"
	"slices"
	"strings"
	"testing"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// TestScaleWorkTime: the work's time is the difference of the two
// uptime lines, and only with two right digests between them.
func TestScaleWorkTime(t *testing.T) {
	sum := fmt.Sprintf("%x", md5.Sum(make([]byte, 2<<20)))
	good := []string{"[    1.0] some kernel line", "10.50 9.00", sum, sum + "  -", "14.25 15.00", "JEOS-EXEC status=0"}
	if secs, err := scaleWorkTime(good, 2); err != nil || secs != 3.75 {
		t.Errorf("good run: %v, %v; want 3.75 s", secs, err)
	}
	for name, lines := range map[string][]string{
		"one digest":   {"10.50 9.00", sum, "14.25 15.00"},
		"wrong digest": {"10.50 9.00", sum, strings.Repeat("0", 32), "14.25 15.00"},
		"no end":       {"10.50 9.00", sum, sum},
		"time reverse": {"14.25 9.00", sum, sum, "10.50 15.00"},
	} {
		if _, err := scaleWorkTime(lines, 2); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !strings.Contains(scaleCommand(16), "count=16") || !strings.Contains(scaleCmdline(16), jeos.PoweroffArg) {
		t.Errorf("command line %q", scaleCmdline(16))
	}
}

// TestScaleConfig: every configuration with two CPUs runs QEMU's
// multi-threaded TCG; juice's machine has two CPUs whatever the guest's
// vCPUs; the direct runs have as many CPUs as the guest's vCPUs.
func TestScaleConfig(t *testing.T) {
	c := jeosBenchConfig{juice: "juice.elf", mem: scaleJuiceMem, vmMem: scaleVMMem}
	img := jeos.Image{Vmlinux: "vmlinux", Initrd: "initrd.cpio"}
	bundles := map[int]string{1: "b1.cpio", 2: "b2.cpio"}
	for _, k := range scaleKinds {
		args, err := launch.QEMUArgs(scaleConfig(c, k, img, 4, bundles), launch.Media{})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(args, "-smp")
		j := slices.Index(args, "-accel")
		smp, accel := args[i+1], args[j+1]
		wantSMP := "2"
		if !k.juice {
			wantSMP = fmt.Sprint(k.vcpus)
		}
		wantAccel := "tcg,thread=multi"
		if wantSMP == "1" {
			wantAccel = "tcg"
		}
		if smp != wantSMP || accel != wantAccel {
			t.Errorf("%s: -smp %s -accel %s, want -smp %s -accel %s", k.name, smp, accel, wantSMP, wantAccel)
		}
		line := strings.Join(args, " ")
		if k.juice && !strings.Contains(line, bundles[k.vcpus]) || !k.juice && !strings.Contains(line, "count=4") {
			t.Errorf("%s: args %s", k.name, line)
		}
	}
}

// TestScaleTable: speed-ups are the 1-vCPU time over the 2-vCPU time;
// a configuration without a good run shows "-".
func TestScaleTable(t *testing.T) {
	out := scaleTable(map[string]float64{"juice, 1 vCPU": 20, "juice, 2 vCPUs": 12.5, "QEMU, 1 CPU": 10, "QEMU, 2 CPUs": 0})
	for _, want := range []string{"speed-up", "20.00", "12.50", "1.60x", "2.00x"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "directly on QEMU (s, guest-timed)") || strings.Count(out, " -\n")+strings.Count(out, " - ") < 3 {
		t.Errorf("missing figures not shown as -:\n%s", out)
	}
}
