package main

import (
	"fmt"
	"log"
	"runtime/metrics"
	"sync"
	"time"

	"juice/kernel"
	"juice/vmm/bundle"
)

// What the bundle's VMs cost juice in memory. runBundle calls memReport
// once the bundle is parsed and before any VM is built:
//
//	defer memReport(b.VMs)()
//
// It notes juice's footprint then (the "0 VMs" figure: juice, its page
// tables, the runtime and the boot modules, the bundle included), samples
// it every memSampleEvery while the VMs run, and, when runBundle returns
// (every VM has stopped), prints the highest footprint seen. Every VM is
// built before any starts and a VM's memory goes back when it stops, so
// the peak falls while all of them exist. The report is two lines:
//
//	juice: memory: N VMs, guest RAM G KiB; in use before the VMs B KiB (runtime R KiB), at the peak P KiB (runtime Q KiB); juice's own beyond guest RAM X KiB per VM (runtime Y, other frames Z)
//	juice: memory at the peak: runtime heap objects O KiB, heap free and unused F KiB, goroutine stacks S KiB
//
// X is (P - B - G) / N: the VMs' cost to juice besides their RAM. Y is
// its part in memory backing the Go runtime's mappings
// (kernel.RuntimeCommitted: vmm.VM and the device models, goroutines
// and their stacks, console buffers, and the Go heap's slack that comes
// with them), (Q - R) / N; Z the part in frames juice hands out directly
// besides guest RAM (the backend's control blocks, nested page tables
// and permission maps; the kernel's page tables for the runtime's
// mappings), X - Y. The second line is the runtime's own account
// (runtime/metrics), read when the peak was last raised; it counts the
// memory the runtime has mapped, which juice backs only where touched.

// memSampleEvery is how often memReport reads juice's footprint.
const memSampleEvery = 10 * time.Millisecond

// memFigures is one reading of juice's memory.
type memFigures struct {
	footprint uint64 // frames in use (kernel.Footprint)
	runtime   uint64 // of which back the runtime's mappings

	// The runtime's view (runtime/metrics); only at the peak.
	heapObjects uint64 // live and not yet swept objects
	heapSlack   uint64 // heap spans' free and unused bytes
	stacks      uint64 // goroutine and system stacks
}

// memMetricNames are the runtime/metrics read at a peak, in the order
// readRuntime expects.
var memMetricNames = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
}

// readRuntime fills f's runtime view from samples (already read).
func (f *memFigures) readRuntime(samples []metrics.Sample) {
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	f.heapObjects = v(0)
	f.heapSlack = v(1) + v(2)
	f.stacks = v(3) + v(4)
}

// memReport starts measuring (see above) and returns the function that
// stops and prints.
func memReport(vms []bundle.VMSpec) func() {
	return startMemReport(vms, func() (uint64, uint64) {
		return kernel.Footprint(), kernel.RuntimeCommitted()
	}, memSampleEvery, func(l string) { log.Print(l) })
}

// startMemReport is memReport with its readings (footprint, runtime),
// sampling period and printer given.
func startMemReport(vms []bundle.VMSpec, read func() (footprint, runtime uint64), every time.Duration, out func(string)) func() {
	var guest uint64
	for _, v := range vms {
		guest += v.MemBytes
	}
	var before memFigures
	before.footprint, before.runtime = read()
	samples := make([]metrics.Sample, len(memMetricNames))
	for i, n := range memMetricNames {
		samples[i].Name = n
	}
	var (
		mu   sync.Mutex
		peak = before
	)
	sample := func() {
		f, rt := read()
		mu.Lock()
		defer mu.Unlock()
		if f <= peak.footprint {
			return
		}
		peak.footprint, peak.runtime = f, rt
		metrics.Read(samples)
		peak.readRuntime(samples)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		mu.Lock()
		p := peak
		mu.Unlock()
		for _, l := range memReportLines(len(vms), guest, before, p) {
			out(l)
		}
	}
}

// memReportLines are the report's two lines.
func memReportLines(n int, guest uint64, before, peak memFigures) []string {
	perVM := "-"
	if n > 0 && peak.footprint >= before.footprint+guest && peak.runtime >= before.runtime {
		own := (peak.footprint - before.footprint - guest) >> 10 / uint64(n)
		rt := (peak.runtime - before.runtime) >> 10 / uint64(n)
		perVM = fmt.Sprintf("%d KiB per VM (runtime %d, other frames %d)", own, rt, own-min(rt, own))
	}
	return []string{
		fmt.Sprintf("juice: memory: %d VMs, guest RAM %d KiB; in use before the VMs %d KiB (runtime %d KiB), at the peak %d KiB (runtime %d KiB); juice's own beyond guest RAM %s",
			n, guest>>10, before.footprint>>10, before.runtime>>10, peak.footprint>>10, peak.runtime>>10, perVM),
		fmt.Sprintf("juice: memory at the peak: runtime heap objects %d KiB, heap free and unused %d KiB, goroutine stacks %d KiB",
			peak.heapObjects>>10, peak.heapSlack>>10, peak.stacks>>10),
	}
}
