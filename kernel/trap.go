package kernel

import (
	"os"
	"runtime"
	"sync/atomic"

	"juice/cpu"
	"juice/mm"
)

// Descriptor tables, the kernel entry and CPU exceptions.
//
// Every vector runs on an IST stack, never on the interrupted goroutine's
// small stack: IST1 for interrupts and most exceptions, IST2 for double
// faults, IST3 for NMIs, IST4 for machine checks. A trap from a thread
// (the Go runtime) is moved into the thread's Frame and handled on the
// kernel stack like a system call; a trap while the kernel itself runs is
// either an interrupt that ends the idle HLT or a fatal kernel bug.

const (
	vecTimer    = 0x20
	vecSpurious = 0xff

	msrEFER   = 0xC0000080
	msrSTAR   = 0xC0000081
	msrLSTAR  = 0xC0000082
	msrFMASK  = 0xC0000084
	msrFSBase = 0xC0000100
	msrGSBase = 0xC0000101
	msrTSCAux = 0xC0000103

	selCode = 0x08
	selData = 0x10
	selTSS  = 0x18
)

var (
	idt  [512]uint64
	idtr [10]byte
)

// Assembly (entry_amd64.s).
func syscallEntry()
func resumeThread()
func faultTrampoline()
func stubAddr(n int) uintptr
func syscallEntryAddr() uintptr
func faultTrampolineAddr() uintptr
func loadGDT(p uintptr)
func loadIDT(p uintptr)
func loadTR(sel uint16)
func jumpToRuntime(sp uintptr)
func endAddr() uintptr
func setGSBase(v uintptr)

//go:nosplit
func put16(b []byte, off int, v uint16) {
	if off >= 0 && off+2 <= len(b) {
		b[off] = byte(v)
		b[off+1] = byte(v >> 8)
	}
}

//go:nosplit
func put64(b []byte, off int, v uint64) {
	if off >= 0 && off+8 <= len(b) {
		for i := 0; i < 8; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
	}
}

// initCPUTables builds the IDT (shared by every CPU) and loads the boot
// CPU's GDT (with its TSS and IST stacks), the IDT and its per-CPU block.
// Start-up context.
//
//go:nosplit
func initCPUTables() {
	for v := 0; v < numStubs; v++ {
		vec := v
		switch {
		case v == 48:
			vec = vecSpurious
		case v > 48:
			vec = vecWake + v - 49
		}
		ist := uint64(1)
		switch vec {
		case 2:
			ist = 3
		case 8:
			ist = 2
		case 18:
			ist = 4
		}
		h := uint64(stubAddr(v))
		idt[2*vec] = h&0xffff | selCode<<16 | ist<<32 | 0x8E<<40 | (h>>16&0xffff)<<48
		idt[2*vec+1] = h >> 32
	}
	put16(idtr[:], 0, uint16(8*len(idt)-1))
	put64(idtr[:], 2, uint64(idtAddr()))

	c := &cpus[0]
	c.id = 0
	c.cur = -1
	c.kstack = kernelStackTop()
	for i := range c.ist {
		c.ist[i] = istTop(i)
	}
	c.inKernel = 1
	loadCPUTables(c)
	c.state = cpuOnline
	onlineMask = 1
	nCPUs = 1
}

// numStubs is the number of vector stubs (stubAddr): 0-47, 255, 240-243.
const numStubs = 53

// loadCPUTables builds and loads CPU c's GDT (with its TSS, whose IST
// entries are c.ist), loads the IDT and points GS at c. The calling CPU
// must be c. Start-up context.
//
//go:nosplit
func loadCPUTables(c *perCPU) {
	c.self = perCPUAddr(c)
	c.gdt[0] = 0
	c.gdt[1] = 0x00209A0000000000 // 64-bit code, DPL 0
	c.gdt[2] = 0x0000920000000000 // data
	base := uint64(tssAddrOf(c))
	lim := uint64(len(c.tss) - 1)
	c.gdt[3] = lim&0xffff | (base&0xffffff)<<16 | 0x89<<40 | (lim>>16&0xf)<<48 | (base>>24&0xff)<<56
	c.gdt[4] = base >> 32
	c.gdt[5] = 0
	for i := 0; i < 4; i++ {
		put64(c.tss[:], 36+8*i, uint64(c.ist[i])) // IST1..IST4
	}
	put16(c.tss[:], 102, uint16(len(c.tss))) // no I/O bitmap
	put16(c.gdtr[:], 0, uint16(8*len(c.gdt)-1))
	put64(c.gdtr[:], 2, uint64(gdtAddrOf(c)))
	loadGDT(descAddr(&c.gdtr))
	loadTR(selTSS)
	loadIDT(descAddr(&idtr))
	setGSBase(c.self)
}

// kernelEntry handles whatever brought the current thread into the
// kernel, then picks the thread to resume. Kernel context: nosplit,
// allocation-free, no write barriers, bounded (the only loop without a
// fixed bound is the idle HLT). A page fault the runtime's memory explains
// and a TLB shootdown resume the thread without the big kernel lock.
//
//go:nosplit
func kernelEntry() {
	c := myCPU()
	tlbAck(c)
	t := &threads[c.cur]
	v := t.frame.Vector
	fixed := false
	switch {
	case v == 14:
		fixed = pageFault(t)
		if fixed && atomic.LoadUint32(&c.resched) == 0 {
			return
		}
	case v == vecTLB:
		apic.EOI()
		atomic.AddUint64(&c.ipis, 1)
		if atomic.LoadUint32(&c.resched) == 0 {
			return
		}
	case v == vecKick:
		// It has done its work by arriving: the guest this CPU ran has
		// exited (the thread is its vCPU's, just past STGI), or the
		// thread was about to enter it. Back to the thread at once.
		apic.EOI()
		atomic.AddUint64(&c.kicks, 1)
		if atomic.LoadUint32(&c.resched) == 0 {
			return
		}
	case v == vecSpurious:
		return
	case v == vecHalt:
		cpu.HaltForever()
	case v == vecTimer:
		apic.EOI()
		atomic.StoreUint64(&c.timerAt, 0)
		atomic.StoreUint32(&c.resched, 1)
	case v >= 32 && v < vectorSyscall:
		apic.EOI()
	}
	if v == vecWake {
		atomic.AddUint64(&c.ipis, 1)
	}
	bkl.lock()
	switch {
	case v == vectorSyscall:
		sysDispatch(c, t)
	case v == 14:
		if !fixed {
			exception(t)
		}
	case v < 32:
		exception(t)
	}
	schedule(c)
}

// kernelTrap handles a trap taken while the kernel runs: an interrupt
// ending the idle HLT, or an exception, which is a juice bug. Kernel
// context, on an IST stack.
//
//go:nosplit
func kernelTrap(f *Frame) {
	v := f.Vector
	if v >= 32 {
		c := myCPU()
		switch v {
		case vecSpurious:
			return
		case vecHalt:
			cpu.HaltForever()
		case vecTLB:
			tlbAck(c)
			atomic.AddUint64(&c.ipis, 1)
		case vecWake:
			atomic.AddUint64(&c.ipis, 1)
		case vecKick:
			atomic.AddUint64(&c.kicks, 1)
		case vecTimer:
			atomic.StoreUint64(&c.timerAt, 0)
		}
		apic.EOI()
		return
	}
	crashing = true
	fatalBegin()
	kputs("CPU exception ")
	kputs(vectorName(v))
	kputs(" in juice's kernel context\n")
	dumpFrame(f)
	kputs("juice: (no Go stack: the kernel does not run on a goroutine)")
	fatalEnd()
}

// pageFault backs the runtime's lazily committed memory and reports
// whether the fault is fixed; false means a CPU exception for the thread.
// It stops juice when memory runs out. Kernel context, with or without
// bkl (it takes mmLock).
//
//go:nosplit
func pageFault(t *thread) bool {
	va := cpu.ReadCR2()
	f := &t.frame
	atomic.AddUint64(&pageFaults, 1)
	mmLock.lockRecursive()
	if inLazy(va) {
		ok := lazyBack(va)
		mmLock.unlock()
		if !ok {
			oom(va)
		}
		return true
	}
	r := mm.FaultNoVMA
	if va >= mm.UserBase && va < mm.UserTop {
		r = space.Fault(va, f.Err&2 != 0, f.Err&16 != 0)
	}
	mmLock.unlock()
	switch r {
	case mm.FaultFixed:
		return true
	case mm.FaultOOM:
		oom(va)
	}
	return false
}

// oom stops juice when a page the runtime touches cannot be backed.
//
//go:nosplit
func oom(va uint64) {
	crashing = true
	fatalBegin()
	kputs("out of memory: no free page for the Go runtime at ")
	kputHex(va)
	kputs(" (")
	kputUint(memReport.usable >> 20)
	kputs(" MiB usable, runtime committed ")
	kputUint((space.Committed() + lazyPages*4096) >> 20)
	kputs(" MiB, ")
	kputUint(frames.FreeCount())
	kputs(" frames free)")
	fatalEnd()
}

// exception reports a CPU exception in a thread: vector, error code and
// registers now, then makes the thread call faultReport, which prints the
// goroutine's stack trace with the runtime's own unwinder before juice
// stops. Kernel context.
//
//go:nosplit
func exception(t *thread) {
	f := &t.frame
	if crashing {
		fatalBegin()
		kputs("CPU exception ")
		kputs(vectorName(f.Vector))
		kputs(" while reporting a crash\n")
		dumpFrame(f)
		fatalEnd()
	}
	crashing = true
	if !atBOL {
		kputs("\n")
	}
	kputs("juice: fatal: CPU exception ")
	kputs(vectorName(f.Vector))
	kputs(" error ")
	kputHex(f.Err)
	kputs(" at RIP ")
	kputHex(f.RIP)
	kputs("\n")
	dumpFrame(f)
	faultPC = f.RIP
	sp := f.RSP - 16
	if !checkUser(sp, 16, true) {
		kputs("juice: the faulting stack is unusable; no Go stack trace")
		fatalEnd()
	}
	// Simulate a call to faultTrampoline from the faulting instruction.
	sp &^= 15
	sp -= 8
	*userU64(sp) = f.RIP
	f.RSP = sp
	f.RIP = uint64(faultTrampolineAddr())
}

var (
	pageFaults uint64
	faultPC    uint64
	traceBuf   [32 << 10]byte
)

// faultReport runs on the goroutine that took a CPU exception (the entry
// stub made it "call" here) and prints its Go stack trace, then stops
// juice.
func faultReport() {
	fn := runtime.FuncForPC(uintptr(faultPC))
	if fn != nil {
		file, line := fn.FileLine(uintptr(faultPC))
		os.Stdout.WriteString("juice: exception in " + fn.Name() + " at " + file + ":" + itoa(line) + "\n")
	}
	n := runtime.Stack(traceBuf[:], false)
	os.Stdout.WriteString("juice: Go stack trace of the faulting goroutine:\n")
	os.Stdout.Write(traceBuf[:n])
	cpu.Cli()
	myCPU().inKernel = 1
	fatalEnd()
}

func itoa(v int) string {
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

//go:nosplit
func vectorName(v uint64) string {
	switch v {
	case 0:
		return "#DE (0, divide error)"
	case 1:
		return "#DB (1, debug)"
	case 2:
		return "NMI (2)"
	case 3:
		return "#BP (3, breakpoint)"
	case 4:
		return "#OF (4, overflow)"
	case 5:
		return "#BR (5, bound range)"
	case 6:
		return "#UD (6, invalid opcode)"
	case 7:
		return "#NM (7, device not available)"
	case 8:
		return "#DF (8, double fault)"
	case 10:
		return "#TS (10, invalid TSS)"
	case 11:
		return "#NP (11, segment not present)"
	case 12:
		return "#SS (12, stack fault)"
	case 13:
		return "#GP (13, general protection)"
	case 14:
		return "#PF (14, page fault)"
	case 16:
		return "#MF (16, x87 error)"
	case 17:
		return "#AC (17, alignment check)"
	case 18:
		return "#MC (18, machine check)"
	case 19:
		return "#XM (19, SIMD error)"
	case 20:
		return "#VE (20, virtualization)"
	case 21:
		return "#CP (21, control protection)"
	}
	return "(reserved vector)"
}

//go:nosplit
func reg(name string, v uint64) {
	kputs(name)
	kputs("=")
	kputHex(v)
	kputs(" ")
}

// dumpFrame prints every register of f. Kernel context.
//
//go:nosplit
func dumpFrame(f *Frame) {
	reg("vector", f.Vector)
	reg("error", f.Err)
	reg("cr2", cpu.ReadCR2())
	kputs("\n")
	reg("rip", f.RIP)
	reg("cs", f.CS)
	reg("rflags", f.RFLAGS)
	reg("rsp", f.RSP)
	reg("ss", f.SS)
	kputs("\n")
	reg("rax", f.RAX)
	reg("rbx", f.RBX)
	reg("rcx", f.RCX)
	reg("rdx", f.RDX)
	kputs("\n")
	reg("rsi", f.RSI)
	reg("rdi", f.RDI)
	reg("rbp", f.RBP)
	reg("r8", f.R8)
	kputs("\n")
	reg("r9", f.R9)
	reg("r10", f.R10)
	reg("r11", f.R11)
	reg("r12", f.R12)
	kputs("\n")
	reg("r13", f.R13)
	reg("r14", f.R14)
	reg("r15", f.R15)
	reg("cr3", cpu.ReadCR3())
	kputs("\n")
}
