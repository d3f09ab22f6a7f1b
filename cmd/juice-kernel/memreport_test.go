package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"juice/vmm/bundle"
)

// TestMemReportPeak: the report compares the footprint when measuring
// starts with the highest one sampled afterwards (not the last), and
// splits juice's own memory beyond guest RAM per VM into the runtime's
// part and the other frames.
func TestMemReportPeak(t *testing.T) {
	const kib = 1024
	vms := []bundle.VMSpec{{Name: "a", MemBytes: 32 << 20}, {Name: "b", MemBytes: 32 << 20}}
	// Before: 10000 KiB (runtime 700). Then the VMs: 64 MiB of guest RAM
	// plus 1000 KiB of juice's own (600 in the runtime); then they stop.
	readings := [][2]uint64{
		{10000 * kib, 700 * kib},
		{10000*kib + 64<<20, 900 * kib},
		{11000*kib + 64<<20, 1300 * kib},
		{12000 * kib, 1400 * kib},
	}
	var mu sync.Mutex
	i := 0
	read := func() (uint64, uint64) {
		mu.Lock()
		defer mu.Unlock()
		r := readings[min(i, len(readings)-1)]
		i++
		return r[0], r[1]
	}
	var lines []string
	stop := startMemReport(vms, read, time.Millisecond, func(l string) { lines = append(lines, l) })
	for {
		mu.Lock()
		n := i
		mu.Unlock()
		if n > len(readings) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if len(lines) != 2 {
		t.Fatalf("lines %q, want 2", lines)
	}
	want := "juice: memory: 2 VMs, guest RAM 65536 KiB; in use before the VMs 10000 KiB (runtime 700 KiB), at the peak 76536 KiB (runtime 1300 KiB); juice's own beyond guest RAM 500 KiB per VM (runtime 300, other frames 200)"
	if lines[0] != want {
		t.Errorf("line\n%q, want\n%q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "juice: memory at the peak: runtime heap objects ") {
		t.Errorf("second line %q", lines[1])
	}
}

// TestMemReportNoGrowth: a peak below the guest RAM (nothing measured,
// or VMs that were never built) gives no per-VM figure rather than a
// wrapped-around one.
func TestMemReportNoGrowth(t *testing.T) {
	l := memReportLines(3, 96<<20, memFigures{footprint: 5 << 20}, memFigures{footprint: 6 << 20})
	if !strings.HasSuffix(l[0], "juice's own beyond guest RAM -") {
		t.Errorf("line %q", l[0])
	}
}
