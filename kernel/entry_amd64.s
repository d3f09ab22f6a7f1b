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
	// An indirect call on purpose: the linker's nosplit budget (~800
	// bytes) is sized for goroutine stacks and would be charged with the
	// frame pushed on the thread's slot above; the kernel stack has 64 KiB.
	LEAQ ·kernelEntry(SB), AX
	CALL AX
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
	LEAQ ·kernelTrap(SB), AX
	CALL AX
	ADDQ $16, SP
	POP_GPRS
	ADDQ $16, SP
	IRETQ

// Vector stubs: push a zero error code where the CPU pushes none, then
// the vector number.
TEXT ·vec0(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $0
	JMP trapCommon<>(SB)

TEXT ·vec1(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $1
	JMP trapCommon<>(SB)

TEXT ·vec2(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $2
	JMP trapCommon<>(SB)

TEXT ·vec3(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $3
	JMP trapCommon<>(SB)

TEXT ·vec4(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $4
	JMP trapCommon<>(SB)

TEXT ·vec5(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $5
	JMP trapCommon<>(SB)

TEXT ·vec6(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $6
	JMP trapCommon<>(SB)

TEXT ·vec7(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $7
	JMP trapCommon<>(SB)

TEXT ·vec8(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $8
	JMP trapCommon<>(SB)

TEXT ·vec9(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $9
	JMP trapCommon<>(SB)

TEXT ·vec10(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $10
	JMP trapCommon<>(SB)

TEXT ·vec11(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $11
	JMP trapCommon<>(SB)

TEXT ·vec12(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $12
	JMP trapCommon<>(SB)

TEXT ·vec13(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $13
	JMP trapCommon<>(SB)

TEXT ·vec14(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $14
	JMP trapCommon<>(SB)

TEXT ·vec15(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $15
	JMP trapCommon<>(SB)

TEXT ·vec16(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $16
	JMP trapCommon<>(SB)

TEXT ·vec17(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $17
	JMP trapCommon<>(SB)

TEXT ·vec18(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $18
	JMP trapCommon<>(SB)

TEXT ·vec19(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $19
	JMP trapCommon<>(SB)

TEXT ·vec20(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $20
	JMP trapCommon<>(SB)

TEXT ·vec21(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $21
	JMP trapCommon<>(SB)

TEXT ·vec22(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $22
	JMP trapCommon<>(SB)

TEXT ·vec23(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $23
	JMP trapCommon<>(SB)

TEXT ·vec24(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $24
	JMP trapCommon<>(SB)

TEXT ·vec25(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $25
	JMP trapCommon<>(SB)

TEXT ·vec26(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $26
	JMP trapCommon<>(SB)

TEXT ·vec27(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $27
	JMP trapCommon<>(SB)

TEXT ·vec28(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $28
	JMP trapCommon<>(SB)

TEXT ·vec29(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $29
	JMP trapCommon<>(SB)

TEXT ·vec30(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $30
	JMP trapCommon<>(SB)

TEXT ·vec31(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $31
	JMP trapCommon<>(SB)

TEXT ·vec32(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $32
	JMP trapCommon<>(SB)

TEXT ·vec33(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $33
	JMP trapCommon<>(SB)

TEXT ·vec34(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $34
	JMP trapCommon<>(SB)

TEXT ·vec35(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $35
	JMP trapCommon<>(SB)

TEXT ·vec36(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $36
	JMP trapCommon<>(SB)

TEXT ·vec37(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $37
	JMP trapCommon<>(SB)

TEXT ·vec38(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $38
	JMP trapCommon<>(SB)

TEXT ·vec39(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $39
	JMP trapCommon<>(SB)

TEXT ·vec40(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $40
	JMP trapCommon<>(SB)

TEXT ·vec41(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $41
	JMP trapCommon<>(SB)

TEXT ·vec42(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $42
	JMP trapCommon<>(SB)

TEXT ·vec43(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $43
	JMP trapCommon<>(SB)

TEXT ·vec44(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $44
	JMP trapCommon<>(SB)

TEXT ·vec45(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $45
	JMP trapCommon<>(SB)

TEXT ·vec46(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $46
	JMP trapCommon<>(SB)

TEXT ·vec47(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $47
	JMP trapCommon<>(SB)

TEXT ·vec255(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $255
	JMP trapCommon<>(SB)

// The inter-processor interrupts (kernel/smp.go).
TEXT ·vec240(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $240
	JMP trapCommon<>(SB)

TEXT ·vec241(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $241
	JMP trapCommon<>(SB)

TEXT ·vec242(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $242
	JMP trapCommon<>(SB)

TEXT ·vec243(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $243
	JMP trapCommon<>(SB)

// func stubAddr(n int) uintptr
// Returns the address of stub n (0-47: vectors 0-47; 48: vector 255;
// 49-52: vectors 240-243).
TEXT ·stubAddr(SB),NOSPLIT,$0-16
	MOVQ n+0(FP), AX
	LEAQ stubs<>(SB), BX
	MOVQ (BX)(AX*8), AX
	MOVQ AX, ret+8(FP)
	RET

DATA stubs<>+0(SB)/8, $·vec0(SB)
DATA stubs<>+8(SB)/8, $·vec1(SB)
DATA stubs<>+16(SB)/8, $·vec2(SB)
DATA stubs<>+24(SB)/8, $·vec3(SB)
DATA stubs<>+32(SB)/8, $·vec4(SB)
DATA stubs<>+40(SB)/8, $·vec5(SB)
DATA stubs<>+48(SB)/8, $·vec6(SB)
DATA stubs<>+56(SB)/8, $·vec7(SB)
DATA stubs<>+64(SB)/8, $·vec8(SB)
DATA stubs<>+72(SB)/8, $·vec9(SB)
DATA stubs<>+80(SB)/8, $·vec10(SB)
DATA stubs<>+88(SB)/8, $·vec11(SB)
DATA stubs<>+96(SB)/8, $·vec12(SB)
DATA stubs<>+104(SB)/8, $·vec13(SB)
DATA stubs<>+112(SB)/8, $·vec14(SB)
DATA stubs<>+120(SB)/8, $·vec15(SB)
DATA stubs<>+128(SB)/8, $·vec16(SB)
DATA stubs<>+136(SB)/8, $·vec17(SB)
DATA stubs<>+144(SB)/8, $·vec18(SB)
DATA stubs<>+152(SB)/8, $·vec19(SB)
DATA stubs<>+160(SB)/8, $·vec20(SB)
DATA stubs<>+168(SB)/8, $·vec21(SB)
DATA stubs<>+176(SB)/8, $·vec22(SB)
DATA stubs<>+184(SB)/8, $·vec23(SB)
DATA stubs<>+192(SB)/8, $·vec24(SB)
DATA stubs<>+200(SB)/8, $·vec25(SB)
DATA stubs<>+208(SB)/8, $·vec26(SB)
DATA stubs<>+216(SB)/8, $·vec27(SB)
DATA stubs<>+224(SB)/8, $·vec28(SB)
DATA stubs<>+232(SB)/8, $·vec29(SB)
DATA stubs<>+240(SB)/8, $·vec30(SB)
DATA stubs<>+248(SB)/8, $·vec31(SB)
DATA stubs<>+256(SB)/8, $·vec32(SB)
DATA stubs<>+264(SB)/8, $·vec33(SB)
DATA stubs<>+272(SB)/8, $·vec34(SB)
DATA stubs<>+280(SB)/8, $·vec35(SB)
DATA stubs<>+288(SB)/8, $·vec36(SB)
DATA stubs<>+296(SB)/8, $·vec37(SB)
DATA stubs<>+304(SB)/8, $·vec38(SB)
DATA stubs<>+312(SB)/8, $·vec39(SB)
DATA stubs<>+320(SB)/8, $·vec40(SB)
DATA stubs<>+328(SB)/8, $·vec41(SB)
DATA stubs<>+336(SB)/8, $·vec42(SB)
DATA stubs<>+344(SB)/8, $·vec43(SB)
DATA stubs<>+352(SB)/8, $·vec44(SB)
DATA stubs<>+360(SB)/8, $·vec45(SB)
DATA stubs<>+368(SB)/8, $·vec46(SB)
DATA stubs<>+376(SB)/8, $·vec47(SB)
DATA stubs<>+384(SB)/8, $·vec255(SB)
DATA stubs<>+392(SB)/8, $·vec240(SB)
DATA stubs<>+400(SB)/8, $·vec241(SB)
DATA stubs<>+408(SB)/8, $·vec242(SB)
DATA stubs<>+416(SB)/8, $·vec243(SB)
GLOBL stubs<>(SB), RODATA, $(53*8)

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

// func stiNop()
// Sets IF with a NOP in STI's interrupt shadow before returning (see
// kick.go).
TEXT ·stiNop(SB),NOSPLIT,$0-0
	STI
	BYTE $0x90 // NOP (the assembler's NOP emits nothing)
	RET

// func cpuIndex() int32
// The calling CPU's number, from its per-CPU block.
TEXT ·cpuIndex(SB),NOSPLIT,$0-4
	MOVL perCPU_id(GS), AX
	MOVL AX, ret+0(FP)
	RET

// func apTrampolineAddr() uintptr
TEXT ·apTrampolineAddr(SB),NOSPLIT,$0-8
	LEAQ ·apTrampoline(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// func apEntry64Addr() uintptr
TEXT ·apEntry64Addr(SB),NOSPLIT,$0-8
	LEAQ ·apEntry64(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// func apTrampoline()
// Not a function: the code an application processor runs after its
// STARTUP IPI, copied by startAPs to a page below 1 MiB (P) and patched
// there (patchTrampoline; offsets in smp.go, checked by
// TestTrampolineLayout, which also disassembles it). The Go assembler
// emits only 64-bit code, so the 16- and 32-bit parts are bytes.
//
//	0x00  JMP to 0x80
//	0x08  GDTR: limit, base (P+0x10)
//	0x10  GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18)
//	0x30  far pointer to the 32-bit code: P+0xB0, 0x08
//	0x38  CR3 for the switch (juice/boot's identity map of 0-4 GiB)
//	0x3C  EFER bits to set (LME, and NXE when the boot CPU uses it)
//	0x40  64-bit entry (apEntry64)
//	0x48  far pointer to the 64-bit code: P+0xF0, 0x18
TEXT ·apTrampoline(SB),NOSPLIT|NOFRAME,$0
	BYTE $0xEB; BYTE $0x7E               // 00: jmp 0x80
	BYTE $0; BYTE $0; BYTE $0; BYTE $0; BYTE $0; BYTE $0
	WORD $0x1F; LONG $0; WORD $0          // 08: GDTR (base patched)
	QUAD $0                               // 10: null
	QUAD $0x00CF9A000000FFFF              // 18: 32-bit code, 4 GiB
	QUAD $0x00CF92000000FFFF              // 20: data, 4 GiB
	QUAD $0x00209A0000000000              // 28: 64-bit code
	LONG $0; WORD $0x08; WORD $0          // 30: far pointer (offset patched)
	LONG $0                               // 38: CR3 (patched)
	LONG $0                               // 3C: EFER bits (patched)
	QUAD $0                               // 40: apEntry64 (patched)
	LONG $0; WORD $0x18; WORD $0          // 48: far pointer (offset patched)
	QUAD $0; QUAD $0; QUAD $0; QUAD $0; QUAD $0; QUAD $0 // 50-7F
	// 80: real mode, CS = P>>4, IP = 0x80
	BYTE $0xFA                            // cli
	BYTE $0xFC                            // cld
	BYTE $0x8C; BYTE $0xC8                // mov ax, cs
	BYTE $0x8E; BYTE $0xD8                // mov ds, ax
	BYTE $0x66; BYTE $0x31; BYTE $0xDB    // xor ebx, ebx
	BYTE $0x8C; BYTE $0xCB                // mov bx, cs
	BYTE $0x66; BYTE $0xC1; BYTE $0xE3; BYTE $0x04 // shl ebx, 4: EBX = P
	BYTE $0x66; BYTE $0x0F; BYTE $0x01; BYTE $0x16; BYTE $0x08; BYTE $0x00 // lgdt [0x08] (32-bit base)
	BYTE $0x0F; BYTE $0x20; BYTE $0xC0    // mov eax, cr0
	BYTE $0x66; BYTE $0x83; BYTE $0xC8; BYTE $0x01 // or eax, 1 (PE)
	BYTE $0x0F; BYTE $0x22; BYTE $0xC0    // mov cr0, eax
	BYTE $0x66; BYTE $0xFF; BYTE $0x2E; BYTE $0x30; BYTE $0x00 // jmp far dword [0x30]
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC // A4-AF
	// B0: 32-bit protected mode, CS = 0x08, paging off
	BYTE $0x66; BYTE $0xB8; BYTE $0x10; BYTE $0x00 // mov ax, 0x10
	BYTE $0x8E; BYTE $0xD8                // mov ds, ax
	BYTE $0x8E; BYTE $0xC0                // mov es, ax
	BYTE $0x8E; BYTE $0xD0                // mov ss, ax
	BYTE $0x0F; BYTE $0x20; BYTE $0xE0    // mov eax, cr4
	BYTE $0x83; BYTE $0xC8; BYTE $0x20    // or eax, 0x20 (PAE)
	BYTE $0x0F; BYTE $0x22; BYTE $0xE0    // mov cr4, eax
	BYTE $0x8B; BYTE $0x43; BYTE $0x38    // mov eax, [ebx+0x38]
	BYTE $0x0F; BYTE $0x22; BYTE $0xD8    // mov cr3, eax
	BYTE $0xB9; LONG $0xC0000080          // mov ecx, EFER
	BYTE $0x0F; BYTE $0x32                // rdmsr
	BYTE $0x0B; BYTE $0x43; BYTE $0x3C    // or eax, [ebx+0x3C]
	BYTE $0x0F; BYTE $0x30                // wrmsr
	BYTE $0x0F; BYTE $0x20; BYTE $0xC0    // mov eax, cr0
	BYTE $0x25; LONG $0x9FFFFFF3          // and eax, ~(CD|NW|EM|TS): INIT leaves caching off
	BYTE $0x0D; LONG $0x80010023          // or eax, PG|WP|NE|MP|PE
	BYTE $0x0F; BYTE $0x22; BYTE $0xC0    // mov cr0, eax: long mode (compatibility)
	BYTE $0xFF; BYTE $0x6B; BYTE $0x48    // jmp far [ebx+0x48]
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC // E8-EF
	// F0: 64-bit mode, CS = 0x18
	BYTE $0x89; BYTE $0xDB                // mov ebx, ebx (zero-extend P)
	BYTE $0x48; BYTE $0x8B; BYTE $0x43; BYTE $0x40 // mov rax, [rbx+0x40]
	BYTE $0xFF; BYTE $0xE0                // jmp rax
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC; BYTE $0xCC
	BYTE $0xCC; BYTE $0xCC; BYTE $0xCC // F8-FF

// func apEntry64()
// An application processor arrives here from the trampoline: 64-bit mode
// on juice/boot's identity map, interrupts off, no stack. It switches to
// juice's page tables, enables SSE as entry64 does on the boot CPU, finds
// its per-CPU block by APIC ID (a slot startAPs marked cpuStarting), and
// runs apStart on that CPU's kernel stack with a stand-in g. A CPU that
// finds no slot (it answered too late, or juice does not know it) parks.
TEXT ·apEntry64(SB),NOSPLIT|NOFRAME,$0
	MOVQ ·apCR3(SB), AX
	MOVQ AX, CR3
	MOVQ CR0, AX
	ANDQ $~0xC, AX
	ORQ $0x22, AX
	MOVQ AX, CR0
	MOVQ CR4, AX
	ORQ $0x600, AX
	MOVQ AX, CR4
	BYTE $0xDB; BYTE $0xE3 // FNINIT
	// R8 = APIC ID: CPUID 0BH EDX (x2APIC ID) where the leaf exists,
	// else CPUID 01H EBX[31:24].
	XORL AX, AX
	XORL CX, CX
	CPUID
	CMPL AX, $0xB
	JCS legacyid
	MOVL $0xB, AX
	XORL CX, CX
	CPUID
	TESTL BX, BX
	JEQ legacyid
	MOVL DX, R8
	JMP haveid
legacyid:
	MOVL $1, AX
	XORL CX, CX
	CPUID
	SHRL $24, BX
	MOVL BX, R8
haveid:
	LEAQ ·cpus(SB), BX
	XORQ CX, CX
find:
	CMPQ CX, $const_maxCPUs
	JCC park
	CMPL perCPU_apicID(BX), R8
	JNE next
	CMPL perCPU_state(BX), $const_cpuStarting
	JEQ found
next:
	ADDQ $perCPU__size, BX
	INCQ CX
	JMP find
park:
	CLI
	HLT
	JMP park
found:
	MOVQ perCPU_kstack(BX), SP
	// GS base = the per-CPU block.
	MOVQ BX, AX
	MOVQ BX, DX
	SHRQ $32, DX
	MOVL $0xC0000101, CX
	WRMSR
	// bootG = {stack.lo, stack.hi, stackguard0, stackguard1};
	// bootTLS[0] = &bootG; FS base = &bootTLS[1].
	MOVQ SP, CX
	SUBQ $const_kernelStackSize, CX
	MOVQ CX, (perCPU_bootG+0)(BX)
	MOVQ SP, (perCPU_bootG+8)(BX)
	ADDQ $const_stackGuard, CX
	MOVQ CX, (perCPU_bootG+16)(BX)
	MOVQ CX, (perCPU_bootG+24)(BX)
	LEAQ perCPU_bootG(BX), AX
	MOVQ AX, perCPU_bootTLS(BX)
	LEAQ (perCPU_bootTLS+8)(BX), AX
	MOVQ AX, DX
	SHRQ $32, DX
	MOVL $0xC0000100, CX
	WRMSR
	CALL ·apStart(SB)
	JMP park
