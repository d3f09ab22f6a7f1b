//go:build slow

package tests

import "testing"

// TestSMPStressSlow runs goroutines, garbage collection (returning memory
// to juice, so TLB shootdowns), timers, channels and pinned threads on two
// CPUs for three minutes: no deadlock, no lost wake-up (a worker that
// stalls fails the run), no corrupted data, no timer more than 10 s late.
// Run by `make test-slow`. (Two CPUs, as many as the development box has
// cores: on four, QEMU's four CPU threads share its two cores.)
func TestSMPStressSlow(t *testing.T) {
	stressRun(t, 2, 180)
}

// TestSMPSelftestFourCPUs: the self-test on four CPUs (QEMU's four CPU
// threads share the development box's two cores).
func TestSMPSelftestFourCPUs(t *testing.T) { smpSelftest(t, 4) }

// TestSMPCPUFails: a CPU that never answers its start-up IPIs is left
// out and the others run the self-test.
func TestSMPCPUFails(t *testing.T) { smpCPUFails(t) }
