#include "textflag.h"
#include "go_asm.h"

// Per-CPU block offsets (kernel/percpu.go, checked by TestPerCPULayout).
#define PC_INKERNEL perCPU_inKernel
#define PC_FRAME perCPU_frame
#define PC_FX perCPU_fx
#define PC_KSTACK perCPU_kstack
#define PC_SCRATCH perCPU_scratch

#define FRAME_SIZE Frame__size
#define FRAME_QWORDS (Frame__size/8)

#define PUSH_GPRS \
	PUSHQ AX; PUSHQ BX; PUSHQ CX; PUSHQ DX; PUSHQ SI; PUSHQ DI; PUSHQ BP; \
	PUSHQ R8; PUSHQ R9; PUSHQ R10; PUSHQ R11; PUSHQ R12; PUSHQ R13; PUSHQ R14; PUSHQ R15

#define POP_GPRS \
	POPQ R15; POPQ R14; POPQ R13; POPQ R12; POPQ R11; POPQ R10; POPQ R9; POPQ R8; \
	POPQ BP; POPQ DI; POPQ SI; POPQ DX; POPQ CX; POPQ BX; POPQ AX

// func entry64()
// Reached from juice/boot.entry64 on the boot stack with SSE enabled.
TEXT ·entry64(SB),NOSPLIT|NOFRAME,$0
	// Run start-up on the kernel stack. FS points just past a word holding a
	// stand-in g whose stack bounds are that stack's (set up by kstackInit),
	// so ordinary Go functions' stack checks work before the runtime exists.
	LEAQ ·kernelStack(SB), SP
	ADDQ $const_kernelStackSize, SP
	ANDQ $~15, SP
	// bootG = {stack.lo, stack.hi, stackguard0, stackguard1}; bootTLS[0] = &bootG
	LEAQ ·kernelStack(SB), AX
	LEAQ ·bootG(SB), BX
	MOVQ AX, 0(BX)
	LEAQ const_kernelStackSize(AX), CX
	MOVQ CX, 8(BX)
	LEAQ const_stackGuard(AX), CX
	MOVQ CX, 16(BX)
	MOVQ CX, 24(BX)
	LEAQ ·bootTLS(SB), AX
	MOVQ BX, 0(AX)
	LEAQ ·bootTLS+8(SB), AX
	MOVQ AX, DX
	SHRQ $32, DX
	MOVL $0xC0000100, CX
	WRMSR
	CALL ·Start(SB)
	CLI
hang:
	HLT
	JMP hang

// func syscallEntry()
// SYSCALL from ring 0 lands here with IF clear (FMASK), RCX = return RIP,
// R11 = RFLAGS, on the caller's stack. It builds an interrupt-style frame
// in the current thread's Frame, then enters the kernel.
TEXT ·syscallEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ SP, PC_SCRATCH(GS)
	MOVQ PC_FRAME(GS), SP
	ADDQ $FRAME_SIZE, SP
	PUSHQ $0x10
	PUSHQ PC_SCRATCH(GS)
	PUSHQ R11
	PUSHQ $0x08
	PUSHQ CX
	PUSHQ $0
	PUSHQ $0x100
	PUSH_GPRS
	JMP kernelEnter<>(SB)

// kernelEnter saves the thread's SSE state, switches to the kernel stack
// and calls kernelEntry; then resumes whichever thread is current.
TEXT kernelEnter<>(SB),NOSPLIT|NOFRAME,$0
	MOVQ PC_FX(GS), AX
	FXSAVE64 (AX)
	MOVQ $1, PC_INKERNEL(GS)
	MOVQ PC_KSTACK(GS), SP
	CALL ·kernelEntry(SB)
	JMP ·resumeThread(SB)

// func resumeThread()
// Loads the current thread's saved state and returns to it with IRETQ.
// Also the way the first thread is started.
TEXT ·resumeThread(SB),NOSPLIT|NOFRAME,$0
	MOVQ $0, PC_INKERNEL(GS)
	MOVQ PC_FX(GS), AX
	FXRSTOR64 (AX)
	MOVQ PC_FRAME(GS), SP
	POP_GPRS
	ADDQ $16, SP
	IRETQ

// trapCommon: the vector stubs have pushed [error code] and vector on the
// IST stack, above the CPU's interrupt frame.
TEXT trapCommon<>(SB),NOSPLIT|NOFRAME,$0
	PUSH_GPRS
	CMPQ PC_INKERNEL(GS), $0
	JNE inkernel
	// From a thread: move the frame into the thread and enter the kernel.
	MOVQ SP, SI
	MOVQ PC_FRAME(GS), DI
	MOVQ $FRAME_QWORDS, CX
	CLD
	REP; MOVSQ
	JMP kernelEnter<>(SB)
inkernel:
	// Interrupt in the idle loop, or an exception inside the kernel.
	MOVQ SP, DI
	SUBQ $16, SP
	MOVQ DI, 0(SP)
	CALL ·kernelTrap(SB)
	ADDQ $16, SP
	POP_GPRS
	ADDQ $16, SP
	IRETQ

#define VEC(n) TEXT ·vec##n(SB),NOSPLIT|NOFRAME,$0; PUSHQ $0; PUSHQ $n; JMP trapCommon<>(SB)
#define VECERR(n) TEXT ·vec##n(SB),NOSPLIT|NOFRAME,$0; PUSHQ $n; JMP trapCommon<>(SB)

VEC(0)
VEC(1)
VEC(2)
VEC(3)
VEC(4)
VEC(5)
VEC(6)
VEC(7)
VECERR(8)
VEC(9)
VECERR(10)
VECERR(11)
VECERR(12)
VECERR(13)
VECERR(14)
VEC(15)
VEC(16)
VECERR(17)
VEC(18)
VEC(19)
VEC(20)
VECERR(21)
VEC(22)
VEC(23)
VEC(24)
VEC(25)
VEC(26)
VEC(27)
VEC(28)
VECERR(29)
VECERR(30)
VEC(31)
VEC(32)
VEC(33)
VEC(34)
VEC(35)
VEC(36)
VEC(37)
VEC(38)
VEC(39)
VEC(40)
VEC(41)
VEC(42)
VEC(43)
VEC(44)
VEC(45)
VEC(46)
VEC(47)
VEC(255)

// func vectorTable() uintptr
// Returns the address of a table of the stubs' addresses (vectors 0-47).
TEXT ·stubAddr(SB),NOSPLIT,$0-16
	MOVQ n+0(FP), AX
	LEAQ stubs<>(SB), BX
	MOVQ (BX)(AX*8), AX
	MOVQ AX, ret+8(FP)
	RET

#define STUB(i, n) DATA stubs<>+(i*8)(SB)/8, $·vec##n(SB)
STUB(0,0)
STUB(1,1)
STUB(2,2)
STUB(3,3)
STUB(4,4)
STUB(5,5)
STUB(6,6)
STUB(7,7)
STUB(8,8)
STUB(9,9)
STUB(10,10)
STUB(11,11)
STUB(12,12)
STUB(13,13)
STUB(14,14)
STUB(15,15)
STUB(16,16)
STUB(17,17)
STUB(18,18)
STUB(19,19)
STUB(20,20)
STUB(21,21)
STUB(22,22)
STUB(23,23)
STUB(24,24)
STUB(25,25)
STUB(26,26)
STUB(27,27)
STUB(28,28)
STUB(29,29)
STUB(30,30)
STUB(31,31)
STUB(32,32)
STUB(33,33)
STUB(34,34)
STUB(35,35)
STUB(36,36)
STUB(37,37)
STUB(38,38)
STUB(39,39)
STUB(40,40)
STUB(41,41)
STUB(42,42)
STUB(43,43)
STUB(44,44)
STUB(45,45)
STUB(46,46)
STUB(47,47)
STUB(48,255)
GLOBL stubs<>(SB), RODATA, $(49*8)

// func syscallEntryAddr() uintptr
TEXT ·syscallEntryAddr(SB),NOSPLIT,$0-8
	LEAQ ·syscallEntry(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// func faultTrampolineAddr() uintptr
TEXT ·faultTrampolineAddr(SB),NOSPLIT,$0-8
	LEAQ ·faultTrampoline(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// func faultTrampoline()
// A crashed thread is made to "call" this: it runs faultReport on the
// thread's own goroutine so that the Go stack trace can be printed.
TEXT ·faultTrampoline(SB),NOSPLIT|NOFRAME,$0
	CALL ·faultReport(SB)
	CLI
fhang:
	HLT
	JMP fhang

// func loadGDT(gdtr uintptr) ; func loadIDT(idtr uintptr) ; func loadTR(sel uint16)
TEXT ·loadGDT(SB),NOSPLIT,$0-8
	MOVQ p+0(FP), AX
	LGDT (AX)
	// reload CS via far return, data segments
	MOVQ $0x10, AX
	BYTE $0x8E; BYTE $0xD8 // MOV DS, AX
	BYTE $0x8E; BYTE $0xC0 // MOV ES, AX
	BYTE $0x8E; BYTE $0xD0 // MOV SS, AX
	POPQ AX                // return address
	PUSHQ $0x08
	PUSHQ AX
	BYTE $0x48; BYTE $0xCB // LRETQ
	
TEXT ·loadIDT(SB),NOSPLIT,$0-8
	MOVQ p+0(FP), AX
	LIDT (AX)
	RET

TEXT ·loadTR(SB),NOSPLIT,$0-2
	MOVW sel+0(FP), AX
	LTR AX
	RET

// func jumpToRuntime(sp uintptr)
// Starts the Go runtime as Linux would start a process: RSP at argc.
TEXT ·jumpToRuntime(SB),NOSPLIT|NOFRAME,$0-8
	MOVQ sp+0(FP), SP
	MOVQ $0, PC_INKERNEL(GS)
	STI
	XORQ AX, AX
	XORQ BX, BX
	XORQ CX, CX
	XORQ DX, DX
	XORQ SI, SI
	XORQ DI, DI
	XORQ BP, BP
	JMP _rt0_amd64_linux(SB)

// func endAddr() uintptr  -- end of the image (runtime.end, after bss)
TEXT ·endAddr(SB),NOSPLIT,$0-8
	LEAQ runtime·end(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// func setGSBase(v uintptr)
TEXT ·setGSBase(SB),NOSPLIT,$0-8
	MOVQ v+0(FP), AX
	MOVQ AX, DX
	SHRQ $32, DX
	MOVL $0xC0000101, CX
	WRMSR
	RET
