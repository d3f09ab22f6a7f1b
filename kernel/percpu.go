package kernel

// Frame is a thread's saved register state, in the order the entry stubs
// push it (entry_amd64.s): general registers, then the vector and error
// code, then the CPU's interrupt frame. A SYSCALL builds the same frame with
// Vector = vectorSyscall.
type Frame struct {
	R15, R14, R13, R12, R11, R10, R9, R8 uint64
	RBP, RDI, RSI, RDX, RCX, RBX, RAX    uint64
	Vector, Err                          uint64
	RIP, CS, RFLAGS, RSP, SS             uint64
}

// vectorSyscall marks a frame built by the SYSCALL entry.
const vectorSyscall = 0x100

// maxCPUs is how many CPUs juice runs on; the MADT may list more (they are
// reported and left out). Affinity masks are one uint64.
const maxCPUs = 32

// CPU states (perCPU.state), changed atomically.
const (
	cpuAbsent   = iota // no CPU in this slot
	cpuStarting        // INIT-SIPI-SIPI sent; the AP may claim the slot
	cpuOnline          // running the scheduler
	cpuFailed          // did not answer in time; a late AP parks itself
)

// perCPU is the block GS points at, one per CPU. The assembly reaches its
// first fields through go_asm.h offsets; everything here is pointer-free so
// that kernel context never needs a write barrier.
type perCPU struct {
	self     uintptr // address of this block
	inKernel uint64  // 1 while the CPU runs kernel code on its kernel stack
	frame    uintptr // &threads[cur].frame
	fx       uintptr // 16-byte-aligned FXSAVE area of threads[cur]
	kstack   uintptr // top of the kernel stack
	scratch  uint64  // SYSCALL entry: the caller's RSP
	cur      int32   // index of the current thread; -1 while idle
	id       int32   // CPU number: the index in cpus
	apicID   uint32  // local APIC ID (from the MADT)
	state    uint32  // cpuAbsent … cpuFailed (atomic)

	idle    uint32 // 1 while halted in the idle loop waiting for work (atomic; set under bkl)
	resched uint32 // asks schedule to rotate to another runnable thread (atomic)
	timerAt uint64 // TSC the local APIC timer is armed for; 0: disarmed or fired (atomic)
	tlbGen  uint64 // TLB generation this CPU has flushed up to (atomic)
	rr      int32  // round-robin cursor while idle
	_       int32

	sliceEnd uint64 // TSC at which the current thread's time slice ends; 0: none

	// Statistics (atomic): TSC ticks spent running threads, threads
	// resumed after a switch, IPIs received (wake-up and TLB), kick IPIs
	// received (KickCPU).
	runTSC   uint64
	switches uint64
	ipis     uint64
	kicks    uint64

	// bootG and bootTLS are the stand-in g and TLS block this CPU runs
	// start-up Go code with before any thread runs on it (see entry64).
	bootG   [4]uintptr
	bootTLS [2]uintptr
	ist     [4]uintptr // tops of the IST stacks
	gdt     [6]uint64
	tss     [104]byte
	gdtr    [10]byte
	_       [6]byte
}

const (
	kernelStackSize = 64 << 10
	istStackSize    = 16 << 10
	// stackGuard is how far above the stack's low end the stand-in g's
	// stack guard sits during start-up (Go's own guard is ~928 bytes).
	stackGuard = 4096
)

var (
	// cpus[0] is the boot CPU; the others are filled in by startAPs.
	cpus [maxCPUs]perCPU
	// nCPUs is the number of slots used (online or not); onlineMask has
	// bit i set for each online CPU i.
	nCPUs      int32
	onlineMask uint64

	kernelStack [kernelStackSize]byte
	istStacks   [4][istStackSize]byte

	// bootG stands in for a goroutine before the runtime exists: the Go
	// runtime's g starts with stack.lo, stack.hi, stackguard0, stackguard1,
	// which is all a function prologue reads. bootTLS[0] points at it and
	// FS_BASE is &bootTLS[1], where the ABI wrappers look for g (FS:-8).
	bootG   [8]uintptr
	bootTLS [2]uintptr
)
