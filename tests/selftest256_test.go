package tests

import (
	"fmt"
	"strings"
	"testing"

	"juice/cmd/juice/launch"
)

// selftest256Boots is how many times TestSelftest256M boots the self-test.
const selftest256Boots = 3

// selftest256MaxCommitted bounds the memory backing the Go runtime after the
// self-test in 256 MiB. The GC check allocates 4x RAM keeping 2 MiB live;
// with juice's collector policy (kernel/gcpolicy.go) the runtime ends with
// 10-14 MiB committed. Without it the runtime's GC CPU limiter switched mark
// assists off midway and the runtime ended with 15-50 MiB, at times all of
// RAM ("out of memory: no free page for the Go runtime").
const selftest256MaxCommitted = 24 << 20

// TestSelftest256M boots the self-test in a 256 MiB machine a few times:
// every check passes, juice never runs out of memory, and the runtime's
// committed memory stays bounded.
func TestSelftest256M(t *testing.T) {
	for i := 1; i <= selftest256Boots; i++ {
		t.Run(fmt.Sprintf("boot%d", i), func(t *testing.T) {
			r := Boot(t, launch.Config{Boot: launch.BootPVH, Mem: "256M", Append: launch.SelftestArgs})
			r.ExpectNext("juice: booted by pvh")
			end := r.ExpectMatch("the self-test's summary or an out-of-memory stop", func(s string) bool {
				return strings.HasPrefix(s, "selftest: done in ") || strings.Contains(s, "out of memory")
			})
			if strings.Contains(end, "out of memory") {
				t.Fatalf("juice ran out of memory in the self-test: %q", end)
			}
			mem := r.ExpectNext("mem: footprint ")
			r.ExpectNext("juice: power off, status 0")
			r.ExpectExit(0)
			checkSelftestLines(t, r.Texts(), end)
			var footKiB, committedKiB uint64
			if _, err := fmt.Sscanf(mem, "mem: footprint %d KiB (runtime committed %d KiB)", &footKiB, &committedKiB); err != nil {
				t.Fatalf("malformed memory line %q: %v", mem, err)
			}
			t.Logf("footprint %d KiB, runtime committed %d KiB", footKiB, committedKiB)
			if committedKiB<<10 > selftest256MaxCommitted {
				t.Errorf("runtime committed %d KiB after the self-test, want at most %d KiB", committedKiB, selftest256MaxCommitted>>10)
			}
		})
	}
}
