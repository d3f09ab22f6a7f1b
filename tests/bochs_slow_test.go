//go:build slow

package tests

import "testing"

// The self-test under Bochs with the 256 MiB the Bochs recipe uses, and
// with two processors (Bochs's BIOS alone takes about 25 s to start two).
// Each takes 30-80 s wall; run by `make test-slow`.
func TestSelftestBochsSlow(t *testing.T) {
	for _, c := range []struct {
		name string
		mem  string
		cpus int
	}{{"256M", "256M", 1}, {"smp2", "128M", 2}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			selftestBochs(t, c.mem, c.cpus)
		})
	}
}
