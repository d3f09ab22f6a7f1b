package main

import (
	"strings"
	"testing"

	"juice/cmd/juice/launch/testkernel"
)

// benchJuiceOutput is what a fake juice prints for `juice bench --vm`.
const benchJuiceOutput = "[    0.000001] cpu: TSC 2000.000 MHz (from ACPI PM timer), timer one-shot\n" +
	"[    0.000002] juice: vm bench: starting (16 MiB, 1 vCPU)\n" +
	"[bench] bench: hypervisor juice, mmio reads the scratch device's id at 0xd0000000\n" +
	"[bench] bench: cpuid 40000 ticks/op\n" +
	"[bench] bench: pio 50000 ticks/op\n" +
	"[bench] bench: mmio 60000 ticks/op\n" +
	"[bench] bench: hypercall 30000 ticks/op\n" +
	"[bench] bench: total 400000000 ticks\n" +
	"[    0.000003] juice: vm bench: exited with status 0\n" +
	"[    0.000004] juice: vm bench: 8000 exits, 4 heap allocations by juice while it ran\n" +
	"[    0.000005] juice: power off, status 0\n"

// benchPlainOutput is what a fake bench guest prints on plain QEMU.
const benchPlainOutput = "bench: no juice, mmio reads the HPET's capabilities at 0xfed00000\n" +
	"bench: cpuid 40 ticks/op\n" +
	"bench: pio 200 ticks/op\n" +
	"bench: mmio 400 ticks/op\n" +
	"bench: hypercall skipped (not under juice)\n" +
	"bench: total 3000000 ticks\n"

func TestBenchVM(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	fakeJuice := testKernel(t, testkernel.Program{Output: benchJuiceOutput})
	guest := testKernel(t, testkernel.Program{Output: benchPlainOutput})
	rc, out, errOut := juice("bench", "--vm", "--juice", fakeJuice, "--guest", guest, "--runs", "1", "--mem", "32M")
	if rc != 0 {
		t.Fatalf("rc = %d\n%s\n%s", rc, out, errOut)
	}
	// 8000 exits in 400e6 ticks at 2000 MHz (0.2 s): 40000 exits/s.
	for _, want := range []string{
		"run 1/1: juice: cpuid 40000, pio 50000, mmio 60000, hypercall 30000 ticks/op, 8000 exits in 200.0 ms (40000 exits/s); plain QEMU: cpuid 40, pio 200, mmio 400 ticks/op",
		"cpuid             40000           40      1000.0x",
		"pio               50000          200       250.0x",
		"mmio              60000          400       150.0x",
		"hypercall         30000            -            -",
		"juice: exits per second:        40000.000 exits/s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The guest under juice must say it found juice, and the plain run
	// must end with status 0.
	cases := []struct {
		name         string
		juice, plain testkernel.Program
		errHas       string
	}{
		{"juice not recognised", testkernel.Program{Output: strings.ReplaceAll(benchJuiceOutput, "hypervisor juice", "no juice")},
			testkernel.Program{Output: benchPlainOutput}, "did not recognise juice"},
		{"no exit count", testkernel.Program{Output: strings.ReplaceAll(benchJuiceOutput, "8000 exits", "many exits")},
			testkernel.Program{Output: benchPlainOutput}, "N exits"},
		{"plain run fails", testkernel.Program{Output: benchJuiceOutput},
			testkernel.Program{Output: benchPlainOutput, Status: 1}, "plain QEMU: juice exited with status 1"},
		{"juice run fails", testkernel.Program{Output: benchJuiceOutput, Status: 3},
			testkernel.Program{Output: benchPlainOutput}, "juice: juice exited with status 3"},
	}
	for _, c := range cases {
		rc, out, errOut := juice("bench", "--vm", "--juice", testKernel(t, c.juice), "--guest", testKernel(t, c.plain),
			"--runs", "1", "--mem", "32M")
		if rc != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, c.errHas) {
			t.Errorf("%s: rc = %d, want 1 and %q\n%s\n%s", c.name, rc, c.errHas, out, errOut)
		}
	}
}

func TestBenchVMUsage(t *testing.T) {
	rc, _, errOut := juice("bench", "--vm", "--guest", "/no/such/bench.elf", "--juice", "/dev/null")
	if rc != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing guest: rc = %d, %q", rc, errOut)
	}
	rc, _, errOut = juice("bench", "--vm", "--runs", "0")
	if rc != 2 || !strings.Contains(errOut, "at least 1") {
		t.Errorf("--runs 0: rc = %d, %q", rc, errOut)
	}
}
