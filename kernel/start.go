// Package kernel is juice's ring-0 kernel: it takes the machine from the
// boot entry (juice/boot) to the Go runtime, and from then on serves the
// Linux system calls, page faults and interrupts of that runtime.
//
// Everything that runs before the runtime exists (Start), in a system call
// or in an interrupt is allocation-free and free of write barriers; the
// system-call and interrupt paths are //go:nosplit as well and run on the
// CPU's kernel stack. See ARCHITECTURE.md for the boot sequence.
package kernel

import (
	"juice/boot"
	"juice/boot/bootinfo"
	"juice/boot/cmdline"
	"juice/cpu"
	"juice/drivers/acpi"
	"juice/drivers/lapic"
	"juice/drivers/pit"
	"juice/drivers/rtc"
	"juice/drivers/uart"
	"juice/mm"
	"juice/mm/phys"
)

// minRAM is the least usable RAM juice boots with.
const minRAM = 28 << 20

const imageBase = boot.ImageBase

var (
	bootInfo bootinfo.Info
	config   cmdline.Config
	physMem  phys.Mem
	frames   mm.Frames
	kpt      mm.PageTables
	space    mm.Space
	apic     lapic.LAPIC
	msrs     lapic.MSR

	// initStack is the runtime's initial ("process") stack: m0's g0 stack.
	initStack [256 << 10]byte

	startTSC   uint64 // TSC at entry (from juice/boot)
	mainTSC    uint64 // TSC when the Go main function started
	cpuVendor  [12]byte
	cpuBrand   [48]byte
	memReport  struct{ usable, reserved, imageEnd uint64 }
	has1GPages bool
)

// Start is called by entry64 on the kernel stack, in long mode with SSE
// enabled and a stand-in g (bootG), before the Go runtime exists. It brings
// up the console, descriptor tables, memory, time and the system-call
// entry, then starts the runtime. It never returns. Start-up context: no
// allocation, no write barriers, no runtime services.
func Start() {
	// Boot time counts from the first 64-bit instruction (see
	// boot.LongModeTSC): microseconds after the loader's jump.
	startTSC = boot.LongModeTSC()
	portsInit()
	cmdline.Defaults(&config)
	mark()
	uart0.Init(&ports, config.ConsolePort, config.ConsoleBaud)
	mark()
	initCPUTables()
	mark()
	emulator = detectEmulator()

	eax, ebx := boot.EntryRegs()
	physMem = phys.Identity(4 << 30) // the boot page tables map 0-4 GiB
	st := bootinfo.Parse(&physMem, eax, ebx, &bootInfo)
	if st == bootinfo.StatusUnknownLoader {
		fatalBegin()
		kputs("unknown boot loader (eax=")
		kputHex(uint64(eax))
		kputs(" ebx=")
		kputHex(uint64(ebx))
		kputs("): juice boots by PVH or multiboot2")
		fatalEnd()
	}
	// The command line first: it may move the console and ask for
	// power-off on fatal errors.
	cst, bs, be := cmdline.Parse(bootInfo.CmdlineBytes(), &config)
	if config.ConsolePort != uart0.Port() {
		if uart0.Init(&ports, config.ConsolePort, config.ConsoleBaud) != uart.StatusOK {
			uart0.Init(&ports, 0x3f8, 115200)
		}
	}
	kputs("juice: booted by ")
	kputs(bootInfo.Loader.String())
	kputs("\n")
	if cst != cmdline.StatusOK {
		fatalBegin()
		kputs("bad kernel command line: ")
		kputs(cst.String())
		kputs(" at \"")
		if bs >= 0 && be <= len(bootInfo.CmdlineBytes()) && bs <= be {
			kputPrintable(bootInfo.CmdlineBytes()[bs:be])
		}
		kputs("\"")
		fatalEnd()
	}
	if st != bootinfo.StatusOK {
		fatalBegin()
		kputs("boot information from ")
		kputs(bootInfo.Loader.String())
		kputs(" unusable: ")
		kputs(st.String())
		fatalEnd()
	}

	checkCPU()
	mark()
	initMemory()
	mark()
	initACPI()
	mark()
	initTime()
	mark()
	initInterrupts()
	mark()
	initSyscalls()
	if hasRDTSCP {
		cpu.WRMSR(msrTSCAux, 0)
	}
	mark()
	fdInit()
	startAPs()

	// Thread 0 is the runtime's first thread. The other CPUs are idle in
	// the scheduler already.
	c := &cpus[0]
	bkl.lock()
	i, _ := newThread()
	// Until the runtime's arch_prctl, the thread keeps the stand-in TLS.
	threads[i].fsbase = uint64(bootTLSAddr())
	threads[i].owner = c.id + 1
	switchTo(c, i)
	threads[i].runSince = cpu.RDTSC()
	bkl.unlock()
	jumpToRuntime(buildProcessStack())
}

// kputPrintable prints b with bytes outside printable ASCII as "\xNN".
//
//go:nosplit
func kputPrintable(b []byte) {
	const digits = "0123456789abcdef"
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			numBuf[0] = c
			kputb(numBuf[:1])
			continue
		}
		numBuf[0] = '\\'
		numBuf[1] = 'x'
		numBuf[2] = digits[c>>4]
		numBuf[3] = digits[c&15]
		kputb(numBuf[:4])
	}
}

// checkCPU refuses CPUs juice cannot run on, naming what is missing.
func checkCPU() {
	_, b, c, d := cpu.CPUID(0, 0)
	for i := 0; i < 4; i++ {
		cpuVendor[i] = byte(b >> (8 * i))
		cpuVendor[4+i] = byte(d >> (8 * i))
		cpuVendor[8+i] = byte(c >> (8 * i))
	}
	maxExt, _, _, _ := cpu.CPUID(0x80000000, 0)
	if maxExt >= 0x80000004 {
		for l := uint32(0); l < 3; l++ {
			a, b, c, d := cpu.CPUID(0x80000002+l, 0)
			for i, r := range [4]uint32{a, b, c, d} {
				for k := 0; k < 4; k++ {
					cpuBrand[int(l)*16+i*4+k] = byte(r >> (8 * k))
				}
			}
		}
	}
	_, _, c1, d1 := cpu.CPUID(1, 0)
	_, b7, _, _ := cpu.CPUID(7, 0)
	hasRDRAND = c1&(1<<30) != 0
	hasRDSEED = b7&(1<<18) != 0
	if !hasRDRAND && !hasRDSEED {
		fatal("this CPU has neither RDSEED nor RDRAND: juice needs a hardware entropy source and will not fake one")
	}
	if d1&(1<<4) == 0 {
		fatal("this CPU has no time-stamp counter")
	}
	if d1&(1<<9) == 0 {
		fatal("this CPU has no local APIC")
	}
	if d1&(1<<24) == 0 || d1&(1<<26) == 0 {
		fatal("this CPU lacks FXSAVE or SSE2")
	}
	if maxExt >= 0x80000001 {
		_, _, _, dx := cpu.CPUID(0x80000001, 0)
		has1GPages = dx&(1<<26) != 0
		hasRDTSCP = dx&(1<<27) != 0
		if dx&(1<<20) != 0 { // NX
			cpu.WRMSR(msrEFER, cpu.RDMSR(msrEFER)|1<<11)
		}
	}
}

// directBase is where juice maps all of physical memory (RAM write-back,
// firmware and device ranges uncached): the kernel reaches frames, page
// tables, boot structures and device registers there. Only juice's own
// image is identity-mapped.
const directBase = 0xffff_8000_0000_0000

// lazyRun is a span of the image's bss that the loader did not load: the
// post-link step (boot/image) leaves the largest trailing bss symbol out of
// the last PT_LOAD when it is at least 1 MiB. That is Go 1.26's
// crypto/internal/fips140/drbg.memory, 32 MiB touched only in FIPS 140
// mode. Like a Linux process's bss, juice backs those pages with zeroed
// frames on first touch, so it needs neither the loader to reserve the
// memory nor a 64 MiB machine to spend half of itself on it.
type lazyRun struct{ b, e uint64 }

var (
	lazy     [1]lazyRun
	nLazy    int
	imageEnd uint64
)

// findLazyTail reads juice's own program headers (the first PT_LOAD maps
// the ELF header at imageBase) and records [end of the last PT_LOAD,
// runtime.end) as lazy. It refuses an image whose lazy tail holds a
// structure the kernel touches in kernel context, where a page fault is
// fatal.
func findLazyTail(end uint64) {
	phoff := *ptrU64(uintptr(imageBase + 0x20))
	phnum := *ptrU64(uintptr(imageBase + 0x38)) & 0xffff
	loaded := uint64(0)
	for i := uint64(0); i < phnum && i < 32; i++ {
		ph := uintptr(imageBase + phoff + 56*i)
		if *ptrU64(ph)&0xffffffff != 1 { // PT_LOAD
			continue
		}
		if e := *ptrU64(ph + 16) + *ptrU64(ph + 40); e > loaded {
			loaded = e
		}
	}
	loaded = (loaded + 4095) &^ 4095
	if loaded == 0 || loaded >= end {
		return
	}
	for _, x := range kernelContextData() {
		if x.b < end && x.e > loaded {
			fatal("image layout: a kernel structure lies in the lazily backed bss tail")
		}
	}
	lazy[0] = lazyRun{loaded, end}
	nLazy = 1
}

// inLazy reports whether va lies in a lazily backed bss run.
//
//go:nosplit
func inLazy(va uint64) bool {
	for i := 0; i < nLazy && i < len(lazy); i++ {
		if va >= lazy[i].b && va < lazy[i].e {
			return true
		}
	}
	return false
}

// lazyBack backs the bss page holding va with a zeroed frame. It returns
// false when memory is exhausted. Kernel context.
//
//go:nosplit
func lazyBack(va uint64) bool {
	pg := va &^ 4095
	if _, _, _, ok := kpt.Lookup(pg); ok {
		return true
	}
	pa, ok := frames.AllocZeroed()
	if !ok {
		return false
	}
	if kpt.Map(pg, pa, 4096, mm.PTEPresent|mm.PTEWrite|mm.PTENX) != mm.OK {
		frames.Free(pa)
		return false
	}
	lazyPages++
	return true
}

var lazyPages uint64

// initMemory builds the frame allocator from the boot memory map, juice's
// own page tables (the image identity-mapped, less its lazy bss; all
// physical memory at directBase) and the runtime's address space.
func initMemory() {
	var ram [bootinfo.MaxRegions]mm.Range
	var res [bootinfo.MaxReserved + bootinfo.MaxModules + 2 + len(lazy)]mm.Range
	nram, nres := 0, 0
	top := uint64(0)
	for i := 0; i < bootInfo.NMem; i++ {
		r := bootInfo.Mem[i]
		if r.Type != bootinfo.RegionRAM {
			memReport.reserved += r.Length
			continue
		}
		b, e := r.Base, r.End()
		if e > 1<<39 {
			e = 1 << 39 // the direct map covers 512 GiB
		}
		if !has1GPages && e > 4<<30 {
			e = 4 << 30 // only the boot map's 4 GiB is reachable yet
		}
		if b >= e {
			continue
		}
		ram[nram] = mm.Range{Base: b, End: e}
		nram++
		memReport.usable += e - b
		if e > top {
			top = e
		}
	}
	imageEnd = (uint64(endAddr()) + 4095) &^ 4095
	memReport.imageEnd = imageEnd
	findLazyTail(imageEnd)
	lazyBytes := uint64(0)
	for i := 0; i < nLazy; i++ {
		lazyBytes += lazy[i].e - lazy[i].b
	}
	need := imageEnd - imageBase - lazyBytes + minRAM
	if memReport.usable < need {
		fatalBegin()
		kputs("not enough memory: the boot loader reports ")
		kputUint(memReport.usable >> 20)
		kputs(" MiB of usable RAM; juice needs at least ")
		kputUint((need + 1<<20 - 1) >> 20)
		kputs(" MiB")
		fatalEnd()
	}
	res[nres] = mm.Range{Base: 0, End: 1 << 20}
	nres++
	// The image, less its lazy runs.
	from := uint64(imageBase)
	for i := 0; i < nLazy; i++ {
		res[nres] = mm.Range{Base: from, End: lazy[i].b}
		nres++
		from = lazy[i].e
	}
	res[nres] = mm.Range{Base: from, End: imageEnd}
	nres++
	for i := 0; i < bootInfo.NReserved; i++ {
		res[nres] = mm.Range{Base: bootInfo.Reserved[i].Base, End: bootInfo.Reserved[i].End}
		nres++
	}
	for i := 0; i < bootInfo.NMod; i++ {
		res[nres] = mm.Range{Base: bootInfo.Mod[i].Start &^ 4095, End: (bootInfo.Mod[i].End + 4095) &^ 4095}
		nres++
	}
	if top > 4<<30 {
		// Reach RAM above 4 GiB through the boot tables: 1 GiB pages.
		pdpt := boot.BootPDPT()
		for g := uint64(4); g < 512 && g<<30 < top; g++ {
			*ptrU64(uintptr(pdpt + 8*g)) = g<<30 | 0x83
		}
		cpu.WriteCR3(cpu.ReadCR3())
	}
	physMem = phys.Identity(top)
	if s := frames.Init(&physMem, ram[:nram], res[:nres]); s != mm.OK {
		fatalBegin()
		kputs("frame allocator: ")
		kputs(s.String())
		fatalEnd()
	}
	if s := kpt.Init(&physMem, &frames); s != mm.OK {
		fatal("cannot allocate the kernel page tables")
	}
	maxPage := uint64(2 << 20)
	if has1GPages {
		maxPage = 1 << 30
	}
	// The image, identity-mapped, except the lazy runs.
	from = imageBase
	for i := 0; i <= nLazy; i++ {
		to := imageEnd
		if i < nLazy {
			to = lazy[i].b
		}
		if to > from {
			mapOrDie(from, from, to-from, mm.PTEPresent|mm.PTEWrite, 2<<20)
		}
		if i < nLazy {
			from = lazy[i].e
		}
	}
	// Physical memory at directBase: the first MiB (BIOS data, EBDA, the
	// RSDP) and RAM write-back; anything else the firmware lists uncached.
	win := top
	mapOrDie(directBase, 0, 1<<20, mm.PTEPresent|mm.PTEWrite|mm.PTENX, maxPage)
	for i := 0; i < bootInfo.NMem; i++ {
		r := bootInfo.Mem[i]
		b, e := r.Base, r.End()
		if b < 1<<20 {
			b = 1 << 20
		}
		if e > 1<<39 {
			e = 1 << 39
		}
		if b >= e {
			continue
		}
		if e > win {
			win = e
		}
		flags := uint64(mm.PTEPresent | mm.PTEWrite | mm.PTENX)
		switch r.Type {
		case bootinfo.RegionRAM, bootinfo.RegionACPIReclaim, bootinfo.RegionACPINVS:
		default:
			// May hold device registers: never cache, never speculate.
			flags |= mm.PTECacheDisable | mm.PTEWriteThrough
		}
		mapOrDie(directBase+b, b, e-b, flags, maxPage)
	}
	mark()
	cpu.WriteCR3(kpt.Root)
	phys.SetDirectBase(directBase)
	physMem = phys.Identity(win)
	if s := space.Init(&physMem, &frames, &kpt); s != mm.OK {
		fatal("cannot set up the runtime's address space")
	}
	space.FlushTLB = true
}

// mapOrDie maps [pa, pa+n), rounded out to pages, at va.
func mapOrDie(va, pa, n, flags, maxPage uint64) {
	b := pa &^ 4095
	e := (pa + n + 4095) &^ 4095
	if s := kpt.MapRange(va&^4095, b, e-b, flags, maxPage); s != mm.OK {
		fatalBegin()
		kputs("cannot map ")
		kputHex(b)
		kputs("-")
		kputHex(e)
		kputs(": ")
		kputs(s.String())
		fatalEnd()
	}
}

// mapMMIO maps one device page uncached in the direct map, if it is not
// mapped yet.
func mapMMIO(pa uint64) {
	pa &^= 4095
	if _, _, _, ok := kpt.Lookup(directBase + pa); !ok {
		if s := kpt.Map(directBase+pa, pa, 4096, mm.PTEPresent|mm.PTEWrite|mm.PTECacheDisable|mm.PTEWriteThrough|mm.PTENX); s != mm.OK {
			fatal("cannot map device registers")
		}
	}
	physMem.Grow(pa + 4096)
}

func initACPI() {
	rsdp, st := acpi.FindRSDP(&physMem, bootInfo.RSDP)
	if st != acpi.StatusOK {
		kputs("acpi: no RSDP found; power-off by ACPI unavailable\n")
		return
	}
	if s := acpi.Parse(&physMem, rsdp, &acpiTables); s != acpi.StatusOK {
		kputs("acpi: ")
		kputs(s.String())
		kputs("\n")
	}
	acpiOK = true
}

// initTime calibrates the TSC and reads the wall clock.
func initTime() {
	tscBase = startTSC
	hz := cpuidTSCHz()
	tscSource = "CPUID 0x15"
	if hz == 0 && acpiOK && acpiTables.PMTimer != 0 {
		// The ACPI PM timer free-runs at 3.579545 MHz: 2 ms windows
		// (±1 tick is 0.014%).
		hz = medianOf3(func() (uint64, bool) {
			v, s := pit.CalibrateTSCWithPMTimer(&ports, uint16(acpiTables.PMTimer), acpiTables.PMTimer32, cpu.RDTSC, 2)
			return v, s == pit.StatusOK
		})
		tscSource = "ACPI PM timer"
	}
	if hz == 0 {
		hz = medianOf3(func() (uint64, bool) {
			v, s := pit.CalibrateTSC(&ports, cpu.RDTSC, 2)
			return v, s == pit.StatusOK
		})
		tscSource = "PIT"
	}
	if hz < 1e6 {
		fatal("cannot calibrate the TSC: no PIT, no ACPI PM timer and no CPUID frequency")
	}
	setTSCHz(hz)
	century := uint8(0)
	if acpiOK {
		century = acpiTables.Century
	}
	if t, s := rtc.Read(&ports, century); s == rtc.StatusOK {
		realBase = t.Unix()*1e9 - int64(nanotime())
	}
}

var marks [16]uint64
var nmarks int

func mark() {
	if nmarks < len(marks) {
		marks[nmarks] = cpu.RDTSC()
		nmarks++
	}
}

// BootMarks returns the start-up stage times in ns since entry.
func BootMarks() []uint64 {
	r := make([]uint64, nmarks)
	for i := range r {
		r[i] = ticksToNs(marks[i] - startTSC)
	}
	return r
}

// medianOf3 returns the median of three measurements, or 0 if any failed.
func medianOf3(measure func() (uint64, bool)) uint64 {
	var m [3]uint64
	for i := range m {
		v, ok := measure()
		if !ok {
			return 0
		}
		m[i] = v
	}
	return median3(m[0], m[1], m[2])
}

func median3(a, b, c uint64) uint64 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	if a > b {
		return a
	}
	return b
}

// initInterrupts masks the legacy PICs and programs the local APIC timer.
func initInterrupts() {
	// Remap the 8259s to 0x20-0x2f (so a stray IRQ is not taken for an
	// exception), then mask every line.
	cpu.Outb(0x20, 0x11)
	cpu.Outb(0xa0, 0x11)
	cpu.Outb(0x21, 0x20)
	cpu.Outb(0xa1, 0x28)
	cpu.Outb(0x21, 4)
	cpu.Outb(0xa1, 2)
	cpu.Outb(0x21, 1)
	cpu.Outb(0xa1, 1)
	cpu.Outb(0x21, 0xff)
	cpu.Outb(0xa1, 0xff)

	msrs.Read = cpu.RDMSR
	msrs.Write = cpu.WRMSR
	base := cpu.RDMSR(0x1b) & 0x000ffffffffff000
	mapMMIO(base)
	_, _, c1, _ := cpu.CPUID(1, 0)
	timerDeadlineMode = c1&(1<<24) != 0
	if s := apic.Init(&physMem, &msrs, lapicConfig()); s != lapic.StatusOK {
		fatalBegin()
		kputs("local APIC: ")
		kputs(s.String())
		fatalEnd()
	}
	if !timerDeadlineMode {
		lapicHz = apic.CalibrateOneShot(cpu.RDTSC, tscHz)
		if lapicHz == 0 {
			fatal("cannot calibrate the local APIC timer")
		}
	}
}

// lapicConfig is how every CPU programs its local APIC. An application
// processor keeps the boot CPU's register interface (x2APIC if firmware
// chose it), because one driver value, apic, serves all of them: the
// registers it touches are each CPU's own.
//
//go:nosplit
func lapicConfig() lapic.Config {
	x2 := apic.Ready() && apic.X2APIC()
	return lapic.Config{SpuriousVector: vecSpurious, TimerVector: vecTimer, TSCDeadline: timerDeadlineMode, UseX2APIC: x2, X2APIC: x2}
}

// initSyscalls points SYSCALL at syscallEntry. SYSCALL from ring 0 loads
// CS from STAR[47:32] and SS from that + 8, and masks RFLAGS with FMASK.
func initSyscalls() {
	cpu.WRMSR(msrEFER, cpu.RDMSR(msrEFER)|1) // SCE
	cpu.WRMSR(msrSTAR, uint64(selCode)<<32)
	cpu.WRMSR(msrLSTAR, uint64(syscallEntryAddr()))
	// TF | DF | IF | IOPL | NT | AC: the handler runs with interrupts off.
	cpu.WRMSR(msrFMASK, 0x47700)
}

// buildProcessStack lays out argc, argv, envp and the auxiliary vector at
// the top of initStack as Linux does for a new process, and returns the
// stack pointer to start the runtime with.
func buildProcessStack() uintptr {
	base := initStackAddr()
	top := (base + uintptr(len(initStack))) &^ 15
	// Strings and AT_RANDOM bytes in the top 96 bytes.
	name := top - 96
	// argv[0] and the one environment variable: juice delivers no
	// signals, so the runtime must not preempt goroutines with them.
	const strs = "juice\x00GODEBUG=asyncpreemptoff=1\x00"
	for i := 0; i < len(strs); i++ {
		initStack[name-base+uintptr(i)] = strs[i]
	}
	env := name + 6
	rnd := top - 32
	for i := uintptr(0); i < 16; i += 8 {
		v, ok := hwRandom()
		if !ok {
			fatal("the CPU's entropy source returned nothing")
		}
		*ptrU64(rnd + i) = v
	}
	words := [...]uint64{
		1, uint64(name), 0, // argc, argv[0], end of argv
		uint64(env), 0, // envp

		6, 4096, // AT_PAGESZ
		25, uint64(rnd), // AT_RANDOM
		0, 0, // AT_NULL
	}
	sp := (top - 96 - uintptr(len(words))*8) &^ 15
	for i, w := range words {
		*ptrU64(sp + uintptr(i)*8) = w
	}
	return sp
}
