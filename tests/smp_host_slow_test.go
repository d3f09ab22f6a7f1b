//go:build slow

package tests

import "testing"

// TestSMPStressSlow runs goroutines, garbage collection (returning memory
// to juice, so TLB shootdowns), timers, channels and pinned threads on
// four CPUs for three minutes: no deadlock, no lost wake-up (a worker
// that stalls fails the run), no corrupted data. Run by `make test-slow`.
func TestSMPStressSlow(t *testing.T) {
	stressRun(t, 4, 180)
}
