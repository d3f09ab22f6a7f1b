// Command juice-kernel is juice's hypervisor kernel: the program the boot
// loader starts. Its entry point is juice/boot's 32-bit entry (the -E link
// flag); the Go runtime and this main function start once juice/kernel has
// set the machine up.
package main

import (
	"fmt"
	"log"
	"os"
	"time"

	"juice/kernel"
	"juice/kernel/selftest"
)

// version is set by the build (-X main.version=...).
var version = "dev"

func main() {
	kernel.MainStarted()
	log.SetFlags(0)
	log.SetOutput(console.Through(kernel.LogWriter{}))
	kernel.Banner(version)
	log.Printf("boot: stages %v", kernel.BootMarks())
	switch kernel.TestMode() {
	case "crashtest":
		crash()
	case "syscalltest":
		badSyscall()
	case "oomtest":
		exhaustMemory()
	}
	// "entrytest" acts in buildVM.
	hostDevices()
	if kernel.SelftestMode() {
		os.Exit(runSelftest())
	}
	if kernel.StressMode() {
		os.Exit(smpStress())
	}
	if mods := kernel.Modules(); len(mods) > 0 {
		status := runBundle(mods[0])
		log.Printf("juice: all VMs stopped")
		os.Exit(status)
	}
	log.Printf("juice: no VMs configured; idle")
	// Wait for work. A pending timer keeps the runtime from declaring the
	// idle main goroutine deadlocked; the CPU halts between wake-ups.
	for {
		time.Sleep(time.Hour)
	}
}

func runSelftest() int {
	start := kernel.Now()
	env := selftest.Env{RAM: kernel.UsableRAM(), Slack: 250 * time.Millisecond}
	passed, failed := selftest.Run(env, func(name string, err error) {
		if err != nil {
			log.Printf("selftest: %s FAIL: %v", name, err)
		} else {
			log.Printf("selftest: %s ok", name)
		}
	})
	end := kernel.Now()
	log.Printf("boot: self-test checks ran for %d ms", (end-start)/1e6)
	// "done in" counts from juice's entry, the figure make bench reports.
	log.Printf("selftest: done in %d ms, %d passed, %d failed", end/1e6, passed, failed)
	log.Printf("mem: footprint %d KiB (runtime committed %d KiB)", kernel.Footprint()>>10, kernel.RuntimeCommitted()>>10)
	logCPUStats()
	fmt.Print()
	if failed > 0 {
		return 1
	}
	return 0
}

// logCPUStats prints what every CPU did, when there is more than one.
func logCPUStats() {
	st := kernel.CPUStats()
	if len(st) < 2 {
		return
	}
	for _, s := range st {
		log.Printf("smp: cpu %d (apic %d) ran threads for %d ms, %d switches, %d IPIs", s.CPU, s.APIC, s.RunNs/1e6, s.Switches, s.IPIs)
	}
	log.Printf("smp: %d TLB shootdowns", kernel.TLBShootdowns())
}
