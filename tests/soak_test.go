//go:build slow

package tests

import (
	"fmt"
	"testing"

	"juice/cmd/juice/launch"
)

// soakRuns is how many self-test boots TestSoakSelftest makes.
const soakRuns = 10

// TestSoakSelftest repeats the PVH self-test boot: an intermittent failure
// (a race in the scheduler, a timer that sometimes never fires) shows up
// here rather than once in a while in `make test`. Run by `make test-slow`.
func TestSoakSelftest(t *testing.T) {
	for i := 1; i <= soakRuns; i++ {
		t.Run(fmt.Sprintf("boot%02d", i), func(t *testing.T) {
			selftest(t, launch.BootPVH, "pvh", "64M")
		})
	}
}

// TestSoakSelftestSMP runs the self-test with several virtual CPUs.
func TestSoakSelftestSMP(t *testing.T) {
	for _, cpus := range []int{2, 4} {
		t.Run(fmt.Sprintf("cpus%d", cpus), func(t *testing.T) {
			r := Boot(t, launch.Config{Mem: "128M", CPUs: cpus, Append: launch.SelftestArgs})
			r.ExpectNext("juice: booted by pvh")
			done := r.ExpectNext("selftest: done in ")
			r.ExpectExit(0)
			checkSelftestLines(t, r.Texts(), done)
		})
	}
}
