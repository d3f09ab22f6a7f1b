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

// perCPU is the block GS points at. The assembly reaches its first fields
// through go_asm.h offsets; everything here is pointer-free so that kernel
// context never needs a write barrier.
type perCPU struct {
	self     uintptr // address of this block
	inKernel uint64  // 1 while the CPU runs kernel code on its kernel stack
	frame    uintptr // &threads[cur].frame
	fx       uintptr // 16-byte-aligned FXSAVE area of threads[cur]
	kstack   uintptr // top of the kernel stack
	scratch  uint64  // SYSCALL entry: the caller's RSP
	cur      int32   // index of the current thread
	id       int32   // CPU number
}

const (
	kernelStackSize = 64 << 10
	istStackSize    = 16 << 10
	// stackGuard is how far above the stack's low end the stand-in g's
	// stack guard sits during start-up (Go's own guard is ~928 bytes).
	stackGuard = 4096
)

var (
	cpu0        perCPU
	kernelStack [kernelStackSize]byte
	istStacks   [4][istStackSize]byte

	// bootG stands in for a goroutine before the runtime exists: the Go
	// runtime's g starts with stack.lo, stack.hi, stackguard0, stackguard1,
	// which is all a function prologue reads. bootTLS[0] points at it and
	// FS_BASE is &bootTLS[1], where the ABI wrappers look for g (FS:-8).
	bootG   [8]uintptr
	bootTLS [2]uintptr
)
