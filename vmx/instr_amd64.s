#include "textflag.h"

// Status from RFLAGS after a VMX instruction into AX: CF -> 1, ZF -> 2.
// (No MOV of an immediate first: the assembler may turn MOV $0 into a
// flag-clobbering XOR.) Clobbers R8, R9.
#define VMSTATUS \
	SETCS R8; \
	SETEQ R9; \
	MOVBQZX R8, R8; \
	MOVBQZX R9, R9; \
	SHLQ $1, R9; \
	ORQ R9, R8; \
	MOVQ R8, AX

// func vmxon(pa uint64) Status
TEXT ·vmxon(SB),NOSPLIT,$0-9
	LEAQ pa+0(FP), AX
	BYTE $0xF3; BYTE $0x0F; BYTE $0xC7; BYTE $0x30 // VMXON (RAX)
	VMSTATUS
	MOVB AX, ret+8(FP)
	RET

// func vmxoff() Status
TEXT ·vmxoff(SB),NOSPLIT,$0-1
	BYTE $0x0F; BYTE $0x01; BYTE $0xC4 // VMXOFF
	VMSTATUS
	MOVB AX, ret+0(FP)
	RET

// func vmclear(pa uint64) Status
TEXT ·vmclear(SB),NOSPLIT,$0-9
	LEAQ pa+0(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0xC7; BYTE $0x30 // VMCLEAR (RAX)
	VMSTATUS
	MOVB AX, ret+8(FP)
	RET

// func vmptrld(pa uint64) Status
TEXT ·vmptrld(SB),NOSPLIT,$0-9
	LEAQ pa+0(FP), AX
	BYTE $0x0F; BYTE $0xC7; BYTE $0x30 // VMPTRLD (RAX)
	VMSTATUS
	MOVB AX, ret+8(FP)
	RET

// func vmptrst() (uint64, Status)
TEXT ·vmptrst(SB),NOSPLIT,$0-9
	MOVQ $0, AX
	MOVQ AX, ret+0(FP)
	LEAQ ret+0(FP), AX
	BYTE $0x0F; BYTE $0xC7; BYTE $0x38 // VMPTRST (RAX)
	VMSTATUS
	MOVB AX, ret1+8(FP)
	RET

// func vmread(enc uint64) (uint64, Status)
TEXT ·vmread(SB),NOSPLIT,$0-17
	MOVQ enc+0(FP), DX
	MOVQ $0, CX
	BYTE $0x0F; BYTE $0x78; BYTE $0xD1 // VMREAD RCX, RDX
	VMSTATUS
	MOVQ CX, ret+8(FP)
	MOVB AX, ret1+16(FP)
	RET

// func vmwrite(enc, v uint64) Status
TEXT ·vmwrite(SB),NOSPLIT,$0-17
	MOVQ enc+0(FP), DX
	MOVQ v+8(FP), CX
	BYTE $0x0F; BYTE $0x79; BYTE $0xD1 // VMWRITE RDX, RCX
	VMSTATUS
	MOVB AX, ret+16(FP)
	RET

// func invept(typ uint64, desc *[2]uint64) Status
TEXT ·invept(SB),NOSPLIT,$0-17
	MOVQ typ+0(FP), CX
	MOVQ desc+8(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x80; BYTE $0x08 // INVEPT RCX, (RAX)
	VMSTATUS
	MOVB AX, ret+16(FP)
	RET

// func invvpid(typ uint64, desc *[2]uint64) Status
TEXT ·invvpid(SB),NOSPLIT,$0-17
	MOVQ typ+0(FP), CX
	MOVQ desc+8(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x81; BYTE $0x08 // INVVPID RCX, (RAX)
	VMSTATUS
	MOVB AX, ret+16(FP)
	RET

// Offsets into vmm.Regs.
#define R_RAX 0
#define R_RBX 8
#define R_RCX 16
#define R_RDX 24
#define R_RSI 32
#define R_RDI 40
#define R_RBP 48
#define R_R8 64
#define R_R9 72
#define R_R10 80
#define R_R11 88
#define R_R12 96
#define R_R13 104
#define R_R14 112
#define R_R15 120

// func vmenter(regs *vmm.Regs, launched bool, guestFX, hostFX *[512]byte, cr2 *uint64) Status
// Frame: 0(SP) regs, 8(SP) launched, 16(SP) status, 24(SP) host RFLAGS.
TEXT ·vmenter(SB),NOSPLIT,$32-41
	MOVQ hostFX+24(FP), AX
	FXSAVE64 (AX)
	MOVQ guestFX+16(FP), AX
	FXRSTOR64 (AX)
	PUSHFQ
	POPQ AX
	MOVQ AX, 24(SP)
	MOVQ regs+0(FP), AX
	MOVQ AX, 0(SP)
	MOVBQZX launched+8(FP), AX
	MOVQ AX, 8(SP)
	MOVQ $0, 16(SP)
	CLI
	// HOST_FS_BASE = IA32_FS_BASE now: this thread's TLS, which the
	// runtime's ABI wrappers read back (g) right after the exit.
	MOVL $0xC0000100, CX
	RDMSR
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, CX
	MOVQ $0x6C06, DX // HOST_FS_BASE
	BYTE $0x0F; BYTE $0x79; BYTE $0xD1 // VMWRITE RDX, RCX
	// The guest's CR2 (written only when it differs: MOV to CR2 is slow).
	MOVQ cr2+32(FP), AX
	MOVQ (AX), AX
	MOVQ CR2, DX
	CMPQ AX, DX
	JEQ cr2loaded
	MOVQ AX, CR2
cr2loaded:
	// The guest's RBP is loaded here, where the prologue has saved the
	// frame pointer (the epilogue restores it).
	MOVQ regs+0(FP), AX
	MOVQ R_RBP(AX), BP
	// "Call" the guest: vmlaunchTail returns here after a failed entry,
	// vmexitStub after a VM exit (both with RET through the address this
	// CALL pushed, which is where HOST_RSP points).
	CALL ·vmlaunchTail(SB)
	// Interrupts are still off: save the guest's CR2 before anything can
	// fault.
	MOVQ CR2, AX
	MOVQ cr2+32(FP), BX
	MOVQ AX, (BX)
	MOVQ 24(SP), AX
	PUSHQ AX
	POPFQ
	MOVQ guestFX+16(FP), AX
	FXSAVE64 (AX)
	MOVQ hostFX+24(FP), AX
	FXRSTOR64 (AX)
	MOVQ 16(SP), AX
	MOVB AX, ret+40(FP)
	RET

// vmlaunchTail runs with [RSP] = vmenter's return point, 8(SP) = regs,
// 16(SP) = launched, 24(SP) = status.
TEXT ·vmlaunchTail(SB),NOSPLIT|NOFRAME,$0
	MOVQ $0x6C14, DX // HOST_RSP
	MOVQ SP, CX
	BYTE $0x0F; BYTE $0x79; BYTE $0xD1 // VMWRITE RDX, RCX
	MOVQ $0x6C16, DX // HOST_RIP
	LEAQ ·vmexitStub(SB), CX
	BYTE $0x0F; BYTE $0x79; BYTE $0xD1 // VMWRITE RDX, RCX
	MOVQ 16(SP), AX
	TESTQ AX, AX
	MOVQ 8(SP), AX
	MOVQ R_RBX(AX), BX
	MOVQ R_RCX(AX), CX
	MOVQ R_RDX(AX), DX
	MOVQ R_RSI(AX), SI
	MOVQ R_RDI(AX), DI
	MOVQ R_R8(AX), R8
	MOVQ R_R9(AX), R9
	MOVQ R_R10(AX), R10
	MOVQ R_R11(AX), R11
	MOVQ R_R12(AX), R12
	MOVQ R_R13(AX), R13
	MOVQ R_R14(AX), R14
	MOVQ R_R15(AX), R15
	MOVQ R_RAX(AX), AX // MOV does not change ZF from the TESTQ above
	JNE resume
	BYTE $0x0F; BYTE $0x01; BYTE $0xC2 // VMLAUNCH
	JMP failed
resume:
	BYTE $0x0F; BYTE $0x01; BYTE $0xC3 // VMRESUME
failed:
	// Entry failed; the guest never ran. Status into 24(SP).
	VMSTATUS
	MOVQ AX, 24(SP)
	RET

// vmexitStub is HOST_RIP: RSP = HOST_RSP, so [RSP] is vmenter's return
// point and 8(SP) its regs pointer. Every general register holds the
// guest's value.
TEXT ·vmexitStub(SB),NOSPLIT|NOFRAME,$0
	PUSHQ AX                // guest RAX; now 16(SP) = regs
	MOVQ 16(SP), AX
	MOVQ BX, R_RBX(AX)
	MOVQ CX, R_RCX(AX)
	MOVQ DX, R_RDX(AX)
	MOVQ SI, R_RSI(AX)
	MOVQ DI, R_RDI(AX)
	MOVQ BP, R_RBP(AX)
	MOVQ R8, R_R8(AX)
	MOVQ R9, R_R9(AX)
	MOVQ R10, R_R10(AX)
	MOVQ R11, R_R11(AX)
	MOVQ R12, R_R12(AX)
	MOVQ R13, R_R13(AX)
	MOVQ R14, R_R14(AX)
	MOVQ R15, R_R15(AX)
	POPQ BX
	MOVQ BX, R_RAX(AX)
	RET
