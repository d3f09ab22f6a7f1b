package kernel

import (
	"sync/atomic"
	"time"

	"juice/boot"
	"juice/boot/bootinfo"
	"juice/boot/cmdline"
	"juice/cpu"
	"juice/drivers/lapic"
	"juice/mm"
)

// Multiprocessing. The boot CPU starts every other processor the MADT
// lists (startAPs): INIT, then STARTUP twice, pointing it at a real-mode
// trampoline copied below 1 MiB (apTrampoline in entry_amd64.s) that
// switches to long mode on juice/boot's identity map and jumps to
// apEntry64, which finds the CPU's per-CPU block by APIC ID and calls
// apStart on that CPU's kernel stack. apStart loads the CPU's own GDT,
// TSS and IST stacks, the shared IDT, its local APIC and SYSCALL MSRs,
// reports in (cpuStarting → cpuOnline) and enters the scheduler. A CPU
// that does not report in within apTimeoutNs is reported and left out; if
// it answers later, it finds its slot marked cpuFailed and parks.
//
// Inter-processor interrupts: vecWake ends an idle CPU's HLT when a thread
// becomes runnable (busy CPUs are never sent one: they time-slice, see
// kickWaiting), vecTLB makes a CPU running a thread flush its TLB
// (tlbShootdown), vecHalt stops the others when juice halts on a fatal
// error, vecKick gets a CPU out of the guest it is running (KickCPU): its
// handler only acknowledges it, the #VMEXIT it causes is the point.

const (
	vecWake = 0xf0
	vecTLB  = 0xf1
	vecHalt = 0xf2
	vecKick = 0xf3
)

// Trampoline layout (see apTrampoline).
const (
	trampSize      = 0x100
	trampGDTRBase  = 0x0a // GDTR base field (after the 2-byte limit)
	trampGDT       = 0x10
	trampFar32     = 0x30
	trampCR3       = 0x38
	trampEFER      = 0x3c
	trampEntry64   = 0x40
	trampFar64     = 0x48
	trampCode16    = 0x80
	trampCode32    = 0xb0
	trampCode64    = 0xf0
	trampLowest    = 0x1000  // page 0 holds the real-mode IVT and BIOS data
	trampHighest   = 0xa0000 // conventional memory ends at 640 KiB
	apInitDelayNs  = 10e6    // INIT to STARTUP (Intel MP spec: 10 ms)
	apSIPIDelayNs  = 200e3   // between the STARTUPs
	apTimeoutNs    = 1e9     // after the second STARTUP
	shootdownMaxNs = 5e9
)

var (
	// apCR3 is juice's page-table root, loaded by apEntry64.
	apCR3 uint64
	// trampPage is the physical page the trampoline was copied to.
	trampPage uint64
	// tlbGen counts TLB shootdowns; each CPU records in perCPU.tlbGen the
	// generation it has flushed up to.
	tlbGen uint64
	// hasRDTSCP tells whether IA32_TSC_AUX (the CPU number for RDTSCP)
	// exists.
	hasRDTSCP bool
)

// Assembly (entry_amd64.s).
func cpuIndex() int32
func apTrampoline()
func apTrampolineAddr() uintptr
func apEntry64()
func apEntry64Addr() uintptr

// myCPU returns the calling CPU's per-CPU block. Kernel context, or thread
// context with interrupts off (otherwise the thread may move).
//
//go:nosplit
func myCPU() *perCPU {
	i := cpuIndex()
	if i < 0 || i >= maxCPUs {
		i = 0
	}
	return &cpus[i]
}

// patchTrampoline fills in the trampoline copy b for physical address
// base: its GDT's address, the far pointers into itself, the CR3 to switch
// long mode on, the EFER bits to set and the 64-bit entry. It reports false
// if b is not a trampoline or base is unusable (not a page below 1 MiB).
//
//go:nosplit
func patchTrampoline(b []byte, base uint64, cr3 uint32, efer uint32, entry uint64) bool {
	if len(b) < trampSize || base&4095 != 0 || base >= 1<<20 || b[0] != 0xeb || b[1] != trampCode16-2 {
		return false
	}
	put32(b, trampGDTRBase, uint32(base)+trampGDT)
	put32(b, trampFar32, uint32(base)+trampCode32)
	put32(b, trampCR3, cr3)
	put32(b, trampEFER, efer)
	put64(b, trampEntry64, entry)
	put32(b, trampFar64, uint32(base)+trampCode64)
	return true
}

//go:nosplit
func put32(b []byte, off int, v uint32) {
	if off >= 0 && off+4 <= len(b) {
		for i := 0; i < 4; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
	}
}

// trampolineSpot picks the page for the trampoline: the highest page in
// conventional memory (0x1000–0x9ffff) that lies inside one of the RAM
// ranges and outside every range in avoid. 0: none.
//
//go:nosplit
func trampolineSpot(ram []mm.Range, avoid []mm.Range) uint64 {
	for pg := uint64(trampHighest - 4096); pg >= trampLowest; pg -= 4096 {
		in := false
		for _, r := range ram {
			if pg >= r.Base && pg+4096 <= r.End {
				in = true
				break
			}
		}
		if !in {
			continue
		}
		clash := false
		for _, r := range avoid {
			if pg < r.End && pg+4096 > r.Base {
				clash = true
				break
			}
		}
		if !clash {
			return pg
		}
	}
	return 0
}

// cpuOrder lists the APIC IDs to start, in MADT order: every enabled
// processor but the boot CPU (bsp), each once, at most max-1 of them
// (the boot CPU takes a slot). skipped counts the ones left out for want
// of slots.
//
//go:nosplit
func cpuOrder(madt []uint32, bsp uint32, max int, out []uint32) (n, skipped int) {
	for _, id := range madt {
		if id == bsp {
			continue
		}
		dup := false
		for _, o := range out[:n] {
			if o == id {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if n >= max-1 || n >= len(out) {
			skipped++
			continue
		}
		out[n] = id
		n++
	}
	return n, skipped
}

// spinNs busy-waits about ns nanoseconds on the TSC.
//
//go:nosplit
func spinNs(ns uint64) {
	end := cpu.RDTSC() + nsToTicks(ns)
	for cpu.RDTSC() < end {
		cpu.Pause()
	}
}

// waitState waits up to ns for CPU c to leave cpuStarting.
//
//go:nosplit
func waitState(c *perCPU, ns uint64) bool {
	end := cpu.RDTSC() + nsToTicks(ns)
	for cpu.RDTSC() < end {
		if atomic.LoadUint32(&c.state) != cpuStarting {
			return true
		}
		cpu.Pause()
	}
	return false
}

var apIDs [maxCPUs]uint32

// startAPs starts the processors the MADT lists besides the boot CPU and
// reports each: "smp: cpu N (apic A) online" or why it is left out, then
// "smp: N of M CPUs online". Start-up context, on the boot CPU, after the
// descriptor tables, memory, the local APIC and the TSC are set up.
func startAPs() {
	c0 := &cpus[0]
	c0.apicID = apic.ID()
	total := 1
	n, skipped := 0, 0
	if acpiOK && acpiTables.NCPU > 0 {
		n, skipped = cpuOrder(acpiTables.CPUAPICID[:acpiTables.NCPU], c0.apicID, maxCPUs, apIDs[:])
		total = n + skipped + 1
	}
	if n == 0 {
		smpReport(total)
		return
	}
	if skipped > 0 {
		kputs("smp: ")
		kputUint(uint64(skipped))
		kputs(" CPUs left out: juice runs on at most ")
		kputUint(maxCPUs)
		kputs("\n")
	}
	if !prepareTrampoline() {
		kputs("smp: no free page below 640 KiB for the start-up code; running on the boot CPU only\n")
		smpReport(total)
		return
	}
	for i := 0; i < n; i++ {
		startAP(apIDs[i], config.Mode == cmdline.ModeSMPFailtest && i == n-1)
	}
	smpReport(total)
}

// smpReport prints the CPU count line.
func smpReport(total int) {
	online := 0
	for m := onlineMask; m != 0; m &= m - 1 {
		online++
	}
	kputs("smp: ")
	kputUint(uint64(online))
	kputs(" of ")
	kputUint(uint64(total))
	kputs(" CPUs online\n")
}

// prepareTrampoline copies the trampoline to a free page of conventional
// memory and patches it.
func prepareTrampoline() bool {
	var ram [16]mm.Range
	nram := 0
	for i := 0; i < bootInfo.NMem && nram < len(ram); i++ {
		r := bootInfo.Mem[i]
		if r.Type == bootinfo.RegionRAM && r.Base < trampHighest {
			ram[nram] = mm.Range{Base: r.Base, End: r.End()}
			nram++
		}
	}
	var avoid [16]mm.Range
	na := 0
	for i := 0; i < bootInfo.NReserved && na < len(avoid); i++ {
		avoid[na] = mm.Range{Base: bootInfo.Reserved[i].Base, End: bootInfo.Reserved[i].End}
		na++
	}
	for i := 0; i < bootInfo.NMod && na < len(avoid); i++ {
		avoid[na] = mm.Range{Base: bootInfo.Mod[i].Start, End: bootInfo.Mod[i].End}
		na++
	}
	if bootInfo.RSDP != 0 && na < len(avoid) {
		avoid[na] = mm.Range{Base: bootInfo.RSDP, End: bootInfo.RSDP + 36}
		na++
	}
	pg := trampolineSpot(ram[:nram], avoid[:na])
	if pg == 0 {
		return false
	}
	b, ok := physMem.Bytes(pg, trampSize)
	if !ok {
		return false
	}
	src := trampolineCode()
	copy(b, src)
	efer := uint32(0x100) // LME
	if cpu.RDMSR(msrEFER)&(1<<11) != 0 {
		efer |= 1 << 11 // NXE: juice's page tables use NX
	}
	// juice/boot's PML4 sits one page below its PDPT (boot.entry32).
	pml4 := boot.BootPDPT() - 4096
	if !patchTrampoline(b, pg, uint32(pml4), efer, uint64(apEntry64Addr())) {
		return false
	}
	apCR3 = kpt.Root
	trampPage = pg
	return true
}

// startAP starts the processor with APIC ID id in the next free slot.
// noSIPI (juice.mode=smpfailtest) leaves out the STARTUP IPIs, so that
// the CPU never answers.
func startAP(id uint32, noSIPI bool) {
	k := nCPUs
	c := &cpus[k]
	c.id = k
	c.apicID = id
	c.cur = -1
	fail := func(why, detail string) {
		kputs("smp: cpu ")
		kputUint(uint64(k))
		kputs(" (apic ")
		kputUint(uint64(id))
		kputs(") ")
		kputs(why)
		kputs(detail)
		kputs("; left out\n")
	}
	if c.kstack == 0 {
		ks, ok1 := frames.AllocContig(kernelStackSize / 4096)
		is, ok2 := frames.AllocContig(4 * istStackSize / 4096)
		if !ok1 || !ok2 {
			fail("has no memory for its stacks", "")
			return
		}
		c.kstack = uintptr(directBase + ks + kernelStackSize)
		for i := range c.ist {
			c.ist[i] = uintptr(directBase + is + uint64(i+1)*istStackSize)
		}
	}
	nCPUs++
	atomic.StoreUint32(&c.state, cpuStarting)
	if s := apic.SendInit(id); s != lapic.StatusOK {
		atomic.StoreUint32(&c.state, cpuFailed)
		fail("cannot be sent INIT: ", s.String())
		return
	}
	spinNs(apInitDelayNs)
	if !noSIPI {
		for try := 0; try < 2; try++ {
			if s := apic.SendStartup(id, uint8(trampPage>>12)); s != lapic.StatusOK {
				atomic.StoreUint32(&c.state, cpuFailed)
				fail("cannot be sent STARTUP: ", s.String())
				return
			}
			if waitState(c, apSIPIDelayNs) {
				break
			}
		}
	}
	waitState(c, apTimeoutNs)
	// Either the CPU reported in, or it is marked failed now (a CPU that
	// answers later sees that and parks).
	if atomic.CompareAndSwapUint32(&c.state, cpuStarting, cpuFailed) {
		fail("did not start", "")
		return
	}
	if atomic.LoadUint32(&c.state) != cpuOnline {
		fail("could not set up its local APIC", "")
		return
	}
	atomic.OrUint64(&onlineMask, 1<<uint(k))
	kputs("smp: cpu ")
	kputUint(uint64(k))
	kputs(" (apic ")
	kputUint(uint64(id))
	kputs(") online\n")
}

// apStart runs on an application processor, on its kernel stack with a
// stand-in g (apEntry64): it sets the CPU up like the boot CPU, reports in
// and runs threads. Start-up context, then kernel context.
func apStart() {
	c := myCPU()
	c.inKernel = 1
	loadCPUTables(c)
	var l lapic.LAPIC
	cfg := lapicConfig()
	if s := l.Init(&physMem, &msrs, cfg); s != lapic.StatusOK || l.X2APIC() != apic.X2APIC() {
		atomic.CompareAndSwapUint32(&c.state, cpuStarting, cpuAbsent)
		cpu.HaltForever()
	}
	initSyscalls()
	if hasRDTSCP {
		cpu.WRMSR(msrTSCAux, uint64(c.id))
	}
	atomic.StoreUint64(&c.tlbGen, atomic.LoadUint64(&tlbGen))
	cpu.WriteCR3(cpu.ReadCR3())
	if !atomic.CompareAndSwapUint32(&c.state, cpuStarting, cpuOnline) {
		cpu.HaltForever() // too late: left out
	}
	bkl.lock()
	schedule(c)
	resumeThread()
}

// sendIPI sends vector vec to CPU o. Kernel context.
//
//go:nosplit
func sendIPI(o *perCPU, vec uint8) {
	apic.SendIPI(o.apicID, vec)
}

// tlbAck flushes CPU c's TLB if a shootdown happened since its last flush.
// Kernel context (or thread context with interrupts off).
//
//go:nosplit
func tlbAck(c *perCPU) {
	if g := atomic.LoadUint64(&tlbGen); atomic.LoadUint64(&c.tlbGen) != g {
		cpu.WriteCR3(cpu.ReadCR3())
		atomic.StoreUint64(&c.tlbGen, g)
	}
}

// tlbShootdown makes every other CPU drop the translations the calling CPU
// has just removed or restricted (it flushed its own). It returns once
// every CPU that runs a thread has flushed; the others flush before they
// next take a lock, which they must before running one. Kernel context,
// with bkl and mmLock held, so no CPU can start running a thread or touch
// the runtime's memory from kernel context meanwhile.
//
//go:nosplit
func tlbShootdown(c *perCPU) {
	if nCPUs <= 1 {
		return
	}
	g := atomic.AddUint64(&tlbGen, 1)
	atomic.StoreUint64(&c.tlbGen, g)
	var wait uint64
	for k := int32(0); k < nCPUs && k < maxCPUs; k++ {
		o := &cpus[k]
		if o == c || atomic.LoadUint32(&o.state) != cpuOnline || o.cur < 0 {
			continue
		}
		if atomic.LoadUint64(&o.tlbGen) < g {
			sendIPI(o, vecTLB)
			wait |= 1 << uint(k)
		}
	}
	if wait == 0 {
		return
	}
	atomic.AddUint64(&shootdowns, 1)
	end := cpu.RDTSC() + nsToTicks(shootdownMaxNs)
	for wait != 0 {
		for m := wait; m != 0; m &= m - 1 {
			k := trailingZeros(m)
			if atomic.LoadUint64(&cpus[k].tlbGen) >= g {
				wait &^= 1 << uint(k)
			}
		}
		if cpu.RDTSC() > end {
			fatalBegin()
			kputs("TLB shootdown: cpu ")
			kputUint(uint64(trailingZeros(wait)))
			kputs(" did not answer")
			fatalEnd()
		}
		cpu.Pause()
	}
}

//go:nosplit
func trailingZeros(m uint64) int {
	n := 0
	for m&1 == 0 && n < 64 {
		m >>= 1
		n++
	}
	return n
}

// stopOthers halts every other CPU (fatal errors). Kernel context.
//
//go:nosplit
func stopOthers() {
	if nCPUs <= 1 || !apic.Ready() {
		return
	}
	apic.SendICR(0, lapic.ICRFixed|lapic.ICRAssert|lapic.ICRAllExcludingSelf|vecHalt)
}

// Shootdowns counts TLB shootdowns that had to interrupt another CPU.
var shootdowns uint64

// CPUStat is what one CPU did since boot.
type CPUStat struct {
	CPU, APIC int
	// RunNs is the time spent running threads (the rest is the kernel
	// and idle), Switches how often it changed threads, IPIs how many
	// wake-up and TLB inter-processor interrupts it took, Kicks how many
	// kick IPIs (KickCPU).
	RunNs, Switches, IPIs, Kicks uint64
}

// CPUStats returns the statistics of every online CPU.
func CPUStats() []CPUStat {
	var out []CPUStat
	for k := int32(0); k < atomic.LoadInt32(&nCPUs) && k < maxCPUs; k++ {
		c := &cpus[k]
		if atomic.LoadUint32(&c.state) != cpuOnline {
			continue
		}
		out = append(out, CPUStat{CPU: int(k), APIC: int(c.apicID), RunNs: ticksToNs(atomic.LoadUint64(&c.runTSC)),
			Switches: atomic.LoadUint64(&c.switches), IPIs: atomic.LoadUint64(&c.ipis), Kicks: atomic.LoadUint64(&c.kicks)})
	}
	return out
}

// MaxRunDelay is the longest a runnable thread has waited for a CPU.
func MaxRunDelay() time.Duration { return time.Duration(ticksToNs(atomic.LoadUint64(&maxRunDelay))) }

// TLBShootdowns returns how many TLB shootdowns interrupted other CPUs.
func TLBShootdowns() uint64 { return atomic.LoadUint64(&shootdowns) }

// CPUs returns the number of CPUs juice runs on and the number the MADT
// lists.
func CPUs() (online, listed int) {
	for m := atomic.LoadUint64(&onlineMask); m != 0; m &= m - 1 {
		online++
	}
	return online, max(acpiTables.NCPU, 1)
}

// CPU returns the number of the CPU the caller runs on (it may have moved
// by the time the caller looks). It is one load through GS, which points
// at the per-CPU block of whichever CPU executes it (threads never change
// GS; VM exits restore it): cheap enough for every guest entry.
//
//go:nosplit
func CPU() int { return int(cpuIndex()) }

// TSCAuxHoldsCPU reports whether every CPU keeps its number in
// IA32_TSC_AUX, where RDTSCP reads it (svm.Backend.CPUMoves relies on it).
func TSCAuxHoldsCPU() bool { return hasRDTSCP }
